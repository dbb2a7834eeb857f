package schema

// EventKind names a lifecycle event.
type EventKind string

// The lifecycle events (GET /api/events, hooks, the web GUI). Entry events
// carry the group and id; Patrol's own events do not.
const (
	// EventStarted: an instance started (a process was spawned, or a
	// daemon adopted); PID and InstanceID are set.
	EventStarted EventKind = "started"
	// EventStartFailed: a start failed (Message says why).
	EventStartFailed EventKind = "start-failed"
	// EventAdopted: Patrol took over a running process (pid file or ping).
	EventAdopted EventKind = "adopted"
	// EventStopping: Patrol asked an instance to stop (Reason says why).
	EventStopping EventKind = "stopping"
	// EventExited: an instance ended; ExitCode and Reason are set, and
	// History is its history entry.
	EventExited EventKind = "exited"
	// EventBackoff: the next start waits (Message says until when).
	EventBackoff EventKind = "backoff"
	// EventSkipped: a scheduled run was due while the last one still ran
	// (concurrency "forbid"); it is recorded in history as "skipped".
	EventSkipped EventKind = "skipped"
	// EventUpdated: a config change was applied to a running instance in
	// place.
	EventUpdated EventKind = "updated"
	// EventPinged: a keepalive 3 or 4 app pinged (only streamed when asked
	// for: there are many).
	EventPinged EventKind = "pinged"
	// EventReady: an instance became ready (Message says by what).
	EventReady EventKind = "ready"
	// EventUnready: a ready instance lost its readiness (Message says
	// why).
	EventUnready EventKind = "unready"
	// EventUnhealthy: an instance failed a liveness or startup probe or
	// its watchdog and is restarted (Reason and Message say which).
	EventUnhealthy EventKind = "unhealthy"
	// EventHealth: an instance's checks changed without a change of
	// readiness: a probe's verdict (after its thresholds) or the app's
	// STATUS= text (Message says which).
	EventHealth EventKind = "health"
	// EventState: an entry's state changed (State is the new state).
	EventState EventKind = "state"
	// EventConfigLoaded: a new config revision is in force.
	EventConfigLoaded EventKind = "config-loaded"
	// EventSource: the config's source (etcd) answers again, or stopped
	// answering (Message says which).
	EventSource EventKind = "source"
	// EventConfigError: loading the config file failed (Message).
	EventConfigError EventKind = "config-error"
	// EventPatrolStarted and EventPatrolStopping bracket a Patrol run.
	EventPatrolStarted  EventKind = "patrol-started"
	EventPatrolStopping EventKind = "patrol-stopping"
	// EventDropped is sent to a subscriber that fell behind: Count events
	// were dropped; reload the status to catch up.
	EventDropped EventKind = "dropped"
)

// Event is one lifecycle event.
type Event struct {
	// Seq increases by one per event within a Patrol run.
	Seq uint64 `json:"seq"`
	// Time is RFC 3339 with nanoseconds, whatever json-timestamp says:
	// events are for machines.
	Time           string    `json:"time"`
	Event          EventKind `json:"event"`
	Group          Group     `json:"group,omitempty"`
	ID             string    `json:"id,omitempty"`
	PID            int       `json:"pid,omitempty"`
	ExitCode       *int      `json:"exit-code,omitempty"`
	Reason         Reason    `json:"reason,omitempty"`
	InstanceID     string    `json:"instance-id,omitempty"`
	ConfigRevision string    `json:"config-revision,omitempty"`
	// State is the entry's state after the event.
	State State `json:"state,omitempty"`
	// Restarts is the entry's restart count after the event.
	Restarts int    `json:"restarts,omitempty"`
	Message  string `json:"message,omitempty"`
	// History is the history entry of an exited event.
	History *History `json:"history,omitempty"`
	// Count is the number of events dropped (EventDropped).
	Count int `json:"count,omitempty"`
}
