package reconcile_test

import (
	"strings"
	"testing"

	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/reconcile"
)

// TestPlanRolling: a restart change to replicas restarts the lowest one
// and notes the others' wait; a replica not ready yet, or being
// restarted, holds the next; "rolling": false restarts them all.
func TestPlanRolling(t *testing.T) {
	old := state(t, `{"apps": {"web": {"binary": "/bin/web", "replicas": 3, "args": ["1"]}}}`)
	next := state(t, `{"apps": {"web": {"binary": "/bin/web", "replicas": 3, "args": ["2"]}}}`)
	all := func() *observed.Snapshot {
		s := snap(running(app(old, "web"), 10), running(app(old, "web-1"), 11), running(app(old, "web-2"), 12))
		for _, a := range s.Apps {
			a.Instance.Health.Ready = true
		}
		return s
	}
	kinds := func(actions []reconcile.Action) string {
		var out []string
		for _, a := range actions {
			out = append(out, string(a.Kind)+" "+a.ID+" "+a.Note)
		}
		return strings.Join(out, "; ")
	}
	got := kinds(reconcile.Plan(next, all(), t0))
	want := "restart web ; keep web-1 restart waits: web restarts first (rolling); keep web-2 restart waits: web restarts first (rolling)"
	if got != want {
		t.Errorf("all running:\n got %s\nwant %s", got, want)
	}
	// web restarted and runs the new config, not ready yet.
	s := all()
	s.Apps["web"] = running(app(next, "web"), 20)
	if got, want := kinds(reconcile.Plan(next, s, t0)), "keep web-1 restart waits: web is not ready yet (rolling); keep web-2 restart waits: web is not ready yet (rolling)"; got != want {
		t.Errorf("web not ready:\n got %s\nwant %s", got, want)
	}
	s.Apps["web"].Instance.Health.Ready = true
	if got, want := kinds(reconcile.Plan(next, s, t0)), "restart web-1 ; keep web-2 restart waits: web-1 restarts first (rolling)"; got != want {
		t.Errorf("web ready:\n got %s\nwant %s", got, want)
	}
	// Opted out: all at once.
	off := state(t, `{"apps": {"web": {"binary": "/bin/web", "replicas": 3, "rolling": false, "args": ["1"]}}}`)
	offNext := state(t, `{"apps": {"web": {"binary": "/bin/web", "replicas": 3, "rolling": false, "args": ["2"]}}}`)
	s = snap(running(app(off, "web"), 10), running(app(off, "web-1"), 11), running(app(off, "web-2"), 12))
	if got, want := kinds(reconcile.Plan(offNext, s, t0)), "restart web ; restart web-1 ; restart web-2 "; got != want {
		t.Errorf("rolling false:\n got %s\nwant %s", got, want)
	}
}
