package reconcile

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// Status returns the seed-compatible status of everything, with Patrol's
// additions (state, override, config-disabled, backoff-until, config).
func (l *Loop) Status(ctx context.Context) (*schema.Status, error) {
	var st *schema.Status
	if err := l.read(ctx, func() { st = l.status(l.now()) }); err != nil {
		return nil, err
	}
	return st, nil
}

func (l *Loop) status(now time.Time) *schema.Status {
	ts := l.ts
	st := &schema.Status{
		InstanceID: l.instanceID,
		Started:    ts(l.started),
		Shutdown:   l.snap.Shutdown,
		Config: &schema.ConfigStatus{
			Path:       l.file.Path(),
			Revision:   l.file.Revision(),
			Loaded:     ts(l.loaded),
			Error:      l.configErr,
			ErrorSince: ts(l.configErrSince),
		},
	}
	eff := l.effective()
	ids := map[string]bool{}
	for _, a := range l.file.Apps() {
		ids[a.ID] = true
	}
	for id, oa := range l.snap.Apps {
		if oa.Instance != nil || oa.Leftover != nil {
			ids[id] = true // removed from the file but still stopping
		}
	}
	if len(ids) > 0 {
		st.Apps = map[string]*schema.Response{}
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		st.Apps[id] = l.appResponse(eff, id, now, true)
	}
	if svcs := l.file.Services(); len(svcs) > 0 {
		st.Services = map[string]*schema.Response{}
		for _, v := range svcs {
			st.Services[v.ID] = l.serviceResponse(eff, v.ID, true)
		}
	}
	return st
}

// TimestampLayout is the Go layout of status timestamps (json-timestamp).
// It is safe to call from any goroutine: the layout is read from the
// config the status was built with at the time of the call, which for
// parsing a status just taken is good enough.
func (l *Loop) TimestampLayout() string {
	var layout string
	if err := l.read(context.Background(), func() { layout = l.file.Settings().TimestampLayout }); err != nil {
		return time.RFC1123Z
	}
	return layout
}

// ts formats a time with the config's json-timestamp layout; the zero time
// is "".
func (l *Loop) ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(l.file.Settings().TimestampLayout)
}

// appResponse is an app's status entry (and the body of API responses
// about it), with its history if asked for.
func (l *Loop) appResponse(eff *desired.State, id string, now time.Time, history bool) *schema.Response {
	ts := l.ts
	da, inFile := eff.App(id)
	oa := l.snap.Apps[id]
	if oa == nil {
		oa = &observed.App{ID: id}
	}
	r := &schema.Response{Restarts: max(0, oa.Starts-1), CAS: oa.CAS, KeyValue: maps.Clone(oa.KeyValue)}
	if inFile {
		r.Name = da.Name
		r.Secret = da.Secret != ""
		r.Disabled = eff.AppDisabled(da)
		r.ConfigDisabled = da.Disabled
		r.Limits = l.limitsText(da.Limits)
		if da.ReplicaOf == da.ID {
			r.Replicas = da.Replicas
		}
	}
	if inst := oa.Instance; inst != nil && inst.LimitsError != "" {
		r.Limits = "not applied to the running instance (" + inst.LimitsError + ")"
	}
	r.Override = l.override(eff, desired.Key{Group: schema.GroupApp, ID: id})
	r.RunOnce = r.Override != nil && r.Override.RunOnce != nil
	if inst := oa.Instance; inst != nil {
		r.InstanceID = inst.ID
		r.PID = uint32(inst.PID)
		r.Started = ts(inst.Started)
		r.LastSeen = ts(inst.LastSeen)
		if !inst.App.Keepalive.Pinged() && inst.PID > 0 && inst.Stopping == nil {
			// Watched continuously: seen now (as the original reported).
			r.LastSeen = ts(now)
		}
		r.RunOnce = r.RunOnce || inst.RunOnce
		if r.Name == "" {
			r.Name = inst.App.Name
		}
	}
	r.Restart = oa.RestartRequested || (oa.Pending != nil && oa.Pending.Reason == schema.ReasonRestart)
	r.State, r.Reason = l.state(eff, da, oa, now)
	l.healthResponse(r, oa)
	if r.State == schema.StateBackoff {
		r.BackoffUntil = ts(oa.Backoff.Until)
	}
	if inFile && da.Schedule != nil {
		r.Schedule = da.Schedule.String()
		for _, run := range oa.Runs {
			r.Runs = append(r.Runs, schema.Run{InstanceID: run.ID, PID: uint32(run.PID), Started: ts(run.Started)})
		}
		if s := oa.Schedule; s != nil {
			r.Skipped = s.Skips
			if !r.Disabled && !s.Next.IsZero() {
				r.NextRun = ts(s.Next)
			}
		}
	}
	if history {
		r.History = l.historyFor(desired.Key{Group: schema.GroupApp, ID: id}, oa.History)
	}
	return r
}

// histCache holds an entry's history as last rendered: records never
// change once written, so the rendering is reused until a record is added
// or the timestamp layout changes (formatting timestamps is most of what
// a large status costs).
type histCache struct {
	layout string
	n      int
	last   string
	out    []schema.History
}

// historyFor renders an entry's history, from the cache when nothing
// changed. The result is shared: callers must not modify it.
func (l *Loop) historyFor(k desired.Key, hs []observed.Record) []schema.History {
	if len(hs) == 0 {
		return nil
	}
	layout := l.file.Settings().TimestampLayout
	last := hs[len(hs)-1].InstanceID
	if c := l.histCache[k]; c != nil && c.layout == layout && c.n == len(hs) && c.last == last {
		return c.out
	}
	out := l.history(hs)
	l.histCache[k] = &histCache{layout: layout, n: len(hs), last: last, out: out}
	return out
}

// override renders an entry's override for status.
func (l *Loop) override(eff *desired.State, k desired.Key) *schema.Override {
	ov := eff.Override(k)
	if ov == nil {
		return nil
	}
	r := &schema.Override{Disabled: ov.Disabled, Replicas: ov.Replicas, Since: l.ts(ov.Since), Expires: l.ts(ov.Expires)}
	if ov.RunOnce {
		t := true
		r.RunOnce = &t
	}
	return r
}

// serviceResponse is a service's status entry (and the body of API
// responses about it), with its history if asked for.
func (l *Loop) serviceResponse(eff *desired.State, id string, history bool) *schema.Response {
	os := l.snap.Services[id]
	if os == nil {
		os = &observed.Service{ID: id}
	}
	ds, _ := eff.Service(id)
	r := &schema.Response{CAS: os.CAS, KeyValue: maps.Clone(os.KeyValue), Restarts: max(0, os.Starts-1)}
	if ds != nil {
		r.Name = ds.Name
		r.Secret = ds.Secret != ""
		r.Disabled = eff.ServiceDisabled(ds)
		r.ConfigDisabled = ds.Disabled
	}
	if inst := os.Instance; inst != nil {
		r.InstanceID = inst.ID
		r.Started = l.ts(inst.Started)
		r.LastSeen = l.ts(inst.LastSeen)
		r.RunOnce = inst.RunOnce
	}
	r.Override = l.override(eff, desired.Key{Group: schema.GroupService, ID: id})
	r.RunOnce = r.RunOnce || (r.Override != nil && r.Override.RunOnce != nil)
	r.Restart = os.RestartRequested || (os.Pending != nil && os.Pending.Reason == schema.ReasonRestart)
	now := l.now()
	r.State, r.Reason = l.serviceState(eff, ds, os, now)
	if r.State == schema.StateBackoff {
		r.BackoffUntil = l.ts(os.Backoff.Until)
	}
	if history {
		r.History = l.historyFor(desired.Key{Group: schema.GroupService, ID: id}, os.History)
	}
	return r
}

func (l *Loop) history(hs []observed.Record) []schema.History {
	ts := l.ts
	var out []schema.History
	for _, h := range hs {
		out = append(out, schema.History{
			InstanceID:     h.InstanceID,
			PID:            uint32(h.PID),
			Started:        ts(h.Started),
			LastSeen:       ts(h.LastSeen),
			Stopped:        ts(h.Stopped),
			Disabled:       h.Disabled,
			Restart:        h.Restart,
			RunOnce:        h.RunOnce,
			Shutdown:       h.Shutdown,
			ExitCode:       h.ExitCode,
			KeyValue:       h.KeyValue,
			Reason:         h.Reason,
			ConfigRevision: h.ConfigRevision,
			Duration:       schema.Seconds(max(0, h.Stopped.Sub(h.Started).Seconds())),
		})
	}
	return out
}

// state derives an entry's displayed state and, when useful, why.
func (l *Loop) state(eff *desired.State, da *desired.App, oa *observed.App, now time.Time) (schema.State, string) {
	inst := oa.Instance
	switch {
	case inst != nil && inst.Stopping != nil:
		return schema.StateStopping, string(inst.Stopping.Reason)
	case inst != nil && inst.PID == 0:
		if oa.StartError != "" {
			return schema.StateStarting, oa.StartError
		}
		return schema.StateStarting, "waiting for the pid file " + inst.App.PIDPath
	case inst != nil && !inst.Health.Ready && !inst.Health.WasReady && checked(inst.App):
		return schema.StateStarting, "waiting for readiness" + readinessDetail(inst)
	case inst != nil:
		return schema.StateRunning, ""
	case oa.Leftover != nil:
		return schema.StateStopping, "processes of the last instance are still running"
	case oa.Vetting:
		return schema.StateStarting, "waiting for BeforeStart"
	case da == nil:
		return schema.StateStopped, "removed from the config"
	case eff.AppDisabled(da):
		return schema.StateDisabled, ""
	case oa.Backoff.Until.After(now) && oa.Backoff.Fingerprint == da.Fingerprint():
		return schema.StateBackoff, backoffWhy(oa)
	}
	if oa.StartError != "" {
		return schema.StateStopped, oa.StartError
	}
	if e := oa.LastEnd; e != nil && e.BySelf && e.Fingerprint == da.Fingerprint() {
		if da.RestartPolicy == schema.RestartNever || (da.RestartPolicy == schema.RestartOnFailure && e.Succeeded()) {
			return schema.StateStopped, fmt.Sprintf("%s; restart-policy is %s", e.Reason, da.RestartPolicy)
		}
	}
	if u := unmet(l.snap, da); len(u) > 0 {
		return schema.StateWaiting, waitingFor(eff, l.snap, u)
	}
	if da.Schedule != nil {
		why := "no run within five years"
		if s := oa.Schedule; s != nil && !s.Next.IsZero() {
			why = "next run at " + l.ts(s.Next)
		}
		if e := oa.LastEnd; e != nil {
			why = "last run " + string(e.Reason) + "; " + why
		}
		return schema.StateScheduled, why
	}
	if awaitsPings(l.snap, eff, da, oa, now) {
		return schema.StateWaiting, "waiting for running instances to ping in, until " + l.ts(PingGrace(l.snap, eff)) + " (2 × ping-timeout after Patrol's start)"
	}
	return schema.StateStopped, ""
}

// backoffWhy words a backoff by what happened: the last end (with its exit
// code or signal), and "crash loop" only once several ends came in a row.
func backoffWhy(oa *observed.App) string {
	if oa.StartError != "" {
		return oa.StartError
	}
	what := "it ended"
	if e := oa.LastEnd; e != nil {
		what = string(e.Reason)
		switch x := e.Exit; {
		case x != nil && x.Signal != 0:
			what += fmt.Sprintf(" (signal %d)", x.Signal)
		case x != nil:
			what += fmt.Sprintf(" (exit code %d)", x.Code)
		}
	}
	if n := oa.Backoff.Crashes; n >= 3 {
		return fmt.Sprintf("crash loop: %s, %d times in a row; restart delayed", what, n)
	}
	return what + "; restart delayed"
}

// limitsText says whether this host enforces an app's cgroup limits:
// "enforced", "not enforced (why)", or "" for an app without limits.
func (l *Loop) limitsText(lim desired.Limits) string {
	if !lim.Any() {
		return ""
	}
	return cmp.Or(lim.Unenforced(l.notEnforced), "enforced")
}
