// Package patrol is Patrol's embedding API: the daemon that `patrol run`
// runs, usable from Go programs. It assembles the packages of the module
// (desired, observed, reconcile, exec, api) into one supervisor; cmd/patrol
// is a thin command line over it.
package patrol

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/patrolhq/patrol/api"
	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/exec"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/reconcile"
	"github.com/patrolhq/patrol/schema"
)

// version is set at link time with
// -ldflags "-X github.com/patrolhq/patrol.version=v1.2.3".
var version string

// Version returns Patrol's version: the link-time version, else the module
// version from the build information, else "devel".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Launcher must be called first thing in main by a program that runs
// Patrol and has apps with umask or rlimits: such an app is started
// through the program's own executable, which sets them and then execs the
// app. When this process was started as that launcher, Launcher does not
// return. The patrol command calls it.
func Launcher() { exec.Launcher() }

// IdentityProblem says why app a could not start as its user and group on
// this host now ("" when it could): a user or group that does not exist,
// or another user while Patrol is not root. `patrol validate` warns about
// it (a host other than the one validating may well have the user).
func IdentityProblem(a *desired.App) string {
	if _, err := exec.ResolveIdentity(a); err != nil {
		return err.Error()
	}
	return ""
}

// LoadConfig loads and validates the config file at path: the same pipeline
// `patrol run` uses, minus starting anything. Its error lists every problem
// (see Problems).
func LoadConfig(path string) (*desired.State, error) {
	return desired.Load(path)
}

// Problems flattens a config error into one line per problem, each
// "json.path: message".
func Problems(err error) []string { return desired.Problems(err) }

// Signals Patrol reacts to, for the command line's signal wiring.
var (
	// ShutdownSignals start a graceful shutdown; a second one forces it.
	ShutdownSignals = exec.ShutdownSignals
	// ReloadSignal reloads the config file.
	ReloadSignal = exec.ReloadSignal
)

// Options configure a Patrol.
type Options struct {
	// ConfigPath is the config file (default "config.json"), watched and
	// reloaded when it changes.
	ConfigPath string
	// Config, instead of ConfigPath, is a config built in code; it is
	// validated exactly like a file. Relative working directories resolve
	// against ConfigDir (default: the current directory), which also holds
	// the default state directory. There is no file to watch or reload.
	Config    *schema.Config
	ConfigDir string
	// HTTPAddr and UDPAddr override the config's http.listen and
	// udp.listen.
	HTTPAddr string
	UDPAddr  string
	// StateDir holds persisted state (default .patrol/ beside the config).
	StateDir string
	// Log receives Patrol's logs (default: discarded).
	Log *slog.Logger
	// ServiceStatusTimeout and ServiceActionTimeout bound service commands
	// (defaults 30 s and 3 minutes, as the original Patrol).
	ServiceStatusTimeout time.Duration
	ServiceActionTimeout time.Duration
	// Hooks are Go functions called on lifecycle events (see Hooks).
	Hooks Hooks
	// BeforeStartTimeout bounds Hooks.BeforeStart (default 5 s).
	BeforeStartTimeout time.Duration
	// App, when set, is called before each start of an app for its extra
	// arguments, environment, files and standard streams. Keep it quick:
	// the loop waits for it. When a pass starts several apps, it is called
	// for them from up to four goroutines at once (never twice at once for
	// one app), so it must be safe for concurrent use.
	App func(id string) AppOptions
	// Source, instead of ConfigPath, reads the config from the fleet's
	// etcd: the host's key layered on the common one, watched (see
	// SourceOptions). Relative paths resolve against ConfigDir (default:
	// the current directory), which also holds the default state
	// directory, where the last good config read is kept.
	Source *SourceOptions
	// SettleMemory, once the first pass has started every app and start-up
	// is over, returns the start-up's garbage to the OS
	// (debug.FreeOSMemory) and drops the process's mappings of the
	// executable's read-only pages that start-up touched
	// (exec.ReleaseImagePages): an idle Patrol then holds only what it
	// uses. `patrol run` sets it; it acts on the whole process, so a
	// program embedding Patrol decides for itself.
	SettleMemory bool
}

// settleAfter is how long after the first pass SettleMemory acts: the
// launches of that pass and the watcher's first read are over by then.
const settleAfter = 2 * time.Second

// Patrol is one supervisor.
type Patrol struct {
	opts  Options
	log   *slog.Logger
	state *desired.State // the config loaded at New
	loop  *reconcile.Loop

	runner  *exec.Runner
	prober  *exec.Prober // set while Run runs
	lines   *exec.LineWatcher
	source  *etcdSource // with Options.Source
	metrics *metrics
	hooks   *dispatcher
	usage   usageTracker

	mu       sync.Mutex
	current  *desired.State // the last config loaded (for the API's token)
	httpAddr string         // bound addresses, once Run listens
	udpAddr  string
	ready    chan struct{}
}

// New loads the config; an invalid config is an error listing every
// problem (see Problems). Nothing is started until Run.
func New(opts Options) (*Patrol, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		st  *desired.State
		err error
	)
	var source *etcdSource
	if opts.Source != nil {
		dir := opts.ConfigDir
		if dir == "" {
			if dir, err = os.Getwd(); err != nil {
				return nil, err
			}
		}
		opts.ConfigDir = dir
		stateDir := cmp.Or(opts.StateDir, filepath.Join(dir, ".patrol"))
		if source, st, err = loadSource(*opts.Source, dir, stateDir); err != nil {
			return nil, err
		}
	} else if opts.Config != nil {
		dir := opts.ConfigDir
		if dir == "" {
			if dir, err = os.Getwd(); err != nil {
				return nil, err
			}
		}
		opts.ConfigDir = dir
		st, err = desired.FromConfig(opts.Config, desired.Options{Dir: dir})
	} else {
		if opts.ConfigPath == "" {
			opts.ConfigPath = "config.json"
		}
		st, err = desired.Load(opts.ConfigPath)
	}
	if err != nil {
		return nil, err
	}
	p := &Patrol{opts: opts, log: log, state: st, current: st, ready: make(chan struct{}), source: source}
	if source != nil {
		source.p = p
	}
	p.metrics = newMetrics(p)
	lo := reconcile.Options{
		Log: log, Exec: (*executor)(p), OnPass: func(d time.Duration) { p.metrics.pass.Observe(d.Seconds()) },
		ServiceStatusTimeout: opts.ServiceStatusTimeout, ServiceActionTimeout: opts.ServiceActionTimeout,
		BeforeStartTimeout: opts.BeforeStartTimeout,
	}
	if bs := opts.Hooks.BeforeStart; bs != nil {
		lo.BeforeStart = func(ctx context.Context, k desired.Key) error { return bs(ctx, Entry{Group: k.Group, ID: k.ID}) }
	}
	p.loop = reconcile.New(lo, st)
	p.runner = exec.NewRunner(log, p.loop.Notify)
	p.runner.OnNotify(p.loop.NotifyMessage)
	p.runner.OnEmpty(p.loop.Wake)
	p.usage.measure = p.runner.Usage
	p.lines = exec.NewLineWatcher(p.loop.NotifyMessage)
	p.hooks = &dispatcher{p: p, hooks: opts.Hooks, queues: map[Entry]*hookQueueState{}}
	return p, nil
}

// configDir is the directory relative paths resolve against: the config
// file's, or Options.ConfigDir.
func (p *Patrol) configDir() string {
	if p.state.Path() != "" {
		return filepath.Dir(p.state.Path())
	}
	return p.opts.ConfigDir
}

// Ready is closed once Run has bound its listeners and started the loop.
func (p *Patrol) Ready() <-chan struct{} { return p.ready }

// HTTPAddr is the address the HTTP server is bound to, once Ready.
func (p *Patrol) HTTPAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.httpAddr
}

// UDPAddr is the address the UDP API is bound to, once Ready.
func (p *Patrol) UDPAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.udpAddr
}

// protectReads is the current http.protect-reads.
func (p *Patrol) protectReads() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current.Settings().HTTPProtectReads
}

// layout is the current timestamp layout.
func (p *Patrol) layout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current.Settings().TimestampLayout
}

// token is the current http.token.
func (p *Patrol) token() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current.Settings().HTTPToken
}

// Run supervises until ctx is cancelled, then stops every app gracefully
// (stop-signal, then SIGKILL after stop-timeout) and returns. Kill cuts
// the wait short.
func (p *Patrol) Run(ctx context.Context) error {
	// The state directory is locked first, against a second Patrol, which
	// fails here: before it listens, logs that it does, or reads the state.
	stateDir := p.opts.StateDir
	if stateDir == "" {
		stateDir = filepath.Join(p.configDir(), ".patrol")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	lock, err := exec.LockDir(stateDir)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer lock.Close()
	settings := p.state.Settings()
	httpAddr := cmp.Or(p.opts.HTTPAddr, settings.HTTPListen)
	var certs *certReloader
	if settings.HTTPTLSCert != "" {
		var err error
		if certs, err = newCertReloader(settings.HTTPTLSCert, settings.HTTPTLSKey); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	if certs != nil {
		ln = tls.NewListener(ln, certs.config())
	}
	udpAddr := cmp.Or(p.opts.UDPAddr, settings.UDPListen)
	pc, err := net.ListenPacket("udp", udpAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("udp listen: %w", err)
	}
	p.mu.Lock()
	p.httpAddr, p.udpAddr = ln.Addr().String(), pc.LocalAddr().String()
	p.mu.Unlock()
	p.log.Info("http listening", "addr", p.httpAddr, "tls", certs != nil)
	p.log.Info("udp listening", "addr", p.udpAddr)

	// The state: restored (and running instances re-adopted) when the
	// loop starts.
	store, persisted, err := observed.OpenStoreLimited(stateDir, p.log, p.state.Settings().KeyValue)
	if err != nil {
		var ce *observed.CorruptError
		if !errors.As(err, &ce) {
			ln.Close()
			pc.Close()
			return fmt.Errorf("state: %w", err)
		}
		p.log.Error("the saved state was damaged and set aside; starting with no saved state (history, overrides and key/value are lost, running apps are not adopted)", "err", err)
	}
	defer store.Close()
	p.loop.UseStore(store, persisted)

	// A cgroup per app instance where the host allows it, under a
	// directory named after the state directory (a restarted Patrol
	// finds its instances' cgroups again).
	sum := sha256.Sum256([]byte(stateDir))
	cg := exec.DetectCgroups(p.state.Settings().CgroupRoot, "patrol-"+hex.EncodeToString(sum[:4]))
	p.runner.UseCgroups(cg)
	p.loop.UseLimits(cg.NotEnforced)
	if cg.Root != "" {
		p.log.Info("cgroups: each app instance in its own", "root", cg.Root)
	} else {
		p.log.Info("cgroups not used; apps are tracked by process group", "why", cg.RootWhy)
	}
	p.log.Info("cgroup limits", "v2", slices.Sorted(maps.Keys(cg.V2)), "v1", slices.Sorted(maps.Keys(cg.V1)))
	for _, k := range desired.LimitKeys {
		if why := cg.NotEnforced[k]; why != "" {
			p.log.Info("cgroup limit not enforced on this host", "limit", k, "why", why)
		}
	}
	p.log.Info("state", "dir", stateDir, "entries", len(persisted.Entries))

	// The reaper outlives the loop: the loop needs exit events until the
	// last app has stopped.
	runCtx, stopRunner := context.WithCancel(context.Background())
	runnerDone := make(chan error, 1)
	go func() { runnerDone <- p.runner.Run(runCtx) }()

	// The API outlives the loop's shutdown too, answering (read-only
	// mostly) until the last app stopped.
	apiCtx, stopAPI := context.WithCancel(context.Background())
	httpDone := make(chan error, 1)
	srv := api.NewServer(backend{p}, api.Options{Log: p.log, Token: p.token, ProtectReads: p.protectReads,
		Metrics: p.metrics.handler(), Observe: p.metrics.observeRequest})
	go func() { httpDone <- srv.Serve(apiCtx, ln) }()
	udpDone := make(chan error, 1)
	go func() {
		udpDone <- api.ServeUDPWith(apiCtx, pc, backend{p}, api.UDPOptions{
			Log: p.log, Observe: p.metrics.observeDatagram, Token: p.token})
	}()

	// The watcher reloads the file whenever it changes; an invalid edit is
	// reported and the last good config stays.
	watchDone := make(chan error, 1)
	var w *desired.Watcher
	if p.state.Path() != "" {
		w, err = desired.NewWatcher(p.state.Path(), p.log, func(reason string) {
			p.log.Debug("config file changed", "reason", reason)
			_, _ = p.Reload()
		})
	}
	switch {
	case p.state.Path() == "":
		watchDone <- nil // a config built in code: nothing to watch
	case err != nil:
		p.log.Error("cannot watch the config file; reload with SIGHUP or POST /api/reload", "path", p.state.Path(), "err", err)
		watchDone <- nil
	default:
		go func() {
			// A change between the first load and the watch would be
			// missed: read the file once more now that it is watched (before
			// the watcher's first event, off the way to the first starts;
			// unchanged bytes are not parsed again).
			_, _ = p.Reload()
			watchDone <- w.Run(apiCtx)
		}()
	}

	go p.pruneLogs(apiCtx)
	sourceDone := make(chan struct{})
	if p.source != nil {
		go func() { p.source.run(apiCtx); close(sourceDone) }()
	} else {
		close(sourceDone)
	}
	// Hooks see events from the very first; they are delivered until the
	// loop has stopped, then drained.
	hooksCtx, stopHooks := context.WithCancel(context.Background())
	hooksDone := make(chan struct{})
	hookEvents := p.hooks.subscribe(hooksCtx)
	go func() { p.hooks.run(hookEvents); close(hooksDone) }()

	close(p.ready)
	notifyDone := make(chan struct{})
	go func() {
		defer close(notifyDone)
		select {
		case <-p.loop.FirstPass():
			if p.opts.SettleMemory {
				go p.settleMemory(apiCtx)
			}
			p.notifySystemd(apiCtx, ctx)
		case <-apiCtx.Done():
		}
	}()
	p.prober = exec.NewProber(p.runner, 0, p.loop.NotifyProbe)
	loopErr := p.loop.Run(ctx)
	p.prober.Close()
	p.lines.Close()
	stopHooks()
	<-hooksDone

	stopAPI()
	<-notifyDone
	<-sourceDone
	httpErr, udpErr, watchErr := <-httpDone, <-udpDone, <-watchDone
	pc.Close()
	stopRunner()
	runErr := <-runnerDone
	p.runner.RemoveCgroupRoot()
	p.runner.Close()
	return errors.Join(loopErr, httpErr, udpErr, watchErr, runErr)
}

// Kill makes a shutting-down Patrol stop waiting for apps to exit: every
// remaining process group gets SIGKILL.
func (p *Patrol) Kill() { p.loop.Kill() }

// Reload reads the config file again and applies it; an invalid file is
// reported (in the log and as config.error in status) and the running
// config stays in force. It returns the revision of the file's config.
func (p *Patrol) Reload() (string, error) {
	if p.source != nil {
		return p.source.reload()
	}
	if p.state.Path() == "" {
		return p.state.Revision(), nil // a config built in code: nothing to read again
	}
	p.mu.Lock()
	prev := p.current
	p.mu.Unlock()
	st, err := desired.LoadChanged(p.opts.ConfigPath, prev)
	if err != nil {
		p.log.Error("config reload failed; keeping the running config", "path", p.opts.ConfigPath, "err", err)
		p.loop.ConfigFailed(strings.Join(desired.Problems(err), "; "))
		p.metrics.reloads.WithLabelValues("failed").Inc()
		return "", err
	}
	p.metrics.reloads.WithLabelValues("ok").Inc()
	p.mu.Lock()
	p.current = st
	p.mu.Unlock()
	p.loop.SetConfig(st)
	return st.Revision(), nil
}

// Plan returns what applying config (the bytes of a config.json; nil: the
// current file) would do now, without applying anything. Relative
// working directories in config are resolved against the running config
// file's directory.
func (p *Patrol) Plan(ctx context.Context, config []byte) (*schema.Plan, error) {
	if config == nil {
		return p.loop.PlanCurrent(ctx)
	}
	st, err := desired.Parse(config, desired.Options{Dir: p.configDir()})
	if err != nil {
		return nil, err
	}
	return p.loop.PlanFor(ctx, st)
}

// PlanFile returns what a new Patrol would do with the config file at path
// (the plan against an empty observed state), for `patrol plan` when no
// daemon answers.
func PlanFile(path string) (*schema.Plan, error) {
	st, err := desired.Load(path)
	if err != nil {
		return nil, err
	}
	return reconcile.NoteLimits(reconcile.PlanEmpty(st, time.Now()), st, exec.CgroupSupport(st.Settings().CgroupRoot)), nil
}

// LimitsProblems says, by config path ("apps.web.memory-max"), which
// limits of st a Patrol on this host could not enforce, and why. `patrol
// validate` warns about them (an error with --strict).
func LimitsProblems(st *desired.State) map[string]string {
	out := map[string]string{}
	var why map[string]string
	for _, a := range st.Apps() {
		if !a.Limits.Any() {
			continue
		}
		if why == nil {
			why = exec.CgroupSupport(st.Settings().CgroupRoot)
		}
		for _, k := range desired.LimitKeys {
			if a.Limits.Set(k) && why[k] != "" {
				out["apps."+a.ID+"."+k] = why[k]
			}
		}
	}
	return out
}

// Events returns Patrol's lifecycle events from now on, until ctx ends;
// pings asks for ping events too.
func (p *Patrol) Events(ctx context.Context, pings bool) <-chan schema.Event {
	return p.loop.Events(ctx, pings)
}

// Status returns the status of every app and service.
func (p *Patrol) Status(ctx context.Context) (*schema.Status, error) {
	st, err := p.loop.Status(ctx)
	if err == nil && p.source != nil && st.Config != nil {
		p.source.decorate(st.Config, p.layout())
	}
	return st, err
}

// Toggle applies an API toggle to an entry; ttl > 0 makes the override
// expire.
func (p *Patrol) Toggle(ctx context.Context, group schema.Group, id string, t schema.Toggle, ttl time.Duration) error {
	return p.loop.Toggle(ctx, desired.Key{Group: group, ID: id}, t, ttl)
}

// ClearOverride removes an entry's API override.
func (p *Patrol) ClearOverride(ctx context.Context, group schema.Group, id string) error {
	return p.loop.ClearOverride(ctx, desired.Key{Group: group, ID: id})
}

// Request applies one API request as if it came through transport via
// (schema.TransportLibrary for Go callers: no ping endpoint rules) and
// returns the entry as it was before.
func (p *Patrol) Request(ctx context.Context, req *schema.Request, via schema.Transport) (*schema.Response, error) {
	return p.loop.Request(ctx, req, via)
}

// executor adapts exec to reconcile.Executor.
type executor Patrol

func (e *executor) StartApp(a *desired.App, s desired.Settings, tag string, now time.Time) (observed.Launch, error) {
	p := (*Patrol)(e)
	return p.runner.StartApp(a, p.appContext(a, s), tag, now)
}

func (e *executor) SignalGroup(pgid int, sig string) error  { return e.runner.SignalGroup(pgid, sig) }
func (e *executor) SignalProcess(pid int, sig string) error { return exec.SignalProcess(pid, sig) }
func (e *executor) GroupAlive(pgid int) bool                { return e.runner.GroupAlive(pgid) }
func (e *executor) SetLimits(pgid int, l desired.Limits) error {
	return e.runner.SetLimits(pgid, l)
}
func (e *executor) WatchEmpty(pgid int) bool             { return e.runner.WatchEmpty(pgid) }
func (e *executor) Alive(pid int) bool                   { return exec.Alive(pid) }
func (e *executor) ReadPIDFile(path string) (int, error) { return exec.ReadPIDFile(path) }
func (e *executor) ProcStat(pid int) (int, uint64, error) {
	pgid, st, _, err := exec.ProcStat(pid)
	return pgid, st, err
}
func (e *executor) VerifyBinary(pid int, binary string) error { return exec.VerifyBinary(pid, binary) }
func (e *executor) Watch(pid int, tag string, role observed.Role) (uint64, error) {
	return (*Patrol)(e).runner.Watch(pid, tag, role)
}
func (e *executor) Forget(tag string) {
	p := (*Patrol)(e)
	p.runner.Forget(tag)
	p.prober.Set(tag, nil, time.Time{})
	p.lines.Stop(tag)
}

func (e *executor) WatchLines(tag string, paths []string, re *regexp.Regexp) {
	(*Patrol)(e).lines.Watch(tag, paths, re)
}

func (e *executor) Probe(tag string, probes []*desired.Probe, now time.Time) {
	(*Patrol)(e).prober.Set(tag, probes, now)
}

func (e *executor) AdoptNotify(tag string, pgid, pid int) error {
	return (*Patrol)(e).runner.AdoptNotify(tag, pgid, pid)
}

func (e *executor) FindSpawned(argv []string, dir, env string, at time.Time, window time.Duration) []int {
	return exec.FindSpawned(argv, dir, env, at, window)
}

func (e *executor) ServiceArgv(m schema.Management, initdDir, service, verb string) ([]string, error) {
	return exec.ServiceArgv(m, initdDir, service, verb)
}

func (e *executor) RunCommand(ctx context.Context, argv []string, timeout time.Duration) observed.CommandResult {
	r := (*Patrol)(e).runner.RunCommand(ctx, exec.Command{Argv: argv, Timeout: timeout})
	out := observed.CommandResult{Code: r.Code, Signal: r.Signal, Output: string(r.Output), TimedOut: r.TimedOut, Ended: r.Ended}
	if r.Err != nil {
		out.Err = r.Err.Error()
	}
	return out
}

// pruneInterval is how often log retention runs.
const pruneInterval = time.Hour

// pruneLogs applies log-retention (age, count and size) a minute after
// start and then every hour, off the loop goroutine, never touching the
// files of running instances. Between passes, each start keeps its app
// under max-instances itself (exec's logCap).
func (p *Patrol) pruneLogs(ctx context.Context) {
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(pruneInterval)
		p.mu.Lock()
		s := p.current.Settings()
		p.mu.Unlock()
		if s.LogRetentionDays == 0 && s.LogRetentionBytes == 0 && s.LogRetentionInstances == 0 {
			continue
		}
		inUse, dirs, err := p.loop.LogsInUse(ctx)
		if err != nil {
			return
		}
		res := exec.PruneLogs(dirs, inUse, exec.Retention{Days: s.LogRetentionDays, MaxBytes: s.LogRetentionBytes,
			MaxInstances: s.LogRetentionInstances}, time.Now())
		if len(res.Removed) > 0 || len(res.Errors) > 0 {
			p.log.Info("log retention", "removed", len(res.Removed), "removed-bytes", res.RemovedBytes,
				"kept", res.Kept, "kept-bytes", res.KeptBytes, "errors", errors.Join(res.Errors...))
		}
	}
}

// settleMemory is Options.SettleMemory: settleAfter after the first pass,
// unless ctx ends first.
func (p *Patrol) settleMemory(ctx context.Context) {
	t := time.NewTimer(settleAfter)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return
	}
	debug.FreeOSMemory()
	n, err := exec.ReleaseImagePages()
	if err != nil {
		p.log.Debug("start-up pages of the executable not released", "err", err)
		return
	}
	p.log.Debug("start-up memory settled", "image-mappings-released", n)
}
