package reconcile_test

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/reconcile"
	"github.com/patrolhq/patrol/schema"
)

// fakeExec is the loop's executor with no processes: starts hand out pids,
// signals are recorded, and the test delivers exits through Notify.
type fakeExec struct {
	mu      sync.Mutex
	loop    *reconcile.Loop
	nextPID int
	tags    map[int]string // pid -> tag
	alive   map[int]bool   // pgid -> alive
	starts  []time.Time
	signals []string
	// onStart runs after each start (with the pid and tag), for example to
	// crash the new process at once; panicStarts makes that many starts
	// panic first.
	onStart     func(pid int, tag string)
	panicStarts int
	// watchable lists pids Watch accepts (as live processes Patrol did not
	// start); exitOnSignal makes a signalled process exit at once.
	watchable    map[int]bool
	exitOnSignal bool
	// watchEmpty makes WatchEmpty accept every group: the loop then waits
	// for Wake instead of polling a leftover group.
	watchEmpty bool
	// services is the fake OS's services: name -> running; commands
	// records every service command line; statusCode, when set, is what a
	// running service's status exits with; hang makes status commands run
	// until their timeout.
	// probes records the probe sets the loop registered, "startup" or
	// "liveness+readiness" ("" for none).
	probes     []string
	services   map[string]bool
	commands   []string
	statusCode int
	hang       bool
}

func newFake() *fakeExec {
	return &fakeExec{nextPID: 100, tags: map[int]string{}, alive: map[int]bool{}, services: map[string]bool{}}
}

func (f *fakeExec) ServiceArgv(m schema.Management, initd, service, verb string) ([]string, error) {
	return []string{fmt.Sprintf("m%d", m), service, verb}, nil
}

func (f *fakeExec) RunCommand(ctx context.Context, argv []string, timeout time.Duration) observed.CommandResult {
	f.mu.Lock()
	f.commands = append(f.commands, strings.Join(argv, " "))
	name, verb := argv[1], argv[2]
	hang := f.hang && verb == "status"
	f.mu.Unlock()
	if hang {
		select {
		case <-time.After(timeout):
		case <-ctx.Done():
		}
		return observed.CommandResult{Code: 137, Signal: 9, TimedOut: true, Err: "timed out", Ended: time.Now()}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	code := 0
	switch verb {
	case "status":
		if !f.services[name] {
			code = 3
		} else {
			code = f.statusCode
		}
	case "start", "go":
		f.services[name] = true
	case "stop":
		f.services[name] = false
	}
	return observed.CommandResult{Code: code, Ended: time.Now()}
}

func (f *fakeExec) StartApp(a *desired.App, s desired.Settings, tag string, now time.Time) (observed.Launch, error) {
	f.mu.Lock()
	if f.panicStarts > 0 {
		f.panicStarts--
		f.mu.Unlock()
		panic("injected start panic")
	}
	f.nextPID++
	pid := f.nextPID
	f.tags[pid] = tag
	f.alive[pid] = true
	f.starts = append(f.starts, now)
	onStart := f.onStart
	f.mu.Unlock()
	if onStart != nil {
		onStart(pid, tag)
	}
	return observed.Launch{PID: pid, PGID: pid, Started: now}, nil
}

func (f *fakeExec) SignalGroup(pgid int, sig string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals = append(f.signals, fmt.Sprintf("%d %s", pgid, sig))
	if f.exitOnSignal && f.alive[pgid] {
		go f.exit(pgid, 143, 15)
	}
	return nil
}

func (f *fakeExec) SignalProcess(pid int, sig string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals = append(f.signals, fmt.Sprintf("pid %d %s", pid, sig))
	return nil
}

func (f *fakeExec) WatchEmpty(int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watchEmpty
}
func (f *fakeExec) SetLimits(int, desired.Limits) error { return nil }
func (f *fakeExec) GroupAlive(pgid int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.alive[pgid]
}

func (f *fakeExec) Alive(pid int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watchable[pid]
}

func (f *fakeExec) ReadPIDFile(string) (int, error) { return 0, fs.ErrNotExist }
func (f *fakeExec) FindSpawned([]string, string, string, time.Time, time.Duration) []int {
	return nil
}
func (f *fakeExec) VerifyBinary(int, string) error { return nil }
func (f *fakeExec) Forget(string)                  {}
func (f *fakeExec) Probe(tag string, ps []*desired.Probe, _ time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var kinds []string
	for _, p := range ps {
		kinds = append(kinds, string(p.Kind))
	}
	f.probes = append(f.probes, strings.Join(kinds, "+"))
}
func (f *fakeExec) AdoptNotify(string, int, int) error          { return nil }
func (f *fakeExec) WatchLines(string, []string, *regexp.Regexp) {}

func (f *fakeExec) ProcStat(pid int) (int, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.watchable[pid] || f.alive[pid] {
		return pid, 1, nil
	}
	return 0, 0, fs.ErrNotExist
}

func (f *fakeExec) Watch(pid int, tag string, role observed.Role) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.watchable[pid] && !f.alive[pid] {
		return 0, fs.ErrNotExist
	}
	f.tags[pid] = tag
	return 1, nil
}

// exit makes pid exit with code (or signal) and tells the loop.
func (f *fakeExec) exit(pid, code, sig int) {
	f.mu.Lock()
	tag := f.tags[pid]
	f.alive[pid] = false
	f.mu.Unlock()
	f.loop.Notify(observed.Exit{Tag: tag, Role: observed.RoleLeader, PID: pid, Code: code, Signal: sig, Ended: time.Now()})
}

func (f *fakeExec) snapshot() (starts []time.Time, signals []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.starts), slices.Clone(f.signals)
}

// tlog sends the loop's logs to the test log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// runLoop starts a loop over cfg with the fake executor; the returned stop
// cancels it and waits for Run to return.
func runLoop(t *testing.T, cfg string, f *fakeExec) (*reconcile.Loop, func()) {
	t.Helper()
	l := reconcile.New(reconcile.Options{Exec: f, Log: slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}, state(t, cfg))
	f.loop = l
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	return l, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
}

func appStatus(t *testing.T, l *reconcile.Loop, id string) *schema.Response {
	t.Helper()
	st, err := l.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.Apps[id]
}

// TestLoopBackoffSchedule: with the default backoff, an app that exits at
// once is started at 0, 1, 3, 7 and 15 s (doubling delays from 1 s), so at
// most four starts in its first ten seconds.
func TestLoopBackoffSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.onStart = func(pid int, tag string) { go f.exit(pid, 1, 0) }
		_, stop := runLoop(t, `{"tick-every": 60, "apps": {"flaky": {"binary": "/x"}}}`, f)
		t0 := time.Now()
		time.Sleep(16 * time.Second)
		synctest.Wait()
		starts, _ := f.snapshot()
		var at []time.Duration
		for _, s := range starts {
			at = append(at, s.Sub(t0).Round(time.Millisecond))
		}
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second}
		if !slices.Equal(at, want) {
			t.Errorf("starts at %v, want %v", at, want)
		}
		f.onStart = nil
		stop()
	})
}

// TestLoopStopEscalation: a disable sends stop-signal to the process group,
// then SIGKILL once stop-timeout passes, and history records the exit.
func TestLoopStopEscalation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		l, stop := runLoop(t, `{"apps": {"web": {"binary": "/x", "stop-signal": "SIGUSR1", "stop-timeout": 10}}}`, f)
		synctest.Wait()
		if err := l.Toggle(t.Context(), desired.Key{Group: schema.GroupApp, ID: "web"}, schema.ToggleDisable, 0); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, sigs := f.snapshot(); !slices.Equal(sigs, []string{"101 SIGUSR1"}) {
			t.Fatalf("signals after disable: %v", sigs)
		}
		if s := appStatus(t, l, "web"); s.State != schema.StateStopping {
			t.Errorf("state %s, want stopping", s.State)
		}
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if _, sigs := f.snapshot(); len(sigs) != 1 {
			t.Fatalf("SIGKILL before stop-timeout: %v", sigs)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, sigs := f.snapshot(); !slices.Equal(sigs, []string{"101 SIGUSR1", "101 SIGKILL"}) {
			t.Fatalf("signals after stop-timeout: %v", sigs)
		}
		f.exit(101, 137, 9)
		synctest.Wait()
		s := appStatus(t, l, "web")
		if s.State != schema.StateDisabled || len(s.History) != 1 || s.History[0].ExitCode != 137 || s.History[0].Reason != schema.ReasonStoppedByAPI {
			t.Errorf("after the exit: state %s, history %+v", s.State, s.History)
		}
		stop()
	})
}

// TestLoopPanicIsRecovered: a panic in a pass is recovered; the loop keeps
// serving and retries.
func TestLoopPanicIsRecovered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.panicStarts = 1
		l, stop := runLoop(t, `{"apps": {"web": {"binary": "/x"}}}`, f)
		synctest.Wait()
		if s := appStatus(t, l, "web"); s.State == schema.StateRunning {
			t.Fatalf("running after a panicking start: %+v", s)
		}
		time.Sleep(time.Second) // the loop retries a second after a panic
		synctest.Wait()
		if s := appStatus(t, l, "web"); s.State != schema.StateRunning || s.PID != 101 {
			t.Errorf("after the retry: %+v", s)
		}
		// Shutdown still works after a panic.
		go func() {
			synctest.Wait()
			f.exit(101, 143, 15)
		}()
		stop()
	})
}

// TestLoopParallelStarts: the starts of one pass are launched together;
// each app gets its own process under its own instance, and when the pass
// panics half-way the processes it launched but did not record are
// killed, so that the retry leaves exactly one process per app.
func TestLoopParallelStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.exitOnSignal = true
		f.panicStarts = 1
		apps := make([]string, 12)
		for i := range apps {
			apps[i] = fmt.Sprintf(`"app-%d": {"binary": "/x"}`, i)
		}
		l, stop := runLoop(t, `{"apps": {`+strings.Join(apps, ",")+`}}`, f)
		defer stop()
		synctest.Wait()
		time.Sleep(time.Second) // the loop retries a second after a panic
		synctest.Wait()
		st, err := l.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		seen := map[int]string{}
		for id, r := range st.Apps {
			if r.State != schema.StateRunning || r.PID == 0 {
				t.Errorf("%s: %+v", id, r)
				continue
			}
			pid := int(r.PID)
			if other, ok := seen[pid]; ok {
				t.Errorf("%s and %s share pid %d", id, other, pid)
			}
			seen[pid] = id
			if f.tags[pid] != r.InstanceID {
				t.Errorf("%s: pid %d was started for instance %q, reported %q", id, pid, f.tags[pid], r.InstanceID)
			}
		}
		alive := 0
		for pid, ok := range f.alive {
			if ok {
				alive++
				if _, known := seen[pid]; !known {
					t.Errorf("pid %d is alive but no app's", pid)
				}
			}
		}
		if len(st.Apps) != 12 || alive != 12 {
			t.Errorf("%d apps, %d live processes; want 12 and 12", len(st.Apps), alive)
		}
		if len(f.starts) < 12+1 {
			t.Errorf("%d starts: the panicking pass launched no others", len(f.starts))
		}
	})
}

// TestLoopShutdownWaits: Run returns only once every instance has exited,
// and a leftover process group keeps it waiting until it is gone.
func TestLoopShutdownWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		l, stop := runLoop(t, `{"apps": {"a": {"binary": "/x"}, "b": {"binary": "/y", "stop-timeout": 5}}}`, f)
		synctest.Wait()
		// The starts of a pass launch concurrently: which app got which
		// pid is up to them.
		pa, pb := int(appStatus(t, l, "a").PID), int(appStatus(t, l, "b").PID)
		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		synctest.Wait()
		_, sigs := f.snapshot()
		slices.Sort(sigs)
		want := []string{fmt.Sprintf("%d SIGTERM", pa), fmt.Sprintf("%d SIGTERM", pb)}
		slices.Sort(want)
		if !slices.Equal(sigs, want) {
			t.Fatalf("shutdown signals: %v, want %v", sigs, want)
		}
		f.exit(pa, 0, 0)
		// b exits, but its process group lives on (a grandchild).
		f.mu.Lock()
		f.alive[pb] = true
		f.mu.Unlock()
		f.loop.Notify(observed.Exit{Tag: f.tags[pb], PID: pb, Code: 0, Ended: time.Now()})
		synctest.Wait()
		select {
		case <-stopped:
			t.Fatal("Run returned while a process group was alive")
		default:
		}
		if s := appStatus(t, l, "b"); s.State != schema.StateStopping {
			t.Errorf("b: state %s, want stopping (leftover group)", s.State)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if _, sigs := f.snapshot(); sigs[len(sigs)-1] != fmt.Sprintf("%d SIGKILL", pb) {
			t.Errorf("leftover group not killed after stop-timeout: %v", sigs)
		}
		f.mu.Lock()
		f.alive[pb] = false
		f.mu.Unlock()
		<-stopped
	})
}

// TestLeftoverWatched: a leftover process group that exec watches (its
// cgroup) is not polled: the loop looks again when Wake says it emptied,
// at once, and the app starts again then; not before, however long.
func TestLeftoverWatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.watchEmpty = true
		l, stop := runLoop(t, `{"tick-every": 120, "apps": {"a": {"binary": "/x", "backoff": {"reset-after": 0}}}}`, f)
		synctest.Wait()
		pa := int(appStatus(t, l, "a").PID)
		defer func() {
			f.mu.Lock()
			f.alive[pa] = false
			f.exitOnSignal = true
			f.mu.Unlock()
			l.Wake()
			stop()
		}()
		// The leader crashes; a process of its group lives on.
		f.mu.Lock()
		f.alive[pa] = true
		f.mu.Unlock()
		f.loop.Notify(observed.Exit{Tag: f.tags[pa], Role: observed.RoleLeader, PID: pa, Code: 1, Ended: time.Now()})
		synctest.Wait()
		time.Sleep(30 * time.Second) // no poll, no start while the group lives
		synctest.Wait()
		if starts, _ := f.snapshot(); len(starts) != 1 {
			t.Fatalf("%d starts while the leftover group lived", len(starts))
		}
		f.mu.Lock()
		f.alive[pa] = false
		f.mu.Unlock()
		start := time.Now()
		l.Wake()
		synctest.Wait()
		starts, _ := f.snapshot()
		if len(starts) != 2 || !starts[1].Equal(start) {
			t.Fatalf("after Wake: starts %v, want a second one at once (%v)", starts, start)
		}
	})
}
