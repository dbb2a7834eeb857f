package reconcile

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"regexp"
	"runtime/debug"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// Executor is what the loop needs from package exec; the root package wires
// an exec.Runner in, tests may fake it. Every method is called from the loop
// goroutine only.
type Executor interface {
	// StartApp starts one instance of a, registering its processes under
	// tag; s gives the listener addresses for the app's environment. The
	// starts of one pass may call it from several goroutines at once.
	StartApp(a *desired.App, s desired.Settings, tag string, now time.Time) (observed.Launch, error)
	// SignalGroup sends a signal ("SIGTERM") to a process group.
	SignalGroup(pgid int, sig string) error
	// SignalProcess sends a signal to one process.
	SignalProcess(pid int, sig string) error
	GroupAlive(pgid int) bool
	// WatchEmpty arranges a Wake when process group pgid's instance
	// cgroup empties; false when it cannot (the loop then polls).
	WatchEmpty(pgid int) bool
	// SetLimits applies an app's cgroup limits to its running instance
	// (process group pgid) in place.
	SetLimits(pgid int, l desired.Limits) error
	Alive(pid int) bool
	ReadPIDFile(path string) (int, error)
	ProcStat(pid int) (pgid int, startTime uint64, err error)
	VerifyBinary(pid int, binary string) error
	// Watch reports the exit of pid under tag through the loop's Notify.
	Watch(pid int, tag string, role observed.Role) (startTime uint64, err error)
	// Forget drops every registration of tag.
	Forget(tag string)
	// FindSpawned finds processes running exactly argv in dir with env
	// ("PATROL_ID=ID") in their environment, leading their own process
	// group, started within window of at (re-adoption after a crash
	// between a start and its record).
	FindSpawned(argv []string, dir, env string, at time.Time, window time.Duration) []int
	// ServiceArgv is the command line of a service action.
	ServiceArgv(m schema.Management, initdDir, service, verb string) ([]string, error)
	// RunCommand runs a service command to completion, killing it after
	// timeout. The loop calls it from its own goroutines, never the loop
	// goroutine.
	RunCommand(ctx context.Context, argv []string, timeout time.Duration) observed.CommandResult
	// Probe makes probes the probes run for the instance tag, each first
	// due its initial delay after now (none: stop them); results come
	// back through the loop's NotifyProbe. Forget stops them too.
	Probe(tag string, probes []*desired.Probe, now time.Time)
	// AdoptNotify opens again the NOTIFY_SOCKET of an instance that ran
	// before Patrol restarted, accepting its process group pgid and pid.
	AdoptNotify(tag string, pgid, pid int) error
	// WatchLines reports (through NotifyMessage, with LogLine) the first
	// line matching re appended to the instance's log files paths.
	// Forget stops it.
	WatchLines(tag string, paths []string, re *regexp.Regexp)
}

// ErrStopped is returned by requests to a loop that no longer runs.
var ErrStopped = errors.New("patrol is not running")

// ErrUnknownEntry is returned for a request about an entry not in the
// config.
var ErrUnknownEntry = errors.New("unknown entry")

// Options configure a Loop.
type Options struct {
	Log  *slog.Logger
	Exec Executor
	// Now is the clock; default time.Now.
	Now func() time.Time
	// InstanceID identifies this Patrol run (status "instance-id").
	InstanceID string
	// ServiceStatusTimeout and ServiceActionTimeout bound service commands
	// (default 30 s and 3 minutes); ServiceCommands caps how many run at
	// once (default 8).
	ServiceStatusTimeout time.Duration
	ServiceActionTimeout time.Duration
	ServiceCommands      int
	// Store, when set, persists history, overrides, key/value, CAS and the
	// running instances; Persisted is what it held at start, restored (and
	// running instances re-adopted) when Run starts.
	Store     *observed.Store
	Persisted *observed.Persisted
	// OnPass, when set, is called after every pass with its duration (for
	// metrics); it must not block.
	OnPass func(time.Duration)
	// BeforeStart, when set, is asked before every start of an app, off
	// the loop goroutine and with BeforeStartTimeout (default 5 s); an
	// error refuses the start, which then backs off like a failed one. A
	// hook that does not answer in time does not refuse.
	BeforeStart        func(ctx context.Context, k desired.Key) error
	BeforeStartTimeout time.Duration
}

// Loop is the one goroutine that owns Patrol's mutable state: the observed
// snapshot, the overrides and the history. Process exits, config changes,
// API requests and timers only wake it; every pass plans from the whole
// state and executes exactly that plan.
type Loop struct {
	log        *slog.Logger
	exec       Executor
	now        func() time.Time
	instanceID string
	// notEnforced maps limit keys this host cannot enforce to why (set
	// before Run, read only).
	notEnforced map[string]string

	// Owned by the loop goroutine.
	// conf is the config as loaded; file is conf with the scale
	// overrides applied (the replicas they add, without those they
	// remove): what every other part of the loop plans and looks up from.
	conf   *desired.State
	file   *desired.State
	loaded time.Time
	// configErr is why the last attempt to load the file failed, since
	// configErrSince; empty once a load succeeds.
	configErr      string
	configErrSince time.Time
	overrides      map[desired.Key]*desired.Override
	snap           *observed.Snapshot
	tags           map[string]string // instance id -> app id
	started        time.Time
	lastPanic      string
	// states are the entry states last published, to publish changes.
	states map[desired.Key]schema.State
	// dirty lists the entries that may have changed since the last commit
	// (allDirty: every entry), so that the work after a pass or a request
	// is proportional to what it touched, not to the number of entries.
	dirty    map[desired.Key]struct{}
	allDirty bool
	// histCache holds rendered histories (status.go).
	histCache map[desired.Key]*histCache

	bus *Bus

	// Service commands run off the loop goroutine, at most
	// cap(serviceSlots) at once, until serviceCtx ends.
	serviceSlots         chan struct{}
	serviceCtx           context.Context
	serviceCancel        context.CancelFunc
	serviceWG            sync.WaitGroup
	serviceStatusTimeout time.Duration
	serviceActionTimeout time.Duration
	// nextTick is when the next tick marks every service's status due.
	nextTick time.Time

	store     *observed.Store
	restoring *observed.Persisted
	written   map[desired.Key]persisted
	onPass    func(time.Duration)

	beforeStart        func(context.Context, desired.Key) error
	beforeStartTimeout time.Duration

	// Inboxes, safe from any goroutine.
	mu       sync.Mutex
	exits    []observed.Exit
	probes   []observed.ProbeResult
	messages []observed.NotifyMessage
	results  []observed.CommandResult
	vetoes   []veto
	config   *desired.State
	failed   *string // a failed load to report
	woken    bool    // Wake was called: observe again
	wake     chan struct{}
	requests chan request
	force    chan struct{}
	done     chan struct{}
	// firstPass is closed once the first pass has run.
	firstPass chan struct{}

	// digest is countChange's scratch buffer.
	digest []byte
	// light is set by a request that changed nothing a pass plans from
	// (see serve).
	light bool
	// launched holds the launches of the current pass's starts, by app
	// (see launchAll).
	launched map[string]launched
}

type request struct {
	fn   func()
	done chan struct{}
	// read marks a request that changes nothing a pass plans from.
	read bool
}

// New returns a loop for the initial desired state.
func New(opts Options, initial *desired.State) *Loop {
	l := &Loop{
		log:        opts.Log,
		exec:       opts.Exec,
		now:        opts.Now,
		instanceID: opts.InstanceID,
		conf:       initial,
		file:       initial,
		overrides:  map[desired.Key]*desired.Override{},
		snap:       observed.NewSnapshot(),
		tags:       map[string]string{},
		states:     map[desired.Key]schema.State{},
		dirty:      map[desired.Key]struct{}{},
		histCache:  map[desired.Key]*histCache{},
		allDirty:   true,
		bus:        NewBus(),
		wake:       make(chan struct{}, 1),
		requests:   make(chan request),
		launched:   map[string]launched{},
		force:      make(chan struct{}, 1),
		done:       make(chan struct{}),
		firstPass:  make(chan struct{}),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.instanceID == "" {
		l.instanceID = uuid.NewString()
	}
	l.serviceStatusTimeout = cmp.Or(opts.ServiceStatusTimeout, DefaultServiceStatusTimeout)
	l.serviceActionTimeout = cmp.Or(opts.ServiceActionTimeout, DefaultServiceActionTimeout)
	l.serviceSlots = make(chan struct{}, cmp.Or(opts.ServiceCommands, DefaultServiceCommands))
	l.serviceCtx, l.serviceCancel = context.WithCancel(context.Background())
	l.store, l.restoring = opts.Store, opts.Persisted
	l.onPass = opts.OnPass
	l.beforeStart, l.beforeStartTimeout = opts.BeforeStart, cmp.Or(opts.BeforeStartTimeout, 5*time.Second)
	l.written = map[desired.Key]persisted{}
	l.loaded = l.now()
	return l
}

// Wake makes the loop observe and plan again (exec calls it when an
// instance's cgroup has emptied). It never blocks.
func (l *Loop) Wake() {
	l.mu.Lock()
	l.woken = true
	l.mu.Unlock()
	l.poke()
}

// UseLimits tells the loop which limits this host cannot enforce, and
// why (by limit key), for status and plans. Call it before Run.
func (l *Loop) UseLimits(notEnforced map[string]string) { l.notEnforced = notEnforced }

// Notify queues a process exit for the loop. It never blocks; package exec
// calls it from its reaper.
func (l *Loop) Notify(ev observed.Exit) {
	l.mu.Lock()
	l.exits = append(l.exits, ev)
	l.mu.Unlock()
	l.poke()
}

// SetConfig hands the loop a new desired state; the latest one wins, and
// it clears a reported load failure.
func (l *Loop) SetConfig(st *desired.State) {
	l.mu.Lock()
	l.config = st
	l.failed = nil
	l.mu.Unlock()
	l.poke()
}

// ConfigFailed reports that loading the file failed: the last good config
// stays in force and status shows the error until a load succeeds.
func (l *Loop) ConfigFailed(problem string) {
	l.mu.Lock()
	l.failed = &problem
	l.config = nil // a failure after a success: the failure is the news
	l.mu.Unlock()
	l.poke()
}

// Kill makes a shutting-down loop stop waiting: every remaining process
// group gets SIGKILL and Run returns.
func (l *Loop) Kill() {
	select {
	case l.force <- struct{}{}:
	default:
	}
}

// Events returns the lifecycle events published from now on, until ctx
// ends; pings asks for ping events too (there are many).
func (l *Loop) Events(ctx context.Context, pings bool) <-chan schema.Event {
	return l.bus.Subscribe(ctx, pings)
}

// emit publishes an event, stamped with the config revision in force.
func (l *Loop) emit(ev schema.Event) {
	if ev.ConfigRevision == "" {
		ev.ConfigRevision = l.file.Revision()
	}
	l.bus.Publish(ev, l.now())
}

// Announce publishes one of Patrol's own events from outside the loop
// (the config source's connection); it is safe from any goroutine.
func (l *Loop) Announce(ev schema.Event) { l.bus.Publish(ev, l.now()) }

// touch marks an entry as possibly changed since the last commit.
func (l *Loop) touch(g schema.Group, id string) {
	l.dirty[desired.Key{Group: g, ID: id}] = struct{}{}
}

// touchAll marks every entry (config reloads, ticks, restores).
func (l *Loop) touchAll() { l.allDirty = true }

// commit finishes a pass or a request for the entries it touched: their
// CAS counters, their state events, and their persisted state (synced
// first when sync is set: an API change is durable before its reply).
func (l *Loop) commit(now time.Time, sync bool) {
	keys := l.dirty
	if l.allDirty {
		keys = map[desired.Key]struct{}{}
		for id := range l.snap.Apps {
			keys[desired.Key{Group: schema.GroupApp, ID: id}] = struct{}{}
		}
		for id := range l.snap.Services {
			keys[desired.Key{Group: schema.GroupService, ID: id}] = struct{}{}
		}
		for k := range l.states {
			keys[k] = struct{}{}
		}
	}
	eff := l.effective()
	for k := range keys {
		l.countChange(eff, k)
		l.publishState(eff, k, now)
	}
	l.persist(keys, sync)
	clear(l.dirty) // keys was l.dirty or a map of its own; neither is kept
	l.allDirty = false
}

// publishState publishes an EventState when an entry's state changed since
// it was last published.
func (l *Loop) publishState(eff *desired.State, k desired.Key, now time.Time) {
	var (
		st  schema.State
		why string
		ev  schema.Event
	)
	switch k.Group {
	case schema.GroupApp:
		oa := l.snap.Apps[k.ID]
		da, _ := eff.App(k.ID)
		if oa == nil || (da == nil && oa.Instance == nil && oa.Leftover == nil) {
			delete(l.states, k) // removed and gone
			return
		}
		st, why = l.state(eff, da, oa, now)
		ev = schema.Event{Restarts: max(0, oa.Starts-1)}
		if oa.Instance != nil {
			ev.PID, ev.InstanceID = oa.Instance.PID, oa.Instance.ID
		}
	case schema.GroupService:
		if _, ok := eff.Service(k.ID); !ok || l.snap.Services[k.ID] == nil {
			delete(l.states, k)
			return
		}
		r := l.serviceResponse(eff, k.ID, false)
		st, why = r.State, r.Reason
	}
	if l.states[k] == st {
		return
	}
	l.states[k] = st
	ev.Event, ev.Group, ev.ID, ev.State, ev.Message = schema.EventState, k.Group, k.ID, st, why
	l.emit(ev)
}

// UseStore makes the loop persist its state in store and restore p when
// Run starts. It must be called before Run.
func (l *Loop) UseStore(store *observed.Store, p *observed.Persisted) {
	l.store, l.restoring = store, p
}

// LogsInUse returns the log files of running instances (which log
// retention must not remove) and the log directory of every app.
func (l *Loop) LogsInUse(ctx context.Context) (inUse map[string]bool, dirs []string, err error) {
	err = l.read(ctx, func() {
		inUse = map[string]bool{}
		for _, oa := range l.snap.Apps {
			if inst := oa.Instance; inst != nil {
				for _, f := range []string{inst.Stdout, inst.Stderr} {
					if f != "" {
						inUse[f] = true
					}
				}
				dirs = append(dirs, inst.App.LogDirectory)
			}
		}
		for _, a := range l.file.Apps() {
			dirs = append(dirs, a.LogDirectory)
		}
	})
	return inUse, dirs, err
}

// FirstPass is closed once the loop's first pass has run: every app
// Patrol starts at once has been started.
func (l *Loop) FirstPass() <-chan struct{} { return l.firstPass }

// Done is closed when Run has returned.
func (l *Loop) Done() <-chan struct{} { return l.done }

func (l *Loop) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run runs the loop until ctx is cancelled and every app has been stopped
// (graceful shutdown, DESIGN §5.4), or until Kill.
func (l *Loop) Run(ctx context.Context) error {
	defer close(l.done)
	defer l.stopServices()
	l.started = l.now()
	l.snap.Started = l.started
	for _, a := range l.file.Apps() {
		l.app(a.ID)
	}
	for _, v := range l.file.Services() {
		l.service(v.ID)
	}
	l.emit(schema.Event{Event: schema.EventPatrolStarted, Message: l.instanceID})
	l.restore(l.restoring, l.started)
	l.restoring = nil
	var pinged []string
	for _, a := range l.file.Apps() {
		if oa := l.snap.Apps[a.ID]; oa != nil && awaitsPings(l.snap, l.file, a, oa, l.started) {
			pinged = append(pinged, a.ID)
		}
	}
	if len(pinged) > 0 {
		l.log.Info("apps that ping wait for running instances to ping in before they are started", "apps", pinged,
			"until", PingGrace(l.snap, l.file).Format(time.RFC3339))
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	ctxDone := ctx.Done()
	first := true
	pass := true
	for {
		if pass {
			l.drain()
			next := l.step()
			if first {
				close(l.firstPass)
				first = false
			}
			if l.snap.Shutdown && l.idle() {
				l.log.Info("all apps stopped")
				return nil
			}
			timer.Reset(max(0, next.Sub(l.now())))
		}
		pass = true
		select {
		case <-ctxDone:
			ctxDone = nil
			l.snap.Shutdown = true
			l.log.Info("shutting down: stopping every app")
			l.emit(schema.Event{Event: schema.EventPatrolStopping})
		case <-l.wake:
			pass = l.drain()
		case r := <-l.requests:
			pass = l.serve(r)
			if l.batch() {
				pass = true
			}
		case <-l.force:
			l.killAll()
			return nil
		case <-timer.C:
		}
	}
}

// maxBatch bounds the requests one pass follows.
const maxBatch = 256

// serve applies one request and answers it; it reports whether a pass
// should follow. A read, a refused request (or one whose CAS did not
// match), a request that asks for no change and a ping that only refreshed
// a running instance's last-seen time change nothing a pass plans from
// (a later ping deadline at most makes the timer already set fire early,
// for a pass that finds nothing to do), so none follows them: a ping
// costs the same with 1 app configured as with 1,000.
func (l *Loop) serve(r request) (pass bool) {
	l.light = r.read
	r.fn()
	close(r.done)
	return !l.light
}

// batch serves the requests already waiting, up to maxBatch, before the
// pass that follows them: under a burst (many clients pinging, a GUI
// reading) one pass serves them all instead of one pass per request. It
// reports whether a pass should follow.
func (l *Loop) batch() (pass bool) {
	for range maxBatch {
		select {
		case r := <-l.requests:
			if l.serve(r) {
				pass = true
			}
		default:
			return pass
		}
	}
	return pass
}

// do runs fn on the loop goroutine and waits for it; a pass follows.
func (l *Loop) do(ctx context.Context, fn func()) error {
	return l.send(ctx, request{fn: fn, done: make(chan struct{})})
}

// read runs fn, which only reads, on the loop goroutine and waits for it;
// no pass follows for it.
func (l *Loop) read(ctx context.Context, fn func()) error {
	return l.send(ctx, request{fn: fn, done: make(chan struct{}), read: true})
}

func (l *Loop) send(ctx context.Context, r request) error {
	select {
	case l.requests <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return ErrStopped
	}
	<-r.done
	return nil
}

// drain applies queued exits, probe results, notify messages, command
// results and the latest config. It reports whether a pass should follow:
// probe results and notify messages that confirm what was known need
// none, so 1,000 apps probed every second cost no pass each.
func (l *Loop) drain() (pass bool) {
	l.mu.Lock()
	exits := l.exits
	l.exits = nil
	probes := l.probes
	l.probes = nil
	messages := l.messages
	l.messages = nil
	results := l.results
	l.results = nil
	vetoes := l.vetoes
	l.vetoes = nil
	cfg := l.config
	l.config = nil
	failed := l.failed
	l.failed = nil
	woken := l.woken
	l.woken = false
	l.mu.Unlock()
	for _, ev := range exits {
		l.applyExit(ev)
	}
	for _, r := range probes {
		if l.applyProbe(r) {
			pass = true
		}
	}
	for _, m := range messages {
		if l.applyNotify(m) {
			pass = true
		}
	}
	for _, r := range results {
		l.applyResult(r)
	}
	for _, v := range vetoes {
		l.applyVeto(v)
	}
	if failed != nil {
		if l.configErr == "" {
			l.configErrSince = l.now()
		}
		l.configErr = *failed
		l.emit(schema.Event{Event: schema.EventConfigError, Message: *failed})
	}
	if cfg != nil {
		if l.configErr != "" {
			l.log.Info("config error cleared", "revision", cfg.Revision(), "error-since", l.configErrSince.Format(time.RFC3339))
		}
		l.configErr, l.configErrSince = "", time.Time{}
		l.applyConfig(cfg)
	}
	return pass || woken || len(exits) > 0 || len(results) > 0 || len(vetoes) > 0 || failed != nil || cfg != nil
}

func (l *Loop) applyConfig(st *desired.State) {
	if st.Revision() == l.file.Revision() {
		l.log.Debug("config unchanged", "revision", st.Revision())
		l.loaded = l.now()
		return
	}
	l.log.Info("config loaded", "revision", st.Revision(), "previous", l.file.Revision())
	old := l.file
	l.conf, l.file = st, st
	l.rescale(l.now())
	l.forgetSchedules()
	l.loaded = l.now()
	l.touchAll()
	l.emit(schema.Event{Event: schema.EventConfigLoaded, Message: st.Path()})
	// The file's keyvalue is the entry's starting data: when it changes in
	// the file, the new value replaces the runtime data (the file wins).
	for _, a := range st.Apps() {
		if prev, ok := old.App(a.ID); ok && !sameKV(prev.KeyValue, a.KeyValue) {
			if oa := l.snap.Apps[a.ID]; oa != nil {
				oa.KeyValue = cloneKV(a.KeyValue)
				oa.KeyValueWrites++
			}
		}
	}
	for _, v := range st.Services() {
		if prev, ok := old.Service(v.ID); ok && !sameKV(prev.KeyValue, v.KeyValue) {
			if os := l.snap.Services[v.ID]; os != nil {
				os.KeyValue = cloneKV(v.KeyValue)
				os.KeyValueWrites++
			}
		}
	}
}

func sameKV(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// maxPasses bounds the passes of one step: a pass that starts apps may
// unblock their dependents in the next.
const maxPasses = 8

// step observes, plans and executes until the plan is empty, and returns
// when the loop should next wake up.
func (l *Loop) step() (next time.Time) {
	if l.onPass != nil {
		start := time.Now()
		defer func() { l.onPass(time.Since(start)) }()
	}
	defer func() {
		if p := recover(); p != nil {
			l.dropLaunched()
			l.lastPanic = fmt.Sprint(p)
			l.log.Error("panic in reconcile pass; continuing", "panic", p, "stack", string(debug.Stack()))
			next = l.now().Add(time.Second)
		}
	}()
	if now := l.now(); !now.Before(l.nextTick) {
		// The tick: every service's status is checked again.
		l.nextTick = now.Add(l.file.Settings().TickEvery)
		for _, os := range l.snap.Services {
			os.StatusDue = true
		}
		l.touchAll() // a full sweep once per tick catches anything missed
	}
	for range maxPasses {
		now := l.now()
		l.pruneOverrides(now)
		l.observe(now)
		actions := Plan(l.effective(), l.snap, now)
		l.writeIntents(actions, now)
		l.launchAll(actions, now)
		acted := false
		for _, a := range actions {
			if a.Kind != KindKeep && a.Kind != KindWait {
				acted = true
			}
			l.execute(a, now)
		}
		l.dropLaunched() // none are left unless a start was not executed
		if !acted {
			break
		}
	}
	l.commit(l.now(), false)
	return l.nextWake(l.now())
}

// effective is the file plus the overrides.
func (l *Loop) effective() *desired.State { return l.file.WithOverrides(l.overrides) }

func (l *Loop) pruneOverrides(now time.Time) {
	for k, o := range l.overrides {
		if why := l.file.Stale(k, o, now); why != "" {
			l.log.Info("override dropped", "group", k.Group, "id", k.ID, "why", why)
			l.clearOverride(k)
			l.touch(k.Group, k.ID)
		}
	}
}

// rescale makes l.file the config with the scale overrides in force.
func (l *Loop) rescale(now time.Time) {
	prev := l.file
	l.file = scaled(l.conf, l.overrides, now)
	if prev != l.file {
		l.touchAll()
	}
}

// scaled is conf with the scale overrides of ov that are in force against
// it.
func scaled(conf *desired.State, ov map[desired.Key]*desired.Override, now time.Time) *desired.State {
	var scale map[string]int
	for k, o := range ov {
		if o.Replicas != 0 && k.Group == schema.GroupApp && conf.Stale(k, o, now) == "" {
			if scale == nil {
				scale = map[string]int{}
			}
			scale[k.ID] = o.Replicas
		}
	}
	return conf.Scaled(scale)
}

// app returns the observed app with id, creating it.
func (l *Loop) app(id string) *observed.App {
	oa := l.snap.Apps[id]
	if oa == nil {
		oa = &observed.App{ID: id}
		oa.CAS = newCAS()
		if da, ok := l.file.App(id); ok {
			oa.KeyValue = cloneKV(da.KeyValue)
		}
		l.snap.Apps[id] = oa
	}
	return oa
}

// idle reports whether no process Patrol started is left.
func (l *Loop) idle() bool {
	for _, oa := range l.snap.Apps {
		if oa.Instance != nil || oa.Leftover != nil || len(oa.Runs) > 0 {
			return false
		}
	}
	return true
}

// observe refreshes what the loop learns by looking rather than by events:
// pid files, leftover process groups, last-seen times.
func (l *Loop) observe(now time.Time) {
	l.schedules(now)
	for id, oa := range l.snap.Apps {
		if lo := oa.Leftover; lo != nil && !l.exec.GroupAlive(lo.PGID) {
			oa.Leftover = nil
			l.touch(schema.GroupApp, id)
		}
		inst := oa.Instance
		if inst == nil {
			continue
		}
		if inst.App.Keepalive == schema.KeepalivePIDApp && inst.PID == 0 {
			l.touch(schema.GroupApp, id)
			l.learnDaemon(id, oa, now)
			if st := inst.Stopping; st != nil {
				switch {
				case inst.PID > 0:
					// The daemon showed up while its start was being
					// stopped: stop it too, never leave it behind.
					sig := inst.App.StopSignal
					if st.Killed {
						sig = "SIGKILL"
					}
					l.signal(inst, sig)
				case inst.Launcher == 0 && !inst.LauncherGone.IsZero() && !now.Before(inst.LauncherGone.Add(daemonGrace(inst.App))):
					// The launcher is gone and no daemon showed up: there is
					// nothing left to stop.
					l.closeInstance(oa, nil, now, "")
				}
			}
		}
	}
	// Keepalive 2 apps without an instance: is their daemon already
	// running (Patrol restarted, or someone started it by hand)?
	for _, a := range l.file.Apps() {
		if a.Keepalive != schema.KeepalivePIDApp || l.snap.Shutdown {
			continue
		}
		oa := l.snap.Apps[a.ID]
		if oa != nil && (oa.Instance != nil || oa.Leftover != nil) {
			continue
		}
		c := l.candidate(a)
		if c == nil && (oa == nil || oa.Candidate == nil) {
			continue
		}
		l.app(a.ID).Candidate = c
		l.touch(schema.GroupApp, a.ID)
	}
}

// candidate returns the live process named by a's pid file, if any.
func (l *Loop) candidate(a *desired.App) *observed.Candidate {
	pid, err := l.exec.ReadPIDFile(a.PIDPath)
	if err != nil || !l.exec.Alive(pid) {
		return nil
	}
	if a.PIDVerify {
		if err := l.exec.VerifyBinary(pid, a.Binary); err != nil {
			return nil
		}
	}
	pgid, st, err := l.exec.ProcStat(pid)
	if err != nil {
		return nil
	}
	return &observed.Candidate{PID: pid, PGID: pgid, StartTime: st}
}

// learnDaemon reads a starting keepalive 2 instance's pid file.
func (l *Loop) learnDaemon(id string, oa *observed.App, now time.Time) {
	inst := oa.Instance
	a := inst.App
	pid, err := l.exec.ReadPIDFile(a.PIDPath)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			oa.StartError = err.Error()
		}
		return
	}
	if a.PIDVerify {
		if err := l.exec.VerifyBinary(pid, a.Binary); err != nil {
			oa.StartError = err.Error()
			return
		}
	}
	st, err := l.exec.Watch(pid, inst.ID, observed.RoleLeader)
	if err != nil {
		oa.StartError = fmt.Sprintf("pid file %s names pid %d: %v", a.PIDPath, pid, err)
		return
	}
	pgid, _, err := l.exec.ProcStat(pid)
	if err != nil {
		pgid = 0
	}
	inst.PID, inst.PGID, inst.StartTime, inst.LastSeen = pid, pgid, st, now
	oa.StartError = ""
	l.log.Info("daemon running", "app", id, "pid", pid, "instance", inst.ID)
	l.updateReady(id, inst, now, "the daemon wrote its pid file")
}

// daemonGrace is how long a keepalive 2 instance stopped while starting
// waits, after its launcher is gone, for a daemon to show up in the pid
// file (a double-forking launcher may exit just before its daemon writes
// it), so that no daemon is left behind.
func daemonGrace(a *desired.App) time.Duration { return min(a.StartTimeout, time.Second) }

// nextWake is the earliest time something needs the loop's attention
// without an event: the tick, stop deadlines, backoff ends, timeouts.
func (l *Loop) nextWake(now time.Time) time.Time {
	next := l.nextTick
	soon := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	const poll = 25 * time.Millisecond
	for id, oa := range l.snap.Apps {
		if s := oa.Schedule; s != nil && s.Next.After(now) {
			soon(s.Next)
		}
		for _, run := range oa.Runs {
			switch st := run.Stopping; {
			case st != nil && !st.Killed:
				soon(st.Deadline)
			case st == nil && run.App.ExecuteTimeout > 0:
				soon(run.Started.Add(run.App.ExecuteTimeout))
			}
		}
		if lo := oa.Leftover; lo != nil {
			if !lo.Watched {
				soon(now.Add(poll)) // watch the group empty
			}
			if !lo.Killed && !lo.Deadline.IsZero() {
				soon(lo.Deadline)
			}
		}
		if inst := oa.Instance; inst != nil {
			if inst.App.Keepalive == schema.KeepalivePIDApp && inst.PID == 0 {
				soon(now.Add(poll)) // read the pid file again soon
				soon(inst.Started.Add(inst.App.StartTimeout))
				if !inst.LauncherGone.IsZero() {
					soon(inst.LauncherGone.Add(daemonGrace(inst.App)))
				}
			}
			if st := inst.Stopping; st != nil {
				if !st.Killed {
					soon(st.Deadline)
				}
				continue
			}
			if inst.App.ExecuteTimeout > 0 {
				soon(inst.Started.Add(inst.App.ExecuteTimeout))
			}
			if inst.App.Keepalive.Pinged() {
				soon(PingDeadline(inst, l.file.Settings().PingTimeout))
			}
			if inst.Health.Watchdog > 0 {
				soon(inst.Health.WatchdogDeadline)
			}
			continue
		}
		if a, ok := l.file.App(id); ok && a.Keepalive.Pinged() {
			if g := l.started.Add(2 * l.file.Settings().PingTimeout); g.After(now) {
				soon(g)
			}
		}
		if a, ok := l.file.App(id); ok && oa.Backoff.Until.After(now) && oa.Backoff.Fingerprint == a.Fingerprint() {
			soon(oa.Backoff.Until)
		}
	}
	for _, o := range l.overrides {
		if !o.Expires.IsZero() {
			soon(o.Expires)
		}
	}
	for id, os := range l.snap.Services {
		if ds, ok := l.file.Service(id); ok && os.Backoff.Until.After(now) && os.Backoff.Fingerprint == ds.Fingerprint() {
			soon(os.Backoff.Until)
		}
	}
	return next
}

// killAll sends SIGKILL to every process group Patrol still has and waits
// (briefly) for them to die.
func (l *Loop) killAll() {
	var groups []int
	for _, oa := range l.snap.Apps {
		if inst := oa.Instance; inst != nil {
			groups = append(groups, inst.PGID, inst.LauncherPGID)
		}
		for _, run := range oa.Runs {
			groups = append(groups, run.PGID)
		}
		if oa.Leftover != nil {
			groups = append(groups, oa.Leftover.PGID)
		}
	}
	for _, g := range groups {
		if g > 0 {
			_ = l.exec.SignalGroup(g, "SIGKILL")
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, g := range groups {
		for g > 0 && l.exec.GroupAlive(g) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	l.log.Warn("killed every remaining process group", "groups", len(groups))
}

// removeStalePIDFile removes a keepalive 2 app's pid file before a start,
// so that the pid the new daemon writes is not mistaken for an old one.
// The loop only starts a keepalive 2 app when the file names no live
// process (otherwise it adopts that process).
func removeStalePIDFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
