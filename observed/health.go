package observed

import (
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/schema"
)

// Health is what Patrol knows about an instance's health: its probes'
// results and what it said on its NOTIFY_SOCKET. The loop keeps it from
// ProbeResult and NotifyMessage events; Plan reads it.
type Health struct {
	// Ready is whether the instance is ready: its startup probe passed,
	// its readiness probe passes and, with ready "notify", it sent
	// READY=1 (and no STOPPING=1 or RELOADING=1 since). Since is when
	// Ready last changed, or when the instance started.
	Ready bool
	Since time.Time
	// WasReady is set once the instance has been ready.
	WasReady bool
	// StartupDone is set once the startup probe passed (at once without
	// one).
	StartupDone bool
	// Probes holds each running probe's state, by kind.
	Probes map[desired.ProbeKind]*ProbeState
	// Notified is set by READY=1 and cleared by STOPPING=1 and
	// RELOADING=1.
	Notified bool
	// Status is the last STATUS= text; MainPID the last MAINPID=.
	Status  string
	MainPID int
	// Watchdog is the watchdog timeout in force (the config's, or the
	// app's WATCHDOG_USEC=), 0 for none; WatchdogDeadline is when the
	// instance fails it without a WATCHDOG=1.
	Watchdog         time.Duration
	WatchdogDeadline time.Time
	// Failed is set when the instance failed a liveness or startup probe
	// or its watchdog: Plan stops it for that reason, and the loop does not
	// count further results. FailedWhy says what was seen.
	Failed    schema.Reason
	FailedWhy string
}

// ProbeState is one probe's state after thresholds.
type ProbeState struct {
	// Passing is the probe's verdict once Decided: success-threshold
	// successes in a row make it pass, failure-threshold failures fail it.
	Passing bool
	Decided bool
	// Successes and Failures count consecutive results.
	Successes int
	Failures  int
	// Last is the last single result.
	Last ProbeResult
}

// ProbeResult is the outcome of one probe run, delivered by package exec
// to the loop.
type ProbeResult struct {
	// Tag is the instance id the probe was registered for.
	Tag  string
	Kind desired.ProbeKind
	OK   bool
	// Message says what the probe saw ("HTTP 500", "connection refused").
	Message string
	At      time.Time
}

// NotifyMessage is one sd_notify datagram from an instance's process,
// already checked to come from the instance, delivered to the loop.
type NotifyMessage struct {
	Tag string
	// PID is the sender, from the kernel's credentials.
	PID int
	At  time.Time
	// Ready (READY=1), Stopping (STOPPING=1), Reloading (RELOADING=1),
	// Watchdog (WATCHDOG=1) and WatchdogTrigger (WATCHDOG=trigger) are
	// the flags the datagram set.
	Ready, Stopping, Reloading, Watchdog, WatchdogTrigger bool
	// Status is STATUS= when HasStatus.
	Status    string
	HasStatus bool
	// MainPID is MAINPID= (0: not sent).
	MainPID int
	// WatchdogUSec is WATCHDOG_USEC= (0: not sent).
	WatchdogUSec int64
	// LogLine, instead of a datagram, is the line of the app's log that
	// matched its ready-line ("ready": "log-line").
	LogLine string
}
