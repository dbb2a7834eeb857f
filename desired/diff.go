package desired

import (
	"bytes"
	"encoding/json"
	"time"
)

// Change is one changed config key of an entry, with its old and new
// values as JSON (secrets redacted).
type Change struct {
	// Field is the config key, such as "args" or "backoff".
	Field string
	Old   json.RawMessage
	New   json.RawMessage
	// Restart is true when the change needs the running instance replaced;
	// otherwise it is applied in place.
	Restart bool
}

// redacted stands for a secret's value in a Change.
var redacted = json.RawMessage(`"(redacted)"`)

type appField struct {
	key     string
	restart bool
	secret  bool
	get     func(*App) any
}

func secs(d time.Duration) any { return d.Seconds() }

// rlimitsText is an app's rlimits as the config writes them.
func rlimitsText(rs []Rlimit) map[string]string {
	if len(rs) == 0 {
		return nil
	}
	m := make(map[string]string, len(rs))
	for _, r := range rs {
		m[r.Name] = r.String()
	}
	return m
}

// appFields lists every compared key of an app and whether changing it
// restarts a running instance ("disabled" is listed as in place: when it
// matters, it starts or stops the app instead). Restart fields are those that shape the process: what
// runs, where, with which environment and output, and how it is stopped.
var appFields = []appField{
	{"keepalive", true, false, func(a *App) any { return int(a.Keepalive) }},
	{"binary", true, false, func(a *App) any { return a.Binary }},
	{"args", true, false, func(a *App) any { return a.Args }},
	{"env", true, false, func(a *App) any { return a.Env }},
	{"env-parent", true, false, func(a *App) any { return a.EnvParent }},
	{"env-file", true, false, func(a *App) any { return a.EnvFile }},
	{"user", true, false, func(a *App) any { return a.User }},
	{"group", true, false, func(a *App) any { return a.Group }},
	{"supplementary-groups", true, false, func(a *App) any { return a.SupplementaryGroups }},
	{"umask", true, false, func(a *App) any { return a.Umask }},
	{"rlimits", true, false, func(a *App) any { return rlimitsText(a.Rlimits) }},
	{"working-directory", true, false, func(a *App) any { return a.WorkingDirectory }},
	{"log-directory", true, false, func(a *App) any { return a.LogDirectory }},
	{"pid-path", true, false, func(a *App) any { return a.PIDPath }},
	{"std-merge", true, false, func(a *App) any { return a.StdMerge }},
	{"stop-signal", true, false, func(a *App) any { return a.StopSignal }},
	{"listen-http", true, false, func(a *App) any { return a.ListenHTTP }},
	{"listen-udp", true, false, func(a *App) any { return a.ListenUDP }},
	{"ready", true, false, func(a *App) any { return a.Ready }},
	{"watchdog", true, false, func(a *App) any { return secs(a.Watchdog) }},
	{"replicas", false, false, func(a *App) any { return a.Replicas }},
	{"rolling", false, false, func(a *App) any { return a.Rolling }},
	{"schedule", false, false, func(a *App) any { return scheduleField(a, func(s *Schedule) any { return s.Spec }) }},
	{"time-zone", false, false, func(a *App) any { return scheduleField(a, func(s *Schedule) any { return s.TimeZone }) }},
	{"concurrency", false, false, func(a *App) any { return scheduleField(a, func(s *Schedule) any { return s.Concurrency }) }},
	{"run-on-start", false, false, func(a *App) any { return scheduleField(a, func(s *Schedule) any { return s.RunOnStart }) }},
	{"catch-up", false, false, func(a *App) any { return scheduleField(a, func(s *Schedule) any { return s.CatchUp }) }},
	{"memory-max", false, false, func(a *App) any { return a.Limits.Text("memory-max") }},
	{"memory-high", false, false, func(a *App) any { return a.Limits.Text("memory-high") }},
	{"cpu-max", false, false, func(a *App) any { return a.Limits.Text("cpu-max") }},
	{"pids-max", false, false, func(a *App) any { return a.Limits.Text("pids-max") }},
	{"name", false, false, func(a *App) any { return a.Name }},
	{"disabled", false, false, func(a *App) any { return a.Disabled }},
	{"secret", false, true, func(a *App) any { return a.Secret }},
	{"pid-verify", false, false, func(a *App) any { return a.PIDVerify }},
	{"keyvalue", false, false, func(a *App) any { return a.KeyValue }},
	{"keyvalue-clear", false, false, func(a *App) any { return a.KeyValueClear }},
	{"execute-timeout", false, false, func(a *App) any { return secs(a.ExecuteTimeout) }},
	{"stop-timeout", false, false, func(a *App) any { return secs(a.StopTimeout) }},
	{"start-timeout", false, false, func(a *App) any { return secs(a.StartTimeout) }},
	{"restart-policy", false, false, func(a *App) any { return a.RestartPolicy }},
	{"backoff", false, false, func(a *App) any {
		return map[string]any{"initial": secs(a.Backoff.Initial), "max": secs(a.Backoff.Max), "reset-after": secs(a.Backoff.ResetAfter)}
	}},
	{"depends-on", false, false, func(a *App) any { return a.DependsOn }},
	{"startup", false, false, func(a *App) any { return a.Startup }},
	{"liveness", false, false, func(a *App) any { return a.Liveness }},
	{"readiness", false, false, func(a *App) any { return a.Readiness }},
	{"ready-line", false, false, func(a *App) any { return a.ReadyLine }},
	{"hooks", false, false, func(a *App) any { return a.Hooks }},
	{"x", false, false, func(a *App) any { return a.X }},
}

// RestartFields lists the app keys whose change restarts a running
// instance; every other key is applied in place.
func RestartFields() []string {
	var out []string
	for _, f := range appFields {
		if f.restart {
			out = append(out, f.key)
		}
	}
	return out
}

// InPlaceFields lists the app keys whose change is applied without a
// restart.
func InPlaceFields() []string {
	var out []string
	for _, f := range appFields {
		if !f.restart {
			out = append(out, f.key)
		}
	}
	return out
}

// DiffApps returns the changed keys between two versions of an app, in a
// fixed order (restart fields first).
func DiffApps(old, cur *App) []Change {
	var out []Change
	for _, f := range appFields {
		o, n := encode(f.get(old)), encode(f.get(cur))
		if bytes.Equal(o, n) {
			continue
		}
		if f.secret {
			o, n = redactedOrEmpty(o), redactedOrEmpty(n)
		}
		out = append(out, Change{Field: f.key, Old: o, New: n, Restart: f.restart})
	}
	return out
}

// NeedsRestart reports whether any change needs a restart.
func NeedsRestart(changes []Change) bool {
	for _, c := range changes {
		if c.Restart {
			return true
		}
	}
	return false
}

func redactedOrEmpty(v json.RawMessage) json.RawMessage {
	if string(v) == `""` {
		return v
	}
	return redacted
}

func encode(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("desired: encode field: " + err.Error())
	}
	return b
}
