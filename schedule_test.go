package patrol_test

import (
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// TestScheduleForbid: an "@every 1s" job whose run takes 2.5 s and fails
// with code 3, concurrency forbid: runs never overlap, the runs due
// meanwhile are skipped and recorded, history has the failed runs with
// their exit codes and durations, and status the schedule and next run.
func TestScheduleForbid(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"job": appCfg(t, map[string]any{"schedule": "@every 1s"}, "exit-after", "2500ms", "3"),
	}, nil))
	ch := events(t, d, "job")
	running, runs, skips := false, 0, 0
	for runs < 2 || skips < 3 {
		ev := waitEvent(t, ch, "two runs and three skips", 15*time.Second, func(ev schema.Event) bool {
			return ev.Event == schema.EventStarted || ev.Event == schema.EventExited || ev.Event == schema.EventSkipped
		})
		switch ev.Event {
		case schema.EventStarted:
			if running {
				t.Fatalf("a run started while the last one ran: %+v", ev)
			}
			running = true
		case schema.EventExited:
			if ev.Reason != schema.ReasonFailed || ev.ExitCode == nil || *ev.ExitCode != 3 {
				t.Errorf("run ended: %+v, want failed with code 3", ev)
			}
			running = false
			runs++
		case schema.EventSkipped:
			if !running {
				t.Errorf("a run was skipped while none ran: %+v", ev)
			}
			skips++
		}
	}
	r, code := d.post(t, map[string]any{"id": "job", "group": "app", "history": true})
	if code != 200 {
		t.Fatalf("read job: %d %+v", code, r)
	}
	var failed, skipped int
	for _, h := range r.History {
		switch h.Reason {
		case schema.ReasonFailed:
			failed++
			if h.ExitCode != 3 || h.Duration < 2.4 || h.Duration > 4 {
				t.Errorf("failed run: exit code %d, duration %.2fs; want 3 and 2.5s", h.ExitCode, h.Duration)
			}
		case schema.ReasonSkipped:
			skipped++
			if h.PID != 0 || h.Duration != 0 {
				t.Errorf("skipped run: %+v", h)
			}
		default:
			t.Errorf("history record %+v", h)
		}
	}
	if failed < 2 || skipped < 3 {
		t.Errorf("history: %d failed runs and %d skips, want at least 2 and 3: %+v", failed, skipped, r.History)
	}
	// Skips are not starts: the runs are the failed ones and the one that
	// may run now.
	started := failed
	if r.PID != 0 {
		started++
	}
	if r.Restarts != started-1 {
		t.Errorf("restarts %d, want %d (%d failed runs, pid %d)", r.Restarts, started-1, failed, r.PID)
	}
	a := d.app(t, "job")
	if a.Schedule != "@every 1s" || a.NextRun == "" || a.Skipped < 3 {
		t.Errorf("status: schedule %q, next-run %q, skipped %d", a.Schedule, a.NextRun, a.Skipped)
	}
}

// TestScheduleReplace: with concurrency replace, a due run stops the one
// still running (history: "replaced") and starts anew.
func TestScheduleReplace(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"job": appCfg(t, map[string]any{"schedule": "@every 1s", "concurrency": "replace", "run-on-start": true}, "sleep"),
	}, nil))
	first, _ := d.waitRunning(t, "job", 0, 5*time.Second) // run-on-start: at once
	second, _ := d.waitRunning(t, "job", first.PID, 5*time.Second)
	if alive(int(first.PID)) {
		t.Errorf("the replaced run (pid %d) still runs", first.PID)
	}
	r, _ := d.post(t, map[string]any{"id": "job", "group": "app", "history": true})
	if len(r.History) == 0 || r.History[0].Reason != schema.ReasonReplaced || r.History[0].PID != first.PID {
		t.Errorf("history %+v, want the first run replaced", r.History)
	}
	if second.State != schema.StateRunning {
		t.Errorf("second run: %+v", second)
	}
}

// TestScheduleBadCronKeepsLastGood: a live reload with a bad cron
// expression is rejected with its path and reason; the job keeps its
// schedule and next run.
func TestScheduleBadCronKeepsLastGood(t *testing.T) {
	cfg := config(map[string]any{"job": appCfg(t, map[string]any{"schedule": "0 3 * * *"}, "exit", "0")}, nil)
	d := startPatrol(t, cfg)
	before := d.app(t, "job")
	cfg["apps"].(map[string]any)["job"] = appCfg(t, map[string]any{"schedule": "0 25 * * *"}, "exit", "0")
	writeConfig(t, d.config, cfg)
	waitFor(t, "config error", 10*time.Second, func() bool {
		st, err := d.Status(t.Context())
		return err == nil && strings.Contains(st.Config.Error, "apps.job.schedule: not a cron expression: end of range (25) above maximum (23): 25")
	})
	if after := d.app(t, "job"); after.Schedule != "0 3 * * *" || after.NextRun != before.NextRun || after.NextRun == "" {
		t.Errorf("after the bad reload: schedule %q, next run %q (was %q)", after.Schedule, after.NextRun, before.NextRun)
	}
}

// TestScheduleIdle: a job between runs is "scheduled", with the next run
// in its reason; one that completed says so.
func TestScheduleIdle(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"job": appCfg(t, map[string]any{"schedule": "@hourly", "run-on-start": true}, "exit", "0"),
	}, nil))
	waitFor(t, "the run on start to complete", 10*time.Second, func() bool {
		st, err := d.Status(t.Context())
		return err == nil && st.Apps["job"] != nil && st.Apps["job"].State == schema.StateScheduled &&
			strings.HasPrefix(st.Apps["job"].Reason, "last run completed; next run at ")
	})
	a := d.app(t, "job")
	next, err := time.Parse(time.RFC1123Z, a.NextRun)
	if err != nil || next.Minute() != 0 || time.Until(next) > time.Hour {
		t.Errorf("next-run %q (%v), want the next full hour", a.NextRun, err)
	}
}

// TestScheduleAllow: with concurrency allow, a run due while the last one
// runs starts alongside it (status lists the earlier run); each ends into
// history on its own, completed; disabling the job stops every run.
func TestScheduleAllow(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"job": appCfg(t, map[string]any{"schedule": "@every 1s", "concurrency": "allow"}, "exit-after", "2500ms", "0"),
	}, nil))
	var a *schema.Response
	waitFor(t, "two runs at once", 10*time.Second, func() bool {
		st, err := d.Status(t.Context())
		a = st.Apps["job"]
		return err == nil && a != nil && a.PID != 0 && len(a.Runs) >= 1
	})
	earlier := a.Runs[0]
	if earlier.PID == a.PID || !alive(int(earlier.PID)) || !alive(int(a.PID)) {
		t.Fatalf("runs: newest pid %d, earlier %+v", a.PID, a.Runs)
	}
	waitFor(t, "the earlier run to complete", 10*time.Second, func() bool {
		r, _ := d.post(t, map[string]any{"id": "job", "group": "app", "history": true})
		for _, h := range r.History {
			if h.PID == earlier.PID {
				if h.Reason != schema.ReasonCompleted || h.InstanceID != earlier.InstanceID || h.Duration < 2.4 {
					t.Errorf("earlier run's record: %+v", h)
				}
				return true
			}
		}
		return false
	})
	// Disabled while two run: both stop.
	waitFor(t, "two runs at once again", 10*time.Second, func() bool {
		a = d.app(t, "job")
		return a.PID != 0 && len(a.Runs) >= 1
	})
	pids := []uint32{a.PID}
	for _, r := range a.Runs {
		pids = append(pids, r.PID)
	}
	if r, code := d.post(t, map[string]any{"id": "job", "group": "app", "toggle": 2}); code != 200 {
		t.Fatalf("disable: %d %+v", code, r)
	}
	waitFor(t, "every run stopped", 10*time.Second, func() bool {
		a = d.app(t, "job")
		for _, pid := range pids {
			if alive(int(pid)) {
				return false
			}
		}
		return a.PID == 0 && len(a.Runs) == 0 && a.State == schema.StateDisabled && a.NextRun == ""
	})
}
