package schema

import (
	"strconv"
	"strings"
	"time"
)

// Defaults that other packages need as values (the config's defaults live in
// the default struct tags; a test keeps the two in step).
const (
	DefaultHTTPListen  = "127.0.0.1:8421"
	DefaultUDPListen   = "127.0.0.1:1248"
	DefaultServer      = "http://" + DefaultHTTPListen
	DefaultTickEvery   = 15
	DefaultHistory     = 100
	DefaultPingTimeout = 30
	// DefaultLogDirectory is the log directory of an app without one, below
	// its working directory; the app's id is appended.
	DefaultLogDirectory = "logs"
	// MaxUDPRequest is the largest UDP request datagram, in bytes.
	MaxUDPRequest = 2048
)

// Keepalive is how Patrol knows an app is alive.
type Keepalive int

// The keepalive modes, with the original Patrol's values.
const (
	KeepalivePIDPatrol Keepalive = 1 // Patrol starts the process and waits on it.
	KeepalivePIDApp    Keepalive = 2 // The app writes its pid to pid-path.
	KeepaliveHTTP      Keepalive = 3 // The app pings the HTTP API.
	KeepaliveUDP       Keepalive = 4 // The app pings the UDP API.
)

var keepaliveNames = map[Keepalive]string{
	KeepalivePIDPatrol: "PID_PATROL",
	KeepalivePIDApp:    "PID_APP",
	KeepaliveHTTP:      "HTTP",
	KeepaliveUDP:       "UDP",
}

// String returns the original Patrol's name of k, such as "PID_PATROL".
func (k Keepalive) String() string {
	if n, ok := keepaliveNames[k]; ok {
		return n
	}
	return "Keepalive(" + strconv.Itoa(int(k)) + ")"
}

// Valid reports whether k is one of the four modes.
func (k Keepalive) Valid() bool { _, ok := keepaliveNames[k]; return ok }

// Pinged reports whether apps of mode k report liveness by pings.
func (k Keepalive) Pinged() bool { return k == KeepaliveHTTP || k == KeepaliveUDP }

// Management is how a service is controlled.
type Management int

// The management methods, with the original Patrol's values (3 is new).
const (
	ManagementService Management = 1 // service NAME VERB
	ManagementInitd   Management = 2 // <initd-directory>/NAME VERB
	ManagementSystemd Management = 3 // systemctl VERB NAME
)

var managementNames = map[Management]string{
	ManagementService: "SERVICE",
	ManagementInitd:   "INITD",
	ManagementSystemd: "SYSTEMD",
}

// String returns the name of m, such as "INITD".
func (m Management) String() string {
	if n, ok := managementNames[m]; ok {
		return n
	}
	return "Management(" + strconv.Itoa(int(m)) + ")"
}

// Valid reports whether m is one of the three methods.
func (m Management) Valid() bool { _, ok := managementNames[m]; return ok }

// Toggle is the API's toggle value (the request's "toggle").
type Toggle uint8

// The toggles, with the original Patrol's values.
const (
	ToggleEnable               Toggle = 1 // Enable.
	ToggleDisable              Toggle = 2 // Disable (stops a running instance).
	ToggleRestart              Toggle = 3 // Restart once (enables a disabled entry).
	ToggleRunOnceEnable        Toggle = 4 // Run once: the entry is disabled after its next instance ends.
	ToggleRunOnceDisable       Toggle = 5 // Cancel run once.
	ToggleEnableRunOnceEnable  Toggle = 6 // Enable and run once.
	ToggleEnableRunOnceDisable Toggle = 7 // Enable and cancel run once.
)

var toggleNames = map[Toggle]string{
	ToggleEnable:               "ENABLE",
	ToggleDisable:              "DISABLE",
	ToggleRestart:              "RESTART",
	ToggleRunOnceEnable:        "RUNONCE_ENABLE",
	ToggleRunOnceDisable:       "RUNONCE_DISABLE",
	ToggleEnableRunOnceEnable:  "ENABLE_RUNONCE_ENABLE",
	ToggleEnableRunOnceDisable: "ENABLE_RUNONCE_DISABLE",
}

// toggleWords are the CLI's action words for the toggles.
var toggleWords = map[string]Toggle{
	"enable":          ToggleEnable,
	"disable":         ToggleDisable,
	"restart":         ToggleRestart,
	"runonce-enable":  ToggleRunOnceEnable,
	"runonce-disable": ToggleRunOnceDisable,
}

// String returns the original Patrol's name of t, such as "RUNONCE_ENABLE".
func (t Toggle) String() string {
	if n, ok := toggleNames[t]; ok {
		return n
	}
	return "Toggle(" + strconv.Itoa(int(t)) + ")"
}

// Valid reports whether t is one of the seven toggles.
func (t Toggle) Valid() bool { _, ok := toggleNames[t]; return ok }

// ParseToggleWord maps a CLI action word ("enable", "runonce-disable", ...)
// to its toggle.
func ParseToggleWord(w string) (Toggle, bool) {
	t, ok := toggleWords[strings.ToLower(w)]
	return t, ok
}

// RestartPolicy says when an instance that ended by itself is restarted.
type RestartPolicy string

// The restart policies.
const (
	RestartAlways    RestartPolicy = "always"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartNever     RestartPolicy = "never"
)

// Concurrency says what a scheduled app does with a run that is due while
// the last one still runs.
type Concurrency string

// The concurrency policies.
const (
	ConcurrencyForbid  Concurrency = "forbid"
	ConcurrencyReplace Concurrency = "replace"
	ConcurrencyAllow   Concurrency = "allow"
)

// Group names an API group.
type Group string

// The API groups. Requests may also say "apps" and "services", as the
// original Patrol accepted.
const (
	GroupApp     Group = "app"
	GroupService Group = "service"
)

// ParseGroup maps a request's group ("app", "apps", "service", "services",
// any case) to its Group.
func ParseGroup(s string) (Group, bool) {
	switch strings.ToLower(s) {
	case "app", "apps":
		return GroupApp, true
	case "service", "services":
		return GroupService, true
	}
	return "", false
}

// State is an entry's state as shown in status and the GUI.
type State string

// The entry states.
const (
	StateRunning  State = "running"
	StateStopped  State = "stopped"
	StateStarting State = "starting"
	StateStopping State = "stopping"
	StateBackoff  State = "backoff"
	StateDisabled State = "disabled"
	// StateWaiting: the app is not started yet because a dependency's
	// condition does not hold (the reason says which).
	StateWaiting State = "waiting"
	// StateScheduled: a scheduled app waits for its next run (new in
	// Patrol).
	StateScheduled State = "scheduled"
)

// Reason says why an instance ended (history) or why an action is planned.
type Reason string

// Why an instance ended.
const (
	ReasonExited          Reason = "exited"            // Exited by itself with code 0.
	ReasonCrashed         Reason = "crashed"           // Exited by itself with a non-zero code.
	ReasonSignal          Reason = "signal"            // Killed by a signal Patrol did not send.
	ReasonStoppedByConfig Reason = "stopped-by-config" // Stopped because the config changed or removed it.
	ReasonStoppedByAPI    Reason = "stopped-by-api"    // Stopped by an API toggle.
	ReasonPingTimeout     Reason = "ping-timeout"      // No ping within ping-timeout.
	ReasonPIDGone         Reason = "pid-gone"          // The pid from the pid file is gone or invalid.
	ReasonExecuteTimeout  Reason = "execute-timeout"   // Ran longer than execute-timeout.
	ReasonShutdown        Reason = "shutdown"          // Stopped by Patrol's shutdown.
	ReasonStartFailed     Reason = "start-failed"      // Could not be started.
	ReasonPIDChanged      Reason = "pid-changed"       // A ping reported another pid: a new instance.
	ReasonLivenessFailed  Reason = "liveness-failed"   // Failed its liveness probe failure-threshold times.
	ReasonStartupFailed   Reason = "startup-failed"    // Failed its startup probe failure-threshold times.
	ReasonWatchdog        Reason = "watchdog"          // Sent no WATCHDOG=1 within watchdog seconds.
	ReasonOOMKilled       Reason = "oom-killed"        // Killed by the kernel for using more than memory-max.
	ReasonCompleted       Reason = "completed"         // A scheduled run exited with code 0.
	ReasonFailed          Reason = "failed"            // A scheduled run exited with a non-zero code.
	ReasonSkipped         Reason = "skipped"           // A scheduled run not started: the last one still ran (concurrency "forbid").
)

// Why an action is planned.
const (
	ReasonAdded    Reason = "added"
	ReasonRemoved  Reason = "removed"
	ReasonChanged  Reason = "changed"
	ReasonDisabled Reason = "disabled"
	ReasonEnabled  Reason = "enabled"
	ReasonOverride Reason = "override"
	ReasonLimits   Reason = "limits"  // a note: the host does not enforce the app's limits
	ReasonRolling  Reason = "rolling" // a note: a replica's restart waits for its turn
	// ReasonScaled: a replica above the count the file or a scale
	// override asks for.
	ReasonScaled Reason = "scaled"
	// ReasonScheduled: a scheduled app's run is due; ReasonReplaced: due
	// while the last run still runs, with concurrency "replace".
	ReasonScheduled Reason = "scheduled"
	ReasonReplaced  Reason = "replaced"
	ReasonRestart   Reason = "restart"
	ReasonRunOnce   Reason = "run-once"
	ReasonAdopted   Reason = "adopted"
	ReasonNotRun    Reason = "not-running"
	// ReasonDependency: a dependency the app opted to restart with
	// ("restart": true) got a new instance.
	ReasonDependency Reason = "dependency-restarted"
	// ReasonResumed: started again by a new Patrol after the last one's
	// clean shutdown stopped it (not a restart).
	ReasonResumed Reason = "resumed"
)

// stopSignals are the signal names allowed as stop-signal, canonical form.
var stopSignals = []string{
	"SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2",
	"SIGABRT", "SIGALRM", "SIGWINCH", "SIGKILL",
}

// StopSignals returns the signal names allowed as stop-signal, in canonical
// form ("SIGTERM").
func StopSignals() []string { return append([]string(nil), stopSignals...) }

// CanonicalSignal returns the canonical form ("SIGTERM") of a stop-signal
// name written as "SIGTERM" or "TERM", and whether it is allowed.
func CanonicalSignal(s string) (string, bool) {
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	for _, n := range stopSignals {
		if n == s {
			return n, true
		}
	}
	return "", false
}

// timestampLayouts maps the names of Go's layout constants to the layouts.
var timestampLayouts = map[string]string{
	"Layout":      time.Layout,
	"ANSIC":       time.ANSIC,
	"UnixDate":    time.UnixDate,
	"RubyDate":    time.RubyDate,
	"RFC822":      time.RFC822,
	"RFC822Z":     time.RFC822Z,
	"RFC850":      time.RFC850,
	"RFC1123":     time.RFC1123,
	"RFC1123Z":    time.RFC1123Z,
	"RFC3339":     time.RFC3339,
	"RFC3339Nano": time.RFC3339Nano,
	"Kitchen":     time.Kitchen,
	"Stamp":       time.Stamp,
	"StampMilli":  time.StampMilli,
	"StampMicro":  time.StampMicro,
	"StampNano":   time.StampNano,
	"DateTime":    time.DateTime,
	"DateOnly":    time.DateOnly,
	"TimeOnly":    time.TimeOnly,
}

// TimestampLayout resolves a json-timestamp value: the name of a Go layout
// constant gives its layout, anything else is a layout itself.
func TimestampLayout(s string) string {
	if l, ok := timestampLayouts[s]; ok {
		return l
	}
	return s
}
