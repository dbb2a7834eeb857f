package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/patrolhq/patrol/schema"

	"github.com/patrolhq/patrol/internal/proctool"
)

// sleepArg is the argument of every /bin/sleep app: long enough to outlive
// any run.
const sleepArg = 100000

// sleepApp is a keepalive 1 app running /bin/sleep with arg. reset-after 0
// makes every restart immediate: the benchmarks measure the restart path,
// not the crash-loop backoff.
func (e *env) sleepApp(arg int) *schema.App {
	a := &schema.App{
		Binary:  "/bin/sleep",
		Args:    []string{strconv.Itoa(arg)},
		Env:     []string{e.marker()},
		Backoff: &schema.Backoff{ResetAfter: schema.Seconds(0).Ptr()},
	}
	if e.limits {
		a.MemoryMax, a.PIDsMax, a.CPUMax = "256M", "64", "100%"
	}
	return a
}

// scaleConfig is n /bin/sleep apps, app-0 ... app-(n-1); app-0's argument
// is sleepArg+gen, so a new gen changes exactly that app.
func (e *env) scaleConfig(n, gen int) *schema.Config {
	apps := make(map[string]*schema.App, n)
	for i := range n {
		arg := sleepArg
		if i == 0 {
			arg += gen
		}
		apps[fmt.Sprintf("app-%d", i)] = e.sleepApp(arg)
	}
	return &schema.Config{TickEvery: 15, Apps: apps}
}

// sleepMatcher matches the /bin/sleep children of a supervisor with arg.
func sleepMatcher(ppid, arg int) matcher {
	return matcher{PPID: ppid, Comm: "sleep", Argv: []string{"/bin/sleep", strconv.Itoa(arg)}}
}

// daemonTag names the keepalive 2 daemon of a run in its argv.
func (e *env) daemonTag() string { return "k2-" + e.token }

// daemonMatcher matches the keepalive 2 daemon (`helper sleep TAG`),
// whoever its parent is at the moment.
func (e *env) daemonMatcher() matcher {
	comm := filepath.Base(e.self)
	if len(comm) > 15 {
		comm = comm[:15] // TASK_COMM_LEN
	}
	return matcher{Comm: comm, Argv: []string{e.self, "helper", "sleep", e.daemonTag()}}
}

// crashConfig is one keepalive 1 app (k1, /bin/sleep) and one keepalive 2
// forking daemon (k2, `helper daemonize`).
func (e *env) crashConfig() *schema.Config {
	k2 := &schema.App{
		Keepalive: 2,
		Binary:    e.self,
		Args:      []string{"helper", "daemonize", e.daemonTag()},
		PIDPath:   "run/k2.pid",
		Env:       []string{e.marker()},
		Backoff:   &schema.Backoff{ResetAfter: schema.Seconds(0).Ptr()},
	}
	return &schema.Config{TickEvery: 15, Apps: map[string]*schema.App{"k1": e.sleepApp(sleepArg), "k2": k2}}
}

// crashResult holds the samples of one supervisor's crash benchmark.
type crashResult struct {
	proc map[string][]time.Duration // by app: SIGKILL → new process in /proc
	api  map[string][]time.Duration // by app: SIGKILL → /api/ reports the new pid
}

// crash SIGKILLs the app process reps times per app and times until its
// replacement runs: for k1 a new /bin/sleep child of the supervisor, for k2
// a new daemon (exec'd, not a zombie), found by listing /proc every 0.15 ms.
// Then it times until /api/ reports the new pid.
func (e *env) crash(ctx context.Context, kind string, reps int) (*crashResult, error) {
	s, err := e.start(kind, e.crashConfig())
	if err != nil {
		return nil, err
	}
	defer e.stop(s)
	if err := s.waitAddrs(ctx); err != nil {
		return nil, err
	}
	res := &crashResult{proc: map[string][]time.Duration{}, api: map[string][]time.Duration{}}
	matchers := map[string]matcher{"k1": sleepMatcher(s.pid, sleepArg), "k2": e.daemonMatcher()}
	for _, id := range []string{"k1", "k2"} {
		if res.proc[id], res.api[id], err = e.crashApp(ctx, s, id, matchers[id], reps); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// crashApp SIGKILLs app id's process reps times and times until a new
// process matching m runs (tProc), and until /api/ reports it (tAPI).
func (e *env) crashApp(ctx context.Context, s *super, id string, m matcher, reps int) (procs, apis []time.Duration, err error) {
	kind := s.kind
	for range reps {
		// The current process: reported by the API, alive, and the app's.
		var old int
		err := poll(ctx, time.Millisecond, 30*time.Second, func() (bool, error) {
			pid, err := s.appPID(id)
			if err != nil {
				return false, err
			}
			old = pid
			return pid > 0 && m.check(pid) == vYes, nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: app %s not running (%w):\n%s", kind, id, err, s.logTail())
		}
		sc, err := newScanner(m)
		if err != nil {
			return nil, nil, err
		}
		t0 := time.Now()
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			return nil, nil, fmt.Errorf("kill %d: %w", old, err)
		}
		found, err := sc.first(ctx, 10*time.Second)
		tProc := time.Since(t0)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: app %s: no new process after SIGKILL of %d (%w):\n%s", kind, id, old, err, s.logTail())
		}
		err = poll(ctx, 200*time.Microsecond, 10*time.Second, func() (bool, error) {
			pid, err := s.appPID(id)
			return pid == found, err
		})
		tAPI := time.Since(t0)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: app %s: /api/ never reported the new pid %d (%w)", kind, id, found, err)
		}
		procs = append(procs, tProc)
		apis = append(apis, tAPI)
		nap(20 * time.Millisecond) // let the supervisor settle
	}
	return procs, apis, nil
}

// startResult is one start of n apps.
type startResult struct {
	proc   time.Duration // process start → n /bin/sleep children in /proc
	status time.Duration // ... and /status/ reporting all n running with those pids
}

// startN starts a supervisor on n /bin/sleep apps and times until all n
// are running: exec'd children alive in /proc (listed every millisecond)
// and reported running, with those pids, by /status/ (polled every 2 ms
// once /proc shows them all). It returns the running supervisor.
func (e *env) startN(ctx context.Context, kind string, n int) (*super, startResult, error) {
	var r startResult
	sc, err := newScanner(sleepMatcher(0, sleepArg))
	if err != nil {
		return nil, r, err
	}
	cfg := e.scaleConfig(n, 0)
	s, err := e.start(kind, cfg)
	if err != nil {
		return nil, r, err
	}
	sc.m.PPID = s.pid
	fail := func(err error) (*super, startResult, error) {
		e.stop(s)
		return nil, r, err
	}
	timeout := 60*time.Second + time.Duration(n)*50*time.Millisecond
	err = poll(ctx, time.Millisecond, timeout, func() (bool, error) {
		select {
		case <-s.exited:
			return false, fmt.Errorf("%s exited (%v):\n%s", kind, s.waitErr, s.logTail())
		default:
		}
		if err := sc.poll(); err != nil {
			return false, err
		}
		return len(sc.matched) >= n, nil
	})
	r.proc = time.Since(s.started)
	if err != nil {
		return fail(fmt.Errorf("%s: %d of %d apps in /proc (%w):\n%s", kind, len(sc.matched), n, err, s.logTail()))
	}
	if err := s.waitAddrs(ctx); err != nil {
		return fail(err)
	}
	running := 0
	err = poll(ctx, 2*time.Millisecond, timeout, func() (bool, error) {
		st, err := s.status()
		if err != nil {
			return false, err
		}
		running = 0
		for _, pid := range runningPIDs(st) {
			if sc.matched[pid] {
				running++
			}
		}
		if running < n {
			// A pid the scanner has not decided yet (or a restarted app).
			if err := sc.poll(); err != nil {
				return false, err
			}
		}
		return running >= n, nil
	})
	r.status = time.Since(s.started)
	if err != nil {
		return fail(fmt.Errorf("%s: /status/ shows %d of %d running (%w):\n%s", kind, running, n, err, s.logTail()))
	}
	return s, r, nil
}

// idleResult is a supervisor's resource use while nothing happens.
type idleResult struct {
	cpuPct     float64 // % of one core over the window
	rssMB      float64
	pssMB      float64 // proportional set size (smaps_rollup): shared pages split among their users
	threads    int
	goroutines float64 // -1: not available
	wakeups    float64 // context switches per second, all threads
	passes     float64 // reconcile passes in the window (Patrol's /metrics); -1: not available
	seconds    float64 // the window
}

// idle measures an idle supervisor over window, after settle: CPU from
// utime+stime in /proc/PID/stat, RSS and threads from /proc/PID/status,
// PSS from /proc/PID/smaps_rollup,
// context switches summed over its threads, goroutines from go_goroutines
// in GET /metrics if it serves that (read after the window).
func (e *env) idle(ctx context.Context, s *super, settle, window time.Duration) (idleResult, error) {
	r := idleResult{goroutines: -1}
	if err := sleepCtx(ctx, settle); err != nil {
		return r, err
	}
	r.passes = -1
	passes0, passesOK := s.metric("patrol_reconcile_pass_duration_seconds_count")
	u0, err := proctool.ReadUsage(s.pid)
	if err != nil {
		return r, err
	}
	if err := sleepCtx(ctx, window); err != nil {
		return r, err
	}
	u1, err := proctool.ReadUsage(s.pid)
	if err != nil {
		return r, err
	}
	if passes1, ok := s.metric("patrol_reconcile_pass_duration_seconds_count"); ok && passesOK {
		r.passes = passes1 - passes0
	}
	secs := u1.At.Sub(u0.At).Seconds()
	r.seconds = secs
	r.cpuPct = float64(u1.CPU-u0.CPU) / proctool.ClockTicks / secs * 100
	r.wakeups = float64(u1.Ctx-u0.Ctx) / secs
	r.rssMB = float64(u1.RSSKiB) / 1024
	r.pssMB = float64(u1.PSSKiB) / 1024
	r.threads = u1.Threads
	if v, ok := s.metric("go_goroutines"); ok {
		r.goroutines = v
	}
	return r, nil
}

// metric reads an unlabelled metric from the supervisor's /metrics (the
// baseline has none).
func (s *super) metric(name string) (float64, bool) {
	code, body, err := s.client.do("GET", "/metrics", nil, true)
	if err != nil || code != http.StatusOK {
		return 0, false
	}
	return promValue(body, name)
}

// promValue returns the value of an unlabelled metric in Prometheus text
// format.
func promValue(body []byte, name string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// statusLatency times reqs sequential GET /status/ on one keep-alive
// connection, after checking that the status has n apps and 20 warm-up
// requests.
func (e *env) statusLatency(ctx context.Context, s *super, n, reqs int) ([]time.Duration, error) {
	st, err := s.status()
	if err != nil {
		return nil, err
	}
	if len(st.Apps) != n {
		return nil, fmt.Errorf("%s: /status/ has %d apps, want %d", s.kind, len(st.Apps), n)
	}
	req := request("GET", "/status/", s.http, nil)
	for range 20 {
		if _, _, err := s.client.raw(req, false); err != nil {
			return nil, err
		}
	}
	out := make([]time.Duration, 0, reqs)
	for range reqs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		code, _, err := s.client.raw(req, false)
		d := time.Since(t0)
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("GET /status/: HTTP %d", code)
		}
		out = append(out, d)
	}
	return out, nil
}

// editResult is one supervisor's live-config benchmark.
type editResult struct {
	proc   []time.Duration // rename → the changed app's new process in /proc
	status []time.Duration // rename → /status/ reports it running
	others int             // other apps whose pid changed, over all reps
}

// edit runs n /bin/sleep apps and, reps times, changes app-0's argument
// by writing the config to a temporary file in the same directory and
// renaming it over config.json. It times from the rename until the new
// /bin/sleep child with the new argument runs (listed every 0.15 ms), then
// until /status/ shows it, and counts the other apps whose pid changed.
func (e *env) edit(ctx context.Context, kind string, n, reps int) (*editResult, error) {
	s, _, err := e.startN(ctx, kind, n)
	if err != nil {
		return nil, err
	}
	defer e.stop(s)
	res := &editResult{}
	tmp := filepath.Join(s.dir, ".config.json.tmp")
	for gen := 1; gen <= reps; gen++ {
		st, err := s.status()
		if err != nil {
			return nil, err
		}
		before := runningPIDs(st)
		b, err := json.MarshalIndent(e.scaleConfig(n, gen), "", " ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return nil, err
		}
		sc, err := newScanner(sleepMatcher(s.pid, sleepArg+gen))
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := os.Rename(tmp, s.config); err != nil {
			return nil, err
		}
		found, err := sc.first(ctx, 30*time.Second)
		tProc := time.Since(t0)
		if err != nil {
			return nil, fmt.Errorf("%s: edit %d: no new process (%w):\n%s", kind, gen, err, s.logTail())
		}
		var after map[string]int
		err = poll(ctx, time.Millisecond, 30*time.Second, func() (bool, error) {
			st, err := s.status()
			if err != nil {
				return false, err
			}
			after = runningPIDs(st)
			return after["app-0"] == found, nil
		})
		tStatus := time.Since(t0)
		if err != nil {
			return nil, fmt.Errorf("%s: edit %d: /status/ never showed app-0 with pid %d (%w)", kind, gen, found, err)
		}
		for id, pid := range before {
			if id != "app-0" && after[id] != pid {
				res.others++
			}
		}
		res.proc = append(res.proc, tProc)
		res.status = append(res.status, tStatus)
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// pingResult is one transport's throughput run.
type pingResult struct {
	rps    float64
	lat    []time.Duration
	errors int // HTTP errors, or UDP requests left unanswered
}

// pingConfig has one keepalive 3 and one keepalive 4 app with the longest
// ping-timeout. The bench pings for them; Patrol adopts them on the first
// ping (it waits 2 × ping-timeout before it would start them itself).
func (e *env) pingConfig() *schema.Config {
	app := func(k schema.Keepalive) *schema.App {
		a := e.sleepApp(sleepArg)
		a.Keepalive = k
		return a
	}
	return &schema.Config{TickEvery: 15, PingTimeout: 180,
		Apps: map[string]*schema.App{"ping-http": app(3), "ping-udp": app(4)}}
}

// ping measures HTTP pings (POST /api/, workers keep-alive connections)
// and then UDP pings (workers sockets), each for dur, every worker sending
// its next request when the previous one was answered.
func (e *env) ping(ctx context.Context, kind string, dur time.Duration, workers int) (httpR, udpR *pingResult, err error) {
	s, err := e.start(kind, e.pingConfig())
	if err != nil {
		return nil, nil, err
	}
	defer e.stop(s)
	if err := s.waitAddrs(ctx); err != nil {
		return nil, nil, err
	}
	body, _ := json.Marshal(schema.Request{ID: "ping-http", Group: "app", Ping: true})
	req := request("POST", "/api/", s.http, body)
	if code, b, err := s.client.raw(req, true); err != nil || code != http.StatusOK {
		return nil, nil, fmt.Errorf("%s: HTTP ping: %d %s %v", kind, code, b, err)
	}
	httpR = runWorkers(ctx, workers, dur, func() (func() bool, func()) {
		c := newClient(s.http)
		return func() bool {
			code, _, err := c.raw(req, false)
			return err == nil && code == http.StatusOK
		}, c.close
	})
	dgram, _ := json.Marshal(schema.Request{ID: "ping-udp", Group: "app", Ping: true})
	check, err := net.Dial("udp", s.udp)
	if err != nil {
		return nil, nil, err
	}
	defer check.Close()
	_ = check.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	if _, err := check.Write(dgram); err != nil {
		return nil, nil, err
	}
	n, err := check.Read(buf)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: UDP ping unanswered: %w", kind, err)
	}
	var resp schema.Response
	if err := json.Unmarshal(buf[:n], &resp); err != nil || resp.ID != "ping-udp" {
		return nil, nil, fmt.Errorf("%s: UDP ping reply %q: %v", kind, buf[:n], err)
	}
	end := time.Now().Add(dur)
	udpR = runWorkers(ctx, workers, dur, func() (func() bool, func()) {
		c, err := net.Dial("udp", s.udp)
		if err != nil {
			return func() bool { return false }, func() {}
		}
		// One deadline for the whole run: a lost reply shows as fewer
		// requests and an error, not as a hang.
		_ = c.SetDeadline(end.Add(time.Second))
		b := make([]byte, 4096)
		return func() bool {
			if _, err := c.Write(dgram); err != nil {
				return false
			}
			_, err := c.Read(b)
			return err == nil
		}, func() { c.Close() }
	})
	return httpR, udpR, nil
}

// runWorkers runs workers closed-loop clients for dur; each calls newWorker
// for its request function (true: answered) and its cleanup.
func runWorkers(ctx context.Context, workers int, dur time.Duration, newWorker func() (func() bool, func())) *pingResult {
	var (
		mu  sync.Mutex
		res = &pingResult{}
		wg  sync.WaitGroup
		ok  int
	)
	start := time.Now()
	end := start.Add(dur)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do, cleanup := newWorker()
			defer cleanup()
			lat := make([]time.Duration, 0, 1<<16)
			good, bad := 0, 0
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				if do() {
					lat = append(lat, time.Since(t0))
					good++
				} else {
					bad++
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			ok += good
			res.errors += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.rps = float64(ok) / time.Since(start).Seconds()
	return res
}
