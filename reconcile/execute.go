package reconcile

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// execute carries out one planned action.
func (l *Loop) execute(a Action, now time.Time) {
	l.touch(a.Group, a.ID)
	if a.Group == schema.GroupService {
		l.executeService(a, now)
		return
	}
	oa := l.app(a.ID)
	log := l.log.With("app", a.ID, "action", string(a.Kind), "reason", string(a.Reason))
	switch a.Kind {
	case KindKeep, KindWait:
		if a.Reason == schema.ReasonSkipped {
			l.skipRun(oa, a.App, now)
		}
	case KindStart:
		l.start(oa, a, now)
	case KindAdopt:
		l.adopt(oa, a, now)
	case KindStop, KindKill:
		if a.Run != "" {
			l.actOnRun(oa, a, now)
			return
		}
		if a.Kind == KindKill {
			l.kill(oa, now, log)
			return
		}
		if inst := oa.Instance; inst != nil && inst.Stopping == nil && healthFailed(a.Reason) {
			l.unhealthy(a.ID, inst, a.Reason, a.Note, now)
		}
		l.stop(oa, a.Reason, now)
	case KindRestart:
		log.Info("restarting", "changes", fmtChanges(a.Changes))
		oa.RestartRequested = false
		oa.Pending = &observed.Pending{Reason: a.Reason, Changes: a.Changes}
		if a.Reason == schema.ReasonRestart || a.Reason == schema.ReasonDependency || a.Reason == schema.ReasonReplaced {
			l.stop(oa, a.Reason, now)
		} else {
			l.stop(oa, schema.ReasonChanged, now)
		}
	case KindUpdate:
		log.Info("updated in place", "changes", fmtChanges(a.Changes))
		old := oa.Instance.App
		oa.Instance.App = a.App
		oa.Instance.Revision = l.file.Revision()
		l.updateProbes(a.ID, oa.Instance, old, now)
		if old.Limits != a.App.Limits {
			l.setLimits(oa.Instance)
		}
		l.emit(schema.Event{Event: schema.EventUpdated, Group: schema.GroupApp, ID: a.ID, PID: oa.Instance.PID,
			InstanceID: oa.Instance.ID, Reason: a.Reason, Message: strings.Join(fmtChanges(a.Changes), "; ")})
	case KindCleanup:
		lo := oa.Leftover
		sig, timeout := "SIGTERM", 10*time.Second
		if d, ok := l.file.App(a.ID); ok {
			sig, timeout = d.StopSignal, d.StopTimeout
		}
		log.Info("stopping processes left in the process group of the ended instance", "pgid", lo.PGID, "signal", sig)
		_ = l.exec.SignalGroup(lo.PGID, sig)
		lo.Deadline = now.Add(timeout)
	}
}

// veto is a BeforeStart hook's answer.
type veto struct {
	id  string
	err error
}

// applyVeto records a BeforeStart answer: an approval lets the next pass
// start the app; a refusal is a failed start with the hook's reason.
func (l *Loop) applyVeto(v veto) {
	oa := l.snap.Apps[v.id]
	if oa == nil || !oa.Vetting {
		return
	}
	oa.Vetting = false
	l.touch(schema.GroupApp, v.id)
	if v.err == nil {
		oa.Approved = true
		return
	}
	if app, ok := l.file.App(v.id); ok {
		l.startFailed(oa, app, fmt.Errorf("refused by BeforeStart: %w", v.err), l.now())
	}
}

// launched is the outcome of one start's launch: its instance id and the
// new process, or why there is none.
type launched struct {
	id     string
	launch observed.Launch
	err    error
	panic  any // a panic of the launch, raised again on the loop goroutine
}

// launch starts the process of a start action (the part of a start that
// may run off the loop goroutine).
func (l *Loop) launch(a Action, now time.Time) launched {
	app := a.App
	r := launched{id: cmp.Or(a.Instance, uuid.NewString())}
	if app.Keepalive == schema.KeepalivePIDApp {
		if err := removeStalePIDFile(app.PIDPath); err != nil {
			r.err = fmt.Errorf("remove stale pid file: %w", err)
			return r
		}
	}
	r.launch, r.err = l.exec.StartApp(app, l.file.Settings(), r.id, now)
	return r
}

// maxLaunchers bounds the starts of one pass that run at once.
const maxLaunchers = 4

// launchAll launches the starts of a pass that need no BeforeStart answer
// at once, up to maxLaunchers at a time, before the pass executes its
// actions in order (and start takes each launch from l.launched). The
// launch of an app is mostly file system work that does not depend on
// the others: its log directory and files, checks of its binary and
// working directory; the forks themselves are serialised by the runner.
// On a fresh install, where every log directory is new, this halves the
// time 500 apps take to start on two cores.
func (l *Loop) launchAll(actions []Action, now time.Time) {
	var todo []Action
	for _, a := range actions {
		if a.Kind != KindStart || a.Group != schema.GroupApp {
			continue
		}
		if l.beforeStart != nil && !l.app(a.ID).Approved {
			continue
		}
		todo = append(todo, a)
	}
	if len(todo) < 2 {
		return // nothing to overlap
	}
	results := make([]launched, len(todo))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(maxLaunchers, len(todo)) {
		wg.Go(func() {
			for i := range next {
				func() {
					defer func() {
						if p := recover(); p != nil {
							results[i].panic = p
						}
					}()
					results[i] = l.launch(todo[i], now)
				}()
			}
		})
	}
	for i := range todo {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, a := range todo {
		l.launched[a.ID] = results[i]
	}
}

// dropLaunched kills the processes of launches no start took (a pass that
// panicked half-way): nothing would supervise them.
func (l *Loop) dropLaunched() {
	for id, r := range l.launched {
		delete(l.launched, id)
		if r.err == nil && r.panic == nil && r.launch.PGID > 0 {
			l.log.Warn("a started process was not recorded; killing it", "app", id, "pid", r.launch.PID)
			_ = l.exec.SignalGroup(r.launch.PGID, "SIGKILL")
		}
	}
}

// start starts a new instance.
func (l *Loop) start(oa *observed.App, a Action, now time.Time) {
	app := a.App
	if l.beforeStart != nil && !oa.Approved {
		// Ask first, off the loop goroutine; the next pass starts it once
		// approved (Plan waits while Vetting).
		oa.Vetting = true
		k := desired.Key{Group: schema.GroupApp, ID: app.ID}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), l.beforeStartTimeout)
			defer cancel()
			err := callVeto(ctx, l.beforeStart, k)
			if ctx.Err() != nil && err != nil {
				l.log.Warn("BeforeStart did not answer in time; starting", "app", k.ID, "timeout", l.beforeStartTimeout)
				err = nil
			}
			l.mu.Lock()
			l.vetoes = append(l.vetoes, veto{id: k.ID, err: err})
			l.mu.Unlock()
			l.poke()
		}()
		return
	}
	oa.Approved = false
	advanceSchedule(oa, app, now)
	r, ok := l.launched[app.ID]
	if ok {
		delete(l.launched, app.ID)
		if r.panic != nil {
			panic(r.panic)
		}
	} else {
		r = l.launch(a, now)
	}
	id, launch, err := r.id, r.launch, r.err
	if err != nil {
		l.startFailed(oa, app, err, now)
		return
	}
	inst := &observed.Instance{
		ID:         id,
		App:        app,
		Revision:   l.file.Revision(),
		PGID:       launch.PGID,
		StartTime:  launch.StartTime,
		Started:    launch.Started,
		LastSeen:   launch.Started,
		Stdout:     launch.Stdout,
		Stderr:     launch.Stderr,
		SpawnPGID:  launch.PGID,
		Signalable: true,
	}
	if app.Keepalive == schema.KeepalivePIDApp {
		inst.Launcher, inst.LauncherPGID, inst.PGID = launch.PID, launch.PGID, 0
	} else {
		inst.PID = launch.PID
	}
	key := desired.Key{Group: schema.GroupApp, ID: app.ID}
	if ov := l.overrides[key]; ov != nil && ov.RunOnce {
		inst.RunOnce = true
		ov.RunOnce = false
		if ov.Empty() {
			delete(l.overrides, key)
		}
	}
	if old := oa.Instance; old != nil {
		// A scheduled run due while the last one runs, with concurrency
		// "allow": the last one goes on as an earlier run.
		l.stopProbes(old)
		oa.Runs = append(oa.Runs, old)
	}
	oa.Instance = inst
	oa.Pending = nil
	oa.StartError = ""
	oa.Candidate = nil
	if oa.Resumed {
		oa.Resumed = false // after Patrol's clean shutdown: not a restart
	} else {
		oa.Starts++
	}
	oa.LastStdout, oa.LastStderr = launch.Stdout, launch.Stderr
	l.tags[id] = app.ID
	for _, dep := range app.DependsOn {
		if dep.Restart {
			if inst.DependencyInstances == nil {
				inst.DependencyInstances = map[string]string{}
			}
			if d := l.snap.Apps[dep.ID]; d != nil && d.Instance != nil {
				inst.DependencyInstances[dep.ID] = d.Instance.ID
			} else {
				inst.DependencyInstances[dep.ID] = ""
			}
		}
	}
	l.beginHealth(app.ID, inst, now, false)
	l.log.Info("started", "app", app.ID, "pid", launch.PID, "instance", id, "reason", string(a.Reason))
	l.emit(schema.Event{Event: schema.EventStarted, Group: schema.GroupApp, ID: app.ID, PID: launch.PID,
		InstanceID: id, Reason: a.Reason, Restarts: max(0, oa.Starts-1)})
}

// callVeto calls a BeforeStart hook, turning a panic into a refusal.
func callVeto(ctx context.Context, fn func(context.Context, desired.Key) error, k desired.Key) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("BeforeStart panicked: %v", p)
		}
	}()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("BeforeStart panicked: %v", p)
			}
		}()
		done <- fn(ctx, k)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startFailed records a failed start and backs off like a crash.
func (l *Loop) startFailed(oa *observed.App, app *desired.App, err error, now time.Time) {
	oa.StartError = err.Error()
	oa.Backoff.Crashes++
	oa.Backoff.Until = now.Add(max(BackoffDelay(app.Backoff, oa.Backoff.Crashes), app.Backoff.Initial))
	oa.Backoff.Fingerprint = app.Fingerprint()
	oa.Pending = nil
	l.log.Error("start failed", "app", app.ID, "err", err, "retry-at", oa.Backoff.Until)
	l.emit(schema.Event{Event: schema.EventStartFailed, Group: schema.GroupApp, ID: app.ID, Reason: schema.ReasonStartFailed, Message: err.Error()})
	l.emit(schema.Event{Event: schema.EventBackoff, Group: schema.GroupApp, ID: app.ID, Message: "next start at " + oa.Backoff.Until.Format(time.RFC3339Nano)})
}

// adopt takes over a running process instead of starting a new one.
func (l *Loop) adopt(oa *observed.App, a Action, now time.Time) {
	id := uuid.NewString()
	c := oa.Candidate
	oa.Candidate = nil
	st, err := l.exec.Watch(c.PID, id, observed.RoleLeader)
	if err != nil {
		l.log.Info("adoption candidate vanished", "app", a.ID, "pid", c.PID, "err", err)
		return
	}
	oa.Instance = &observed.Instance{
		ID:         id,
		App:        a.App,
		Revision:   l.file.Revision(),
		PID:        c.PID,
		PGID:       c.PGID,
		StartTime:  st,
		Started:    now,
		LastSeen:   now,
		Adopted:    true,
		Signalable: true,
	}
	oa.Starts++
	l.tags[id] = a.ID
	l.beginHealth(a.ID, oa.Instance, now, false)
	l.log.Info("adopted running process", "app", a.ID, "pid", c.PID, "instance", id)
	l.emit(schema.Event{Event: schema.EventAdopted, Group: schema.GroupApp, ID: a.ID, PID: c.PID, InstanceID: id, Reason: schema.ReasonAdopted})
}

// kill sends SIGKILL to an instance (or the leftover of one) that
// outlived stop-timeout.
func (l *Loop) kill(oa *observed.App, now time.Time, log *slog.Logger) {
	if inst := oa.Instance; inst != nil && inst.Stopping != nil {
		log.Warn("stop-timeout passed; sending SIGKILL to the process group", "pid", inst.PID)
		l.signal(inst, "SIGKILL")
		inst.Stopping.Killed = true
	}
	if lo := oa.Leftover; lo != nil && !lo.Deadline.IsZero() && !now.Before(lo.Deadline) {
		log.Warn("processes left by an ended instance outlived stop-timeout; sending SIGKILL", "pgid", lo.PGID)
		_ = l.exec.SignalGroup(lo.PGID, "SIGKILL")
		lo.Killed = true
	}
}

// stop begins a graceful stop of the app's instance, and of its earlier
// runs (concurrency "allow") with it: the stop signal to their process
// groups, SIGKILL once stop-timeout passes (a later KindKill).
func (l *Loop) stop(oa *observed.App, reason schema.Reason, now time.Time) {
	for _, run := range slices.Clone(oa.Runs) {
		l.stopInstance(oa, run, reason, now)
	}
	l.stopInstance(oa, oa.Instance, reason, now)
}

// stopInstance asks inst, the app's instance or one of its earlier runs,
// to stop: its stop-signal, then SIGKILL after stop-timeout.
func (l *Loop) stopInstance(oa *observed.App, inst *observed.Instance, reason schema.Reason, now time.Time) {
	if inst == nil || inst.Stopping != nil {
		return
	}
	app := inst.App
	if d, ok := l.file.App(oa.ID); ok {
		app = d // the current stop-signal and stop-timeout apply
	}
	inst.Stopping = &observed.Stopping{Reason: reason, Since: now, Deadline: now.Add(app.StopTimeout)}
	l.stopProbes(inst)
	inst.Health.Ready = false
	signalled := l.signal(inst, app.StopSignal)
	l.log.Info("stopping", "app", oa.ID, "pid", inst.PID, "signal", app.StopSignal, "reason", string(reason))
	l.emit(schema.Event{Event: schema.EventStopping, Group: schema.GroupApp, ID: oa.ID, PID: inst.PID, InstanceID: inst.ID, Reason: reason})
	if !signalled {
		// Nothing Patrol may signal is left: a keepalive 2 launcher gone
		// without a daemon, an exit not processed yet, or a pid reported by
		// a ping that nobody vouched for. End the instance now.
		if inst.PID > 0 && !inst.Signalable && l.exec.Alive(inst.PID) {
			l.log.Warn("not signalling an unverified pid reported by a ping; set pid-verify to let Patrol stop it", "app", oa.ID, "pid", inst.PID)
		}
		l.closeRun(oa, inst, nil, now, "")
		return
	}
	if app.StopTimeout == 0 {
		l.signal(inst, "SIGKILL")
		inst.Stopping.Killed = true
	}
}

// signal sends sig to an instance's processes and reports whether any
// process got it. A process group is signalled only if the instance leads
// it or Patrol created it; otherwise only the pid.
func (l *Loop) signal(inst *observed.Instance, sig string) bool {
	ok := false
	switch {
	case !inst.Signalable:
	case inst.PGID > 0 && (inst.PGID == inst.PID || inst.PGID == inst.SpawnPGID):
		ok = l.exec.SignalGroup(inst.PGID, sig) == nil
	case inst.PID > 0:
		ok = l.exec.SignalProcess(inst.PID, sig) == nil
	}
	if inst.Launcher > 0 && inst.SpawnPGID > 0 && inst.SpawnPGID != inst.PGID && l.exec.SignalGroup(inst.SpawnPGID, sig) == nil {
		ok = true
	}
	return ok
}

// applyExit records a process exit reported by exec.
func (l *Loop) applyExit(ev observed.Exit) {
	id, ok := l.tags[ev.Tag]
	if !ok {
		return // an instance already closed
	}
	oa := l.snap.Apps[id]
	if oa == nil {
		return
	}
	if run := oa.Run(ev.Tag); run != nil {
		l.touch(schema.GroupApp, id)
		l.closeRun(oa, run, &ev, ev.Ended, "")
		return
	}
	if oa.Instance == nil || oa.Instance.ID != ev.Tag {
		return
	}
	l.touch(schema.GroupApp, id)
	inst := oa.Instance
	if ev.Role == observed.RoleLauncher {
		inst.Launcher = 0
		inst.LauncherGone = ev.Ended
		l.log.Info("launcher exited", "app", id, "pid", ev.PID, "code", ev.Code)
		switch {
		case inst.PID > 0:
		case inst.Stopping != nil && inst.App.Keepalive != schema.KeepalivePIDApp:
			l.closeInstance(oa, &ev, ev.Ended, "")
		case inst.Stopping != nil:
			// A keepalive 2 start being stopped: its daemon may still show
			// up in the pid file; observe stops it, or closes the instance
			// after a short grace.
		case ev.Code != 0 && inst.App.Keepalive == schema.KeepalivePIDApp:
			oa.StartError = fmt.Sprintf("launcher exited with code %d before writing a live pid to %s", ev.Code, inst.App.PIDPath)
			l.closeInstance(oa, &ev, ev.Ended, "")
		}
		return
	}
	l.closeInstance(oa, &ev, ev.Ended, "")
}

// closeInstance ends an app's current instance: history, backoff,
// run-once, key/value, and what is left of its process group. The reason
// is derived from the exit unless given.
func (l *Loop) closeInstance(oa *observed.App, ev *observed.Exit, now time.Time, why schema.Reason) {
	l.closeRun(oa, oa.Instance, ev, now, why)
}

// closeRun is closeInstance for inst, the app's instance or one of its
// earlier runs (concurrency "allow").
func (l *Loop) closeRun(oa *observed.App, inst *observed.Instance, ev *observed.Exit, now time.Time, why schema.Reason) {
	app := inst.App
	bySelf := inst.Stopping == nil
	reason := schema.ReasonStartFailed
	switch {
	case why != "":
		reason = why
	case !bySelf:
		reason = historyReason(inst.Stopping.Reason)
	case ev == nil:
	case ev.Code == observed.CodeUnknown:
		reason = schema.ReasonPIDGone
	case ev.OOMKilled && (ev.Signal != 0 || ev.Code != 0):
		// The kernel killed a process of it (its leader, or one whose end
		// made it fail) for using more than its memory-max.
		reason = schema.ReasonOOMKilled
	case ev.Signal != 0:
		reason = schema.ReasonSignal
	case ev.Code == 0 && inst.PID > 0:
		reason = schema.ReasonExited
	case inst.PID > 0:
		reason = schema.ReasonCrashed
	}
	code := 0
	if ev != nil && ev.Code > 0 {
		code = ev.Code
	}
	job := app.Schedule != nil
	if job && bySelf {
		reason = jobReason(reason)
	}
	key := desired.Key{Group: schema.GroupApp, ID: oa.ID}
	lastSeen := inst.LastSeen
	if !app.Keepalive.Pinged() {
		lastSeen = now // watched continuously until now, as the original recorded
	}
	rec := observed.Record{
		InstanceID:     inst.ID,
		PID:            inst.PID,
		Started:        inst.Started,
		LastSeen:       lastSeen,
		Stopped:        now,
		Disabled:       l.disabled(oa.ID),
		Restart:        oa.Pending != nil && oa.Pending.Reason == schema.ReasonRestart,
		RunOnce:        inst.RunOnce,
		Shutdown:       l.snap.Shutdown,
		ExitCode:       code,
		Reason:         reason,
		ConfigRevision: inst.Revision,
		KeyValue:       cloneKV(oa.KeyValue),
	}
	l.appendHistory(oa, rec)
	if app.KeyValueClear && oa.KeyValue != nil {
		oa.KeyValue = nil
		oa.KeyValueWrites++
	}
	// An instance that failed its liveness check failed as surely as one
	// that crashed: restart policy and backoff treat them alike.
	failed := bySelf || reason == schema.ReasonPingTimeout || healthFailed(reason)
	if reason == schema.ReasonPIDChanged || job {
		failed = false // a new instance was reported, or a job ran: nothing to back off from
	}
	oa.LastEnd = &observed.End{Reason: reason, Exit: ev, At: now, Fingerprint: app.Fingerprint(), BySelf: failed}

	if failed {
		if now.Sub(inst.Started) >= app.Backoff.ResetAfter {
			oa.Backoff.Crashes = 0
		} else {
			oa.Backoff.Crashes++
		}
		oa.Backoff.Until = now.Add(BackoffDelay(app.Backoff, oa.Backoff.Crashes))
		oa.Backoff.Fingerprint = app.Fingerprint()
	}
	if d, ok := l.file.App(oa.ID); ok && inst.RunOnce {
		l.disableAfterRunOnce(key, d.Disabled, d.Fingerprint(), now)
	}
	if inst.Signalable && inst.PGID > 0 && (inst.PGID == inst.PID || inst.PGID == inst.SpawnPGID) && l.exec.GroupAlive(inst.PGID) {
		if oa.Leftover != nil {
			// Another run's leftover is being cleaned up (concurrency
			// "allow"): one is tracked, this one is killed at once.
			l.log.Warn("processes left by an ended run while another run's are cleaned up; sending SIGKILL", "app", oa.ID, "pgid", inst.PGID)
			_ = l.exec.SignalGroup(inst.PGID, "SIGKILL")
		} else {
			lo := &observed.Leftover{PGID: inst.PGID, Since: now, Watched: l.exec.WatchEmpty(inst.PGID)}
			if inst.Stopping != nil {
				lo.Deadline, lo.Killed = inst.Stopping.Deadline, inst.Stopping.Killed
			}
			oa.Leftover = lo
		}
	}
	l.exec.Forget(inst.ID)
	delete(l.tags, inst.ID)
	if inst == oa.Instance {
		oa.Instance = nil
	} else {
		oa.Runs = slices.DeleteFunc(oa.Runs, func(r *observed.Instance) bool { return r == inst })
		if len(oa.Runs) == 0 {
			oa.Runs = nil
		}
	}
	lvl := l.log.Info
	if reason == schema.ReasonCrashed || reason == schema.ReasonSignal || reason == schema.ReasonOOMKilled || reason == schema.ReasonPIDGone || reason == schema.ReasonStartFailed {
		lvl = l.log.Warn
	}
	args := []any{"app", oa.ID, "pid", inst.PID, "code", code, "reason", string(reason),
		"uptime", now.Sub(inst.Started).Round(time.Millisecond)}
	if bySelf && oa.Backoff.Until.After(now) {
		args = append(args, "backoff", oa.Backoff.Until.Sub(now).Round(time.Millisecond))
	}
	lvl("instance ended", args...)
	h := l.history([]observed.Record{rec})[0]
	l.emit(schema.Event{Event: schema.EventExited, Group: schema.GroupApp, ID: oa.ID, PID: inst.PID, InstanceID: inst.ID,
		Reason: reason, ExitCode: &code, History: &h, ConfigRevision: inst.Revision})
	if failed && oa.Backoff.Until.After(now) {
		l.emit(schema.Event{Event: schema.EventBackoff, Group: schema.GroupApp, ID: oa.ID, Reason: reason,
			Message: "next start at " + oa.Backoff.Until.Format(time.RFC3339Nano)})
	}
}

// historyReason maps why Patrol stopped an instance to its history reason.
func historyReason(r schema.Reason) schema.Reason {
	switch r {
	case schema.ReasonRemoved, schema.ReasonDisabled, schema.ReasonChanged:
		return schema.ReasonStoppedByConfig
	case schema.ReasonOverride, schema.ReasonRestart:
		return schema.ReasonStoppedByAPI
	}
	return r // shutdown, execute-timeout, start-failed
}

func (l *Loop) appendHistory(oa *observed.App, r observed.Record) {
	oa.History = append(oa.History, r)
	if limit := l.file.Settings().History; len(oa.History) > limit {
		oa.History = append([]observed.Record(nil), oa.History[len(oa.History)-limit:]...)
	}
}

func fmtChanges(cs []desired.Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s: %s -> %s", c.Field, c.Old, c.New)
	}
	return out
}

// disabled reports whether app id is disabled, overrides included.
func (l *Loop) disabled(id string) bool {
	d, ok := l.file.App(id)
	return ok && l.effective().AppDisabled(d)
}

// setLimits writes a running instance's limits into its cgroups (a change
// in place, or an adopted instance's).
func (l *Loop) setLimits(inst *observed.Instance) {
	if inst.PGID <= 0 || !inst.Signalable {
		return
	}
	inst.LimitsError = ""
	if err := l.exec.SetLimits(inst.PGID, inst.App.Limits); err != nil {
		inst.LimitsError = err.Error()
		l.log.Warn("limits not applied to the running instance", "app", inst.App.ID, "pid", inst.PID, "err", err)
	}
}
