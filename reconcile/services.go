package reconcile

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// KindCheck runs a service's status command: observation, not change.
const KindCheck Kind = "check"

// Default service command timeouts (DESIGN §6): status 30 s, the others
// 3 minutes; a command is killed when its time is up.
const (
	DefaultServiceStatusTimeout = 30 * time.Second
	DefaultServiceActionTimeout = 3 * time.Minute
	// DefaultServiceCommands caps how many service commands run at once.
	DefaultServiceCommands = 8
)

// The service actions, which are also the default verbs.
const (
	actionStart   = "start"
	actionStatus  = "status"
	actionStop    = "stop"
	actionRestart = "restart"
)

// planService plans one service (DESIGN §6): running is what its status
// command last said; one command at a time; Patrol's shutdown leaves
// services as they are (they belong to the OS), and so does removing one
// from the config.
func planService(d *desired.State, o *observed.Snapshot, id string, now time.Time) []Action {
	ds, ok := d.Service(id)
	os := o.Services[id]
	if !ok || o.Shutdown {
		return nil
	}
	if os == nil {
		os = &observed.Service{ID: id}
	}
	act := func(k Kind, r schema.Reason) Action {
		return Action{Kind: k, Group: schema.GroupService, ID: id, Reason: r}
	}
	if os.Command != nil {
		return nil // one command at a time
	}
	if !os.Checked || os.StatusDue {
		return []Action{act(KindCheck, schema.ReasonNotRun)}
	}
	disabled := d.ServiceDisabled(ds)
	ov := d.Override(desired.Key{Group: schema.GroupService, ID: id})
	if os.Running {
		switch {
		case disabled:
			r := schema.ReasonDisabled
			if ov != nil && ov.Disabled != nil {
				r = schema.ReasonOverride
			}
			return []Action{act(KindStop, r)}
		case os.RestartRequested:
			return []Action{act(KindRestart, schema.ReasonRestart)}
		}
		return nil
	}
	if disabled {
		if ov != nil && ov.Disabled != nil && !ds.Disabled {
			a := act(KindKeep, schema.ReasonOverride)
			a.Note = "kept stopped by override (config: enabled)"
			return []Action{a}
		}
		return nil
	}
	if os.Pending == nil && os.Backoff.Until.After(now) && os.Backoff.Fingerprint == ds.Fingerprint() {
		return nil
	}
	r := schema.ReasonAdded
	switch {
	case os.Pending != nil:
		r = os.Pending.Reason
	case os.Backoff.Crashes > 0:
		r = schema.ReasonStartFailed
	case os.LastEnd != nil && os.LastEnd.BySelf:
		r = schema.ReasonCrashed
	case os.LastEnd != nil:
		r = schema.ReasonEnabled
	}
	return []Action{act(KindStart, r)}
}

// runService starts a service command off the loop goroutine; its result
// comes back through the inbox (serviceDone), like a process exit.
func (l *Loop) runService(os *observed.Service, ds *desired.Service, action string, reason schema.Reason, now time.Time) {
	cmd := map[string]desired.Command{
		actionStart: ds.Start, actionStatus: ds.Status, actionStop: ds.Stop, actionRestart: ds.Restart,
	}[action]
	timeout := l.serviceActionTimeout
	if action == actionStatus {
		timeout = l.serviceStatusTimeout
		os.StatusDue = false
	}
	os.Command = &observed.Command{Action: action, Reason: reason, Since: now}
	argv, err := l.exec.ServiceArgv(cmd.Method, l.file.Settings().InitdDirectory, ds.Service, cmd.Verb)
	if err != nil {
		// Nothing to run: the result is immediate, but it still goes
		// through the inbox so that every result is handled one way.
		go l.serviceDone(observed.CommandResult{Service: os.ID, Action: action, Code: -1, Err: err.Error(), Ended: l.now()})
		return
	}
	if action != actionStatus {
		l.log.Info("service command", "service", os.ID, "action", action, "argv", strings.Join(argv, " "), "reason", string(reason))
	}
	l.serviceWG.Add(1)
	go func() {
		defer l.serviceWG.Done()
		select {
		case l.serviceSlots <- struct{}{}:
		case <-l.serviceCtx.Done():
			return
		}
		defer func() { <-l.serviceSlots }()
		res := l.exec.RunCommand(l.serviceCtx, argv, timeout)
		res.Service, res.Action = os.ID, action
		l.serviceDone(res)
	}()
}

// serviceDone queues a command result for the loop.
func (l *Loop) serviceDone(r observed.CommandResult) {
	l.mu.Lock()
	l.results = append(l.results, r)
	l.mu.Unlock()
	l.poke()
}

// applyResult records a service command's outcome.
func (l *Loop) applyResult(r observed.CommandResult) {
	os := l.snap.Services[r.Service]
	if os == nil || os.Command == nil || os.Command.Action != r.Action {
		return
	}
	l.touch(schema.GroupService, r.Service)
	cmdReason := os.Command.Reason
	os.Command = nil
	ds, inFile := l.file.Service(r.Service)
	if !inFile {
		return
	}
	cmd := map[string]desired.Command{
		actionStart: ds.Start, actionStatus: ds.Status, actionStop: ds.Stop, actionRestart: ds.Restart,
	}[r.Action]
	ok := r.Err == "" && (r.Code == 0 || slices.Contains(cmd.IgnoreExitCodes, r.Code))
	now := r.Ended
	if !ok {
		os.LastError = commandError(r)
	} else if r.Action != actionStatus {
		os.LastError = ""
	}
	switch r.Action {
	case actionStatus:
		os.Checked = true
		os.Running = ok
		switch {
		case ok && os.Instance == nil:
			l.openServiceInstance(os, ds, now, schema.EventAdopted)
		case ok:
			os.Instance.LastSeen = now
		case os.Instance != nil:
			l.closeServiceInstance(os, ds, now, schema.ReasonCrashed, true)
		}
	case actionStart:
		if !ok {
			l.log.Error("service start failed", "service", r.Service, "code", r.Code, "err", os.LastError)
			l.emit(schema.Event{Event: schema.EventStartFailed, Group: schema.GroupService, ID: r.Service, Reason: schema.ReasonStartFailed, Message: os.LastError})
			os.Backoff.Crashes++
			os.Backoff.Until = now.Add(max(BackoffDelay(defaultServiceBackoff, os.Backoff.Crashes), defaultServiceBackoff.Initial))
			os.Backoff.Fingerprint = ds.Fingerprint()
			os.Pending = nil
			l.emit(schema.Event{Event: schema.EventBackoff, Group: schema.GroupService, ID: r.Service, Message: "next start at " + os.Backoff.Until.Format(time.RFC3339Nano)})
			return
		}
		os.Running, os.Checked = true, true
		os.Backoff = observed.Backoff{}
		os.Pending = nil
		if os.Instance == nil {
			l.openServiceInstance(os, ds, now, schema.EventStarted)
		}
	case actionStop:
		if !ok {
			l.log.Error("service stop failed; retrying at the next tick", "service", r.Service, "code", r.Code, "err", os.LastError)
			return
		}
		os.Running = false
		if os.Instance != nil {
			l.closeServiceInstance(os, ds, now, historyReason(cmdReason), false)
		}
	case actionRestart:
		os.RestartRequested = false
		if !ok {
			l.log.Error("service restart failed", "service", r.Service, "code", r.Code, "err", os.LastError)
			return
		}
		if os.Instance != nil {
			l.closeServiceInstance(os, ds, now, schema.ReasonStoppedByAPI, false)
			os.History[len(os.History)-1].Restart = true
		}
		os.StatusDue = true // the next status opens the new instance
	}
}

// defaultServiceBackoff spaces out failing service starts like an app's
// default backoff.
var defaultServiceBackoff = desired.Backoff{Initial: time.Second, Max: time.Minute, ResetAfter: time.Minute}

func commandError(r observed.CommandResult) string {
	var b strings.Builder
	switch {
	case r.Err != "":
		b.WriteString(r.Err)
	default:
		fmt.Fprintf(&b, "%s exited with code %d", r.Action, r.Code)
	}
	if out := strings.TrimSpace(r.Output); out != "" {
		if len(out) > 512 {
			out = "..." + out[len(out)-512:]
		}
		b.WriteString(": " + out)
	}
	return b.String()
}

func (l *Loop) openServiceInstance(os *observed.Service, ds *desired.Service, now time.Time, kind schema.EventKind) {
	key := desired.Key{Group: schema.GroupService, ID: os.ID}
	inst := &observed.ServiceInstance{ID: uuid.NewString(), Started: now, LastSeen: now, Revision: l.file.Revision(), Fingerprint: ds.Fingerprint()}
	if ov := l.overrides[key]; ov != nil && ov.RunOnce {
		inst.RunOnce = true
		ov.RunOnce = false
		if ov.Empty() {
			delete(l.overrides, key)
		}
	}
	os.Instance = inst
	os.Starts++
	l.emit(schema.Event{Event: kind, Group: schema.GroupService, ID: os.ID, InstanceID: inst.ID, Restarts: max(0, os.Starts-1)})
}

// closeServiceInstance ends a service's instance: history (no pid, no exit
// code), key/value, run-once.
func (l *Loop) closeServiceInstance(os *observed.Service, ds *desired.Service, now time.Time, reason schema.Reason, bySelf bool) {
	inst := os.Instance
	key := desired.Key{Group: schema.GroupService, ID: os.ID}
	rec := observed.Record{
		InstanceID:     inst.ID,
		Started:        inst.Started,
		LastSeen:       inst.LastSeen,
		Stopped:        now,
		Disabled:       l.effective().ServiceDisabled(ds),
		RunOnce:        inst.RunOnce,
		Shutdown:       l.snap.Shutdown,
		Reason:         reason,
		ConfigRevision: inst.Revision,
		KeyValue:       cloneKV(os.KeyValue),
	}
	os.History = append(os.History, rec)
	if limit := l.file.Settings().History; len(os.History) > limit {
		os.History = append([]observed.Record(nil), os.History[len(os.History)-limit:]...)
	}
	if ds.KeyValueClear && os.KeyValue != nil {
		os.KeyValue = nil
		os.KeyValueWrites++
	}
	os.LastEnd = &observed.End{Reason: reason, At: now, Fingerprint: inst.Fingerprint, BySelf: bySelf}
	if inst.RunOnce {
		l.disableAfterRunOnce(key, ds.Disabled, ds.Fingerprint(), now)
	}
	os.Instance = nil
	h := l.history([]observed.Record{rec})[0]
	l.emit(schema.Event{Event: schema.EventExited, Group: schema.GroupService, ID: os.ID, InstanceID: inst.ID,
		Reason: reason, History: &h, ConfigRevision: inst.Revision})
	l.log.Info("service instance ended", "service", os.ID, "reason", string(reason))
}

// serviceState derives a service's displayed state and why.
func (l *Loop) serviceState(eff *desired.State, ds *desired.Service, os *observed.Service, now time.Time) (schema.State, string) {
	if c := os.Command; c != nil {
		switch c.Action {
		case actionStart, actionRestart:
			return schema.StateStarting, c.Action + " command running"
		case actionStop:
			return schema.StateStopping, "stop command running"
		}
	}
	disabled := ds != nil && eff.ServiceDisabled(ds)
	switch {
	case os.Running:
		return schema.StateRunning, ""
	case disabled:
		return schema.StateDisabled, ""
	case ds != nil && os.Backoff.Until.After(now) && os.Backoff.Fingerprint == ds.Fingerprint():
		return schema.StateBackoff, os.LastError
	case !os.Checked:
		return schema.StateStopped, "status not checked yet"
	}
	return schema.StateStopped, os.LastError
}

// executeService carries out a planned service action.
func (l *Loop) executeService(a Action, now time.Time) {
	ds, ok := l.file.Service(a.ID)
	if !ok {
		return
	}
	os := l.service(a.ID)
	switch a.Kind {
	case KindCheck:
		l.runService(os, ds, actionStatus, a.Reason, now)
	case KindStart:
		l.runService(os, ds, actionStart, a.Reason, now)
	case KindStop:
		l.runService(os, ds, actionStop, a.Reason, now)
	case KindRestart:
		os.Pending = &observed.Pending{Reason: schema.ReasonRestart}
		l.runService(os, ds, actionRestart, a.Reason, now)
	}
}

// stopServices ends the service command context (at the end of Run):
// commands still running are killed, and waited for.
func (l *Loop) stopServices() {
	l.serviceCancel()
	l.serviceWG.Wait()
}
