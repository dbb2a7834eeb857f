package schema

import (
	"bytes"
	"encoding/json"
	"errors"
)

// Probe is a liveness, readiness or startup check of an app: exactly one
// of "exec", "http" and "tcp", run every period seconds once initial-delay
// has passed. A probe passes after success-threshold consecutive
// successes and fails after failure-threshold consecutive failures; one
// that does not answer within timeout is a failure (an exec probe is
// killed). Probes run off Patrol's main loop, at most 64 at once.
type Probe struct {
	// Exec runs a command (no shell): exit code 0 is a success.
	Exec *ExecProbe `json:"exec,omitempty"`

	// HTTP sends a GET request: a status code within "status" is a
	// success.
	HTTP *HTTPProbe `json:"http,omitempty"`

	// TCP connects to a port on 127.0.0.1: an accepted connection is a
	// success.
	TCP *TCPProbe `json:"tcp,omitempty"`

	// InitialDelay is how long, in seconds, the first probe waits after the
	// instance started (for liveness and readiness: after the startup
	// probe passed).
	InitialDelay *Seconds `json:"initial-delay,omitempty" validate:"rng=0:3600" default:"0"`

	// Period is the time between two probes, in seconds.
	Period *Seconds `json:"period,omitempty" validate:"rng=0.1:3600" default:"10"`

	// Timeout is how long, in seconds, one probe may take; it must not
	// exceed period.
	Timeout *Seconds `json:"timeout,omitempty" validate:"rng=0.01:3600" default:"1"`

	// SuccessThreshold is how many consecutive successes make a failing
	// (or not yet passed) probe pass. 0 means the default.
	SuccessThreshold int `json:"success-threshold,omitempty" validate:"rng=1:1000" default:"1"`

	// FailureThreshold is how many consecutive failures make a passing (or
	// not yet passed) probe fail. 0 means the default.
	FailureThreshold int `json:"failure-threshold,omitempty" validate:"rng=1:1000" default:"3"`
}

// ExecProbe is the "exec" form of a probe.
type ExecProbe struct {
	// Command is the argv to run: the first element is an absolute path or
	// a command name looked up in Patrol's PATH; it runs in the app's
	// working directory with the app's env and PATROL_ID.
	Command []string `json:"command" validate:"required,argv"`
}

// HTTPProbe is the "http" form of a probe: either a whole url, or port
// (with path and scheme) on 127.0.0.1.
type HTTPProbe struct {
	// URL is the address to GET, "http://" or "https://" (certificates
	// are not verified: the app is local).
	URL string `json:"url,omitempty" validate:"omitempty,nonul"`

	// Port is the port on 127.0.0.1 to GET, when url is not given.
	Port int `json:"port,omitempty" validate:"omitempty,rng=1:65535"`

	// Path is the path requested with port. Default "/".
	Path string `json:"path,omitempty" validate:"omitempty,nonul"`

	// Scheme is "http" or "https", with port. Default "http".
	Scheme string `json:"scheme,omitempty" validate:"omitempty,oneof=http https"`

	// Status is the range of status codes that count as a success, as
	// [lowest, highest]. Default [200, 399].
	Status []int `json:"status,omitempty"`
}

// TCPProbe is the "tcp" form of a probe.
type TCPProbe struct {
	// Port is the port on 127.0.0.1 to connect to.
	Port int `json:"port" validate:"required,rng=1:65535"`
}

// Dependency is one entry of an app's depends-on: the id of another app,
// or an object with the condition to wait for.
type Dependency struct {
	// App is the id of the app depended on.
	App string `json:"app" validate:"required,id"`

	// Condition is what the dependent waits for before it starts:
	// "started" (an instance runs), "ready" (its readiness passed),
	// "completed" (it ran and exited by itself) or
	// "completed-successfully" (it exited with code 0).
	Condition Condition `json:"condition,omitempty" validate:"omitempty,oneof=started ready completed completed-successfully" default:"started"`

	// Restart restarts the dependent whenever the app depended on gets a
	// new instance (without it, a restart of the dependency leaves the
	// dependent running).
	Restart bool `json:"restart,omitempty"`
}

// Condition is a dependency condition.
type Condition string

// The dependency conditions.
const (
	ConditionStarted               Condition = "started"
	ConditionReady                 Condition = "ready"
	ConditionCompleted             Condition = "completed"
	ConditionCompletedSuccessfully Condition = "completed-successfully"
)

// ReadyMode says where an app's readiness comes from besides a
// readiness probe.
type ReadyMode string

// The ready modes.
const (
	// ReadyNotify: the app sends READY=1 to NOTIFY_SOCKET (sd_notify).
	ReadyNotify ReadyMode = "notify"
	// ReadyLogLine: the app writes a line matching ready-line to its
	// stdout or stderr log file.
	ReadyLogLine ReadyMode = "log-line"
)

// UnmarshalJSON reads a dependency written as an id ("db") or as an
// object ({"app": "db", "condition": "ready"}), rejecting unknown keys.
func (d *Dependency) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		*d = Dependency{}
		return json.Unmarshal(b, &d.App)
	}
	if len(b) == 0 || b[0] != '{' {
		return errors.New("a dependency must be an app id or an object")
	}
	type plain Dependency
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p plain
	if err := dec.Decode(&p); err != nil {
		return err
	}
	*d = Dependency(p)
	return nil
}

// MarshalJSON writes a dependency on an app being started as its id
// alone, like the original short form.
func (d Dependency) MarshalJSON() ([]byte, error) {
	if (d.Condition == "" || d.Condition == ConditionStarted) && !d.Restart {
		return json.Marshal(d.App)
	}
	type plain Dependency
	return json.Marshal(plain(d))
}

// Health says whether an instance passes its checks (status "health").
type Health string

// The health values.
const (
	// HealthStarting: the instance has not passed its startup probe or its
	// readiness yet.
	HealthStarting Health = "starting"
	// HealthReady: the instance passed its readiness (or has none).
	HealthReady Health = "ready"
	// HealthUnready: it was ready and lost its readiness.
	HealthUnready Health = "unready"
)

// ProbeStatus is the last result of one of an instance's probes.
type ProbeStatus struct {
	// OK is whether the probe passes (after thresholds).
	OK bool `json:"ok"`
	// Last is whether the last single probe succeeded, Message what it
	// saw, At when it ran.
	Last    bool   `json:"last"`
	Message string `json:"message,omitempty"`
	At      string `json:"at,omitempty"`
	// Failures and Successes count consecutive results.
	Failures  int `json:"failures,omitempty"`
	Successes int `json:"successes,omitempty"`
}
