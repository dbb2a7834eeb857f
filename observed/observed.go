package observed

import (
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/schema"
)

// Role says which process of an instance a process event is about.
type Role int

const (
	// RoleLeader is the process whose life is the instance's life: the child
	// of a keepalive 1 app, the daemon of a keepalive 2 app.
	RoleLeader Role = iota
	// RoleLauncher is the process Patrol started for a keepalive 2 app; it
	// may fork the daemon and exit, which never ends the instance.
	RoleLauncher
)

func (r Role) String() string {
	if r == RoleLauncher {
		return "launcher"
	}
	return "leader"
}

// CodeUnknown is the exit code of a process that was not Patrol's child, so
// its exit status could not be collected.
const CodeUnknown = -1

// Exit is the fact of a watched process ending, as delivered by package
// exec to the loop.
type Exit struct {
	// Tag is the instance id the process was registered with.
	Tag  string
	Role Role
	PID  int
	// Code is the exit code; death by signal N gives 128+N; CodeUnknown when
	// the status could not be collected.
	Code int
	// Signal is the signal that killed the process, 0 if it exited.
	Signal int
	Ended  time.Time
	// OOMKilled: the kernel's OOM killer killed a process of the
	// instance's cgroup (memory-max).
	OOMKilled bool
}

// Launch describes a process Patrol started.
type Launch struct {
	PID  int
	PGID int
	// StartTime is the process start time from /proc/PID/stat, in clock
	// ticks since boot; with the PID it identifies the process.
	StartTime uint64
	Started   time.Time
	// Stdout and Stderr are the log files; both are the .stdmerge.log file
	// with std-merge; empty when a stream has no file.
	Stdout string
	Stderr string
}

// Snapshot is the observed state of everything Patrol supervises. The loop
// owns it and mutates it between passes; Plan only reads it.
type Snapshot struct {
	Apps     map[string]*App
	Services map[string]*Service
	// Started is when this Patrol started: keepalive 3 and 4 apps get
	// 2 x ping-timeout from then to ping in before Patrol starts them.
	Started time.Time
	// Shutdown is set once Patrol is shutting down: everything is stopped
	// and nothing is started.
	Shutdown bool
}

// NewSnapshot returns an empty snapshot.
func NewSnapshot() *Snapshot {
	return &Snapshot{Apps: map[string]*App{}, Services: map[string]*Service{}}
}

// Entry is what apps and services share: the API's view of them.
type Entry struct {
	// CAS is the entry's compare-and-swap counter: it starts at a random
	// value and goes up by one whenever the entry's visible state changes.
	CAS uint64
	// Digest summarises the visible state CAS last counted.
	Digest string
	// KeyValue is the entry's key/value data.
	KeyValue map[string]any
	// KeyValueWrites counts writes through the API (each one is a change,
	// even when it writes what was there).
	KeyValueWrites int
}

// Service is what is known about one service.
type Service struct {
	ID string
	Entry
	// Instance is the service's current instance while its status says it
	// runs.
	Instance *ServiceInstance
	// Checked is set once a status command answered; Running is its answer.
	Checked bool
	Running bool
	// StatusDue asks for a status check (every tick, and after a restart).
	StatusDue bool
	// Command is the command in flight, if any: one at a time per service.
	Command *Command
	// LastError is the output of the last failed command, until one
	// succeeds.
	LastError string
	// LastEnd, Backoff, Pending and RestartRequested are as for apps.
	LastEnd          *End
	Backoff          Backoff
	Pending          *Pending
	RestartRequested bool
	History          []Record
	Starts           int
}

// ServiceInstance is one period in which a service ran.
type ServiceInstance struct {
	ID       string
	Started  time.Time
	LastSeen time.Time
	Revision string
	RunOnce  bool
	// Fingerprint is the service config it was started or found with.
	Fingerprint string
}

// Command is a service command in flight.
type Command struct {
	Action string // "start", "status", "stop" or "restart"
	Reason schema.Reason
	Since  time.Time
}

// CommandResult is the outcome of a service command, delivered to the loop.
type CommandResult struct {
	Service string
	Action  string
	// Code is the exit code (128+N for death by signal N; -1 when the
	// command could not run).
	Code     int
	Signal   int
	Output   string
	TimedOut bool
	// Err says why the command could not run or was killed.
	Err   string
	Ended time.Time
}

// App is what is known about one app.
type App struct {
	ID string
	Entry
	// Instance is the current instance: starting, running or stopping.
	Instance *Instance
	// Leftover is the process group of an ended instance whose other
	// members are still alive; no new instance starts until it is gone.
	Leftover *Leftover
	// LastEnd is how the last instance ended.
	LastEnd *End
	// Backoff delays the next start after crashes.
	Backoff Backoff
	// Pending is a start Patrol owes the app: after a restart or a
	// config-driven stop, or a restart requested while it was not running.
	Pending *Pending
	// RestartRequested is a one-shot restart asked for by the API while the
	// app runs.
	RestartRequested bool
	// Candidate is a live process found in a keepalive 2 app's pid file
	// while the app has no instance: Plan adopts it instead of starting a
	// duplicate.
	Candidate *Candidate
	// StartError says why the last start failed, until one succeeds.
	StartError string
	// History holds closed instances, oldest first.
	History []Record
	// Starts counts instances started or adopted (restored with the
	// state, so it spans Patrol's restarts).
	Starts int
	// Resumed is set when the state was restored with the last instance
	// ended by Patrol's clean shutdown: the next start resumes the app
	// and is not counted as a restart.
	Resumed bool
	// LastStdout and LastStderr are the log files of the newest instance,
	// kept after it ends (for the log viewer).
	LastStdout string
	LastStderr string
	// Vetting is set while a BeforeStart hook decides about a start;
	// Approved once it allowed it (until the start happens).
	Vetting  bool
	Approved bool
	// HealthFailure is the last health failure of any instance (a failed
	// probe, a missed watchdog, a lost readiness) and HealthFailureAt when
	// it happened.
	HealthFailure   string
	HealthFailureAt time.Time
	// Schedule is a scheduled app's next run (nil for other apps).
	Schedule *Schedule
	// Runs are the earlier runs of a scheduled app with concurrency
	// "allow" that still run alongside Instance (the newest run), oldest
	// first: each ends into history on its own.
	Runs []*Instance
}

// Schedule is the run bookkeeping of an app with "schedule".
type Schedule struct {
	// Spec is the schedule (with its time zone) Next was computed for: a
	// change of it computes Next again.
	Spec string
	// Next is when the next run is due (zero: never).
	Next time.Time
	// Skips counts the runs skipped since Patrol started (concurrency
	// "forbid").
	Skips int
}

// Run returns the earlier run (see Runs) with instance id id, or nil.
func (a *App) Run(id string) *Instance {
	for _, r := range a.Runs {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// Due reports whether a's next scheduled run is due at now.
func (a *App) Due(now time.Time) bool {
	return a.Schedule != nil && !a.Schedule.Next.IsZero() && !now.Before(a.Schedule.Next)
}

// Instance is one run of an app.
type Instance struct {
	// ID is the instance id, a UUIDv4.
	ID string
	// App is the config the instance was started with.
	App *desired.App
	// Revision is the config revision the instance was started with.
	Revision string
	// PID is the leader's pid: the child (keepalive 1) or the daemon
	// (keepalive 2, 0 until its pid file names it).
	PID       int
	PGID      int
	StartTime uint64
	Started   time.Time
	LastSeen  time.Time
	// Launcher is the pid of the process Patrol started while it runs, when
	// it is not the leader (a keepalive 2 launcher, or a keepalive 3/4
	// wrapper whose child pings).
	Launcher     int
	LauncherPGID int
	// LauncherGone is when the launcher exited (keepalive 2).
	LauncherGone time.Time
	// SpawnPGID is the process group Patrol created for the instance (0 for
	// an adopted one): Patrol signals a group only if the instance leads it
	// or Patrol created it.
	SpawnPGID int
	// Adopted is set for an instance Patrol found running instead of
	// starting it.
	Adopted bool
	// PIDFromPing is set once a keepalive 3 or 4 app reported its pid in a
	// ping; a later ping with another pid is a new instance.
	PIDFromPing bool
	// Signalable is false for an instance adopted from a ping whose pid
	// could not be verified: Patrol never signals a pid it cannot trust.
	Signalable bool
	// Stale is set for an instance re-adopted after a Patrol restart whose
	// config changed meanwhile: what changed is unknown, so it is
	// restarted.
	Stale bool
	// LimitsError is why the instance's cgroup limits could not be
	// (re)written, such as memory-max lowered below what the app uses on
	// cgroup v1 ("" when they were).
	LimitsError string
	// RunOnce is set when this instance consumed a run-once.
	RunOnce bool
	// Stopping is set once Patrol asked the instance to stop.
	Stopping *Stopping
	// Stdout and Stderr are the instance's log files.
	Stdout string
	Stderr string
	// Health is the instance's readiness, probes and sd_notify state.
	Health Health
	// Probing is set while exec runs probes for the instance.
	Probing bool
	// DependencyInstances records, for each dependency the app restarts
	// with, the instance of it that ran when this instance started.
	DependencyInstances map[string]string
}

// Stopping records a graceful stop in progress.
type Stopping struct {
	Reason schema.Reason
	Since  time.Time
	// Deadline is when the process group gets SIGKILL.
	Deadline time.Time
	Killed   bool
}

// Leftover is the process group of an ended instance that still has
// members.
type Leftover struct {
	PGID     int
	Since    time.Time
	Deadline time.Time
	Killed   bool
	// Watched: exec wakes the loop when the group's cgroup empties (no
	// polling needed).
	Watched bool
}

// End is how an instance ended.
type End struct {
	Reason schema.Reason
	Exit   *Exit // nil when no process exit was seen (for example a start timeout)
	At     time.Time
	// Fingerprint is the config fingerprint the instance ran with.
	Fingerprint string
	// BySelf is true when the instance ended without Patrol asking it to,
	// or because it failed its liveness check (ping-timeout): restart
	// policies and backoff apply.
	BySelf bool
}

// Succeeded reports whether the instance ended with exit code 0 and no
// signal.
func (e *End) Succeeded() bool {
	return e.Exit != nil && e.Exit.Code == 0 && e.Exit.Signal == 0
}

// LastEndReason is the reason the last instance ended, or "" if none did.
func (a *App) LastEndReason() schema.Reason {
	if a.LastEnd == nil {
		return ""
	}
	return a.LastEnd.Reason
}

// Backoff is the crash-loop state of an app.
type Backoff struct {
	// Crashes counts consecutive instances that ended by themselves before
	// staying up backoff.reset-after.
	Crashes int
	// Until is the earliest time of the next start.
	Until time.Time
	// Fingerprint is the config the delay was computed for; a config change
	// cancels the delay.
	Fingerprint string
}

// Pending is a start Patrol owes an app.
type Pending struct {
	Reason  schema.Reason
	Changes []desired.Change
}

// Candidate is a live process named by a keepalive 2 app's pid file.
type Candidate struct {
	PID       int
	PGID      int
	StartTime uint64
}

// Record is one closed instance in an app's history.
type Record struct {
	InstanceID     string
	PID            int
	Started        time.Time
	LastSeen       time.Time
	Stopped        time.Time
	Disabled       bool
	Restart        bool
	RunOnce        bool
	Shutdown       bool
	ExitCode       int
	Reason         schema.Reason
	ConfigRevision string
	KeyValue       map[string]any
}
