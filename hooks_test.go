package patrol_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// recorder collects hook calls as lines, in order.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(format string, a ...any) {
	r.mu.Lock()
	r.calls = append(r.calls, fmt.Sprintf(format, a...))
	r.mu.Unlock()
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// TestHooks: each hook fires once, at the right moment, with the right
// data, in order per entry; a hook sleeping 10 s does not delay a restart.
func TestHooks(t *testing.T) {
	rec := &recorder{}
	slow := make(chan struct{})
	defer close(slow)
	hooks := patrol.Hooks{
		Started: func(e patrol.Entry, pid int, id string) { rec.add("started %s %d", e.ID, pid) },
		Exited: func(e patrol.Entry, h schema.History) {
			rec.add("exited %s %d %d %s", e.ID, h.PID, h.ExitCode, h.Reason)
			if e.ID == "web" {
				select { // a slow hook: 10 s
				case <-slow:
				case <-time.After(10 * time.Second):
				}
			}
		},
		StateChanged: func(e patrol.Entry, s schema.State) {
			if e.ID == "web" {
				rec.add("state %s %s", e.ID, s)
			}
		},
	}
	d := startPatrolWith(t, config(map[string]any{
		"web": appCfg(t, map[string]any{"backoff": map[string]any{"reset-after": 0.05}}, "sleep"),
	}, nil), patrol.Options{Hooks: hooks})
	first, _ := d.waitRunning(t, "web", 0, 5*time.Second)
	waitFor(t, "the started hook", 5*time.Second, func() bool { return slices.Contains(rec.lines(), fmt.Sprintf("started web %d", first.PID)) })
	time.Sleep(60 * time.Millisecond) // outlive reset-after
	syscall.Kill(int(first.PID), syscall.SIGKILL)
	second, took := d.waitRunning(t, "web", first.PID, 5*time.Second)
	if took > 500*time.Millisecond {
		t.Errorf("restart took %v with a slow hook", took)
	}
	// The exited hook got the history entry; the next started hook waits
	// behind the slow one (order per entry), then runs.
	want := []string{
		fmt.Sprintf("started web %d", first.PID),
		fmt.Sprintf("exited web %d 137 signal", first.PID),
	}
	waitFor(t, "the exited hook", 5*time.Second, func() bool {
		var got []string
		for _, l := range rec.lines() {
			if !strings.HasPrefix(l, "state") {
				got = append(got, l)
			}
		}
		return slices.Equal(got, want)
	})
	slow <- struct{}{}
	waitFor(t, "the second started hook", 5*time.Second, func() bool {
		return slices.Contains(rec.lines(), fmt.Sprintf("started web %d", second.PID))
	})
	var states []string
	for _, l := range rec.lines() {
		if strings.HasPrefix(l, "state") {
			states = append(states, l)
		}
	}
	if len(states) < 1 || states[0] != "state web running" {
		t.Errorf("state hooks: %q", states)
	}
}

// TestBeforeStart: a BeforeStart error keeps the app stopped, with the
// error as its reason; once it allows, the app starts.
func TestBeforeStart(t *testing.T) {
	var mu sync.Mutex
	allow := false
	d := startPatrolWith(t, config(map[string]any{
		"web": appCfg(t, map[string]any{"backoff": map[string]any{"initial": 0.05, "max": 0.1}}, "sleep"),
	}, nil), patrol.Options{Hooks: patrol.Hooks{BeforeStart: func(ctx context.Context, e patrol.Entry) error {
		mu.Lock()
		defer mu.Unlock()
		if !allow {
			return errors.New("maintenance window")
		}
		return nil
	}}})
	waitFor(t, "the refusal shown", 5*time.Second, func() bool {
		return strings.Contains(d.app(t, "web").Reason, "refused by BeforeStart: maintenance window")
	})
	if a := d.app(t, "web"); a.PID != 0 || a.State == schema.StateRunning {
		t.Fatalf("started despite the refusal: %+v", a)
	}
	mu.Lock()
	allow = true
	mu.Unlock()
	d.waitRunning(t, "web", 0, 5*time.Second)
}

// TestConfigHook: a config on-crash hook runs with the event in its
// environment.
func TestConfigHook(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "env")
	d := startPatrol(t, config(map[string]any{
		"web": appCfg(t, map[string]any{
			"backoff": map[string]any{"initial": 5},
			"hooks":   map[string]any{"on-crash": []string{self(t), "patrol-helper", "write-env", envFile}},
		}, "exit-after", "100ms", "3"),
	}, map[string]any{"json-timestamp": "RFC3339Nano"}))
	env := string(mustRead(t, envFile, 5*time.Second))
	h := d.app(t, "web").History
	if len(h) == 0 {
		t.Fatal("no history")
	}
	vars := map[string]string{}
	for _, kv := range strings.Split(env, "\n") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "PATROL_") {
			vars[k] = v
		}
	}
	want := map[string]string{
		"PATROL_EVENT": "on-crash", "PATROL_ID": "web", "PATROL_GROUP": "app",
		"PATROL_PID": fmt.Sprint(h[0].PID), "PATROL_EXIT_CODE": "3", "PATROL_REASON": "crashed",
		"PATROL_INSTANCE_ID": h[0].InstanceID,
	}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s=%q, want %q", k, vars[k], v)
		}
	}
}

// TestEventStream: an SSE client sees the start, exit and restart of a
// crashing app, each within 100 ms of it.
func TestEventStream(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"web":   appCfg(t, map[string]any{"backoff": map[string]any{"initial": 0.2}}, "exit-after", "100ms", "1"),
		"other": appCfg(t, nil, "sleep"),
	}, nil))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+d.HTTPAddr()+"/api/events?id=web", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var seen []string
	for sc.Scan() && len(seen) < 4 {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev schema.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Group == "" {
			continue // Patrol's own events
		}
		if ev.ID != "web" {
			t.Errorf("filter ?id=web let %s through", ev.ID)
		}
		at, _ := time.Parse(time.RFC3339Nano, ev.Time)
		if lag := time.Since(at); lag > 100*time.Millisecond {
			t.Errorf("%s arrived %v after it happened", ev.Event, lag)
		}
		if ev.Event == schema.EventStarted || ev.Event == schema.EventExited {
			seen = append(seen, string(ev.Event))
		}
	}
	// The stream may join between the first start and its exit: from then
	// on, exits and (re)starts alternate.
	joined := strings.Join(seen, ",")
	if !strings.Contains(joined, "started,exited,started") && !strings.Contains(joined, "exited,started,exited") {
		t.Errorf("events %q: want start, exit and restart in turn", seen)
	}
}

// TestAppOptions: extra arguments, environment and files, and stdin,
// stdout and stderr callbacks reach the child exactly; no log file is made
// for a stream with a writer.
func TestAppOptions(t *testing.T) {
	dir := t.TempDir()
	fd3 := filepath.Join(dir, "fd3")
	os.WriteFile(fd3, []byte("from a file"), 0o644)
	extra, err := os.Open(fd3)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	var out, errOut testhelper.Buffer
	d := startPatrolWith(t, config(map[string]any{
		"web": appCfg(t, nil, "echo-all", "a"),
	}, nil), patrol.Options{App: func(id string) patrol.AppOptions {
		return patrol.AppOptions{
			ExtraArgs: []string{"b", "c"}, ExtraEnv: []string{"EXTRA=yes"}, ExtraFiles: []*os.File{extra},
			Stdin: strings.NewReader("from stdin\n"), Stdout: &out, Stderr: &errOut,
		}
	}})
	d.waitRunning(t, "web", 0, 5*time.Second)
	waitFor(t, "the output", 5*time.Second, func() bool { return strings.Contains(out.String(), "from stdin") })
	if got, want := out.String(), "args: a b c\nfd3: from a file\nfrom stdin\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	waitFor(t, "stderr", 5*time.Second, func() bool { return errOut.String() == "env: yes\n" })
	logs, _ := filepath.Glob(filepath.Join(d.dir, "logs", "web", "*", "*", "*", "*"))
	if len(logs) != 0 {
		t.Errorf("log files made for streams with writers: %v", logs)
	}
}

// TestHookGoroutinesOnDemand: hook delivery keeps no goroutine per entry
// while nothing happens: after 100 apps started (and their Started hooks
// ran), the goroutine count falls back to what Patrol needs for itself.
func TestHookGoroutinesOnDemand(t *testing.T) {
	const n = 100
	var started sync.Map
	apps := map[string]any{}
	for i := range n {
		apps[fmt.Sprintf("app-%d", i)] = map[string]any{"binary": "/bin/sleep", "args": []string{"1000"}}
	}
	d := startPatrolWith(t, config(apps, nil), patrol.Options{Hooks: patrol.Hooks{
		Started: func(e patrol.Entry, pid int, id string) { started.Store(e.ID, pid) },
	}})
	waitFor(t, "every Started hook", 10*time.Second, func() bool {
		count := 0
		started.Range(func(any, any) bool { count++; return true })
		return count == n
	})
	st, err := d.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for id, r := range st.Apps {
		if pid, ok := started.Load(id); !ok || pid != int(r.PID) {
			t.Errorf("%s: Started hook pid %v, status pid %d", id, pid, r.PID)
		}
	}
	// Patrol's own goroutines (loop, runner, watcher, servers, ...) are a
	// few dozen; one per app would be over 100.
	waitFor(t, "idle hook goroutines to end", 10*time.Second, func() bool {
		return runtime.NumGoroutine() < n/2
	})
}
