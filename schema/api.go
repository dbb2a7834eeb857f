package schema

import "encoding/json"

// Request is the API request: the body of POST /api/, the query of
// GET /api/, and one UDP datagram. Every field is optional; a request with
// no fields set changes nothing.
type Request struct {
	// ID is the app or service id (any case).
	ID string `json:"id,omitempty"`
	// Group is "app" or "service" ("apps" and "services" are accepted).
	Group string `json:"group,omitempty"`
	// Ping reports the app alive (keepalive 3 over HTTP, 4 over UDP only).
	Ping bool `json:"ping,omitempty"`
	// PID is the pinging app's process id; it requires Ping.
	PID uint32 `json:"pid,omitempty"`
	// Toggle changes the entry's state (1-7, see Toggle).
	Toggle Toggle `json:"toggle,omitempty"`
	// History asks for the entry's history in the response.
	History bool `json:"history,omitempty"`
	// KeyValue is merged into the entry's key/value data.
	KeyValue map[string]any `json:"keyvalue,omitempty"`
	// KeyValueReplace replaces the key/value data with KeyValue instead.
	KeyValueReplace bool `json:"keyvalue-replace,omitempty"`
	// Secret is the entry's secret, needed for changes when it has one.
	Secret string `json:"secret,omitempty"`
	// CAS, when non-zero, must equal the entry's current CAS counter for
	// the toggle and key/value to be applied.
	CAS uint64 `json:"cas,omitempty"`
	// TTL, in seconds, makes the override written by Toggle expire.
	TTL Seconds `json:"ttl,omitempty"`
	// Clear removes the entry's override, so that the file alone decides
	// (new in Patrol; applied before Toggle).
	Clear bool `json:"clear,omitempty"`
	// Replicas scales an app with "replicas" in the config to this many
	// replicas, as an override (with TTL, CAS and superseded by a change
	// of the app in the file, like a toggle's); the file's own count
	// clears it (new in Patrol). It is the override of the app's id, the
	// id of its replica 0.
	Replicas int `json:"replicas,omitempty"`
	// Token is http.token, which a request that writes (a toggle, clear,
	// ttl or key/value) must carry when one is set: over UDP in this field,
	// over HTTP in it or as "Authorization: Bearer TOKEN" (new in Patrol).
	// It is never sent back nor logged.
	Token string `json:"token,omitempty"`
}

// Transport says how a request reached Patrol; pings must use their app's
// transport.
type Transport string

// The transports.
const (
	TransportHTTP Transport = "http"
	TransportUDP  Transport = "udp"
	// TransportLibrary is a direct call from Go, with no endpoint
	// restriction on pings (as in the original Patrol).
	TransportLibrary Transport = "library"
)

// Response is the API response and the shape of each entry in Status. It
// describes the entry as it was before the request was applied.
type Response struct {
	ID         string `json:"id,omitempty"`
	InstanceID string `json:"instance-id,omitempty"`
	Group      string `json:"group,omitempty"`
	Name       string `json:"name,omitempty"`
	PID        uint32 `json:"pid,omitempty"`
	Started    string `json:"started,omitempty"`
	LastSeen   string `json:"lastseen,omitempty"`
	Disabled   bool   `json:"disabled,omitempty"`
	Restart    bool   `json:"restart,omitempty"`
	RunOnce    bool   `json:"run-once,omitempty"`
	Shutdown   bool   `json:"shutdown,omitempty"`
	// History is sent only when the request asked for it (never over UDP).
	History  []History      `json:"history,omitempty"`
	KeyValue map[string]any `json:"keyvalue,omitempty"`
	// Secret is true when the entry has a secret; the secret itself is
	// never sent.
	Secret     bool     `json:"secret,omitempty"`
	Errors     []string `json:"errors,omitempty"`
	CAS        uint64   `json:"cas,omitempty"`
	CASInvalid bool     `json:"cas-invalid,omitempty"`

	// State is the entry's state (new in Patrol; status entries only).
	State State `json:"state,omitempty"`
	// Override is the active API override, if any.
	Override *Override `json:"override,omitempty"`
	// ConfigDisabled is the file's own "disabled" value.
	ConfigDisabled bool `json:"config-disabled,omitempty"`
	// BackoffUntil is when a delayed restart will happen.
	BackoffUntil string `json:"backoff-until,omitempty"`
	// Reason says why the entry is in its state when that is not obvious
	// (a start failure, a missing binary, a backoff).
	Reason string `json:"reason,omitempty"`
	// Restarts counts the instances started since Patrol started, minus one.
	Restarts int `json:"restarts,omitempty"`

	// Health is "starting", "ready" or "unready" while an instance runs
	// (apps only).
	Health Health `json:"health,omitempty"`
	// Ready is whether the running instance is ready; absent without one.
	Ready *bool `json:"ready,omitempty"`
	// ReadySince is when it last became ready or unready.
	ReadySince string `json:"ready-since,omitempty"`
	// Probes holds the last result of each of the instance's probes, by
	// "startup", "liveness" and "readiness".
	Probes map[string]*ProbeStatus `json:"probes,omitempty"`
	// StatusText is the last STATUS= the app sent to NOTIFY_SOCKET.
	StatusText string `json:"status,omitempty"`
	// WatchdogUntil is when the app is restarted unless it sends
	// WATCHDOG=1 first.
	WatchdogUntil string `json:"watchdog-until,omitempty"`
	// HealthFailure is the last health failure of the app (a failed probe,
	// a missed watchdog, a lost readiness), kept across instances, and
	// HealthFailureAt when it happened.
	HealthFailure   string `json:"health-failure,omitempty"`
	HealthFailureAt string `json:"health-failure-at,omitempty"`

	// Limits says whether this host enforces the app's cgroup limits
	// (memory-max, memory-high, cpu-max, pids-max): "enforced", "not
	// enforced (LIMIT: why; ...)", or "not applied to the running instance
	// (why)" when a change could not be written to it (such as memory-max
	// lowered below what the app uses, on cgroup v1); absent for an app
	// without limits.
	Limits string `json:"limits,omitempty"`

	// Schedule is a scheduled app's schedule (with its time zone), NextRun
	// when its next run is due (absent while it is disabled), and Skipped
	// how many runs were skipped since Patrol started (concurrency
	// "forbid"; history records each).
	Schedule string `json:"schedule,omitempty"`
	NextRun  string `json:"next-run,omitempty"`
	Skipped  int    `json:"skipped,omitempty"`
	// Replicas is, on the entry of an app with "replicas" (replica 0's
	// id), the number of replicas in force: the file's, or a scale's.
	Replicas int `json:"replicas,omitempty"`
	// Runs are the earlier runs still running alongside the newest one
	// (the entry's pid), oldest first, with concurrency "allow".
	Runs []Run `json:"runs,omitempty"`

	// Usage is what a running app's processes use (its process group, from
	// /proc), on the HTTP API's status and entries: sampled when read, at
	// most every 2 s; absent when not measured.
	Usage *Usage `json:"usage,omitempty"`
}

// Usage is an app instance's resource use.
type Usage struct {
	// CPUSeconds is the CPU time (user and system) of its live processes.
	CPUSeconds float64 `json:"cpu-seconds"`
	// CPUPercent is its share of one CPU between the last two samples
	// (absent until there are two).
	CPUPercent *float64 `json:"cpu-percent,omitempty"`
	// MemoryBytes is its resident memory.
	MemoryBytes uint64 `json:"memory-bytes"`
	// Sampled is when it was measured.
	Sampled string `json:"sampled,omitempty"`
}

// Override is a runtime override written by the API on top of the file.
type Override struct {
	Disabled *bool `json:"disabled,omitempty"`
	RunOnce  *bool `json:"run-once,omitempty"`
	// Replicas is a scale of an app with "replicas" (new in Patrol).
	Replicas int    `json:"replicas,omitempty"`
	Since    string `json:"since,omitempty"`
	Expires  string `json:"expires,omitempty"`
}

// Run is an earlier run of a scheduled app that still runs (concurrency
// "allow").
type Run struct {
	InstanceID string `json:"instance-id"`
	PID        uint32 `json:"pid,omitempty"`
	Started    string `json:"started,omitempty"`
}

// History is one closed instance of an app or service.
type History struct {
	InstanceID string         `json:"instance-id,omitempty"`
	PID        uint32         `json:"pid,omitempty"`
	Started    string         `json:"started,omitempty"`
	LastSeen   string         `json:"lastseen,omitempty"`
	Stopped    string         `json:"stopped,omitempty"`
	Disabled   bool           `json:"disabled,omitempty"`
	Restart    bool           `json:"restart,omitempty"`
	RunOnce    bool           `json:"run-once,omitempty"`
	Shutdown   bool           `json:"shutdown,omitempty"`
	ExitCode   int            `json:"exit-code,omitempty"`
	KeyValue   map[string]any `json:"keyvalue,omitempty"`
	// Reason says why the instance ended (see Reason).
	Reason Reason `json:"reason,omitempty"`
	// ConfigRevision is the config revision the instance was started with.
	ConfigRevision string `json:"config-revision,omitempty"`
	// Duration is how long the instance ran, in seconds (new in Patrol).
	Duration Seconds `json:"duration,omitempty"`
}

// Status is the body of GET /status/.
type Status struct {
	InstanceID string               `json:"instance-id,omitempty"`
	Apps       map[string]*Response `json:"apps,omitempty"`
	// Services uses the original Patrol's singular key "service".
	Services map[string]*Response `json:"service,omitempty"`
	Started  string               `json:"started,omitempty"`
	Shutdown bool                 `json:"shutdown,omitempty"`
	Config   *ConfigStatus        `json:"config,omitempty"`
}

// ConfigStatus is the "config" block of Status.
type ConfigStatus struct {
	Path     string `json:"path,omitempty"`
	Revision string `json:"revision,omitempty"`
	Loaded   string `json:"loaded,omitempty"`
	// Error is set when the last attempt to load the file failed; the last
	// good config stays in force.
	Error      string `json:"error,omitempty"`
	ErrorSince string `json:"error-since,omitempty"`
	// Source describes where the config comes from when it is not a file
	// (patrol run --source etcd://...).
	Source *SourceStatus `json:"source,omitempty"`
}

// SourceStatus is the "source" of ConfigStatus: the fleet's etcd.
type SourceStatus struct {
	Kind      string   `json:"kind"` // "etcd"
	Endpoints []string `json:"endpoints"`
	// Key is the host's config key; Common the key it is layered on.
	Key    string `json:"key"`
	Common string `json:"common"`
	// Revision is the etcd revision of the config in force.
	Revision int64 `json:"revision"`
	// Connected says whether etcd answers; DisconnectedSince since when it
	// does not.
	Connected         bool   `json:"connected"`
	DisconnectedSince string `json:"disconnected-since,omitempty"`
}

// ErrorResponse is the body of every API error (HTTP 400).
type ErrorResponse struct {
	Errors []string `json:"errors"`
}

// The original Patrol's API error strings.
const (
	ErrRequestNil            = "Request NIL"
	ErrUnknownApp            = "Unknown App"
	ErrUnknownService        = "Unknown Service"
	ErrUnknownGroup          = "Unknown Group"
	ErrSecretInvalid         = "Secret Invalid"
	ErrPingNotSupported      = "Ping Not Supported"
	ErrInvalidPingEndpoint   = "Invalid Ping Endpoint"
	ErrPIDNotSupported       = "PID Not Supported"
	ErrPIDRequiresPing       = "PID Requires Ping"
	ErrServicesDontSupport   = "Services don't support Ping"
	ErrInvalidMethod         = "Invalid Method"
	ErrInvalidBody           = "Invalid Body"
	ErrInvalidRequest        = "Invalid Request"
	ErrUnauthorized          = "Unauthorized"
	ErrForbiddenCrossOrigin  = "Cross-Origin Request Refused"
	ErrRequestEntityTooLarge = "Request Too Large"
	ErrInvalidToggle         = "Invalid Toggle"
	ErrInvalidCAS            = "Invalid CAS"
	ErrInvalidTTL            = "Invalid TTL"
	// ErrInvalidReplicas is followed by ": " and why the scale cannot be
	// applied.
	ErrInvalidReplicas = "Invalid Replicas"
	ErrShuttingDown    = "Patrol Is Shutting Down"
	// The key/value limits (keyvalue-limits): a write whose result would
	// nest deeper than max-depth, encode to more than max-bytes or hold
	// more than max-keys keys is refused whole.
	ErrKeyValueTooDeep     = "KeyValue Too Deep"
	ErrKeyValueTooLarge    = "KeyValue Too Large"
	ErrKeyValueTooManyKeys = "KeyValue Too Many Keys"
)

// Action kinds of a plan.
const (
	ActionStart   = "start"
	ActionStop    = "stop"
	ActionRestart = "restart"
	ActionUpdate  = "update"
	ActionAdopt   = "adopt"
	// ActionKeep is not an action: the entry is kept as it is against the
	// file (an override holds it), listed so the plan says so.
	ActionKeep = "keep"
	// ActionWait is a start that waits for the app's dependencies (its
	// note says for what): nothing happens until their conditions hold.
	ActionWait = "wait"
)

// PlanAction is one action of a plan (the --json plan and /api/plan).
type PlanAction struct {
	Group  Group  `json:"group"`
	ID     string `json:"id"`
	Action string `json:"action"`
	Reason Reason `json:"reason"`
	// Changes lists the changed fields of a changed entry.
	Changes []FieldChange `json:"changes,omitempty"`
	// Note explains an override or a delay.
	Note string `json:"note,omitempty"`
}

// FieldChange is one changed config field: its key and its old and new
// values as JSON (secrets redacted).
type FieldChange struct {
	Field string          `json:"field"`
	Old   json.RawMessage `json:"old,omitempty"`
	New   json.RawMessage `json:"new,omitempty"`
	// Restart is true when the change needs the entry restarted.
	Restart bool `json:"restart"`
}

// Plan is a whole plan: the actions and a count of each kind.
type Plan struct {
	Actions []PlanAction `json:"actions"`
	Summary PlanSummary  `json:"summary"`
}

// PlanSummary counts a plan's actions.
type PlanSummary struct {
	Start   int `json:"start"`
	Restart int `json:"restart"`
	Update  int `json:"update"`
	Stop    int `json:"stop"`
	Adopt   int `json:"adopt"`
	Kept    int `json:"kept"`
	// Wait counts starts waiting for dependencies.
	Wait int `json:"wait,omitempty"`
}
