package patrol_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

func freePort(t *testing.T) int {
	t.Helper()
	p, err := testhelper.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// events subscribes to the events stream of app id.
func events(t *testing.T, d *daemon, id string) <-chan schema.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+d.HTTPAddr()+"/api/events?id="+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan schema.Event, 256)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev schema.Event
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Group != "" {
				ch <- ev
			}
		}
	}()
	return ch
}

// waitEvent returns the first event from ch that match accepts.
func waitEvent(t *testing.T, ch <-chan schema.Event, what string, timeout time.Duration, match func(schema.Event) bool) schema.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event stream ended waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

func eventTime(t *testing.T, ev schema.Event) time.Time {
	at, err := time.Parse(time.RFC3339Nano, ev.Time)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// TestLivenessRestart: an HTTP app whose /health fails after 3 requests
// is stopped gracefully (SIGTERM, it exits 0) after failure-threshold
// failed periods, with history reason liveness-failed, and started again.
func TestLivenessRestart(t *testing.T) {
	port := freePort(t)
	hookEnv := filepath.Join(t.TempDir(), "hook.env")
	d := startPatrol(t, config(map[string]any{
		"web": appCfg(t, map[string]any{
			"liveness": map[string]any{"http": map[string]any{"port": port, "path": "/health"},
				"period": 0.1, "timeout": 0.1, "failure-threshold": 2},
			"backoff": map[string]any{"initial": 0.05},
			"hooks":   map[string]any{"on-unhealthy": []string{self(t), "patrol-helper", "write-env", hookEnv}},
		}, "http-health", strconv.Itoa(port), "3"),
	}, nil))
	ch := events(t, d, "web")
	first, _ := d.waitRunning(t, "web", 0, 10*time.Second)
	ev := waitEvent(t, ch, "unhealthy event", 10*time.Second, func(ev schema.Event) bool { return ev.Event == schema.EventUnhealthy })
	if ev.Reason != schema.ReasonLivenessFailed || !strings.Contains(ev.Message, "HTTP 500") || ev.PID != int(first.PID) {
		t.Errorf("unhealthy event %+v", ev)
	}
	second, _ := d.waitRunning(t, "web", first.PID, 10*time.Second)
	var h *schema.History
	waitFor(t, "history entry", 5*time.Second, func() bool {
		a := d.app(t, "web")
		for i := range a.History {
			if a.History[i].PID == first.PID {
				h = &a.History[i]
			}
		}
		return h != nil
	})
	if h.Reason != schema.ReasonLivenessFailed || h.ExitCode != 0 {
		t.Errorf("history %+v: want reason liveness-failed and exit code 0 (a graceful stop)", h)
	}
	a := d.app(t, "web")
	if a.Restarts < 1 || second.PID == first.PID || !strings.Contains(a.HealthFailure, "liveness") {
		t.Errorf("after the restart: %+v", a)
	}
	waitFor(t, "a probe of the new instance in status", 5*time.Second, func() bool {
		p := d.app(t, "web").Probes["liveness"]
		return p != nil && p.At != "" && p.Last && p.Message == "HTTP 200"
	})
	env := string(mustRead(t, hookEnv, 5*time.Second))
	if !strings.Contains(env, "PATROL_EVENT=on-unhealthy") || !strings.Contains(env, "PATROL_REASON=liveness-failed") {
		t.Errorf("on-unhealthy hook environment:\n%s", env)
	}
	metrics := scrape(t, d)
	for _, want := range []string{`patrol_app_unhealthy_total{id="web",reason="liveness-failed"} 1`,
		`patrol_app_probe_success{id="web",probe="liveness"} 1`, `patrol_app_ready{id="web"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestReadinessTCP: an app that listens only after 1 s is starting, then
// ready; status and the events stream show both, with timestamps.
func TestReadinessTCP(t *testing.T) {
	port := freePort(t)
	hookEnv := filepath.Join(t.TempDir(), "hook.env")
	d := startPatrol(t, config(map[string]any{
		"db": appCfg(t, map[string]any{
			"readiness": map[string]any{"tcp": map[string]any{"port": port}, "period": 0.1, "timeout": 0.1},
			"hooks":     map[string]any{"on-ready": []string{self(t), "patrol-helper", "write-env", hookEnv}},
		}, "listen-after", "1s", strconv.Itoa(port)),
	}, nil))
	ch := events(t, d, "db")
	var a *schema.Response
	waitFor(t, "db started", 5*time.Second, func() bool { a = d.app(t, "db"); return a.PID != 0 })
	if a.State != schema.StateStarting || a.Health != schema.HealthStarting || a.Ready == nil || *a.Ready {
		t.Errorf("before it listens: state %s health %s ready %v reason %q", a.State, a.Health, a.Ready, a.Reason)
	}
	started, _ := time.Parse(d.layout(t), a.Started)
	ev := waitEvent(t, ch, "ready event", 10*time.Second, func(ev schema.Event) bool { return ev.Event == schema.EventReady })
	if at := eventTime(t, ev); at.Sub(started) < 900*time.Millisecond {
		t.Errorf("ready %v after the start, before it listened", at.Sub(started))
	}
	st := waitEvent(t, ch, "running state", 5*time.Second, func(ev schema.Event) bool { return ev.Event == schema.EventState })
	if st.State != schema.StateRunning || st.Time == "" {
		t.Errorf("state event %+v", st)
	}
	a = d.app(t, "db")
	if a.State != schema.StateRunning || a.Health != schema.HealthReady || a.Ready == nil || !*a.Ready || a.ReadySince == "" {
		t.Errorf("after it listens: state %s health %s ready %v since %q", a.State, a.Health, a.Ready, a.ReadySince)
	}
	if env := string(mustRead(t, hookEnv, 5*time.Second)); !strings.Contains(env, "PATROL_EVENT=on-ready") {
		t.Errorf("on-ready hook environment:\n%s", env)
	}
}

// layout is the daemon's timestamp layout.
func (d *daemon) layout(t *testing.T) string { return time.RFC1123Z }

// TestNotifyReadyPython: a python app that sends READY=1 with the
// socket module, as any sd_notify client does, is ready at once.
func TestNotifyReadyPython(t *testing.T) {
	py := python3(t, "the sd_notify test with a python app needs it")
	script := `import os, socket, time
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(addr)
s.sendall(b"STATUS=serving from python\nREADY=1")
time.sleep(3600)
`
	d := startPatrol(t, config(map[string]any{
		"py": map[string]any{"binary": py, "args": []string{"-c", script}, "ready": "notify"},
	}, nil))
	var a *schema.Response
	waitFor(t, "py ready", 10*time.Second, func() bool { a = d.app(t, "py"); return a.Ready != nil && *a.Ready })
	if a.State != schema.StateRunning || a.StatusText != "serving from python" {
		t.Errorf("state %s status %q", a.State, a.StatusText)
	}
}

// TestNotifyWatchdog: an app that sends WATCHDOG=1 and then stops is
// restarted with reason watchdog; a datagram from a foreign process does
// not make an app ready.
func TestNotifyWatchdog(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"dog":   appCfg(t, map[string]any{"watchdog": 0.4, "backoff": map[string]any{"initial": 0.05}}, "watchdog", "5", "100ms"),
		"quiet": appCfg(t, map[string]any{"ready": "notify"}, "sleep"),
	}, nil))
	first, _ := d.waitRunning(t, "dog", 0, 5*time.Second)
	start := time.Now()
	second, _ := d.waitRunning(t, "dog", first.PID, 10*time.Second)
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("restarted after %v, while it still sent WATCHDOG=1 for 500ms", took)
	}
	a := d.app(t, "dog")
	h := a.History[len(a.History)-1]
	if h.PID != first.PID || h.Reason != schema.ReasonWatchdog {
		t.Errorf("history %+v, want pid %d with reason watchdog", h, first.PID)
	}
	if second.WatchdogUntil == "" {
		t.Error("no watchdog-until in status")
	}

	// A foreign datagram: this test process is not quiet's.
	q := d.app(t, "quiet")
	if q.InstanceID == "" {
		t.Fatal("quiet has no instance")
	}
	c, err := net.Dial("unixgram", "@patrol/"+q.InstanceID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("READY=1")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // nothing to poll for: it must not happen
	if q := d.app(t, "quiet"); q.Ready == nil || *q.Ready || q.State != schema.StateStarting {
		t.Errorf("a foreign READY=1 changed quiet: ready %v state %s", q.Ready, q.State)
	}
}

// TestDependencyChain: db (ready after 1 s) <- api (ready) <- worker
// (started): api starts only after db is ready, worker after api; at
// shutdown worker stops first, then api, then db. A setup app that must
// complete successfully and exits 1 keeps its dependent waiting, saying
// why.
func TestDependencyChain(t *testing.T) {
	port := freePort(t)
	termLog := filepath.Join(t.TempDir(), "term.log")
	env := []string{testhelper.TermLogEnv + "=" + termLog}
	d := startPatrol(t, config(map[string]any{
		"db": appCfg(t, map[string]any{"env": env,
			"readiness": map[string]any{"tcp": map[string]any{"port": port}, "period": 0.1, "timeout": 0.1}},
			"listen-after", "1s", strconv.Itoa(port)),
		"api":    appCfg(t, map[string]any{"env": env, "depends-on": []any{map[string]any{"app": "db", "condition": "ready"}}}, "notify", "0s"),
		"worker": appCfg(t, map[string]any{"env": env, "depends-on": []any{"api"}}, "notify", "0s"),
		"setup":  appCfg(t, map[string]any{"restart-policy": "never"}, "exit", "1"),
		"job":    appCfg(t, map[string]any{"depends-on": []any{map[string]any{"app": "setup", "condition": "completed-successfully"}}}, "sleep"),
	}, nil))
	ch := events(t, d, "")
	var dbReady, apiStarted, workerStarted time.Time
	for dbReady.IsZero() || apiStarted.IsZero() || workerStarted.IsZero() {
		ev := waitEvent(t, ch, "db ready, api and worker started", 15*time.Second, func(ev schema.Event) bool {
			return (ev.ID == "db" && ev.Event == schema.EventReady) || (ev.Event == schema.EventStarted && (ev.ID == "api" || ev.ID == "worker"))
		})
		switch ev.ID {
		case "db":
			dbReady = eventTime(t, ev)
		case "api":
			apiStarted = eventTime(t, ev)
		case "worker":
			workerStarted = eventTime(t, ev)
		}
		if ev.ID == "api" && dbReady.IsZero() {
			t.Fatal("api started before db was ready")
		}
		if ev.ID == "worker" && apiStarted.IsZero() {
			t.Fatal("worker started before api")
		}
	}
	if !apiStarted.After(dbReady) || !workerStarted.After(apiStarted) {
		t.Errorf("db ready %v, api started %v, worker started %v", dbReady, apiStarted, workerStarted)
	}
	waitFor(t, "job waiting", 5*time.Second, func() bool {
		j := d.app(t, "job")
		return j.State == schema.StateWaiting && strings.Contains(j.Reason, "setup to complete successfully (it crashed with code 1)")
	})
	if j := d.app(t, "job"); j.PID != 0 {
		t.Errorf("job started: %+v", j)
	}

	// Wait until all three catch SIGTERM (their log says "armed").
	waitFor(t, "every helper catching SIGTERM", 5*time.Second, func() bool {
		b, _ := os.ReadFile(termLog)
		return strings.Count(string(b), " armed ") >= 3
	})
	d.stop(t)
	b, err := os.ReadFile(termLog)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	var times []int64
	for line := range strings.Lines(string(b)) {
		var id, event string
		var at int64
		fmt.Sscan(line, &id, &event, &at)
		if event == "term" {
			order = append(order, id)
			times = append(times, at)
		}
	}
	if !slices.Equal(order, []string{"worker", "api", "db"}) || !slices.IsSorted(times) {
		t.Errorf("stopped in the order %v at %v, want worker, api, db", order, times)
	}
}

// TestCycleKeepsLastGood: a live reload with a dependency cycle is
// rejected with the cycle spelled out; the running config stays.
func TestCycleKeepsLastGood(t *testing.T) {
	cfg := config(map[string]any{
		"a": appCfg(t, nil, "sleep"),
		"b": appCfg(t, map[string]any{"depends-on": []any{"a"}}, "sleep"),
	}, nil)
	d := startPatrol(t, cfg)
	a, _ := d.waitRunning(t, "a", 0, 5*time.Second)
	b, _ := d.waitRunning(t, "b", 0, 5*time.Second)
	cfg["apps"].(map[string]any)["a"] = appCfg(t, map[string]any{"depends-on": []any{"b"}}, "sleep")
	writeConfig(t, d.config, cfg)
	waitFor(t, "config error", 10*time.Second, func() bool {
		st, err := d.Status(t.Context())
		return err == nil && strings.Contains(st.Config.Error, "apps.a.depends-on: cycle a -> b -> a")
	})
	if a2, b2 := d.app(t, "a"), d.app(t, "b"); a2.PID != a.PID || b2.PID != b.PID {
		t.Errorf("pids changed: a %d -> %d, b %d -> %d", a.PID, a2.PID, b.PID, b2.PID)
	}
}

// TestWaitingSemantics: a dependent waiting for "ready" keeps waiting
// while its dependency restarts and while it is unready, also after a
// brief loss of readiness; restarting or disabling it while it waits
// neither half-starts it nor starts it twice: it starts exactly once, the
// moment the dependency is ready.
func TestWaitingSemantics(t *testing.T) {
	test, err := exec.LookPath("test")
	if err != nil {
		t.Fatal(err)
	}
	gate := filepath.Join(t.TempDir(), "ready")
	d := startPatrol(t, config(map[string]any{
		"db": appCfg(t, map[string]any{"readiness": map[string]any{"exec": map[string]any{"command": []string{test, "-f", gate}},
			"period": 0.1, "timeout": 0.1, "failure-threshold": 1}}, "sleep"),
		"api": appCfg(t, map[string]any{"depends-on": []any{map[string]any{"app": "db", "condition": "ready"}}}, "sleep"),
	}, nil))
	ch := events(t, d, "")
	ctx := t.Context()
	db, _ := waitState(t, d, "db", schema.StateStarting)
	waitState(t, d, "api", schema.StateWaiting)

	// The dependency restarts while api waits.
	if err := d.Toggle(ctx, schema.GroupApp, "db", schema.ToggleRestart, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "db restarted", 5*time.Second, func() bool { a := d.app(t, "db"); return a.PID != 0 && a.PID != db.PID })
	// Restart and disable api while it waits.
	if err := d.Toggle(ctx, schema.GroupApp, "api", schema.ToggleRestart, 0); err != nil {
		t.Fatal(err)
	}
	if a := d.app(t, "api"); a.State != schema.StateWaiting || a.PID != 0 {
		t.Errorf("api after a restart while waiting: %s pid %d", a.State, a.PID)
	}
	if err := d.Toggle(ctx, schema.GroupApp, "api", schema.ToggleDisable, 0); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, "api", schema.StateDisabled)
	// db ready, then unready again (briefly), while api is disabled.
	os.WriteFile(gate, nil, 0o644)
	waitFor(t, "db ready", 5*time.Second, func() bool { r := d.app(t, "db").Ready; return r != nil && *r })
	os.Remove(gate)
	waitFor(t, "db unready", 5*time.Second, func() bool { return d.app(t, "db").Health == schema.HealthUnready })
	if err := d.Toggle(ctx, schema.GroupApp, "api", schema.ToggleEnable, 0); err != nil {
		t.Fatal(err)
	}
	a, _ := waitState(t, d, "api", schema.StateWaiting)
	if !strings.Contains(a.Reason, "db to be ready (it is unready)") {
		t.Errorf("api waits with reason %q", a.Reason)
	}
	os.WriteFile(gate, nil, 0o644)
	d.waitRunning(t, "api", 0, 5*time.Second)

	// Exactly one start of api, after db's last ready event.
	var starts int
	var lastReady time.Time
	deadline := time.After(300 * time.Millisecond) // events already published are all in the stream
	for done := false; !done; {
		select {
		case ev := <-ch:
			switch {
			case ev.ID == "db" && ev.Event == schema.EventReady:
				lastReady = eventTime(t, ev)
			case ev.ID == "api" && ev.Event == schema.EventStarted:
				starts++
				if at := eventTime(t, ev); at.Before(lastReady) || lastReady.IsZero() {
					t.Errorf("api started at %v, before db's last ready %v", at, lastReady)
				}
			}
		case <-deadline:
			done = true
		}
	}
	if starts != 1 {
		t.Errorf("api started %d times, want once", starts)
	}
}

// waitState waits until app id is in state st.
func waitState(t *testing.T, d *daemon, id string, st schema.State) (*schema.Response, time.Duration) {
	t.Helper()
	var a *schema.Response
	took := waitFor(t, id+" "+string(st), 10*time.Second, func() bool { a = d.app(t, id); return a.State == st })
	return a, took
}

// scrape returns the daemon's /metrics.
func scrape(t *testing.T, d *daemon) string {
	t.Helper()
	resp, err := http.Get("http://" + d.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestProbeChangeInPlace: changing only an app's probes in the file is an
// update in place: same pid, the plan said so, the new probe runs.
func TestProbeChangeInPlace(t *testing.T) {
	port := freePort(t)
	cfg := config(map[string]any{
		"db": appCfg(t, map[string]any{
			"readiness": map[string]any{"tcp": map[string]any{"port": port}, "period": 0.1, "timeout": 0.1},
		}, "listen-after", "0s", strconv.Itoa(port)),
	}, nil)
	d := startPatrol(t, cfg)
	waitFor(t, "db ready", 5*time.Second, func() bool { r := d.app(t, "db").Ready; return r != nil && *r })
	before := d.app(t, "db")
	apps := cfg["apps"].(map[string]any)
	apps["db"].(map[string]any)["readiness"] = map[string]any{"tcp": map[string]any{"port": port}, "period": 0.2, "failure-threshold": 5, "timeout": 0.1}
	apps["db"].(map[string]any)["liveness"] = map[string]any{"tcp": map[string]any{"port": port}, "period": 0.2, "timeout": 0.1}
	next, _ := json.Marshal(cfg)
	plan, err := d.Plan(t.Context(), next)
	if err != nil {
		t.Fatal(err)
	}
	if txt := plan.Text(); !strings.Contains(txt, "update") || !strings.Contains(txt, "liveness: null -> ") || plan.Summary.Update != 1 || plan.Summary.Restart != 0 {
		t.Errorf("plan:\n%s", txt)
	}
	writeConfig(t, d.config, cfg)
	waitFor(t, "the liveness probe to run", 10*time.Second, func() bool {
		p := d.app(t, "db").Probes["liveness"]
		return p != nil && p.OK
	})
	if after := d.app(t, "db"); after.PID != before.PID || after.Restarts != 0 || after.Ready == nil || !*after.Ready {
		t.Errorf("after the edit: pid %d -> %d, restarts %d, ready %v", before.PID, after.PID, after.Restarts, after.Ready)
	}
}

// TestRestartWithDependency: a dependent with "restart": true on its
// dependency is restarted (reason dependency-restarted) when the
// dependency crashes and comes back; one without it keeps running.
func TestRestartWithDependency(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"db":     appCfg(t, nil, "sleep"),
		"api":    appCfg(t, map[string]any{"depends-on": []any{map[string]any{"app": "db", "restart": true}}}, "sleep"),
		"worker": appCfg(t, map[string]any{"depends-on": []any{"db"}}, "sleep"),
	}, nil))
	db, _ := d.waitRunning(t, "db", 0, 5*time.Second)
	api, _ := d.waitRunning(t, "api", 0, 5*time.Second)
	worker, _ := d.waitRunning(t, "worker", 0, 5*time.Second)
	syscall.Kill(int(db.PID), syscall.SIGKILL)
	d.waitRunning(t, "db", db.PID, 5*time.Second)
	api2, _ := d.waitRunning(t, "api", api.PID, 5*time.Second)
	if h := api2.History[len(api2.History)-1]; h.PID != api.PID || h.Reason != schema.ReasonDependency {
		t.Errorf("api's history %+v, want pid %d stopped with reason dependency-restarted", h, api.PID)
	}
	if w := d.app(t, "worker"); w.PID != worker.PID || len(w.History) != 0 {
		t.Errorf("worker was touched: pid %d -> %d, history %+v", worker.PID, w.PID, w.History)
	}
}

// TestStartupProbeGatesLiveness: while the startup probe has not passed,
// the liveness probe (which would fail) does not run; once it passed, the
// liveness probe runs and its failures restart the app.
func TestStartupProbeGatesLiveness(t *testing.T) {
	test, err := exec.LookPath("test")
	if err != nil {
		t.Fatal(err)
	}
	gate := filepath.Join(t.TempDir(), "started")
	d := startPatrol(t, config(map[string]any{
		"slow": appCfg(t, map[string]any{
			"startup": map[string]any{"exec": map[string]any{"command": []string{test, "-f", gate}},
				"period": 0.1, "timeout": 0.1, "failure-threshold": 1000},
			"liveness": map[string]any{"tcp": map[string]any{"port": freePort(t)}, "period": 0.1, "timeout": 0.1, "failure-threshold": 2},
			"backoff":  map[string]any{"initial": 0.05},
		}, "sleep"),
	}, nil))
	first, _ := waitState(t, d, "slow", schema.StateStarting)
	waitFor(t, "startup probes failing", 5*time.Second, func() bool {
		p := d.app(t, "slow").Probes["startup"]
		return p != nil && p.Failures >= 5
	})
	a := d.app(t, "slow")
	if a.PID != first.PID || a.Probes["liveness"] != nil || len(a.History) != 0 {
		t.Fatalf("before the startup probe passed: pid %d (was %d), probes %v, history %v", a.PID, first.PID, a.Probes, a.History)
	}
	os.WriteFile(gate, nil, 0o644)
	second, _ := d.waitRunning(t, "slow", first.PID, 10*time.Second)
	if h := second.History[0]; h.Reason != schema.ReasonLivenessFailed {
		t.Errorf("history %+v, want liveness-failed", h)
	}
}

// TestReadyLogLine: an app with "ready": "log-line" is starting until it
// writes a line matching ready-line (not a line that merely contains its
// words), then ready, and says which line did it.
func TestReadyLogLine(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"web": appCfg(t, map[string]any{"ready": "log-line", "ready-line": `^listening on :\d+$`},
			"say", "300ms", "loading", "not listening on :1 yet", "listening on :8080"),
	}, nil))
	ch := events(t, d, "web")
	a, _ := waitState(t, d, "web", schema.StateStarting)
	started, _ := time.Parse(d.layout(t), a.Started)
	ev := waitEvent(t, ch, "ready event", 10*time.Second, func(ev schema.Event) bool { return ev.Event == schema.EventReady })
	if ev.Message != `the app wrote "listening on :8080"` {
		t.Errorf("ready because %q", ev.Message)
	}
	if at := eventTime(t, ev); at.Sub(started) < 800*time.Millisecond {
		t.Errorf("ready %v after the start, before the third line", at.Sub(started))
	}
	waitState(t, d, "web", schema.StateRunning)
}

// TestNotifyGarbage: malformed and oversized datagrams from the app itself
// are logged and ignored; the instance is undisturbed and the READY=1
// after them counts.
func TestNotifyGarbage(t *testing.T) {
	var logs testhelper.Buffer
	d := startPatrolWith(t, config(map[string]any{
		"app": appCfg(t, map[string]any{"ready": "notify"}, "notify", "0s",
			"READY", "MAINPID=x", "WATCHDOG_USEC=-1", "=novalue", strings.Repeat("STATUS=x\n", 600), "", "READY=1"),
	}, nil), patrol.Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	var a *schema.Response
	waitFor(t, "ready", 10*time.Second, func() bool { a = d.app(t, "app"); return a.Ready != nil && *a.Ready })
	if a.Restarts != 0 || len(a.History) != 0 {
		t.Errorf("the app was disturbed: %+v", a)
	}
	for _, want := range []string{`not an assignment: \"READY\"`, "MAINPID=x: not a pid", "notify datagram too large"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}
