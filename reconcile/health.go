package reconcile

import (
	"fmt"
	"strconv"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// NotifyProbe queues a probe result for the loop. It never blocks; package
// exec calls it from its probe workers.
func (l *Loop) NotifyProbe(r observed.ProbeResult) {
	l.mu.Lock()
	l.probes = append(l.probes, r)
	l.mu.Unlock()
	l.poke()
}

// NotifyMessage queues an sd_notify message for the loop. It never
// blocks; package exec calls it from its notify socket readers.
func (l *Loop) NotifyMessage(m observed.NotifyMessage) {
	l.mu.Lock()
	l.messages = append(l.messages, m)
	l.mu.Unlock()
	l.poke()
}

// checked reports whether an app's instances become ready by a check (a
// probe or READY=1) rather than at once.
func checked(a *desired.App) bool { return a.HasReadiness() || a.Startup != nil }

// beginHealth sets up a new or adopted instance's health and starts its
// probes. An adopted instance has passed its startup already, and counts
// as having sent READY=1 (it ran before this Patrol could hear it). One
// re-adopted after a Patrol restart (rebind) gets its NOTIFY_SOCKET back
// (the name is its instance id), so its watchdog still holds; other
// adopted instances were never told a socket, and have no watchdog.
func (l *Loop) beginHealth(id string, inst *observed.Instance, now time.Time, rebind bool) {
	a := inst.App
	inst.Health = observed.Health{Since: now, StartupDone: a.Startup == nil || inst.Adopted,
		Notified: inst.Adopted, Watchdog: a.Watchdog}
	if inst.Adopted && a.Notify() {
		bound := false
		if rebind {
			if err := l.exec.AdoptNotify(inst.ID, inst.PGID, inst.PID); err != nil {
				l.log.Warn("cannot bind the NOTIFY_SOCKET of an adopted instance again; its watchdog is off", "app", id, "err", err)
			} else {
				bound = true
			}
		}
		if !bound {
			inst.Health.Watchdog = 0 // no socket: no watchdog it could satisfy
		}
	}
	if inst.Health.Watchdog > 0 {
		inst.Health.WatchdogDeadline = now.Add(inst.Health.Watchdog)
	}
	if a.Ready == schema.ReadyLogLine && !inst.Adopted {
		l.exec.WatchLines(inst.ID, []string{inst.Stdout, inst.Stderr}, a.ReadyLineRE())
	}
	l.setProbes(inst, nil, now)
	l.updateReady(id, inst, now, "")
}

// setProbes registers the probes of an instance's phase (the startup
// probe until it passed, then liveness and readiness), keeping the state
// of probes whose config is in keep.
func (l *Loop) setProbes(inst *observed.Instance, keep map[desired.ProbeKind]bool, now time.Time) {
	a, h := inst.App, &inst.Health
	if !h.StartupDone && a.Startup == nil {
		h.StartupDone = true // its startup probe was removed in place
	}
	var probes []*desired.Probe
	if !h.StartupDone {
		probes = append(probes, a.Startup)
	} else {
		for _, p := range []*desired.Probe{a.Liveness, a.Readiness} {
			if p != nil {
				probes = append(probes, p)
			}
		}
	}
	for k := range h.Probes {
		if !keep[k] {
			delete(h.Probes, k)
		}
	}
	if len(probes) == 0 && len(h.Probes) == 0 && !inst.Probing {
		return // the common case: no probes, nothing to tell exec
	}
	inst.Probing = len(probes) > 0
	if h.Probes == nil {
		h.Probes = map[desired.ProbeKind]*observed.ProbeState{}
	}
	for _, p := range probes {
		if h.Probes[p.Kind] == nil {
			h.Probes[p.Kind] = &observed.ProbeState{}
		}
	}
	l.exec.Probe(inst.ID, probes, now)
}

// stopProbes stops an instance's probes (it is stopping).
func (l *Loop) stopProbes(inst *observed.Instance) {
	if inst.Probing {
		inst.Probing = false
		l.exec.Probe(inst.ID, nil, time.Time{})
	}
}

// ready computes whether an instance is ready now.
func ready(inst *observed.Instance) bool {
	a, h := inst.App, &inst.Health
	switch {
	case inst.Stopping != nil, !h.StartupDone, h.Failed != "":
		return false
	case a.Keepalive == schema.KeepalivePIDApp && inst.PID == 0:
		return false // the daemon is not known yet
	case a.Ready != "" && !h.Notified:
		return false // no READY=1 or ready line yet
	}
	if a.Readiness != nil {
		ps := h.Probes[desired.ProbeReadiness]
		return ps != nil && ps.Decided && ps.Passing
	}
	return true
}

// updateReady recomputes an instance's readiness and publishes a change;
// why says what changed it. It reports whether readiness changed.
func (l *Loop) updateReady(id string, inst *observed.Instance, now time.Time, why string) bool {
	h := &inst.Health
	r := ready(inst)
	if r == h.Ready {
		return false
	}
	h.Ready, h.Since = r, now
	l.touch(schema.GroupApp, id)
	if !checked(inst.App) {
		h.WasReady = h.WasReady || r
		return true // ready at once: "started" says it all
	}
	ev := schema.Event{Group: schema.GroupApp, ID: id, PID: inst.PID, InstanceID: inst.ID, Message: why}
	if r {
		h.WasReady = true
		ev.Event = schema.EventReady
		l.log.Info("ready", "app", id, "pid", inst.PID, "why", why)
	} else {
		ev.Event = schema.EventUnready
		if inst.Stopping == nil {
			l.log.Warn("unready", "app", id, "pid", inst.PID, "why", why)
			l.healthFailure(id, "unready: "+why, now)
		}
	}
	if inst.Stopping == nil {
		l.emit(ev)
	}
	return true
}

// healthFailure records an app's last health failure.
func (l *Loop) healthFailure(id, what string, now time.Time) {
	if oa := l.snap.Apps[id]; oa != nil {
		oa.HealthFailure, oa.HealthFailureAt = what, now
	}
}

// instanceOf returns the current, not stopping instance with id tag.
func (l *Loop) instanceOf(tag string) (string, *observed.Instance) {
	id, ok := l.tags[tag]
	if !ok {
		return "", nil
	}
	oa := l.snap.Apps[id]
	if oa == nil || oa.Instance == nil || oa.Instance.ID != tag || oa.Instance.Stopping != nil || oa.Instance.Health.Failed != "" {
		return "", nil
	}
	return id, oa.Instance
}

// applyProbe counts a probe result against its thresholds. It reports
// whether the result changed anything a pass plans from (most results
// confirm what was known and need none).
func (l *Loop) applyProbe(r observed.ProbeResult) bool {
	id, inst := l.instanceOf(r.Tag)
	if inst == nil {
		return false
	}
	h := &inst.Health
	var p *desired.Probe
	switch r.Kind {
	case desired.ProbeStartup:
		p = inst.App.Startup
	case desired.ProbeLiveness:
		p = inst.App.Liveness
	case desired.ProbeReadiness:
		p = inst.App.Readiness
	}
	ps := h.Probes[r.Kind]
	if p == nil || ps == nil || (r.Kind == desired.ProbeStartup) == h.StartupDone {
		return false // a result of a probe no longer run
	}
	ps.Last = r
	if r.OK {
		ps.Successes, ps.Failures = ps.Successes+1, 0
	} else {
		ps.Successes, ps.Failures = 0, ps.Failures+1
		l.healthFailure(id, fmt.Sprintf("%s probe: %s", r.Kind, r.Message), r.At)
	}
	passing, decided := ps.Passing, ps.Decided
	switch {
	case r.OK && ps.Successes >= p.SuccessThreshold:
		ps.Passing, ps.Decided = true, true
	case !r.OK && ps.Failures >= p.FailureThreshold:
		ps.Passing, ps.Decided = false, true
	}
	if ps.Passing == passing && ps.Decided == decided {
		return false
	}
	l.touch(schema.GroupApp, id)
	verdict := "passing"
	if !ps.Passing {
		verdict = "failing"
	}
	l.emit(schema.Event{Event: schema.EventHealth, Group: schema.GroupApp, ID: id, PID: inst.PID, InstanceID: inst.ID,
		Message: fmt.Sprintf("%s probe %s: %s", r.Kind, verdict, r.Message)})
	switch {
	case r.Kind == desired.ProbeStartup && ps.Passing:
		h.StartupDone = true
		l.log.Info("startup probe passed", "app", id, "pid", inst.PID)
		l.setProbes(inst, nil, r.At)
		l.updateReady(id, inst, r.At, "startup probe passed: "+r.Message)
	case r.Kind == desired.ProbeReadiness:
		why := "readiness probe passed: " + r.Message
		if !ps.Passing {
			why = fmt.Sprintf("readiness probe failed %d times: %s", ps.Failures, r.Message)
		}
		l.updateReady(id, inst, r.At, why)
	case !ps.Passing:
		reason := schema.ReasonLivenessFailed
		if r.Kind == desired.ProbeStartup {
			reason = schema.ReasonStartupFailed
		}
		h.Failed = reason
		h.FailedWhy = fmt.Sprintf("%s probe (%s) failed %d times: %s", r.Kind, p.Describe(), ps.Failures, r.Message)
	}
	return true
}

// applyNotify applies an sd_notify message. It reports whether the
// message changed anything a pass plans from (a WATCHDOG=1 that only
// moves the deadline needs none: the timer set for the old deadline fires
// early, for a pass that finds nothing to do).
func (l *Loop) applyNotify(m observed.NotifyMessage) bool {
	id, inst := l.instanceOf(m.Tag)
	if inst == nil {
		return false
	}
	h := &inst.Health
	pass := false
	if m.HasStatus && m.Status != h.Status {
		h.Status = m.Status
		l.touch(schema.GroupApp, id)
		l.emit(schema.Event{Event: schema.EventHealth, Group: schema.GroupApp, ID: id, PID: inst.PID, InstanceID: inst.ID,
			Message: "STATUS=" + m.Status})
	}
	if m.MainPID > 0 {
		h.MainPID = m.MainPID
	}
	var why string
	switch {
	case m.LogLine != "":
		h.Notified, why = true, "the app wrote "+strconv.Quote(m.LogLine)
	case m.Stopping:
		h.Notified, why = false, "the app sent STOPPING=1"
	case m.Reloading:
		h.Notified, why = false, "the app sent RELOADING=1"
	case m.Ready:
		h.Notified, why = true, "the app sent READY=1"
	}
	if m.WatchdogUSec > 0 {
		h.Watchdog = time.Duration(m.WatchdogUSec) * time.Microsecond
		h.WatchdogDeadline = m.At.Add(h.Watchdog)
		pass = true
	}
	if m.Watchdog && h.Watchdog > 0 {
		h.WatchdogDeadline = m.At.Add(h.Watchdog)
	}
	if m.WatchdogTrigger {
		h.Failed, h.FailedWhy = schema.ReasonWatchdog, "the app sent WATCHDOG=trigger"
		pass = true
	}
	if l.updateReady(id, inst, m.At, why) {
		pass = true
	}
	return pass
}

// unhealthy records and publishes the stop of an instance for failing a
// check (liveness, startup, watchdog).
func (l *Loop) unhealthy(id string, inst *observed.Instance, reason schema.Reason, why string, now time.Time) {
	l.healthFailure(id, fmt.Sprintf("%s: %s", reason, why), now)
	l.log.Warn("unhealthy; restarting", "app", id, "pid", inst.PID, "reason", string(reason), "why", why)
	l.emit(schema.Event{Event: schema.EventUnhealthy, Group: schema.GroupApp, ID: id, PID: inst.PID,
		InstanceID: inst.ID, Reason: reason, Message: why})
}

// healthFailed reports whether a stop reason is a failed check.
func healthFailed(r schema.Reason) bool {
	return r == schema.ReasonLivenessFailed || r == schema.ReasonStartupFailed || r == schema.ReasonWatchdog
}

// updateProbes applies an in-place change of an instance's probes: the
// probes whose config changed start afresh, the others keep their state.
func (l *Loop) updateProbes(id string, inst *observed.Instance, old *desired.App, now time.Time) {
	a := inst.App
	keep := map[desired.ProbeKind]bool{}
	changed := false
	for _, pair := range [][2]*desired.Probe{{old.Startup, a.Startup}, {old.Liveness, a.Liveness}, {old.Readiness, a.Readiness}} {
		o, n := pair[0], pair[1]
		switch {
		case o == nil && n == nil:
		case o != nil && n != nil && sameProbe(o, n):
			keep[n.Kind] = true
		default:
			changed = true
		}
	}
	if a.Ready == schema.ReadyLogLine && old.ReadyLine != a.ReadyLine && !inst.Health.Notified {
		// Still waiting for its line: wait for the new one, from the start
		// of its log files.
		l.exec.WatchLines(inst.ID, []string{inst.Stdout, inst.Stderr}, a.ReadyLineRE())
	}
	if !changed {
		return
	}
	l.setProbes(inst, keep, now)
	l.updateReady(id, inst, now, "its probes changed")
}

func sameProbe(a, b *desired.Probe) bool {
	return fmt.Sprint(*a) == fmt.Sprint(*b)
}

// readinessDetail says what a starting instance's readiness waits on.
func readinessDetail(inst *observed.Instance) string {
	h := &inst.Health
	kind := desired.ProbeReadiness
	if !h.StartupDone {
		kind = desired.ProbeStartup
	}
	if ps := h.Probes[kind]; ps != nil && !ps.Last.At.IsZero() {
		return fmt.Sprintf(" (%s probe: %s)", kind, ps.Last.Message)
	}
	switch {
	case inst.App.Ready == schema.ReadyNotify && !h.Notified:
		return " (READY=1 on NOTIFY_SOCKET)"
	case inst.App.Ready == schema.ReadyLogLine && !h.Notified:
		return " (a line matching " + strconv.Quote(inst.App.ReadyLine) + ")"
	}
	return ""
}

// readyValues are what status entries' Ready points to (no allocation per
// entry; nobody writes through it).
var readyValues = [2]bool{false, true}

// healthResponse adds an app's health to its status entry.
func (l *Loop) healthResponse(r *schema.Response, oa *observed.App) {
	r.HealthFailure, r.HealthFailureAt = oa.HealthFailure, l.ts(oa.HealthFailureAt)
	inst := oa.Instance
	if inst == nil || inst.Stopping != nil {
		return
	}
	h := &inst.Health
	r.Ready = &readyValues[0]
	if h.Ready {
		r.Ready = &readyValues[1]
	}
	switch {
	case h.Ready:
		r.Health = schema.HealthReady
	case h.WasReady:
		r.Health = schema.HealthUnready
	default:
		r.Health = schema.HealthStarting
	}
	if checked(inst.App) {
		r.ReadySince = l.ts(h.Since) // without checks: its start time, already in "started"
	}
	r.StatusText = h.Status
	if h.Watchdog > 0 {
		r.WatchdogUntil = l.ts(h.WatchdogDeadline)
	}
	if len(h.Probes) > 0 {
		r.Probes = make(map[string]*schema.ProbeStatus, len(h.Probes))
		for k, ps := range h.Probes {
			r.Probes[string(k)] = &schema.ProbeStatus{OK: ps.Decided && ps.Passing, Last: ps.Last.OK,
				Message: ps.Last.Message, At: l.ts(ps.Last.At), Failures: ps.Failures, Successes: ps.Successes}
		}
	}
}
