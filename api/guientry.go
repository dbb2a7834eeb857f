package api

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// detail is one line of an entry page's details.
type detail struct {
	Term, Value, Class string
}

// histRow is one ended instance on an entry page.
type histRow struct {
	Reason, ReasonClass     string
	ExitCode                int
	Started, Stopped, Took  string
	PID, Instance, Revision string
}

// kvRow is one key/value pair.
type kvRow struct{ Key, Value string }

// entryView is an entry page.
type entryView struct {
	Group, ID, Name   string
	State, StateClass string
	StateTitle        string
	Secret, Disabled  bool
	Running           bool
	Started, Uptime   string
	Flapping          bool
	Flaps             int
	Digest            string
	// Replicas is the count in force of an app with "replicas" (0 for
	// others): the page offers to scale it.
	Replicas int
	Details  []detail
	KeyValue []kvRow
	History  []histRow // newest first
	Timeline timeline
	Usage    *usageView
	Sig      string
	// Locked: reads need the token; only the frame is rendered.
	Locked bool
}

// reasonClass groups history reasons for colour: a failure of the app, a
// stop Patrol made on purpose, an exit on its own.
func reasonClass(h schema.History) string {
	switch {
	case h.Reason == schema.ReasonExited, h.Reason == schema.ReasonCompleted:
		return "exited"
	case !failedEnd(h):
		return "stopped"
	case h.Reason == schema.ReasonCrashed, h.Reason == schema.ReasonFailed:
		return "crashed"
	case h.Reason == schema.ReasonSignal, h.Reason == schema.ReasonOOMKilled:
		return "signal"
	}
	return "failed" // probes, watchdog, timeouts, start failures, pid gone
}

// makeEntry builds an entry page from the entry's response (with its
// history).
func makeEntry(group, id string, e *schema.Response, now time.Time, usage []UsageSample) *entryView {
	v := &entryView{Group: group, ID: id, Name: cmp.Or(e.Name, id), State: cmp.Or(string(e.State), "unknown"),
		StateClass: stateClass(e.State), StateTitle: e.Reason, Secret: e.Secret, Disabled: e.Disabled || e.State == schema.StateDisabled,
		Running: running(e), Digest: digest(e), Replicas: e.Replicas}
	if v.Running {
		v.Started, v.Uptime = isoTime(e.Started), since(e.Started, now)
	}
	v.Flaps, v.Flapping = flapping(e.History, now)
	yes := func(b bool) string { return map[bool]string{true: "yes", false: "no"}[b] }
	add := func(term, value, class string) {
		v.Details = append(v.Details, detail{Term: term, Value: cmp.Or(value, "-"), Class: class})
	}
	add("ID", id, "")
	add("State", v.State, "detail-state")
	if e.Reason != "" {
		add("Why", e.Reason, "")
	}
	if group == string(schema.GroupApp) {
		pid := ""
		if e.PID != 0 {
			pid = strconv.FormatUint(uint64(e.PID), 10)
		}
		add("PID", pid, "detail-pid")
	}
	add("Instance", e.InstanceID, "")
	add("Started", isoTime(e.Started), "")
	add("Uptime", v.Uptime, "detail-uptime")
	add("Last seen", isoTime(e.LastSeen), "")
	add("Restarts", strconv.Itoa(e.Restarts), "")
	add("Last exit", lastExit(e.History), "")
	add("Disabled", yes(e.Disabled), "")
	add("Disabled in the file", yes(e.ConfigDisabled), "")
	add("Run once", yes(e.RunOnce), "")
	ov := "none"
	if e.Override != nil {
		ov = overrideText(e.Override)
		if e.Override.Since != "" {
			ov += " (since " + isoTime(e.Override.Since) + ")"
		}
	}
	add("Override", ov, "detail-override")
	if e.BackoffUntil != "" {
		add("Next start", isoTime(e.BackoffUntil), "")
	}
	if e.Health != "" {
		h := string(e.Health)
		if e.ReadySince != "" {
			h += " (since " + isoTime(e.ReadySince) + ")"
		}
		add("Health", h, "detail-health")
	}
	if e.StatusText != "" {
		add("Status (from the app)", e.StatusText, "detail-status")
	}
	if len(e.Probes) > 0 {
		add("Probes", probesText(e.Probes), "detail-probes")
	}
	if e.WatchdogUntil != "" {
		add("Watchdog until", isoTime(e.WatchdogUntil), "")
	}
	if e.HealthFailure != "" {
		f := e.HealthFailure
		if e.HealthFailureAt != "" {
			f += " (" + isoTime(e.HealthFailureAt) + ")"
		}
		add("Last health failure", f, "detail-health-failure")
	}
	if e.Limits != "" {
		add("Limits (cgroup)", e.Limits, "detail-limits")
	}
	if e.Replicas > 0 {
		add("Replicas", strconv.Itoa(e.Replicas), "detail-replicas")
	}
	if e.Schedule != "" {
		add("Schedule", e.Schedule, "detail-schedule")
		add("Next run", isoTime(e.NextRun), "detail-next-run")
		add("Runs skipped", strconv.Itoa(e.Skipped), "")
		for _, r := range e.Runs {
			add("Earlier run", fmt.Sprintf("pid %d, started %s", r.PID, isoTime(r.Started)), "detail-run")
		}
	}
	if v.Flapping {
		add("Flapping", fmt.Sprintf("%d failures in the last %s", v.Flaps, duration(flapWindow)), "detail-flapping")
	}
	add("Secret", yes(e.Secret), "")
	add("CAS", strconv.FormatUint(e.CAS, 10), "")
	for _, k := range slices.Sorted(maps.Keys(e.KeyValue)) {
		b, _ := json.Marshal(e.KeyValue[k])
		v.KeyValue = append(v.KeyValue, kvRow{Key: k, Value: string(b)})
	}
	for i := len(e.History) - 1; i >= 0; i-- {
		h := e.History[i]
		r := histRow{Reason: cmp.Or(string(h.Reason), "-"), ReasonClass: reasonClass(h), ExitCode: h.ExitCode,
			Started: isoTime(h.Started), Stopped: isoTime(h.Stopped), Took: between(h.Started, h.Stopped),
			PID: "-", Instance: "-", Revision: cmp.Or(h.ConfigRevision, "-")}
		if h.PID != 0 {
			r.PID = strconv.FormatUint(uint64(h.PID), 10)
		}
		if h.InstanceID != "" {
			r.Instance = h.InstanceID[:min(8, len(h.InstanceID))]
		}
		v.History = append(v.History, r)
	}
	v.Timeline = makeTimeline(e, now)
	if v.Running {
		v.Usage = makeUsage(usage, 300, 40)
	}
	details, _ := json.Marshal(v.Details)
	kv, _ := json.Marshal(v.KeyValue)
	usageSig := ""
	if v.Usage != nil {
		usageSig = v.Usage.CPUPoints + v.Usage.MemPoints
	}
	v.Sig = sig(string(details), string(kv), len(v.History), v.State, v.StateTitle, v.Name, usageSig)
	return v
}

// probesText describes an entry's probes: "liveness passing (HTTP 200,
// 2026-12-03T12:00:01+00:00)".
func probesText(probes map[string]*schema.ProbeStatus) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(probes)) {
		p := probes[k]
		s := k + " " + map[bool]string{true: "passing", false: "failing"}[p.OK]
		if p.Message != "" {
			s += " (" + p.Message
			if p.At != "" {
				s += ", " + isoTime(p.At)
			}
			s += ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}
