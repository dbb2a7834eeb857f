package reconcile

import (
	"time"

	"github.com/google/uuid"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// Scheduled apps (issue 19) are jobs: Plan starts one when its next run is
// due (observed.App.Due) and never restarts it otherwise. The loop keeps
// the bookkeeping: when the next run is, what a skip leaves in history,
// the next run after a start.

// schedules computes the next run of every scheduled app whose schedule is
// new to the loop (Patrol's start, an app added, its schedule edited). At
// Patrol's start or when the app is added, run-on-start makes a run due at
// once, and catch-up one when a run was due since the last one the history
// records.
func (l *Loop) schedules(now time.Time) {
	var eff *desired.State
	for _, id := range l.file.Scheduled() {
		da, _ := l.file.App(id)
		oa := l.app(id)
		spec := da.Schedule.String()
		s := oa.Schedule
		if s != nil && s.Spec == spec {
			if oa.Due(now) && oa.Instance == nil && oa.Pending == nil {
				if eff == nil {
					eff = l.effective()
				}
				if eff.AppDisabled(da) || l.snap.Shutdown {
					// The runs of a disabled job pass by: enabling it does
					// not run the ones it missed.
					s.Next = da.Schedule.Next(now)
				}
			}
			continue
		}
		first := s == nil
		if first {
			s = &observed.Schedule{}
			oa.Schedule = s
		}
		s.Spec = spec
		switch {
		case first && da.Schedule.RunOnStart:
			s.Next = now
		case first && da.Schedule.CatchUp && missedRun(oa, da, now):
			s.Next = now
			l.log.Info("a run was due while Patrol was not running: catching up", "app", id)
		default:
			s.Next = da.Schedule.Next(now)
		}
		l.touch(schema.GroupApp, id)
	}
}

// forgetSchedules drops the run bookkeeping of the apps a new config no
// longer schedules (or no longer has).
func (l *Loop) forgetSchedules() {
	for id, oa := range l.snap.Apps {
		if oa.Schedule == nil {
			continue
		}
		if da, ok := l.file.App(id); !ok || da.Schedule == nil {
			oa.Schedule = nil
			l.touch(schema.GroupApp, id)
		}
	}
}

// missedRun reports whether app da had a run due between its last run (as
// history and a running instance tell) and now.
func missedRun(oa *observed.App, da *desired.App, now time.Time) bool {
	var last time.Time
	for _, r := range oa.History {
		if r.Started.After(last) {
			last = r.Started
		}
	}
	if oa.Instance != nil && oa.Instance.Started.After(last) {
		last = oa.Instance.Started
	}
	if last.IsZero() {
		return false // never ran: nothing was missed
	}
	next := da.Schedule.Next(last)
	return !next.IsZero() && !next.After(now)
}

// advanceSchedule moves a scheduled app's next run past now once a run
// starts (or fails to): a start before the run was due (an API restart)
// leaves it where it is.
func advanceSchedule(oa *observed.App, app *desired.App, now time.Time) {
	if app.Schedule != nil && oa.Due(now) {
		oa.Schedule.Next = app.Schedule.Next(now)
	}
}

// skipRun records a run that was due while the last one still ran
// (concurrency "forbid"): a "skipped" history record at the time it was
// due, and an event; the next run is the one after now.
func (l *Loop) skipRun(oa *observed.App, app *desired.App, now time.Time) {
	s := oa.Schedule
	if s == nil || app == nil || app.Schedule == nil {
		return
	}
	due := s.Next
	s.Skips++
	s.Next = app.Schedule.Next(now)
	rec := observed.Record{
		// A record needs an id of its own (the store and CAS find records
		// by it): the id the run would have had.
		InstanceID: uuid.NewString(), Started: due, LastSeen: due, Stopped: due,
		Reason: schema.ReasonSkipped, ConfigRevision: l.file.Revision(),
	}
	l.appendHistory(oa, rec)
	running := 0
	if oa.Instance != nil {
		running = oa.Instance.PID
	}
	l.log.Info("scheduled run skipped: the last run still runs", "app", oa.ID, "due", due, "running-pid", running, "next", s.Next)
	h := l.history([]observed.Record{rec})[0]
	l.emit(schema.Event{Event: schema.EventSkipped, Group: schema.GroupApp, ID: oa.ID, PID: running,
		Reason: schema.ReasonSkipped, History: &h, Message: "next run at " + s.Next.Format(time.RFC3339)})
}

// jobReason is how a scheduled run that ended by itself is recorded:
// "completed" for exit code 0, "failed" for another code; other reasons
// (a signal, oom-killed, execute-timeout) stay as they are.
func jobReason(r schema.Reason) schema.Reason {
	switch r {
	case schema.ReasonExited:
		return schema.ReasonCompleted
	case schema.ReasonCrashed:
		return schema.ReasonFailed
	}
	return r
}

// actOnRun executes a stop or kill of an earlier run (a.Run).
func (l *Loop) actOnRun(oa *observed.App, a Action, now time.Time) {
	run := oa.Run(a.Run)
	if run == nil {
		return
	}
	if a.Kind == KindStop {
		l.stopInstance(oa, run, a.Reason, now)
		return
	}
	if run.Stopping != nil && !run.Stopping.Killed {
		l.log.Warn("stop-timeout passed; sending SIGKILL to the process group of an earlier run", "app", oa.ID, "pid", run.PID)
		l.signal(run, "SIGKILL")
		run.Stopping.Killed = true
	}
}
