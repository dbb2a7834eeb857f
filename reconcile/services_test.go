package reconcile_test

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/reconcile"
	"github.com/patrolhq/patrol/schema"
)

const serviceConfig = `{"tick-every": 5, "services": {
	"web": {"management": 1, "service": "nginx"},
	"db": {"management-start": 2, "management-status": 3, "management-stop": 2, "management-restart": 1,
	       "management-start-parameter": "go", "management-restart-parameter": "force-reload",
	       "ignore-exit-codes-status": [4]}
}}`

func (f *fakeExec) cmds() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.commands)
}

func svc(t *testing.T, l *reconcile.Loop, id string) *schema.Response {
	t.Helper()
	st, err := l.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.Services[id]
}

// TestServiceLifecycle: a stopped service is started at once (status, then
// start); disable stops it; enable starts it; restart runs the restart verb
// once and records history with restart: true; verbs and per-action
// methods are used as configured.
func TestServiceLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		l, stop := runLoop(t, serviceConfig, f)
		defer stop()
		synctest.Wait()
		want := []string{"m3 db status", "m1 nginx status", "m2 db go", "m1 nginx start"}
		if got := f.cmds(); !sameSet(got, want) {
			t.Fatalf("first commands %q, want %q", got, want)
		}
		if s := svc(t, l, "web"); s.State != schema.StateRunning || s.InstanceID == "" || s.Started == "" {
			t.Fatalf("web after start: %+v", s)
		}
		key := desired.Key{Group: schema.GroupService, ID: "web"}
		f.mu.Lock()
		f.commands = nil
		f.mu.Unlock()
		l.Toggle(t.Context(), key, schema.ToggleDisable, 0)
		synctest.Wait()
		s := svc(t, l, "web")
		if got := f.cmds(); !slices.Equal(got, []string{"m1 nginx stop"}) || s.State != schema.StateDisabled {
			t.Fatalf("disable: commands %q, state %s", got, s.State)
		}
		if h := s.History; len(h) != 1 || !h[0].Disabled || h[0].Reason != schema.ReasonStoppedByAPI || h[0].PID != 0 {
			t.Errorf("history after disable: %+v", h)
		}
		f.mu.Lock()
		f.commands = nil
		f.mu.Unlock()
		l.Toggle(t.Context(), key, schema.ToggleEnable, 0)
		synctest.Wait()
		if got := f.cmds(); !slices.Equal(got, []string{"m1 nginx start"}) {
			t.Fatalf("enable: commands %q", got)
		}
		f.mu.Lock()
		f.commands = nil
		f.mu.Unlock()
		l.Toggle(t.Context(), desired.Key{Group: schema.GroupService, ID: "db"}, schema.ToggleRestart, 0)
		synctest.Wait()
		if got := f.cmds(); !slices.Equal(got, []string{"m1 db force-reload", "m3 db status"}) {
			t.Fatalf("restart: commands %q", got)
		}
		db := svc(t, l, "db")
		if len(db.History) != 1 || !db.History[0].Restart || db.State != schema.StateRunning || db.Restarts != 1 {
			t.Errorf("db after restart: %+v", db)
		}
		// Each tick checks every service's status.
		f.mu.Lock()
		f.commands = nil
		f.mu.Unlock()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := f.cmds(); !sameSet(got, []string{"m3 db status", "m1 nginx status"}) {
			t.Errorf("tick: commands %q", got)
		}
		// A service found down at a tick is started again.
		f.mu.Lock()
		f.services["nginx"] = false
		f.commands = nil
		f.mu.Unlock()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := f.cmds(); !sameSet(got, []string{"m3 db status", "m1 nginx status", "m1 nginx start"}) {
			t.Errorf("down at a tick: commands %q", got)
		}
		if h := svc(t, l, "web").History; len(h) != 2 || h[1].Reason != schema.ReasonCrashed {
			t.Errorf("history after the service went down: %+v", h)
		}
	})
}

// TestServiceIgnoredStatusCode: a status exit code listed in
// ignore-exit-codes-status counts as running; any other non-zero as
// stopped.
func TestServiceIgnoredStatusCode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.services["db"], f.services["nginx"] = true, true
		f.statusCode = 4
		l, stop := runLoop(t, serviceConfig, f)
		defer stop()
		synctest.Wait()
		if s := svc(t, l, "db"); s.State != schema.StateRunning {
			t.Errorf("db (4 ignored): %+v", s)
		}
		// web's status exits 4, not ignored for web: stopped, so started.
		if got := f.cmds(); !slices.Contains(got, "m1 nginx start") {
			t.Errorf("web with status 4 was not started: %q", got)
		}
	})
}

// TestServiceHangingStatus: a status command that hangs is killed after
// its timeout, and the loop keeps answering meanwhile.
func TestServiceHangingStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.hang = true
		l, stop := runLoop(t, serviceConfig, f)
		defer stop()
		synctest.Wait()
		start := time.Now()
		// The status commands hang for 30 s (the default timeout); the
		// loop still answers at once.
		if s := svc(t, l, "web"); s.State != schema.StateStopped || time.Since(start) != 0 {
			t.Fatalf("during the hang: %+v after %v", s, time.Since(start))
		}
		time.Sleep(reconcile.DefaultServiceStatusTimeout)
		synctest.Wait()
		s := svc(t, l, "web")
		if s.Reason == "" || s.State == schema.StateRunning {
			t.Errorf("after the timeout: %+v", s)
		}
		f.mu.Lock()
		f.hang = false
		f.mu.Unlock()
	})
}

// TestShutdownLeavesServices: Patrol's shutdown does not stop services.
func TestShutdownLeavesServices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		_, stop := runLoop(t, serviceConfig, f)
		synctest.Wait()
		stop()
		if f.services["nginx"] != true || slices.Contains(f.cmds(), "m1 nginx stop") {
			t.Errorf("shutdown stopped a service: %q", f.cmds())
		}
	})
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
