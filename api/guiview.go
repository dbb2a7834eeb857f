package api

import (
	"cmp"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// The GUI's views: what its templates render, built from the same status
// and entry responses the JSON API answers with. The server renders every
// page in full (curl shows it all; it works without JavaScript); the
// scripts then refetch a page's live part (?fragment=live, the same
// template) when an event says something changed, and replace the rows
// whose data-sig changed. There is no second renderer in JavaScript.

// timeLayouts are the layouts the status's timestamps are read with (the
// config's json-timestamp, RFC1123Z by default): a timestamp in another
// layout is shown as it is.
var timeLayouts = []string{time.RFC1123Z, time.RFC3339Nano, time.RFC1123, time.RFC822Z, time.RFC850, time.ANSIC, time.UnixDate, time.RubyDate}

// parseTime reads a status timestamp.
func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// isoLayout is the GUI's time layout.
const isoLayout = "2006-01-02T15:04:05-07:00"

// isoTime is the GUI's one time format: ISO 8601, local time with its
// offset, to the second ("2026-12-03T17:20:01+01:00"); "-" for none.
func isoTime(s string) string {
	if s == "" {
		return "-"
	}
	if t, ok := parseTime(s); ok {
		return t.Local().Format(isoLayout)
	}
	return s
}

// duration formats d as "3d 4h", "2h 5m", "5m 12s" or "12s" (as the
// scripts do).
func duration(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	s := int64(d / time.Second)
	days, s := s/86400, s%86400
	h, s := s/3600, s%3600
	m, s := s/60, s%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, h)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// since is the time since a status timestamp, or "-".
func since(s string, now time.Time) string {
	t, ok := parseTime(s)
	if !ok {
		return "-"
	}
	return duration(now.Sub(t))
}

// between is the time from a to b, or "-".
func between(a, b string) string {
	ta, okA := parseTime(a)
	tb, okB := parseTime(b)
	if !okA || !okB {
		return "-"
	}
	return duration(tb.Sub(ta))
}

// Flapping: an entry whose instances ended by themselves (crashed, exited,
// failed a probe, ...) flapThreshold times within flapWindow is flapping.
const (
	flapThreshold = 3
	flapWindow    = 5 * time.Minute
)

// failedEnd reports whether an ended instance ended by itself or failed,
// rather than being stopped on purpose.
func failedEnd(h schema.History) bool {
	switch h.Reason {
	case schema.ReasonStoppedByConfig, schema.ReasonStoppedByAPI, schema.ReasonShutdown, schema.ReasonPIDChanged,
		schema.ReasonDependency, schema.ReasonRestart, schema.ReasonCompleted, schema.ReasonSkipped,
		schema.ReasonReplaced, schema.ReasonScaled:
		return false
	}
	return !h.Restart && !h.Shutdown && !h.Disabled
}

// flapping counts the failed ends within flapWindow before now and says
// whether they make the entry flapping.
func flapping(hist []schema.History, now time.Time) (int, bool) {
	n := 0
	for _, h := range hist {
		if t, ok := parseTime(h.Stopped); ok && now.Sub(t) <= flapWindow && failedEnd(h) {
			n++
		}
	}
	return n, n >= flapThreshold
}

// running reports whether an entry's state has a live instance.
func running(e *schema.Response) bool {
	return e.State == schema.StateRunning || e.State == schema.StateStopping
}

// lastExit describes an entry's last ended instance: "3 (crashed)".
func lastExit(hist []schema.History) string {
	if len(hist) == 0 {
		return "-"
	}
	h := hist[len(hist)-1]
	if h.Reason == "" {
		return strconv.Itoa(h.ExitCode)
	}
	return fmt.Sprintf("%d (%s)", h.ExitCode, h.Reason)
}

// overrideText describes an API override: "disabled until ...".
func overrideText(o *schema.Override) string {
	if o == nil {
		return ""
	}
	var parts []string
	if o.Disabled != nil {
		parts = append(parts, map[bool]string{true: "disabled", false: "enabled"}[*o.Disabled])
	}
	if o.RunOnce != nil {
		parts = append(parts, map[bool]string{true: "run once", false: "no run once"}[*o.RunOnce])
	}
	if o.Replicas > 0 {
		parts = append(parts, fmt.Sprintf("scaled to %d replicas", o.Replicas))
	}
	t := cmp.Or(strings.Join(parts, ", "), "override")
	if o.Expires != "" {
		t += " until " + isoTime(o.Expires)
	}
	return t
}

// stateClass is a state's CSS class suffix.
func stateClass(s schema.State) string {
	switch s {
	case schema.StateRunning, schema.StateStarting, schema.StateStopping, schema.StateBackoff, schema.StateStopped,
		schema.StateDisabled, schema.StateWaiting, schema.StateScheduled:
		return string(s)
	}
	return "unknown"
}

// healthShown is the health badge's text: shown when the app is unready,
// or has checks (probes, STATUS=) that passed.
func healthShown(e *schema.Response) string {
	checked := len(e.Probes) > 0 || e.StatusText != ""
	if e.Health == schema.HealthUnready || e.Health == schema.HealthReady && checked {
		return string(e.Health)
	}
	return ""
}

// healthWhy is the health badge's title: the last failure.
func healthWhy(e *schema.Response) string {
	if e.HealthFailure == "" {
		return ""
	}
	if e.HealthFailureAt != "" {
		return "last failure: " + e.HealthFailure + " (" + isoTime(e.HealthFailureAt) + ")"
	}
	return "last failure: " + e.HealthFailure
}

// rowView is one dashboard row.
type rowView struct {
	Group, ID, Name       string
	State, StateClass     string
	StateTitle            string
	Health, HealthTitle   string
	PID                   string
	Started               string // ISO, for the scripts' ticking uptime
	Uptime                string
	Restarts              int
	LastExit              string
	Override, OverrideFor string
	Secret, Disabled      bool
	Flapping              bool
	Flaps                 int
	Digest                string // what a form checks before it acts
	Usage                 *usageView
	// Sig is a hash of everything the row shows but its uptime: the
	// scripts replace a row when it changes.
	Sig string
}

// makeRow builds an entry's dashboard row; usage is the app's recent
// usage samples (none for services).
func makeRow(group, id string, e *schema.Response, now time.Time, usage []UsageSample) rowView {
	r := rowView{Group: group, ID: id, Name: cmp.Or(e.Name, id), State: cmp.Or(string(e.State), "unknown"),
		StateClass: stateClass(e.State), StateTitle: e.Reason, Health: healthShown(e), HealthTitle: healthWhy(e),
		Restarts: e.Restarts, LastExit: lastExit(e.History), Override: overrideText(e.Override),
		Secret: e.Secret, Disabled: e.Disabled || e.State == schema.StateDisabled, Digest: digest(e)}
	if r.StateTitle == "" && e.BackoffUntil != "" {
		r.StateTitle = "next start " + isoTime(e.BackoffUntil)
	}
	if e.PID != 0 {
		r.PID = strconv.FormatUint(uint64(e.PID), 10)
	}
	if e.Override != nil && e.Override.Since != "" {
		r.OverrideFor = "since " + isoTime(e.Override.Since)
	}
	if running(e) {
		r.Started, r.Uptime = isoTime(e.Started), since(e.Started, now)
	}
	r.Flaps, r.Flapping = flapping(e.History, now)
	if running(e) {
		r.Usage = makeUsage(usage, 48, 14)
	}
	usageSig := ""
	if r.Usage != nil {
		usageSig = r.Usage.CPU + r.Usage.Mem
	}
	r.Sig = sig(usageSig, r.Name, r.State, r.StateTitle, r.Health, r.HealthTitle, r.PID, r.Started, r.Restarts, r.LastExit,
		r.Override, r.OverrideFor, r.Secret, r.Flapping, r.Flaps, r.Digest)
	return r
}

// sig hashes values into a short signature.
func sig(vs ...any) string {
	h := fnv.New64a()
	for _, v := range vs {
		fmt.Fprintf(h, "%v\x00", v)
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// dashQuery is the dashboard's sort and filter, from its URL query.
type dashQuery struct {
	Sort  string // "id" (default), "name", "state", "restarts"
	State string // only entries in this state; "" all
	Q     string // only entries whose id or name contains it
}

func parseDashQuery(v url.Values) dashQuery {
	q := dashQuery{Sort: v.Get("sort"), State: v.Get("state"), Q: strings.TrimSpace(v.Get("q"))}
	if !slices.Contains([]string{"id", "name", "state", "restarts"}, q.Sort) {
		q.Sort = "id"
	}
	return q
}

// keep reports whether a row passes the filter.
func (q dashQuery) keep(r rowView) bool {
	if q.State != "" && r.State != q.State && !(q.State == "flapping" && r.Flapping) {
		return false
	}
	if q.Q != "" {
		needle := strings.ToLower(q.Q)
		return strings.Contains(strings.ToLower(r.ID), needle) || strings.Contains(strings.ToLower(r.Name), needle)
	}
	return true
}

// order sorts rows; ties (and "id") by id.
func (q dashQuery) order(rows []rowView) {
	slices.SortFunc(rows, func(a, b rowView) int {
		switch q.Sort {
		case "name":
			if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
				return c
			}
		case "state":
			if c := strings.Compare(a.State, b.State); c != 0 {
				return c
			}
		case "restarts":
			if c := cmp.Compare(b.Restarts, a.Restarts); c != 0 {
				return c
			}
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// groupView is one table of the dashboard.
type groupView struct {
	Group, Title string
	Rows         []rowView
	Total        int // before the filter
}

// configView is the config banner.
type configView struct {
	Path, Revision, Loaded string
	Error                  []string
	ErrorSince             string
	Source                 string // "" for the file
	SourceDown             bool
}

func makeConfig(c *schema.ConfigStatus) configView {
	if c == nil {
		return configView{Path: "-", Revision: "-", Loaded: "-"}
	}
	v := configView{Path: c.Path, Revision: c.Revision, Loaded: isoTime(c.Loaded), ErrorSince: isoTime(c.ErrorSince)}
	if c.Error != "" {
		v.Error = strings.Split(c.Error, "; ")
	}
	if s := c.Source; s != nil {
		v.Source = fmt.Sprintf("etcd %s, revision %d", strings.Join(s.Endpoints, ", "), s.Revision)
		if s.Connected {
			v.Source += ", connected"
		} else {
			v.Source += ", disconnected since " + isoTime(s.DisconnectedSince)
			v.SourceDown = true
		}
	}
	return v
}

// dashView is the dashboard.
type dashView struct {
	Started, Uptime, Instance string
	Shutdown                  bool
	Config                    configView
	Summary                   string
	Groups                    []groupView
	Query                     dashQuery
	States                    []string // the filter's choices
	Sig                       string   // of the header part (config, summary)
}

// makeDashboard builds the dashboard from a status and the apps' recent
// usage (nil: not measured).
func makeDashboard(st *schema.Status, q dashQuery, now time.Time, usage map[string][]UsageSample) *dashView {
	v := &dashView{Started: isoTime(st.Started), Uptime: since(st.Started, now), Instance: cmp.Or(st.InstanceID, "-"),
		Shutdown: st.Shutdown, Config: makeConfig(st.Config), Query: q}
	counts := map[string]int{}
	total := 0
	for _, g := range []struct {
		group, title string
		m            map[string]*schema.Response
	}{{"app", "Apps", st.Apps}, {"service", "Services", st.Services}} {
		gv := groupView{Group: g.group, Title: g.title, Total: len(g.m)}
		for id, e := range g.m {
			var u []UsageSample
			if g.group == "app" {
				u = usage[id]
			}
			r := makeRow(g.group, id, e, now, u)
			counts[r.State]++
			if r.Flapping {
				counts["flapping"]++
			}
			total++
			if q.keep(r) {
				gv.Rows = append(gv.Rows, r)
			}
		}
		q.order(gv.Rows)
		v.Groups = append(v.Groups, gv)
	}
	var parts []string
	for _, s := range []string{"running", "starting", "stopping", "backoff", "stopped", "disabled", "waiting", "unknown", "flapping"} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
			v.States = append(v.States, s)
		}
	}
	v.Summary = fmt.Sprintf("%d entries", total)
	if len(parts) > 0 {
		v.Summary += ": " + strings.Join(parts, ", ")
	}
	cfgJSON, _ := json.Marshal(v.Config)
	v.Sig = sig(string(cfgJSON), v.Summary, v.Shutdown, v.Instance, v.Started)
	return v
}

// queryOf is a dashboard query as a URL query.
func queryOf(q dashQuery) string {
	v := url.Values{}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	if q.State != "" {
		v.Set("state", q.State)
	}
	if q.Sort != "id" {
		v.Set("sort", q.Sort)
	}
	return v.Encode()
}

// guiFuncs are the templates' functions.
var guiFuncs = map[string]any{
	"hasString":   slices.Contains[[]string],
	"sortChoices": func() []string { return []string{"id", "name", "state", "restarts"} },
	"queryOf":     queryOf,
	"add":         func(a, b int) int { return a + b },
	"sigOf":       func(vs ...any) string { return sig(vs...) },
}
