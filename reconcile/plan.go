package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// Kind is what an action does.
type Kind string

// The action kinds. Start, stop, restart, update and adopt are the plan's
// vocabulary (DESIGN §10); kill and cleanup finish stops that outlived
// stop-timeout or left processes behind; keep is not an action at all but
// a note that an override holds an entry against the file, and wait a
// start that waits for the app's dependencies.
const (
	KindStart   Kind = schema.ActionStart
	KindStop    Kind = schema.ActionStop
	KindRestart Kind = schema.ActionRestart
	KindUpdate  Kind = schema.ActionUpdate
	KindAdopt   Kind = schema.ActionAdopt
	KindKeep    Kind = schema.ActionKeep
	KindWait    Kind = schema.ActionWait
	KindKill    Kind = "kill"
	KindCleanup Kind = "cleanup"
)

// Action is one step the loop takes.
type Action struct {
	Kind   Kind
	Group  schema.Group
	ID     string
	Reason schema.Reason
	// Changes lists the changed config keys (restart and update).
	Changes []desired.Change
	// Note explains an override or a delay in words.
	Note string
	// App is the config to start, restart or update to (nil for stops of
	// removed entries).
	App *desired.App
	// PID is the process an adopt takes over.
	PID int
	// Instance is the id the instance a start creates will have (set by
	// the loop before it executes the plan).
	Instance string
	// Run is the instance id of the earlier run a stop or kill is for (a
	// scheduled app with concurrency "allow"); "" for the app's instance.
	Run string
}

// String renders an action for logs.
func (a Action) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s (%s", a.Kind, a.Group, a.ID, a.Reason)
	for _, c := range a.Changes {
		fmt.Fprintf(&b, "; %s: %s -> %s", c.Field, c.Old, c.New)
	}
	if a.Note != "" {
		b.WriteString("; " + a.Note)
	}
	b.WriteString(")")
	return b.String()
}

// Plan compares the desired state d (with overrides) with the observed
// state o at time now and returns what to do, sorted by group and id. It is
// a pure function: no I/O, no clock, no goroutines. The loop executes
// exactly what it returns, and `patrol plan` prints it.
func Plan(d *desired.State, o *observed.Snapshot, now time.Time) []Action {
	ids := map[string]bool{}
	for _, a := range d.Apps() {
		ids[a.ID] = true
	}
	for id := range o.Apps {
		ids[id] = true
	}
	var out []Action
	removed := removedDependents(d, o)
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		out = append(out, planApp(d, o, id, removed[id], now)...)
	}
	for _, v := range d.Services() {
		out = append(out, planService(d, o, v.ID, now)...)
	}
	return out
}

// planApp plans app id; removedDependents are the apps removed from the
// config whose instance depends on it (they stop first, as the config's
// dependents do).
func planApp(d *desired.State, o *observed.Snapshot, id string, removedDependents []string, now time.Time) []Action {
	da, inDesired := d.App(id)
	oa := o.Apps[id]
	if oa == nil {
		oa = &observed.App{ID: id}
	}
	act := func(k Kind, r schema.Reason) Action {
		return Action{Kind: k, Group: schema.GroupApp, ID: id, Reason: r, App: da}
	}
	var out []Action

	// What is left of an ended instance's process group is stopped first,
	// whatever the config says: it belongs to no instance.
	if lo := oa.Leftover; lo != nil {
		switch {
		case lo.Deadline.IsZero():
			out = append(out, act(KindCleanup, oa.LastEndReason()))
		case !lo.Killed && !now.Before(lo.Deadline):
			out = append(out, act(KindKill, oa.LastEndReason()))
		}
	}
	out = append(out, planRuns(d, o, da, oa, now, act)...)

	inst := oa.Instance
	if inst != nil && inst.Stopping != nil {
		if !inst.Stopping.Killed && !now.Before(inst.Stopping.Deadline) {
			out = append(out, act(KindKill, inst.Stopping.Reason))
		}
		return out
	}
	// Apps that depend on this one stop first (shutdown, removal).
	if o.Shutdown {
		if inst != nil && dependentsUp(o, d.Dependents(id), removedDependents) == "" {
			out = append(out, act(KindStop, schema.ReasonShutdown))
		}
		return out
	}
	if !inDesired {
		if inst != nil && dependentsUp(o, d.Dependents(id), removedDependents) == "" {
			why := schema.ReasonRemoved
			if base := inst.App.ReplicaOf; base != "" && inst.App.ID != base {
				if _, ok := d.Replicas(base); ok {
					why = schema.ReasonScaled
				}
			}
			out = append(out, act(KindStop, why))
		}
		return out
	}

	disabled := d.AppDisabled(da)
	ov := d.Override(desired.Key{Group: schema.GroupApp, ID: id})
	if inst != nil {
		switch {
		case disabled:
			r := schema.ReasonDisabled
			if ov != nil && ov.Disabled != nil {
				r = schema.ReasonOverride
			}
			out = append(out, act(KindStop, r))
		case oa.RestartRequested:
			out = append(out, act(KindRestart, schema.ReasonRestart))
		case inst.Stale:
			a := act(KindRestart, schema.ReasonChanged)
			a.Note = "the config changed while Patrol was not running"
			out = append(out, a)
		case inst.App.Fingerprint() != da.Fingerprint():
			changes := desired.DiffApps(inst.App, da)
			a := act(KindUpdate, schema.ReasonChanged)
			if desired.NeedsRestart(changes) {
				a.Kind = KindRestart
				if after := rollingWait(d, o, da); after != "" {
					// One replica at a time: the plan shows it, nothing
					// is done yet.
					a.Kind, a.Reason, a.Note = KindKeep, schema.ReasonRolling, "restart waits: "+after+" (rolling)"
				}
			}
			a.Changes = changes
			out = append(out, a)
		case da.Keepalive == schema.KeepalivePIDApp && inst.PID == 0 && !now.Before(inst.Started.Add(da.StartTimeout)):
			a := act(KindStop, schema.ReasonStartFailed)
			a.Note = fmt.Sprintf("no live pid in %s after start-timeout (%s)", da.PIDPath, da.StartTimeout)
			out = append(out, a)
		case da.ExecuteTimeout > 0 && !now.Before(inst.Started.Add(da.ExecuteTimeout)):
			out = append(out, act(KindStop, schema.ReasonExecuteTimeout))
		case inst.App.Keepalive.Pinged() && !now.Before(PingDeadline(inst, d.Settings().PingTimeout)):
			// No ping within ping-timeout: the (possibly hung) process is
			// stopped before a new one starts, never two copies.
			a := act(KindStop, schema.ReasonPingTimeout)
			a.Note = fmt.Sprintf("no ping for %s", d.Settings().PingTimeout)
			out = append(out, a)
		case inst.Health.Failed != "":
			// A liveness or startup probe failed, or WATCHDOG=trigger: a
			// graceful restart, counted by the backoff like a crash.
			a := act(KindStop, inst.Health.Failed)
			a.Note = inst.Health.FailedWhy
			out = append(out, a)
		case inst.Health.Watchdog > 0 && !now.Before(inst.Health.WatchdogDeadline):
			a := act(KindStop, schema.ReasonWatchdog)
			a.Note = fmt.Sprintf("no WATCHDOG=1 for %s", inst.Health.Watchdog)
			out = append(out, a)
		case da.Schedule != nil && oa.Due(now):
			out = append(out, dueWhileRunning(da, oa, act))
		default:
			if dep, ok := restartedDependency(o, inst, da); ok {
				a := act(KindRestart, schema.ReasonDependency)
				a.Note = dep + " got a new instance"
				out = append(out, a)
			}
		}
		return out
	}

	// No instance.
	if disabled {
		if ov != nil && ov.Disabled != nil && !da.Disabled {
			a := act(KindKeep, schema.ReasonOverride)
			a.Note = "kept stopped by override (config: enabled)"
			out = append(out, a)
		}
		if oa.Candidate != nil && da.Keepalive == schema.KeepalivePIDApp {
			// A disabled daemon found running is adopted so that the next
			// pass stops it, as the original Patrol did.
			a := act(KindAdopt, schema.ReasonAdopted)
			a.PID = oa.Candidate.PID
			out = append(out, a)
		}
		return out
	}
	if oa.Leftover != nil {
		return out // never two copies: wait until the old group is gone
	}
	if oa.Vetting {
		return out // a BeforeStart hook is deciding
	}
	if oa.Candidate != nil && da.Keepalive == schema.KeepalivePIDApp {
		a := act(KindAdopt, schema.ReasonAdopted)
		a.PID = oa.Candidate.PID
		return append(out, a)
	}
	if awaitsPings(o, d, da, oa, now) {
		return out // an instance started before Patrol may still ping in
	}
	if da.Schedule != nil {
		// A job: started when a run is due (or one is owed), never
		// restarted by restart-policy or delayed by backoff.
		if s := oa.Schedule; oa.Pending == nil && (s == nil || s.Spec != da.Schedule.String()) {
			// New to the loop (a plan of a config not applied yet): the
			// loop computes its next run when it applies it.
			if s == nil && da.Schedule.RunOnStart {
				a := act(KindStart, schema.ReasonScheduled)
				a.Note = "run-on-start"
				return append(out, a)
			}
			a := act(KindKeep, schema.ReasonScheduled)
			a.Note = fmt.Sprintf("runs at its schedule (%s)", da.Schedule)
			return append(out, a)
		}
		if oa.Pending == nil && !oa.Due(now) {
			return out
		}
		a := act(KindStart, schema.ReasonScheduled)
		if oa.Pending != nil {
			a.Reason, a.Changes = oa.Pending.Reason, oa.Pending.Changes
		}
		if u := unmet(o, da); len(u) > 0 {
			a.Kind, a.Note = KindWait, afterNote(u)
		}
		return append(out, a)
	}
	if oa.Pending == nil && oa.LastEnd != nil && oa.LastEnd.BySelf && oa.LastEnd.Fingerprint == da.Fingerprint() {
		switch da.RestartPolicy {
		case schema.RestartNever:
			return out
		case schema.RestartOnFailure:
			if oa.LastEnd.Succeeded() {
				return out
			}
		}
	}
	if oa.Pending == nil && oa.Backoff.Until.After(now) && oa.Backoff.Fingerprint == da.Fingerprint() {
		return out
	}
	a := act(KindStart, startReason(oa, da))
	if oa.Pending != nil {
		a.Changes = oa.Pending.Changes
	}
	if u := unmet(o, da); len(u) > 0 {
		// Started the moment they hold: the events that make them hold
		// (a start, a readiness, an exit) wake the loop.
		a.Kind, a.Note = KindWait, afterNote(u)
	}
	return append(out, a)
}

// planRuns plans the earlier runs of a scheduled app with concurrency
// "allow" (observed.App.Runs): each is stopped on its own when the app is
// disabled or removed, at shutdown, or past execute-timeout, and killed
// past stop-timeout.
func planRuns(d *desired.State, o *observed.Snapshot, da *desired.App, oa *observed.App, now time.Time,
	act func(Kind, schema.Reason) Action) []Action {
	var out []Action
	for _, run := range oa.Runs {
		var a Action
		switch st := run.Stopping; {
		case st != nil && !st.Killed && !now.Before(st.Deadline):
			a = act(KindKill, st.Reason)
		case st != nil:
			continue
		case o.Shutdown:
			a = act(KindStop, schema.ReasonShutdown)
		case da == nil:
			a = act(KindStop, schema.ReasonRemoved)
		case d.AppDisabled(da):
			a = act(KindStop, schema.ReasonDisabled)
			if ov := d.Override(desired.Key{Group: schema.GroupApp, ID: da.ID}); ov != nil && ov.Disabled != nil {
				a.Reason = schema.ReasonOverride
			}
		case run.App.ExecuteTimeout > 0 && !now.Before(run.Started.Add(run.App.ExecuteTimeout)):
			a = act(KindStop, schema.ReasonExecuteTimeout)
		default:
			continue
		}
		a.Run = run.ID
		a.Note = fmt.Sprintf("the earlier run of pid %d", run.PID)
		out = append(out, a)
	}
	return out
}

// dueWhileRunning is what a scheduled app does with a run due while the
// last one still runs, by its concurrency: skip it (the loop records the
// skip), replace the running one, or start another alongside.
func dueWhileRunning(da *desired.App, oa *observed.App, act func(Kind, schema.Reason) Action) Action {
	switch da.Schedule.Concurrency {
	case schema.ConcurrencyReplace:
		a := act(KindRestart, schema.ReasonReplaced)
		a.Note = "a run is due: the last one is stopped first (concurrency replace)"
		return a
	case schema.ConcurrencyAllow:
		a := act(KindStart, schema.ReasonScheduled)
		a.Note = "a run is due: started alongside the last one (concurrency allow)"
		return a
	}
	a := act(KindKeep, schema.ReasonSkipped)
	a.Note = "a run is due while the last one still runs: skipped (concurrency forbid)"
	return a
}

// startReason says why an app without an instance is started.
func startReason(oa *observed.App, da *desired.App) schema.Reason {
	switch {
	case oa.Pending != nil:
		return oa.Pending.Reason
	case oa.StartError != "":
		return schema.ReasonStartFailed
	case oa.Resumed:
		return schema.ReasonResumed
	case oa.LastEnd == nil:
		return schema.ReasonAdded
	case oa.LastEnd.Fingerprint != da.Fingerprint():
		return schema.ReasonChanged
	case oa.LastEnd.BySelf:
		return oa.LastEnd.Reason // crashed, exited, signal, ping-timeout, ...
	}
	return schema.ReasonEnabled
}

// running reports whether app id has a live, not stopping, instance.
func running(o *observed.Snapshot, id string) bool {
	a := o.Apps[id]
	return a != nil && a.Instance != nil && a.Instance.PID > 0 && a.Instance.Stopping == nil
}

// PingDeadline is when a keepalive 3 or 4 instance times out without a
// further ping: ping-timeout after its last ping, or after its start.
func PingDeadline(inst *observed.Instance, timeout time.Duration) time.Time {
	last := inst.Started
	if inst.LastSeen.After(last) {
		last = inst.LastSeen
	}
	return last.Add(timeout)
}

// PingGrace is when Patrol starts keepalive 3 and 4 apps that have not
// pinged since it started: 2 x ping-timeout after its start, so that
// instances running from before can ping in (the original's behaviour).
func PingGrace(o *observed.Snapshot, d *desired.State) time.Time {
	return o.Started.Add(2 * d.Settings().PingTimeout)
}

// awaitsPings reports whether app da waits for instances from before
// Patrol's start to ping in: it pings, has not started since, and the
// grace has not passed.
func awaitsPings(o *observed.Snapshot, d *desired.State, da *desired.App, oa *observed.App, now time.Time) bool {
	return da.Keepalive.Pinged() && oa.Starts == 0 && now.Before(PingGrace(o, d))
}

// BackoffDelay is the wait before the next start after the n-th
// consecutive short-lived crash: 0 for n = 0, then initial, doubling, at
// most max.
func BackoffDelay(b desired.Backoff, n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// rollingWait says what a replica's restart waits for when its app
// restarts replicas one at a time ("" when nothing): a sibling being
// restarted (stopping, or stopped and not started again), one running
// but not ready yet, or one with a lower index that needs the same
// restart (it goes first).
func rollingWait(d *desired.State, o *observed.Snapshot, da *desired.App) string {
	if da.ReplicaOf == "" || !da.Rolling || da.Replicas < 2 {
		return ""
	}
	for j := range da.Replicas {
		sid := desired.ReplicaID(da.ReplicaOf, j)
		sd, ok := d.App(sid)
		so := o.Apps[sid]
		if j == da.Replica || !ok || so == nil || d.AppDisabled(sd) {
			continue
		}
		inst := so.Instance
		switch {
		case inst != nil && inst.Stopping != nil, inst == nil && so.Pending != nil:
			return sid + " is restarting"
		case inst != nil && !inst.Health.Ready:
			return sid + " is not ready yet"
		case inst != nil && j < da.Replica && (inst.Stale || desired.NeedsRestart(desired.DiffApps(inst.App, sd))):
			return sid + " restarts first"
		}
	}
	return ""
}
