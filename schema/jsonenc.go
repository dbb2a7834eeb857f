package schema

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// GET /status/ with 1,000 apps is tens of thousands of fields; through
// encoding/json's reflection and its indenting pass it took most of the
// request's time. AppendStatusJSON writes the same bytes directly: what a
// json.Encoder with SetIndent("", "\t") makes of a Status (field order,
// omitempty, sorted map keys, string escaping, the trailing newline). A
// test compares the two on generated values. Key/value data and overrides,
// rare and free-form, still go through encoding/json.

// AppendStatusJSON appends st as the tab-indented JSON of GET /status/,
// with a trailing newline.
func AppendStatusJSON(b []byte, st *Status) ([]byte, error) {
	o := object{b: append(b, '{'), depth: 1}
	o.str("instance-id", st.InstanceID)
	for _, m := range []struct {
		key     string
		entries map[string]*Response
	}{{"apps", st.Apps}, {"service", st.Services}} {
		if len(m.entries) == 0 {
			continue
		}
		o.key(m.key)
		ids := make([]string, 0, len(m.entries))
		for id := range m.entries {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		inner := object{b: append(o.b, '{'), depth: o.depth + 1}
		for _, id := range ids {
			inner.key(id)
			var err error
			if inner.b, err = appendResponse(inner.b, m.entries[id], inner.depth+1); err != nil {
				return nil, err
			}
		}
		o.b = inner.end()
	}
	o.str("started", st.Started)
	o.bool("shutdown", st.Shutdown)
	if st.Config != nil {
		if err := o.value("config", st.Config); err != nil {
			return nil, err
		}
	}
	return append(o.end(), '\n'), nil
}

// AppendResponseJSON appends r as tab-indented JSON (as the HTTP API sends
// it), with a trailing newline.
func AppendResponseJSON(b []byte, r *Response) ([]byte, error) {
	b, err := appendResponse(b, r, 1)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// AppendResponseCompactJSON appends r as compact JSON without a trailing
// newline, exactly as encoding/json's Marshal encodes it (the UDP API's
// replies).
func AppendResponseCompactJSON(b []byte, r *Response) ([]byte, error) {
	return appendResponse(b, r, compact)
}

// compact is the depth that makes object write compact JSON.
const compact = -1

// appendResponse appends r as an object whose members are at depth
// (compact: no white space).
func appendResponse(b []byte, r *Response, depth int) ([]byte, error) {
	if r == nil {
		return append(b, "null"...), nil
	}
	o := object{b: append(b, '{'), depth: depth}
	o.str("id", r.ID)
	o.str("instance-id", r.InstanceID)
	o.str("group", r.Group)
	o.str("name", r.Name)
	o.uint("pid", uint64(r.PID))
	o.str("started", r.Started)
	o.str("lastseen", r.LastSeen)
	o.bool("disabled", r.Disabled)
	o.bool("restart", r.Restart)
	o.bool("run-once", r.RunOnce)
	o.bool("shutdown", r.Shutdown)
	if len(r.History) > 0 {
		o.key("history")
		a := object{b: append(o.b, '['), depth: deeper(depth, 1)}
		for i := range r.History {
			a.elem()
			var err error
			if a.b, err = appendHistory(a.b, &r.History[i], deeper(depth, 2)); err != nil {
				return nil, err
			}
		}
		o.b = append(a.close(), ']')
	}
	if len(r.KeyValue) > 0 {
		if err := o.value("keyvalue", r.KeyValue); err != nil {
			return nil, err
		}
	}
	o.bool("secret", r.Secret)
	if len(r.Errors) > 0 {
		o.key("errors")
		a := object{b: append(o.b, '['), depth: deeper(depth, 1)}
		for _, e := range r.Errors {
			a.elem()
			a.b = appendString(a.b, e)
		}
		o.b = append(a.close(), ']')
	}
	o.uint("cas", r.CAS)
	o.bool("cas-invalid", r.CASInvalid)
	o.str("state", string(r.State))
	if r.Override != nil {
		if err := o.value("override", r.Override); err != nil {
			return nil, err
		}
	}
	o.bool("config-disabled", r.ConfigDisabled)
	o.str("backoff-until", r.BackoffUntil)
	o.str("reason", r.Reason)
	o.int("restarts", int64(r.Restarts))
	o.str("health", string(r.Health))
	if r.Ready != nil {
		o.key("ready")
		o.b = strconv.AppendBool(o.b, *r.Ready)
	}
	o.str("ready-since", r.ReadySince)
	if len(r.Probes) > 0 {
		if err := o.value("probes", r.Probes); err != nil {
			return nil, err
		}
	}
	o.str("status", r.StatusText)
	o.str("watchdog-until", r.WatchdogUntil)
	o.str("health-failure", r.HealthFailure)
	o.str("health-failure-at", r.HealthFailureAt)
	o.str("limits", r.Limits)
	o.str("schedule", r.Schedule)
	o.str("next-run", r.NextRun)
	o.int("skipped", int64(r.Skipped))
	o.int("replicas", int64(r.Replicas))
	if len(r.Runs) > 0 {
		if err := o.value("runs", r.Runs); err != nil {
			return nil, err
		}
	}
	if r.Usage != nil {
		if err := o.value("usage", r.Usage); err != nil {
			return nil, err
		}
	}
	return o.end(), nil
}

func appendHistory(b []byte, h *History, depth int) ([]byte, error) {
	o := object{b: append(b, '{'), depth: depth}
	o.str("instance-id", h.InstanceID)
	o.uint("pid", uint64(h.PID))
	o.str("started", h.Started)
	o.str("lastseen", h.LastSeen)
	o.str("stopped", h.Stopped)
	o.bool("disabled", h.Disabled)
	o.bool("restart", h.Restart)
	o.bool("run-once", h.RunOnce)
	o.bool("shutdown", h.Shutdown)
	o.int("exit-code", int64(h.ExitCode))
	if len(h.KeyValue) > 0 {
		if err := o.value("keyvalue", h.KeyValue); err != nil {
			return nil, err
		}
	}
	o.str("reason", string(h.Reason))
	o.str("config-revision", h.ConfigRevision)
	if h.Duration != 0 {
		if err := o.value("duration", h.Duration); err != nil {
			return nil, err
		}
	}
	return o.end(), nil
}

// deeper is depth+n, and compact stays compact.
func deeper(depth, n int) int {
	if depth == compact {
		return compact
	}
	return depth + n
}

// object appends the members of a JSON object (or the elements of an
// array) after its opening bracket, with omitempty's rules, each on its
// own line indented by depth tabs, as json.Indent does; with depth
// compact, without any white space, as json.Marshal does.
type object struct {
	b     []byte
	n     int // members so far
	depth int // of the members
}

// elem starts the next member or element on a new line.
func (o *object) elem() {
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.n++
	if o.depth == compact {
		return
	}
	o.b = append(o.b, '\n')
	o.b = append(o.b, tabs(o.depth)...)
}

func (o *object) key(k string) {
	o.elem()
	o.b = append(appendString(o.b, k), ':')
	if o.depth != compact {
		o.b = append(o.b, ' ')
	}
}

// close ends the last line: an empty object or array stays "{}" or "[]".
func (o *object) close() []byte {
	if o.n > 0 && o.depth != compact {
		o.b = append(o.b, '\n')
		o.b = append(o.b, tabs(o.depth-1)...)
	}
	return o.b
}

// end closes the object.
func (o *object) end() []byte { return append(o.close(), '}') }

// tabs returns n tabs.
func tabs(n int) string {
	const t = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t"
	if n <= len(t) {
		return t[:n]
	}
	return strings.Repeat("\t", n)
}

func (o *object) str(k, v string) {
	if v != "" {
		o.key(k)
		o.b = appendString(o.b, v)
	}
}

func (o *object) uint(k string, v uint64) {
	if v != 0 {
		o.key(k)
		o.b = strconv.AppendUint(o.b, v, 10)
	}
}

func (o *object) int(k string, v int64) {
	if v != 0 {
		o.key(k)
		o.b = strconv.AppendInt(o.b, v, 10)
	}
}

func (o *object) bool(k string, v bool) {
	if v {
		o.key(k)
		o.b = append(o.b, "true"...)
	}
}

// value appends a member encoded and indented by encoding/json (key/value
// data, overrides, the config block: their rules are encoding/json's).
func (o *object) value(k string, v any) error {
	var raw []byte
	var err error
	if o.depth == compact {
		raw, err = json.Marshal(v)
	} else {
		raw, err = json.MarshalIndent(v, tabs(o.depth), "\t")
	}
	if err != nil {
		return err
	}
	o.key(k)
	o.b = append(o.b, raw...)
	return nil
}

// appendString appends s as a JSON string exactly as encoding/json does:
// printable ASCII other than the characters it escapes is copied; anything
// else goes through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			raw, _ := json.Marshal(s) // a string always encodes
			return append(b, raw...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
