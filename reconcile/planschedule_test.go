package reconcile_test

import (
	"testing"
	"time"

	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/reconcile"
)

// TestPlanSchedule: a scheduled app starts only when its run is due (or
// one is owed), whatever restart-policy says, and a run due while the last
// still runs is skipped, replaces it or starts alongside, by concurrency.
func TestPlanSchedule(t *testing.T) {
	cfg := func(concurrency string) string {
		return `{"apps": {"job": {"binary": "/bin/job", "schedule": "@every 1m", "concurrency": "` + concurrency + `"}}}`
	}
	st := state(t, cfg("forbid"))
	job := app(st, "job")
	idle := func(next time.Time) *observed.App {
		return &observed.App{ID: "job", Schedule: &observed.Schedule{Spec: job.Schedule.String(), Next: next},
			LastEnd: &observed.End{Reason: "completed", BySelf: false, Fingerprint: job.Fingerprint()}}
	}
	busy := func(a *observed.App) *observed.App {
		a.Instance = running(job, 10).Instance
		return a
	}
	later, earlier := t0.Add(time.Second), t0.Add(-time.Second)
	for _, c := range []struct {
		name string
		st   string
		oa   *observed.App
		want string
	}{
		{"not due", "forbid", idle(later), ""},
		{"new to the loop", "forbid", &observed.App{ID: "job"}, "keep job (scheduled) note: runs at its schedule (@every 1m)"},
		{"schedule edited", "forbid", func() *observed.App {
			a := idle(earlier)
			a.Schedule.Spec = "@daily"
			return a
		}(), "keep job (scheduled) note: runs at its schedule (@every 1m)"},
		{"due", "forbid", idle(t0), "start job (scheduled)"},
		{"overdue", "forbid", idle(earlier), "start job (scheduled)"},
		{"never", "forbid", idle(time.Time{}), ""},
		{"owed a restart", "forbid", func() *observed.App {
			a := idle(later)
			a.Pending = &observed.Pending{Reason: "restart"}
			return a
		}(), "start job (restart)"},
		{"running, not due", "forbid", busy(idle(later)), ""},
		{"running, due, forbid", "forbid", busy(idle(t0)), "keep job (skipped) note: a run is due while the last one still runs: skipped (concurrency forbid)"},
		{"running, due, replace", "replace", busy(idle(t0)), "restart job (replaced) note: a run is due: the last one is stopped first (concurrency replace)"},
		{"running, due, allow", "allow", busy(idle(t0)), "start job (scheduled) note: a run is due: started alongside the last one (concurrency allow)"},
	} {
		s := state(t, cfg(c.st))
		if c.st != "forbid" { // the same job with another concurrency
			c.oa.Schedule.Spec = app(s, "job").Schedule.String()
			c.oa.Instance.App = app(s, "job")
		}
		if got := render(reconcile.Plan(s, snap(c.oa), t0)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	onStart := state(t, `{"apps": {"job": {"binary": "/bin/job", "schedule": "@daily", "run-on-start": true}}}`)
	if got, want := render(reconcile.Plan(onStart, snap(&observed.App{ID: "job"}), t0)), "start job (scheduled) note: run-on-start"; got != want {
		t.Errorf("run-on-start: got %q, want %q", got, want)
	}
}
