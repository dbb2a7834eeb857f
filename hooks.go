package patrol

import (
	"context"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/exec"
	"github.com/patrolhq/patrol/schema"
)

// Entry names an app or service in hook calls.
type Entry struct {
	Group schema.Group
	ID    string
}

// Hooks are Go functions Patrol calls on lifecycle events: the original
// Patrol's triggers, in a form that fits the reconciler. Every field is
// optional.
//
// Notifications (everything but BeforeStart) never run on the loop
// goroutine and never block it: events are queued per entry, in order, and
// each entry's queue is delivered one event at a time (by a goroutine that
// runs only while the queue holds events); when a queue holds 256 events
// (a hook is slower than its entry's events) further events for that entry
// are dropped and counted (DroppedHookEvents), so supervision never waits
// for a hook. A panicking hook is recovered and logged.
type Hooks struct {
	// OnEvent receives every event (pings included), before the typed
	// hooks below.
	OnEvent func(schema.Event)
	// Started: an instance started; pid is its process (0 for a keepalive
	// 2 daemon not known yet).
	Started func(e Entry, pid int, instanceID string)
	// StartFailed: a start failed or was refused by BeforeStart.
	StartFailed func(e Entry, reason string)
	// Adopted: Patrol took over a running process (a pid file's daemon, an
	// app that pinged in, or an instance re-adopted after a restart).
	Adopted func(e Entry, pid int, instanceID string)
	// Pinged: a keepalive 3 or 4 app pinged.
	Pinged func(e Entry, pid int)
	// Stopping: Patrol asked an instance to stop.
	Stopping func(e Entry, pid int, reason schema.Reason)
	// Exited: an instance ended; h is its history entry (exit code,
	// reason, times).
	Exited func(e Entry, h schema.History)
	// Backoff: the next start of a crash-looping entry waits.
	Backoff func(e Entry, message string)
	// StateChanged: an entry's state changed (running, disabled, ...).
	StateChanged func(e Entry, state schema.State)
	// ConfigLoaded and ConfigError: a reload applied a new revision, or
	// failed (the last good config stays).
	ConfigLoaded func(revision string)
	ConfigError  func(problem string)
	// PatrolStarted and PatrolStopping bracket a run.
	PatrolStarted  func()
	PatrolStopping func()

	// BeforeStart is asked before every start of an app, off the loop
	// goroutine, with Options.BeforeStartTimeout (default 5 s): an error
	// refuses the start, which is recorded as the app's reason and backs
	// off like a failed start. A hook that does not answer in time does not
	// refuse; one that panics refuses.
	BeforeStart func(ctx context.Context, e Entry) error
}

// AppOptions customise how one app is started, like the original Patrol's
// per-app callbacks. They are not part of the config: changing what they
// return restarts nothing.
type AppOptions struct {
	// ExtraArgs are appended after the config's args.
	ExtraArgs []string
	// ExtraEnv is appended after the config's env (PATROL_* still win).
	ExtraEnv []string
	// ExtraFiles become the app's descriptors 3, 4, ... (the caller keeps
	// and closes them).
	ExtraFiles []*os.File
	// Stdin replaces the null device as the app's standard input.
	Stdin io.Reader
	// Stdout and Stderr receive the app's output instead of its log files:
	// when a writer is given, no log file is made for that stream (and
	// std-merge is off).
	Stdout io.Writer
	Stderr io.Writer
}

// hookQueue is how many events an entry's hooks may lag behind.
const hookQueue = 256

// dispatcher delivers events to Go hooks and config hooks, one queue per
// entry. An entry's events are delivered in order by a goroutine that runs
// only while its queue holds events: an idle Patrol with 1,000 apps keeps
// no goroutine and no buffer per app.
type dispatcher struct {
	p       *Patrol
	hooks   Hooks
	mu      sync.Mutex
	queues  map[Entry]*hookQueueState
	wg      sync.WaitGroup
	dropped atomic.Int64
}

// hookQueueState is one entry's undelivered events, and whether a
// goroutine is delivering them.
type hookQueueState struct {
	events     []schema.Event
	delivering bool
}

// DroppedHookEvents is how many events hooks missed because they were
// slower than the events (see Hooks).
func (p *Patrol) DroppedHookEvents() int64 {
	if p.hooks == nil {
		return 0
	}
	return p.hooks.dropped.Load()
}

// run delivers events until ctx ends, then lets the queues drain.
// subscribe subscribes to the loop's events for run; it is called before
// the loop runs, so that hooks see events from the very first.
func (d *dispatcher) subscribe(ctx context.Context) <-chan schema.Event {
	return d.p.loop.Events(ctx, d.hooks.OnEvent != nil || d.hooks.Pinged != nil)
}

func (d *dispatcher) run(events <-chan schema.Event) {
	for ev := range events {
		if ev.Event == schema.EventUnhealthy {
			d.p.metrics.unhealthy.WithLabelValues(ev.ID, string(ev.Reason)).Inc()
		}
		e := Entry{Group: ev.Group, ID: ev.ID}
		d.mu.Lock()
		q := d.queues[e]
		if q == nil {
			q = &hookQueueState{}
			d.queues[e] = q
		}
		if len(q.events) >= hookQueue {
			d.mu.Unlock()
			if n := d.dropped.Add(1); n == 1 || n%100 == 0 {
				d.p.log.Warn("hooks are slower than their events; events dropped", "group", e.Group, "id", e.ID, "dropped", n)
			}
			continue
		}
		q.events = append(q.events, ev)
		if !q.delivering {
			q.delivering = true
			d.wg.Add(1)
			go d.deliver(e, q)
		}
		d.mu.Unlock()
	}
	d.wg.Wait()
}

// deliver calls the hooks for one entry's events, in order, until its
// queue is empty.
func (d *dispatcher) deliver(e Entry, q *hookQueueState) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		if len(q.events) == 0 {
			q.events, q.delivering = nil, false // the buffer goes with the burst
			d.mu.Unlock()
			return
		}
		ev := q.events[0]
		q.events = q.events[1:]
		d.mu.Unlock()
		d.call(e, ev)
		if e.ID != "" && ev.Event != schema.EventPinged {
			d.p.runConfigHook(ev)
		}
	}
}

// call runs the Go hooks for one event, recovering a panic.
func (d *dispatcher) call(e Entry, ev schema.Event) {
	defer func() {
		if r := recover(); r != nil {
			d.p.log.Error("a hook panicked", "event", string(ev.Event), "group", e.Group, "id", e.ID, "panic", r)
		}
	}()
	h := d.hooks
	if h.OnEvent != nil {
		h.OnEvent(ev)
	}
	switch ev.Event {
	case schema.EventStarted:
		if h.Started != nil {
			h.Started(e, ev.PID, ev.InstanceID)
		}
	case schema.EventStartFailed:
		if h.StartFailed != nil {
			h.StartFailed(e, ev.Message)
		}
	case schema.EventAdopted:
		if h.Adopted != nil {
			h.Adopted(e, ev.PID, ev.InstanceID)
		}
	case schema.EventPinged:
		if h.Pinged != nil {
			h.Pinged(e, ev.PID)
		}
	case schema.EventStopping:
		if h.Stopping != nil {
			h.Stopping(e, ev.PID, ev.Reason)
		}
	case schema.EventExited:
		if h.Exited != nil && ev.History != nil {
			h.Exited(e, *ev.History)
		}
	case schema.EventBackoff:
		if h.Backoff != nil {
			h.Backoff(e, ev.Message)
		}
	case schema.EventState:
		if h.StateChanged != nil {
			h.StateChanged(e, ev.State)
		}
	case schema.EventConfigLoaded:
		if h.ConfigLoaded != nil {
			h.ConfigLoaded(ev.ConfigRevision)
		}
	case schema.EventConfigError:
		if h.ConfigError != nil {
			h.ConfigError(ev.Message)
		}
	case schema.EventPatrolStarted:
		if h.PatrolStarted != nil {
			h.PatrolStarted()
		}
	case schema.EventPatrolStopping:
		if h.PatrolStopping != nil {
			h.PatrolStopping()
		}
	}
}

// crashReasons are the ends a config's on-crash hook runs for: the
// instance ended without Patrol asking it to (for a scheduled app: a run
// failed).
var crashReasons = []schema.Reason{schema.ReasonExited, schema.ReasonCrashed, schema.ReasonSignal,
	schema.ReasonPIDGone, schema.ReasonPingTimeout, schema.ReasonStartFailed,
	schema.ReasonLivenessFailed, schema.ReasonStartupFailed, schema.ReasonWatchdog, schema.ReasonOOMKilled,
	schema.ReasonFailed} // a scheduled run's non-zero exit; a completed one is expected

// stopReasons are the ends a config's on-stop hook runs for: Patrol
// stopped the instance.
var stopReasons = []schema.Reason{schema.ReasonStoppedByConfig, schema.ReasonStoppedByAPI,
	schema.ReasonShutdown, schema.ReasonExecuteTimeout}

// runConfigHook runs the config's hook commands for an event (on-start,
// on-exit, on-crash, on-backoff, on-stop), with no shell and the event in
// their environment. Their output goes to Patrol's log; a failing hook
// never affects the entry.
func (p *Patrol) runConfigHook(ev schema.Event) {
	p.mu.Lock()
	st := p.current
	p.mu.Unlock()
	var hooks desired.Hooks
	switch ev.Group {
	case schema.GroupApp:
		a, ok := st.App(ev.ID)
		if !ok {
			return
		}
		hooks = a.Hooks
	case schema.GroupService:
		v, ok := st.Service(ev.ID)
		if !ok {
			return
		}
		hooks = v.Hooks
	default:
		return
	}
	var run [][]string
	var names []string
	add := func(name string, argv []string) {
		if len(argv) > 0 {
			run = append(run, argv)
			names = append(names, name)
		}
	}
	switch ev.Event {
	case schema.EventStarted, schema.EventAdopted:
		add("on-start", hooks.OnStart)
	case schema.EventExited:
		add("on-exit", hooks.OnExit)
		if slices.Contains(crashReasons, ev.Reason) {
			add("on-crash", hooks.OnCrash)
		}
		if slices.Contains(stopReasons, ev.Reason) {
			add("on-stop", hooks.OnStop)
		}
	case schema.EventBackoff:
		add("on-backoff", hooks.OnBackoff)
	case schema.EventReady:
		add("on-ready", hooks.OnReady)
	case schema.EventUnready, schema.EventUnhealthy:
		add("on-unhealthy", hooks.OnUnhealthy)
	}
	for i, argv := range run {
		p.runHookCommand(names[i], argv, hooks, ev)
	}
}

func (p *Patrol) runHookCommand(name string, argv []string, hooks desired.Hooks, ev schema.Event) {
	argv = slices.Clone(argv)
	if !strings.HasPrefix(argv[0], "/") {
		path, err := exec.LookPath(argv[0])
		if err != nil {
			p.log.Error("hook command not found", "hook", name, "group", ev.Group, "id", ev.ID, "err", err)
			return
		}
		argv[0] = path
	}
	code := ""
	if ev.ExitCode != nil {
		code = strconv.Itoa(*ev.ExitCode)
	}
	env := append(os.Environ(),
		"PATROL_EVENT="+name,
		"PATROL_ID="+ev.ID,
		"PATROL_GROUP="+string(ev.Group),
		"PATROL_PID="+pidText(ev.PID),
		"PATROL_EXIT_CODE="+code,
		"PATROL_REASON="+string(ev.Reason),
		"PATROL_INSTANCE_ID="+ev.InstanceID,
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := p.runner.RunCommand(ctx, exec.Command{Argv: argv, Env: env, Timeout: hooks.Timeout})
	out := strings.TrimSpace(string(r.Output))
	switch {
	case r.Err != nil || r.Code != 0:
		p.log.Warn("hook failed", "hook", name, "group", ev.Group, "id", ev.ID, "code", r.Code, "err", r.Err, "output", out)
	default:
		p.log.Info("hook ran", "hook", name, "group", ev.Group, "id", ev.ID, "output", out)
	}
}

func pidText(pid int) string {
	if pid == 0 {
		return ""
	}
	return strconv.Itoa(pid)
}

// appContext builds what exec needs besides the config to start app a.
func (p *Patrol) appContext(a *desired.App, s desired.Settings) exec.AppContext {
	c := exec.AppContext{ParentEnv: os.Environ(), ListenHTTP: s.ListenHTTP, ListenUDP: s.ListenUDP,
		KeepLogs: s.LogRetentionInstances}
	if c.ListenHTTP == nil {
		c.ListenHTTP = []string{p.HTTPAddr()}
	}
	if c.ListenUDP == nil {
		c.ListenUDP = []string{p.UDPAddr()}
	}
	if p.opts.App != nil {
		o := p.opts.App(a.ID)
		c.ExtraArgs, c.ExtraEnv, c.ExtraFiles = o.ExtraArgs, o.ExtraEnv, o.ExtraFiles
		c.Stdin, c.Stdout, c.Stderr = o.Stdin, o.Stdout, o.Stderr
	}
	return c
}
