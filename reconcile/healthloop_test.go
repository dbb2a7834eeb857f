package reconcile_test

import (
	"slices"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// TestLoopHealthThresholds: the startup probe runs alone until it passed
// success-threshold times; then liveness and readiness run; readiness
// needs success-threshold successes to pass, failure-threshold failures to
// be lost, and is regained; a liveness failing failure-threshold times
// stops the instance gracefully with reason liveness-failed, counted like
// a crash, and a new one starts with the startup probe again.
func TestLoopHealthThresholds(t *testing.T) {
	f := newFake()
	f.exitOnSignal = true
	l, stop := runLoop(t, `{"apps": {"web": {"binary": "/bin/web",
		"startup": {"tcp": {"port": 1}, "success-threshold": 2},
		"liveness": {"tcp": {"port": 1}, "failure-threshold": 2},
		"readiness": {"tcp": {"port": 1}, "success-threshold": 3, "failure-threshold": 2},
		"backoff": {"initial": 0.01, "reset-after": 0}}}}`, f)
	defer stop()
	var st *schema.Response
	wait := func(what string, cond func(*schema.Response) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for st = appStatus(t, l, "web"); !cond(st); st = appStatus(t, l, "web") {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, st)
			}
			time.Sleep(time.Millisecond)
		}
	}
	wait("a start", func(r *schema.Response) bool { return r.PID != 0 })
	tag := st.InstanceID
	send := func(kind desired.ProbeKind, ok bool, n int) {
		for range n {
			l.NotifyProbe(observed.ProbeResult{Tag: tag, Kind: kind, OK: ok, Message: "m", At: time.Now()})
		}
	}
	probeSets := func() []string {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Clone(f.probes)
	}
	if got := probeSets(); !slices.Equal(got, []string{"startup"}) {
		t.Fatalf("probes registered at the start: %q", got)
	}
	// A liveness result before the startup passed is ignored.
	send(desired.ProbeLiveness, false, 5)
	send(desired.ProbeStartup, true, 1)
	wait("startup counted", func(r *schema.Response) bool { return r.Probes["startup"] != nil && r.Probes["startup"].Successes == 1 })
	if st.State != schema.StateStarting || len(probeSets()) != 1 {
		t.Fatalf("after one startup success of two: %s, probes %q", st.State, probeSets())
	}
	send(desired.ProbeStartup, true, 1)
	wait("liveness and readiness", func(*schema.Response) bool { return len(probeSets()) == 2 })
	if got := probeSets()[1]; got != "liveness+readiness" {
		t.Fatalf("after the startup probe: %q", got)
	}
	send(desired.ProbeReadiness, true, 2)
	wait("two readiness successes", func(r *schema.Response) bool {
		return r.Probes["readiness"] != nil && r.Probes["readiness"].Successes == 2
	})
	if *st.Ready {
		t.Fatal("ready after 2 of 3 successes")
	}
	send(desired.ProbeReadiness, true, 1)
	wait("ready", func(r *schema.Response) bool { return r.Ready != nil && *r.Ready && r.State == schema.StateRunning })
	send(desired.ProbeReadiness, false, 1)
	wait("one readiness failure", func(r *schema.Response) bool { return r.Probes["readiness"].Failures == 1 })
	if !*st.Ready {
		t.Fatal("unready after 1 of 2 failures")
	}
	send(desired.ProbeReadiness, false, 1)
	wait("unready", func(r *schema.Response) bool {
		return r.Health == schema.HealthUnready && r.State == schema.StateRunning
	})
	send(desired.ProbeReadiness, true, 3)
	wait("ready again", func(r *schema.Response) bool { return r.Health == schema.HealthReady })
	send(desired.ProbeLiveness, false, 2)
	wait("a new instance", func(r *schema.Response) bool { return r.InstanceID != tag && r.PID != 0 })
	h := st.History[len(st.History)-1]
	if h.Reason != schema.ReasonLivenessFailed || st.Health != schema.HealthStarting {
		t.Errorf("history %+v, health %s", h, st.Health)
	}
	if _, signals := f.snapshot(); !slices.Contains(signals, "101 SIGTERM") {
		t.Errorf("signals %q: want a graceful stop", signals)
	}
	if got := probeSets(); got[len(got)-1] != "startup" {
		t.Errorf("the new instance's probes: %q", got)
	}
}
