package exec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/patrolhq/patrol/observed"
)

// ErrNoProcess is wrapped by errors about a process or process group that
// does not exist (any more).
var ErrNoProcess = errors.New("no such process")

// errClosed is returned by Start and Watch after Close.
var errClosed = errors.New("runner is closed")

// Runner starts processes and reports their exits. One per Patrol.
//
// A Runner reaps every child of the Patrol process: every child must be
// started through it (see the package doc). Its zero value is not usable;
// call NewRunner.
type Runner struct {
	log      *slog.Logger
	notify   func(observed.Exit)
	setupErr error

	// mu guards the registrations. It is held across every fork (Start) and
	// across every reap together with the lookup of the reaped pid, so an
	// exit can never be attributed to a newer process that reused the pid.
	mu sync.Mutex
	// procs holds the newest registration of each pid.
	procs map[int]*registration
	// watched holds every registration with a pidfd, including one that a
	// newer registration of a reused pid shadows in procs: its watcher still
	// delivers it.
	watched map[*registration]struct{}
	closed  bool
	// devNull is the null device, the standard stream of a child that was
	// given none; opened on first use.
	devNull *os.File
	// reaping is set while Run runs: only then does the Runner reap.
	reaping bool

	watchers sync.WaitGroup
	// spares are log files made ahead for restarts (spare.go).
	spares spares
	// logCap removes the log files of instances over an app's cap
	// (logcap.go).
	logCap logCap
	// notifySocks holds the instances' NOTIFY_SOCKETs (notify.go).
	notifySocks notifySockets
	// cg holds the instances' cgroups (cgroup.go).
	cg cgroups
	// ew tells when an instance's cgroup has emptied (cgwatch.go).
	ew emptyWatch
}

// registration is a process whose exit the Runner reports.
type registration struct {
	pid  int
	tag  string
	role observed.Role
	// pidfd is set for a process registered by Watch; nil for a child
	// registered by Start at fork, which only the reaper collects.
	pidfd *os.File
	// done is set once the exit was delivered or the registration was
	// dropped; nothing is delivered for it afterwards.
	done bool
	// exitTo is Spec.Done: the exit is sent there instead of to notify.
	exitTo chan<- observed.Exit
}

// deliver hands the exit of reg to its Done channel, if it has one, without
// ever blocking, and otherwise to notify. The caller does not hold mu.
func (r *Runner) deliver(reg *registration, ex observed.Exit) {
	if reg.exitTo == nil {
		if ex.Role == observed.RoleLeader && (ex.Signal != 0 || ex.Code != 0) {
			// Read before the loop learns of the end: its cgroups are
			// removed after that.
			ex.OOMKilled = r.cg.oomKilled(ex.PID)
		}
		r.notify(ex)
		return
	}
	select {
	case reg.exitTo <- ex:
	default:
		r.log.Error("exit channel full, exit dropped (Spec.Done needs capacity 1)",
			"pid", ex.PID, "tag", ex.Tag, "code", ex.Code)
	}
}

// NewRunner returns a Runner that reports every exit of a registered process
// by calling notify (from the reaper or a watcher goroutine; notify must not
// block and is never called with Runner's lock held).
//
// NewRunner does Run's setup: it makes the calling process a child
// subreaper. Start may be called as soon as NewRunner returned; exits that
// happen before Run starts are reaped and delivered when it does. A nil log
// discards log records.
func NewRunner(log *slog.Logger, notify func(observed.Exit)) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		log:     log,
		notify:  notify,
		procs:   map[int]*registration{},
		watched: map[*registration]struct{}{},
	}
	r.logCap.onErr = func(err error) { log.Warn("log files over max-instances not removed", "err", err) }
	// Orphaned descendants (double-forked daemons) are reparented to Patrol
	// instead of init, so the reaper can collect their exit statuses.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		r.setupErr = fmt.Errorf("become a child subreaper: %w", err)
	}
	return r
}

// Run reaps children until ctx is done, then reaps once more and returns
// nil. It is the one reaper of the Patrol process: on start, and whenever
// the process's waiter (waiter.go) sees an exited child, it collects every
// exited child, without blocking, until none is left. Exits of registered pids are delivered through notify with the
// registration's tag and role; unregistered ones (reparented orphans, since
// Patrol is a subreaper, or forgotten registrations) are reaped and logged at
// debug level. Run returns an error at once if NewRunner could not make the
// process a child subreaper. Run must be called at most once.
func (r *Runner) Run(ctx context.Context) error {
	if r.setupErr != nil {
		return r.setupErr
	}
	r.mu.Lock()
	r.reaping = true
	r.mu.Unlock()
	addRunning(r)
	r.reap()
	<-ctx.Done()
	removeRunning(r)
	r.reap()
	r.mu.Lock()
	r.reaping = false
	r.mu.Unlock()
	return nil
}

// reap collects every exited child, if the Runner is running, and reports
// whether it collected any.
func (r *Runner) reap() (reaped bool) {
	for {
		ex, reg, ok := r.reapOne()
		if !ok {
			return reaped
		}
		reaped = true
		if reg == nil {
			r.log.Debug("reaped an unregistered process", "pid", ex.PID, "code", ex.Code)
			continue
		}
		if reg.pidfd != nil {
			reg.pidfd.Close()
		}
		r.deliver(reg, ex)
	}
}

// reapOne reaps one exited child, if there is one, and unregisters it. reg
// is nil for an unregistered child.
//
// It peeks at the next exited child with waitid(WNOWAIT) before reaping it
// with wait4(pid, WNOHANG): while the child is still a zombie, the pidfd of a
// watched registration with the same pid can tell whether the zombie is
// that process or a newer one that reused a dead process's pid.
func (r *Runner) reapOne() (ex observed.Exit, reg *registration, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.reaping {
		return ex, nil, false
	}
	pid, err := exitedChild()
	if err != nil {
		if !errors.Is(err, unix.ECHILD) {
			r.log.Error("wait for children", "err", err)
		}
		return ex, nil, false
	}
	if pid == 0 {
		return ex, nil, false
	}
	reg = r.procs[pid]
	if reg != nil && reg.pidfd != nil && !isExitedChild(reg.pidfd) {
		// The watched process was not Patrol's child and died, and its pid
		// was reused; its watcher delivers its exit.
		reg = nil
	}
	var ws syscall.WaitStatus
	got, err := wait4(pid, &ws)
	if err != nil || got != pid {
		r.log.Error("reap child", "pid", pid, "err", err)
		return ex, nil, false
	}
	ex = observed.Exit{PID: pid, Ended: time.Now()}
	ex.Code, ex.Signal = waitStatusExit(ws)
	if reg != nil {
		ex.Tag, ex.Role = reg.tag, reg.role
		r.drop(reg)
	}
	return ex, reg, true
}

// drop ends a registration; the caller holds mu and closes its pidfd.
func (r *Runner) drop(reg *registration) {
	reg.done = true
	if r.procs[reg.pid] == reg {
		delete(r.procs, reg.pid)
	}
	delete(r.watched, reg)
}

// Spec is a process to start.
type Spec struct {
	Path string   // absolute path of the executable
	Args []string // arguments after argv[0] (argv[0] = Path)
	// Cred, when set, is the user, group and groups the child runs as.
	Cred *syscall.Credential
	// Cgroup, when set, is a leaf cgroup (v2) the child is started in,
	// created if needed; a start that cannot use it starts the child
	// without one.
	Cgroup string
	// CgroupsV1 are cgroup v1 directories the child is started in (see
	// forkInV1) and that are registered with the instance; removed when
	// the start fails.
	CgroupsV1 []string
	Dir       string // working directory; "" is Patrol's
	// Env is the whole environment; nil is an empty one.
	Env    []string
	Stdin  *os.File // nil: /dev/null
	Stdout *os.File // nil: /dev/null
	Stderr *os.File // nil: /dev/null
	// ExtraFiles become descriptors 3, 4, ... of the child; a nil entry is
	// a closed descriptor.
	ExtraFiles []*os.File
	Tag        string
	Role       observed.Role
	// Done, when not nil, receives the process's exit instead of the
	// Runner's notify callback: exactly once, sent by the reaper without
	// blocking, so the caller must give it a free buffer slot (capacity 1
	// for a channel of its own); an exit that finds the channel full is
	// logged and dropped. Forget leaves such a registration alone (its exit
	// still goes to Done; nobody else can wait for it), and Close sends
	// it an Exit with Code observed.CodeUnknown if the process was not
	// reaped by then, so no waiter hangs once the reaper is gone.
	Done chan<- observed.Exit
}

// Start starts a process in its own process group (Setpgid; no parent-death
// signal, no setsid), registers its pid under Spec.Tag and Spec.Role and
// returns its facts. The fork and the registration happen under the mutex
// the reaper holds across each reap and the lookup of the reaped pid, so an
// exit can never be attributed to a newer process that reused the pid.
//
// Start does not close the files in Spec. Like os.StartProcess, it puts them
// in blocking mode: a child must not inherit non-blocking standard streams.
func (r *Runner) Start(s Spec) (observed.Launch, error) {
	l, err := r.start(s)
	if err != nil {
		return observed.Launch{}, fmt.Errorf("start %s: %w", s.Path, err)
	}
	return l, nil
}

// start is Start without the error subject.
func (r *Runner) start(s Spec) (observed.Launch, error) {
	if err := checkBinary(s.Path); err != nil {
		return observed.Launch{}, err
	}
	if s.Dir != "" {
		if err := checkDir(s.Dir); err != nil {
			return observed.Launch{}, err
		}
	}
	return r.spawn(s)
}

// spawn is start for a Spec whose binary and directory were checked.
func (r *Runner) spawn(s Spec) (observed.Launch, error) {
	files := append([]*os.File{s.Stdin, s.Stdout, s.Stderr}, s.ExtraFiles...)
	fds := make([]uintptr, len(files))
	attr := &syscall.ProcAttr{
		Dir:   s.Dir,
		Env:   s.Env,
		Files: fds,
		Sys:   &syscall.SysProcAttr{Setpgid: true, Credential: s.Cred},
	}
	argv := append([]string{s.Path}, s.Args...)
	if s.Cgroup != "" {
		fd, err := openLeaf(s.Cgroup)
		if err != nil {
			r.log.Warn("starting without a cgroup", "cgroup", s.Cgroup, "err", err)
			s.Cgroup = ""
		} else {
			defer unix.Close(fd)
			attr.Sys.UseCgroupFD, attr.Sys.CgroupFD = true, fd
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return observed.Launch{}, errClosed
	}
	for i, f := range files {
		switch {
		case f != nil:
			fds[i] = f.Fd()
		case i < 3:
			// A missing standard stream is the null device, opened once
			// per Runner (and closed by Close, under mu like this use).
			if r.devNull == nil {
				var err error
				if r.devNull, err = openForChild(os.DevNull, unix.O_RDWR, 0); err != nil {
					return observed.Launch{}, err
				}
			}
			fds[i] = r.devNull.Fd()
		default:
			fds[i] = ^uintptr(0) // closed in the child
		}
	}
	startProcess := func() (int, error) {
		fork := func() (int, error) {
			pid, _, err := syscall.StartProcess(s.Path, argv, attr)
			return pid, err
		}
		if len(s.CgroupsV1) > 0 {
			return r.cg.forkInV1(s.CgroupsV1, fork)
		}
		return fork()
	}
	pid, err := startProcess()
	var je *joinError
	if err != nil && attr.Sys.UseCgroupFD && !errors.As(err, &je) {
		// A kernel without clone3's CLONE_INTO_CGROUP (before 5.7), or a
		// leaf it refuses: start it without, and stop using cgroups v2.
		attr.Sys.UseCgroupFD = false
		if pid, err = startProcess(); err == nil {
			r.log.Warn("cgroups not usable to start apps; tracking process groups only", "cgroup", s.Cgroup)
			os.Remove(s.Cgroup)
			s.Cgroup = ""
			r.cg.mu.Lock()
			r.cg.root = ""
			r.cg.mu.Unlock()
		}
	}
	runtime.KeepAlive(files)
	if err != nil {
		if s.Cgroup != "" {
			os.Remove(s.Cgroup)
		}
		for _, d := range s.CgroupsV1 {
			os.Remove(d)
		}
		return observed.Launch{}, fmt.Errorf("fork/exec: %w", err)
	}
	l := observed.Launch{PID: pid, PGID: pid, Started: time.Now()}
	// The child cannot be reaped while mu is held, so /proc/PID is still
	// this process even if it already exited.
	if pgid, st, _, err := ProcStat(pid); err == nil {
		l.PGID, l.StartTime = pgid, st
	} else {
		r.log.Warn("read a new process's start time", "pid", pid, "err", err)
	}
	r.procs[pid] = &registration{pid: pid, tag: s.Tag, role: s.Role, exitTo: s.Done}
	if s.Cgroup != "" || len(s.CgroupsV1) > 0 {
		r.cg.register(l.PGID, s.Cgroup, s.CgroupsV1)
	}
	kickWaiter()
	return l, nil
}

// checkBinary explains why path cannot be executed, if it clearly cannot.
func checkBinary(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("binary %q is not an absolute path", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w", path, pathErr(err))
	}
	if fi.IsDir() {
		return fmt.Errorf("binary %s is a directory", path)
	}
	if fi.Mode()&0o111 == 0 {
		return fmt.Errorf("binary %s is not executable (mode %v)", path, fi.Mode().Perm())
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return fmt.Errorf("binary %s is not executable: %w", path, err)
	}
	return nil
}

// checkDir explains why dir cannot be a working directory, if it cannot.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("working directory %s: %w", dir, pathErr(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("working directory %s is not a directory", dir)
	}
	return nil
}

// pathErr strips the operation and path from a *fs.PathError, for messages
// that already name the path.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Watch reports the exit of a process Patrol did not necessarily start (a
// keepalive 2 daemon named by a pid file, or an adopted process) under tag
// and role, and returns its start time (see ProcStat).
//
// If the pid is already registered with this Runner and still the same
// process (for example the launcher Start registered turned out to be the
// daemon), Watch only re-tags that registration; a registered child that
// exited but was not reaped yet is re-tagged too, and its exit follows.
// Otherwise Watch opens a pidfd, reads the start time, checks that the
// process is still alive after the read (so the start time is the pidfd's
// process's) and waits for the pidfd to become readable on Go's runtime
// poller: a parked goroutine, not a parked OS thread.
//
// Exactly one Exit is delivered for the registration, by whoever sees the
// exit first: the reaper, if the process is or became Patrol's child (a
// daemon whose launcher exited is reparented to Patrol), with its real
// status; or the pidfd watcher, which collects the status itself if the
// process is Patrol's child and otherwise reports observed.CodeUnknown.
//
// The error wraps ErrNoProcess if the pid is not alive.
func (r *Runner) Watch(pid int, tag string, role observed.Role) (startTime uint64, err error) {
	st, err := r.watch(pid, tag, role)
	if err != nil {
		return 0, fmt.Errorf("watch process %d: %w", pid, err)
	}
	if role == observed.RoleLeader {
		r.cg.of(pid) // its cgroups, found while /proc/PID still tells
	}
	return st, nil
}

// watch is Watch without the error subject.
func (r *Runner) watch(pid int, tag string, role observed.Role) (uint64, error) {
	if pid <= 0 {
		return 0, ErrNoProcess
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, errClosed
	}
	// A Start registration is its process until the reaper collects it,
	// which cannot happen while mu is held; a pidfd registration is its
	// process while the pidfd is not readable.
	if reg := r.procs[pid]; reg != nil && (reg.pidfd == nil || !pidfdReadable(reg.pidfd)) {
		_, st, _, err := ProcStat(pid)
		if err != nil {
			return 0, err
		}
		reg.tag, reg.role = tag, role
		return st, nil
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return 0, ErrNoProcess
		}
		return 0, fmt.Errorf("pidfd_open: %w", err)
	}
	// A non-blocking descriptor is registered with the runtime poller.
	f := os.NewFile(uintptr(fd), "pidfd "+strconv.Itoa(pid))
	_, st, state, err := ProcStat(pid)
	if err == nil && (state == 'Z' || pidfdReadable(f)) {
		err = ErrNoProcess
	}
	if err != nil {
		f.Close()
		return 0, err
	}
	reg := &registration{pid: pid, tag: tag, role: role, pidfd: f}
	r.procs[pid] = reg
	r.watched[reg] = struct{}{}
	r.watchers.Add(1)
	go r.waitPidfd(reg)
	return st, nil
}

// waitPidfd waits for a watched process to exit and delivers its exit unless
// the reaper already did (or the registration was dropped), which closes the
// pidfd and so ends the wait.
func (r *Runner) waitPidfd(reg *registration) {
	defer r.watchers.Done()
	rc, err := reg.pidfd.SyscallConn()
	if err == nil {
		// Read calls the function until it returns true, waiting on the
		// runtime poller for readability between calls.
		err = rc.Read(func(fd uintptr) bool { return pollReadable(int(fd)) })
	}
	if err != nil {
		r.mu.Lock()
		done := reg.done
		r.mu.Unlock()
		if !done {
			r.log.Error("wait for a watched process", "pid", reg.pid, "err", err)
		}
		return
	}
	ex, ok := r.collect(reg)
	reg.pidfd.Close()
	if ok {
		r.deliver(reg, ex)
	}
}

// collect unregisters a watched process that exited and returns its exit,
// unless its exit was already delivered.
func (r *Runner) collect(reg *registration) (observed.Exit, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reg.done {
		return observed.Exit{}, false
	}
	ex := observed.Exit{Tag: reg.tag, Role: reg.role, PID: reg.pid, Code: observed.CodeUnknown}
	// If the process is Patrol's child, reap it here with its status; the
	// reaper would otherwise find it unregistered.
	if c, err := waitPidfd(reg.pidfd, unix.WEXITED|unix.WNOHANG); err == nil && c.pid != 0 {
		ex.Code, ex.Signal = c.exit()
	}

	ex.Ended = time.Now()
	r.drop(reg)
	return ex, true
}

// Forget drops every registration with this tag without delivering anything
// and closes its pidfds (used when Patrol stops caring, for example at the
// end of shutdown). A forgotten child is still reaped when it exits. A
// registration with a Spec.Done channel is kept: its exit still goes there.
func (r *Runner) Forget(tag string) {
	r.closeNotify(tag)
	r.mu.Lock()
	var files []*os.File
	for _, reg := range r.procs {
		if reg.tag == tag && reg.exitTo == nil {
			files = r.dropFile(reg, files)
		}
	}
	for reg := range r.watched {
		if reg.tag == tag {
			files = r.dropFile(reg, files)
		}
	}
	r.mu.Unlock()
	for _, f := range files {
		f.Close()
	}
}

// dropFile drops reg and appends its pidfd, if any, to files.
func (r *Runner) dropFile(reg *registration, files []*os.File) []*os.File {
	r.drop(reg)
	if reg.pidfd != nil {
		files = append(files, reg.pidfd)
	}
	return files
}

// Close drops every registration, releases all pidfds, waits for the watcher
// goroutines to end. A registration with a
// Spec.Done channel gets an Exit with Code observed.CodeUnknown, so that its
// waiter (such as RunCommand) returns. Call it after Run returned; Start and
// Watch fail afterwards.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	var files []*os.File
	if r.devNull != nil {
		files = append(files, r.devNull)
		r.devNull = nil
	}
	var unknown []*registration
	for _, reg := range r.procs {
		if reg.exitTo != nil {
			unknown = append(unknown, reg)
		}
		files = r.dropFile(reg, files)
	}
	for reg := range r.watched {
		files = r.dropFile(reg, files)
	}
	r.mu.Unlock()
	for _, f := range files {
		f.Close()
	}
	for _, reg := range unknown {
		r.deliver(reg, observed.Exit{Tag: reg.tag, Role: reg.role, PID: reg.pid,
			Code: observed.CodeUnknown, Ended: time.Now()})
	}
	r.closeAllNotify()
	r.ew.close()
	r.watchers.Wait()
	r.spares.close()
	r.logCap.wait()
}
