package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// clock is the time the status table measures uptimes against; tests
// replace it.
var clock = time.Now

// maxAnswer bounds what the CLI reads of an answer (a status with long
// histories is large, but not this large).
const maxAnswer = 64 << 20

// client talks to a running Patrol's HTTP API.
type client struct {
	base string // the server URL, without a trailing slash
	tr   *http.Transport
	http *http.Client
}

// newClient returns a client for server, a URL or a bare host:port.
func newClient(server string) (*client, error) {
	s := strings.TrimSpace(server)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("invalid --server %q: want a URL such as %s, or host:port", server, schema.DefaultServer)
	}
	u.RawQuery, u.Fragment = "", ""
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &client{
		base: strings.TrimRight(u.String(), "/"),
		tr:   tr,
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second},
	}, nil
}

// close releases the client's connections.
func (c *client) close() { c.tr.CloseIdleConnections() }

// unreachableError is a request that got no HTTP answer at all.
type unreachableError struct {
	server string
	err    error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach Patrol at %s: %v", e.server, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

// do sends one request to path and returns the answer's status and body.
func (c *client) do(ctx context.Context, method, path string, body []byte, token string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("request %s: %w", path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The *url.Error repeats the method and URL; the server is named
		// once, by unreachableError.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return 0, nil, &unreachableError{c.base, err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, &unreachableError{c.base, fmt.Errorf("read answer: %w", err)}
	}
	return resp.StatusCode, data, nil
}

// failure describes a non-200 answer for an error line: the API's errors,
// and with a 401 what to do about it.
func failure(code int, body []byte) string {
	msg := strings.Join(apiErrors(code, body), "; ")
	if code == http.StatusUnauthorized {
		msg += " (give the API token with --token or PATROL_TOKEN)"
	}
	return msg
}

// apiErrors returns the error strings of a non-200 answer, or a
// description of the answer when it is not the API's error JSON.
func apiErrors(code int, body []byte) []string {
	var e schema.ErrorResponse
	if err := json.Unmarshal(body, &e); err == nil && len(e.Errors) > 0 {
		return e.Errors
	}
	snippet := strings.TrimSpace(string(body))
	if len(snippet) > 200 {
		snippet = snippet[:200] + "..."
	}
	return []string{fmt.Sprintf("unexpected answer: HTTP %d %s", code, snippet)}
}

// exitConfigError is `patrol status`'s exit code while the config file
// has an error (the last good config is in force): scripts and CI notice a
// broken edit.
const exitConfigError = 3

// status is `patrol status [ID]`.
func status(ctx context.Context, o io3, conn *clientArgs, asJSON bool, args []string) int {
	c, err := conn.client()
	if err != nil {
		fmt.Fprintf(o.stderr, "patrol status: %v\n", err)
		return exitUsage
	}
	defer c.close()
	if len(args) == 1 {
		return statusEntry(ctx, o, c, conn.bearer(), args[0], asJSON)
	}
	code, body, err := c.do(ctx, http.MethodGet, "/status/", nil, conn.bearer())
	if err != nil {
		fmt.Fprintf(o.stderr, "patrol status: %v (is Patrol running? give its address with --server or PATROL_SERVER)\n", err)
		return exitFail
	}
	if code != http.StatusOK {
		fmt.Fprintf(o.stderr, "patrol status: %s: %s\n", c.base, failure(code, body))
		return exitFail
	}
	var st schema.Status
	if err := json.Unmarshal(body, &st); err != nil {
		fmt.Fprintf(o.stderr, "patrol status: %s: the answer is not a status: %v\n", c.base, err)
		return exitFail
	}
	if asJSON {
		o.stdout.Write(body)
	} else {
		printStatus(o.stdout, &st, clock(), useColor(o.stdout, os.Getenv))
	}
	if st.Config != nil && st.Config.Error != "" {
		return exitConfigError
	}
	return exitOK
}

// statusEntry is `patrol status ID`: one app's or service's state and its
// history, newest first.
func statusEntry(ctx context.Context, o io3, c *client, token, id string, asJSON bool) int {
	var body []byte
	group := ""
	for _, g := range []string{"app", "service"} {
		q := url.Values{"id": {id}, "group": {g}, "history": {"true"}}
		code, b, err := c.do(ctx, http.MethodGet, "/api/?"+q.Encode(), nil, token)
		if err != nil {
			fmt.Fprintf(o.stderr, "patrol status: %v (is Patrol running? give its address with --server or PATROL_SERVER)\n", err)
			return exitFail
		}
		if code == http.StatusOK {
			body, group = b, g
			break
		}
		if code == http.StatusUnauthorized {
			fmt.Fprintf(o.stderr, "patrol status: %s\n", failure(code, b))
			return exitFail
		}
	}
	if body == nil {
		fmt.Fprintf(o.stderr, "patrol status: no app or service %q (see the ids with `patrol status`)\n", id)
		return exitFail
	}
	if asJSON {
		o.stdout.Write(body)
		return exitOK
	}
	var e schema.Response
	if err := json.Unmarshal(body, &e); err != nil {
		fmt.Fprintf(o.stderr, "patrol status: the answer is not an entry: %v\n", err)
		return exitFail
	}
	now := clock()
	tw := tabwriter.NewWriter(o.stdout, 0, 0, 2, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, cmp.Or(v, "-")) }
	line(group, strings.ToLower(cmp.Or(e.ID, id))+" ("+cmp.Or(e.Name, id)+")")
	state := cmp.Or(string(e.State), "-")
	if e.PID > 0 {
		state += fmt.Sprintf(", pid %d, up %s", e.PID, uptime(&e, now))
	}
	line("state", state)
	line("reason", reasonText(&e, now))
	if e.Health != "" {
		line("health", string(e.Health))
	}
	line("restarts", strconv.Itoa(e.Restarts))
	if e.Usage != nil {
		line("cpu/mem", usageText(e.Usage))
	}
	if e.Limits != "" {
		line("limits", e.Limits)
	}
	if e.Schedule != "" {
		line("schedule", e.Schedule)
		next := "-"
		if t, ok := parseTime(e.NextRun); ok {
			next = isoTime(e.NextRun) + " (" + relTime(t, now) + ")"
		}
		line("next run", next)
		line("skipped", strconv.Itoa(e.Skipped))
		for _, r := range e.Runs {
			line("earlier run", fmt.Sprintf("pid %d, started %s", r.PID, isoTime(r.Started)))
		}
	}
	line("last exit", lastExit(e.History, now))
	line("override", overrideText(e.Override, now))
	tw.Flush()
	if len(e.History) == 0 {
		fmt.Fprintln(o.stdout, "\nno instance has ended yet")
		return exitOK
	}
	fmt.Fprintln(o.stdout, "\nhistory (newest first):")
	tw = tabwriter.NewWriter(o.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REASON\tEXIT\tSTARTED\tSTOPPED\tRAN\tPID")
	for i := len(e.History) - 1; i >= 0; i-- {
		h := e.History[i]
		ran := "-"
		if a, ok := parseTime(h.Started); ok {
			if b, ok := parseTime(h.Stopped); ok {
				ran = shortDuration(b.Sub(a))
			}
		}
		pid := "-"
		if h.PID > 0 {
			pid = strconv.FormatUint(uint64(h.PID), 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", cmp.Or(string(h.Reason), "-"), h.ExitCode, isoTime(h.Started), isoTime(h.Stopped), ran, pid)
	}
	tw.Flush()
	return exitOK
}

// isoTime shows a daemon timestamp in the one time format of the CLI, the
// GUI and the plan page: ISO 8601, local time with its offset.
func isoTime(s string) string {
	if t, ok := parseTime(s); ok {
		return t.Local().Format("2006-01-02T15:04:05-07:00")
	}
	return cmp.Or(s, "-")
}

// lastExit describes the last ended instance: "3 (crashed) 5m ago".
func lastExit(hist []schema.History, now time.Time) string {
	if len(hist) == 0 {
		return "-"
	}
	h := hist[len(hist)-1]
	s := strconv.Itoa(h.ExitCode)
	if h.Reason != "" {
		s += " (" + string(h.Reason) + ")"
	}
	if t, ok := parseTime(h.Stopped); ok {
		s += " " + shortDuration(now.Sub(t)) + " ago"
	}
	return s
}

// printStatus writes st as a header and a table, one row per entry sorted
// by group and id.
func printStatus(w io.Writer, st *schema.Status, now time.Time, color bool) {
	if cfg := st.Config; cfg != nil {
		fmt.Fprintf(w, "config revision %s", cmp.Or(cfg.Revision, "-"))
		if cfg.Path != "" {
			fmt.Fprintf(w, " (%s)", cfg.Path)
		}
		fmt.Fprintln(w)
		if cfg.Error != "" {
			fmt.Fprint(w, "config error")
			if cfg.ErrorSince != "" {
				fmt.Fprintf(w, " since %s", isoTime(cfg.ErrorSince))
			}
			fmt.Fprintf(w, ": %s (the last good config stays in force)\n", cfg.Error)
		}
	}
	if st.Shutdown {
		fmt.Fprintln(w, "Patrol is shutting down")
	}
	type row struct {
		group, id string
		e         *schema.Response
	}
	var rows []row
	for id, e := range st.Apps {
		rows = append(rows, row{string(schema.GroupApp), id, e})
	}
	for id, e := range st.Services {
		rows = append(rows, row{string(schema.GroupService), id, e})
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "no apps or services")
		return
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.id, b.id)) })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	paint := func(s, code string) string { return s }
	if color {
		// Every cell of the column carries codes of the same length, so
		// the tabwriter's alignment holds.
		paint = func(s, code string) string { return "\x1b[" + code + "m" + s + "\x1b[0m" }
	}
	fmt.Fprintf(tw, "GROUP\tID\t%s\tHEALTH\tPID\tUPTIME\tCPU/MEM\tRESTARTS\tLAST EXIT\tOVERRIDE\tREASON\n", paint("STATE", "39"))
	for _, r := range rows {
		e := r.e
		if e == nil {
			e = &schema.Response{}
		}
		pid := "-"
		if e.PID > 0 {
			pid = strconv.FormatUint(uint64(e.PID), 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.group, r.id, paint(cmp.Or(string(e.State), "-"), stateColor(e.State)), cmp.Or(string(e.Health), "-"), pid,
			uptime(e, now), usageText(e.Usage), e.Restarts, lastExit(e.History, now), overrideText(e.Override, now), reasonText(e, now))
	}
	tw.Flush()
	for _, r := range rows {
		if r.e != nil && strings.HasPrefix(r.e.Limits, "not ") {
			fmt.Fprintf(w, "%s %s: limits: %s\n", r.group, r.id, r.e.Limits)
		}
	}
}

// usageText is an app's CPU share and memory: "2.5% 45MiB".
func usageText(u *schema.Usage) string {
	if u == nil {
		return "-"
	}
	cpu := "-"
	if u.CPUPercent != nil {
		cpu = strconv.FormatFloat(*u.CPUPercent, 'f', 1, 64) + "%"
	}
	mem := u.MemoryBytes
	switch {
	case mem >= 10<<30:
		return fmt.Sprintf("%s %dGiB", cpu, mem>>30)
	case mem >= 10<<20:
		return fmt.Sprintf("%s %dMiB", cpu, mem>>20)
	}
	return fmt.Sprintf("%s %.1fMiB", cpu, float64(mem)/(1<<20))
}

// stateColor is a state's ANSI colour code (two digits, all of them).
func stateColor(s schema.State) string {
	switch s {
	case schema.StateRunning:
		return "32"
	case schema.StateBackoff:
		return "31"
	case schema.StateStarting, schema.StateStopping, schema.StateWaiting:
		return "33"
	case schema.StateScheduled:
		return "36"
	}
	return "39"
}

// useColor reports whether to colour output to w: only on a terminal (a
// character device), never with NO_COLOR set (no-color.org) or TERM=dumb.
func useColor(w io.Writer, getenv func(string) string) bool {
	if getenv("NO_COLOR") != "" || getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// timeLayouts are the layouts tried on the daemon's timestamps, which are
// written with its json-timestamp setting (RFC1123Z unless configured).
var timeLayouts = []string{
	time.RFC1123Z, time.RFC3339Nano, time.RFC1123, time.RFC822Z, time.RFC822, time.RFC850,
	time.UnixDate, time.RubyDate, time.ANSIC, time.Layout, time.DateTime,
	"2006-01-02 15:04:05.999999999 -0700 MST", // time.Time.String
}

// parseTime parses one of the daemon's timestamps.
func parseTime(s string) (time.Time, bool) {
	// time.Time.String adds a monotonic clock reading.
	if i := strings.Index(s, " m="); i > 0 {
		s = s[:i]
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// uptime is how long the entry's instance has run, or "-" when it is not
// running or its start time cannot be read.
func uptime(e *schema.Response, now time.Time) string {
	switch e.State {
	case schema.StateRunning, schema.StateStarting, schema.StateStopping:
	case "":
		if e.InstanceID == "" && e.PID == 0 {
			return "-"
		}
	default:
		return "-"
	}
	t, ok := parseTime(e.Started)
	if !ok {
		return "-"
	}
	return shortDuration(now.Sub(t))
}

// shortDuration writes d with its two largest units: 42s, 5m3s, 3h2m, 2d3h.
func shortDuration(d time.Duration) string {
	d = max(d, 0).Truncate(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// relTime writes t relative to now: "in 29s" or "5m3s ago" (the CLI's
// times are relative; full times are ISO 8601, as in the GUI).
func relTime(t, now time.Time) string {
	if t.After(now) {
		return "in " + shortDuration(t.Sub(now))
	}
	return shortDuration(now.Sub(t)) + " ago"
}

// overrideText describes an API override: "disabled, ends in 29s".
func overrideText(o *schema.Override, now time.Time) string {
	if o == nil {
		return "-"
	}
	var parts []string
	if o.Disabled != nil {
		parts = append(parts, map[bool]string{true: "disabled", false: "enabled"}[*o.Disabled])
	}
	if o.RunOnce != nil {
		parts = append(parts, map[bool]string{true: "run-once", false: "no run-once"}[*o.RunOnce])
	}
	if o.Replicas > 0 {
		parts = append(parts, fmt.Sprintf("scaled to %d", o.Replicas))
	}
	s := cmp.Or(strings.Join(parts, ", "), "override")
	if o.Expires != "" {
		if t, ok := parseTime(o.Expires); ok {
			s += ", ends " + relTime(t, now)
		} else {
			s += " until " + o.Expires
		}
	}
	return s
}

// reasonText is the entry's reason, with the time of a delayed restart.
func reasonText(e *schema.Response, now time.Time) string {
	s := e.Reason
	if s == "" && e.StatusText != "" {
		s = "status: " + e.StatusText // the app's own word (sd_notify STATUS=)
	}
	if e.BackoffUntil != "" {
		at := "at " + e.BackoffUntil
		if t, ok := parseTime(e.BackoffUntil); ok {
			at = relTime(t, now)
		}
		s = strings.TrimSpace(s + " (restart " + at + ")")
	}
	if e.NextRun != "" {
		// A job: "next run in 35s" instead of the timestamp.
		if t, ok := parseTime(e.NextRun); ok {
			s = strings.Replace(s, "next run at "+e.NextRun, "next run "+relTime(t, now), 1)
		}
	}
	return cmp.Or(s, "-")
}
