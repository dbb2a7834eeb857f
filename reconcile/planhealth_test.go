package reconcile_test

import (
	"testing"
	"time"

	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/reconcile"
	"github.com/patrolhq/patrol/schema"
)

// TestPlanHealth: dependency conditions, stop order, failed checks and
// restart-with, decided by Plan from the snapshot alone.
func TestPlanHealth(t *testing.T) {
	stack := state(t, `{"apps": {
		"db": {"binary": "/bin/db", "readiness": {"tcp": {"port": 5432}, "period": 1}},
		"api": {"binary": "/bin/api", "depends-on": [{"app": "db", "condition": "ready"}]},
		"worker": {"binary": "/bin/worker", "depends-on": ["api"]},
		"setup": {"binary": "/bin/setup", "restart-policy": "never"},
		"job": {"binary": "/bin/job", "depends-on": [{"app": "setup", "condition": "completed-successfully"}]},
		"cache": {"binary": "/bin/cache", "depends-on": [{"app": "db", "restart": true}], "watchdog": 2}}}`)
	db, api, worker, setup := app(stack, "db"), app(stack, "api"), app(stack, "worker"), app(stack, "setup")
	cache, job := app(stack, "cache"), app(stack, "job")
	ready := func(a *observed.App) *observed.App {
		a.Instance.Health.Ready, a.Instance.Health.WasReady = true, true
		return a
	}
	exited := func(code int) *observed.App {
		r := schema.ReasonExited
		if code != 0 {
			r = schema.ReasonCrashed
		}
		return &observed.App{ID: "setup", Starts: 1, LastEnd: &observed.End{Reason: r, BySelf: true, Fingerprint: setup.Fingerprint(),
			Exit: &observed.Exit{Code: code}}}
	}
	cacheWith := func(dbInstance string) *observed.App {
		a := running(cache, 30)
		a.Instance.DependencyInstances = map[string]string{"db": dbInstance}
		a.Instance.Health.Watchdog = 2 * time.Second
		a.Instance.Health.WatchdogDeadline = t0.Add(2 * time.Second)
		return a
	}
	shutdown := func(s *observed.Snapshot) *observed.Snapshot { s.Shutdown = true; return s }
	cases := []struct {
		name string
		o    *observed.Snapshot
		now  time.Time
		want string
	}{
		{"fresh: the roots start, the rest waits", snap(), t0,
			"wait api (added) note: after db is ready\nwait cache (added) note: after db is started\nstart db (added)\n" +
				"wait job (added) note: after setup has completed successfully\nstart setup (added)\nwait worker (added) note: after api is started"},
		{"db started but not ready: api waits, cache starts", snap(running(db, 10), exited(0), running(job, 40)), t0,
			"wait api (added) note: after db is ready\nstart cache (added)\nwait worker (added) note: after api is started"},
		{"db ready: api starts", snap(ready(running(db, 10)), exited(0), running(job, 40), cacheWith("inst-db")), t0,
			"start api (added)\nwait worker (added) note: after api is started"},
		{"setup failed: job keeps waiting", snap(ready(running(db, 10)), running(api, 20), running(worker, 21), exited(1), cacheWith("inst-db")), t0,
			"wait job (added) note: after setup has completed successfully"},
		{"db stopping: not ready for a restarted api", snap(func() *observed.App {
			a := ready(running(db, 10))
			a.Instance.Stopping = &observed.Stopping{Reason: schema.ReasonRestart, Deadline: t0.Add(time.Minute)}
			return a
		}(), exited(0), running(job, 40), running(worker, 21), cacheWith("inst-db-before")), t0,
			"wait api (added) note: after db is ready\nrestart cache (dependency-restarted) note: db got a new instance"},
		{"liveness failed: stop", snap(ready(running(db, 10)), func() *observed.App {
			a := ready(running(api, 20))
			a.Instance.Health.Failed, a.Instance.Health.FailedWhy = schema.ReasonLivenessFailed, "HTTP 500"
			return a
		}(), running(worker, 21), exited(0), running(job, 40), cacheWith("inst-db")), t0,
			"stop api (liveness-failed) note: HTTP 500"},
		{"watchdog passed: stop", snap(ready(running(db, 10)), running(api, 20), running(worker, 21), exited(0), running(job, 40), cacheWith("inst-db")), t0.Add(2 * time.Second),
			"stop cache (watchdog) note: no WATCHDOG=1 for 2s"},
		{"watchdog not passed: nothing", snap(ready(running(db, 10)), running(api, 20), running(worker, 21), exited(0), running(job, 40), cacheWith("inst-db")), t0.Add(time.Second), ""},
		{"shutdown: dependents first", shutdown(snap(ready(running(db, 10)), running(api, 20), running(worker, 21), running(job, 40), cacheWith("inst-db"))), t0,
			"stop cache (shutdown)\nstop job (shutdown)\nstop worker (shutdown)"},
		{"shutdown: then the next layer", shutdown(snap(ready(running(db, 10)), running(api, 20))), t0,
			"stop api (shutdown)"},
		{"shutdown: a dependent still stopping holds its dependency", shutdown(snap(ready(running(db, 10)), func() *observed.App {
			a := running(api, 20)
			a.Instance.Stopping = &observed.Stopping{Reason: schema.ReasonShutdown, Deadline: t0.Add(time.Minute)}
			return a
		}())), t0, ""},
		{"shutdown: last the root", shutdown(snap(ready(running(db, 10)))), t0, "stop db (shutdown)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := render(reconcile.Plan(stack, tc.o, tc.now))
			if got != tc.want {
				t.Errorf("plan:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	_ = worker
}

// TestPlanRemovalOrder: removing an app and its dependent in one edit
// stops the dependent first.
func TestPlanRemovalOrder(t *testing.T) {
	before := state(t, `{"apps": {"db": {"binary": "/bin/db"}, "api": {"binary": "/bin/api", "depends-on": ["db"]}, "web": {"binary": "/bin/web"}}}`)
	after := state(t, `{"apps": {"web": {"binary": "/bin/web"}}}`)
	o := snap(running(app(before, "db"), 10), running(app(before, "api"), 20), running(app(before, "web"), 30))
	if got, want := render(reconcile.Plan(after, o, t0)), "stop api (removed)"; got != want {
		t.Errorf("plan:\n got %s\nwant %s", got, want)
	}
	delete(o.Apps, "api")
	if got, want := render(reconcile.Plan(after, o, t0)), "stop db (removed)"; got != want {
		t.Errorf("plan after api is gone:\n got %s\nwant %s", got, want)
	}
}

// TestWaitingReason: status says what a waiting app waits for and why it
// still does.
func TestWaitingReason(t *testing.T) {
	f := newFake()
	l, stop := runLoop(t, `{"apps": {
		"off": {"binary": "/bin/off", "disabled": true},
		"api": {"binary": "/bin/api", "depends-on": ["off", {"app": "setup", "condition": "completed-successfully"}]},
		"setup": {"binary": "/bin/setup", "restart-policy": "never"}}}`, f)
	defer stop()
	deadline := time.Now().Add(5 * time.Second)
	for appStatus(t, l, "setup").PID == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	f.exit(int(appStatus(t, l, "setup").PID), 137, 9)
	want := "waiting for off to be started (it is disabled) and setup to complete successfully (it was killed by a signal, code 137)"
	for {
		a := appStatus(t, l, "api")
		if a.State == schema.StateWaiting && a.Reason == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("api: %s %q\nwant waiting %q", a.State, a.Reason, want)
		}
		time.Sleep(time.Millisecond)
	}
}
