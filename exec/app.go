package exec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
	"golang.org/x/sys/unix"
)

// AppContext is what an app's environment and argv need besides its config.
type AppContext struct {
	ParentEnv  []string // Patrol's environment (os.Environ()), used when app.EnvParent
	ListenHTTP []string // for PATROL_HTTP
	ListenUDP  []string // for PATROL_UDP
	ExtraArgs  []string // appended after app.Args (library callbacks)
	ExtraEnv   []string // appended after app.Env (and the env-file's)
	// FileEnv is the app's env-file, read by StartApp at each start.
	FileEnv []string
	// ExtraFiles become the child's descriptors 3, 4, ... (the caller keeps
	// and closes them).
	ExtraFiles []*os.File
	// Stdin, when set, is the child's standard input instead of the null
	// device; Stdout and Stderr, when set, receive the child's output
	// instead of a log file (and std-merge is off), as in the original
	// Patrol. An *os.File is handed to the child directly; any other
	// reader or writer is copied through a pipe by a goroutine that ends
	// when the child and its descendants close their end (a Stdin reader
	// that never returns EOF keeps its goroutine until it does).
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// NotifySocket is the app's NOTIFY_SOCKET (set by StartApp for apps
	// with ready "notify" or a watchdog).
	NotifySocket string
	// KeepLogs caps the instances whose log files the app keeps
	// (log-retention.max-instances; 0: no cap): a start over it removes
	// the oldest instances' files (logcap.go).
	KeepLogs int
}

// AppEnv builds an app's environment (DESIGN §5.2): Patrol's environment
// first if a.EnvParent; then a.Env; then c.ExtraEnv; then PATROL_ID=<id>,
// PATROL_KEEPALIVE=<1..4>, PATROL_PID=<absolute pid path> (only when
// a.PIDPath is set), PATROL_REPLICA and PATROL_REPLICAS (only for an app
// with replicas), PATROL_HTTP and PATROL_UDP (compact JSON arrays such as
// ["127.0.0.1:8421"], only when not empty). When a variable appears more than
// once the last occurrence wins and the earlier ones are removed, so the
// PATROL_ variables win; the order is otherwise kept.
func AppEnv(a *desired.App, c AppContext) []string {
	var env []string
	if a.EnvParent {
		env = append(env, c.ParentEnv...)
	}
	env = append(env, a.Env...)
	env = append(env, c.FileEnv...)
	env = append(env, c.ExtraEnv...)
	env = append(env,
		"PATROL_ID="+a.ID,
		"PATROL_KEEPALIVE="+strconv.Itoa(int(a.Keepalive)),
	)
	if a.PIDPath != "" {
		env = append(env, "PATROL_PID="+a.PIDPath)
	}
	if a.ReplicaOf != "" {
		env = append(env, "PATROL_REPLICA="+strconv.Itoa(a.Replica), "PATROL_REPLICAS="+strconv.Itoa(a.Replicas))
	}
	if len(c.ListenHTTP) > 0 {
		env = append(env, "PATROL_HTTP="+jsonList(c.ListenHTTP))
	}
	if len(c.ListenUDP) > 0 {
		env = append(env, "PATROL_UDP="+jsonList(c.ListenUDP))
	}
	if c.NotifySocket != "" {
		env = append(env, "NOTIFY_SOCKET="+c.NotifySocket)
		if a.Watchdog > 0 {
			env = append(env, "WATCHDOG_USEC="+strconv.FormatInt(a.Watchdog.Microseconds(), 10))
		}
	}
	return dedupEnv(env)
}

// envKey returns the name of an environment entry "NAME=value".
func envKey(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}

// dedupEnv keeps only the last entry of each name, in order.
func dedupEnv(env []string) []string {
	last := make(map[string]int, len(env))
	for i, kv := range env {
		last[envKey(kv)] = i
	}
	out := make([]string, 0, len(last))
	for i, kv := range env {
		if last[envKey(kv)] == i {
			out = append(out, kv)
		}
	}
	return out
}

// jsonList encodes a list of strings as a compact JSON array, without the
// HTML escaping of json.Marshal.
func jsonList(l []string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		// A list of strings always encodes.
		panic("exec: encode a list of strings: " + err.Error())
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// LogFiles returns the log files of an instance of a started at t, in the
// original Patrol's layout, dated in local time:
// <a.LogDirectory>/<YYYY>/<month name in lower case>/<day of month without
// zero padding>/<t.UnixNano()>.stdout.log and .stderr.log, or with
// a.StdMerge one .stdmerge.log file (both results are equal).
func LogFiles(a *desired.App, t time.Time) (stdout, stderr string) {
	t = t.Local()
	dir := filepath.Join(a.LogDirectory,
		fmt.Sprintf("%04d", t.Year()),
		strings.ToLower(t.Month().String()),
		strconv.Itoa(t.Day()))
	base := filepath.Join(dir, strconv.FormatInt(t.UnixNano(), 10))
	if a.StdMerge {
		return base + ".stdmerge.log", base + ".stdmerge.log"
	}
	return base + ".stdout.log", base + ".stderr.log"
}

// StartApp starts one instance of app a, registered under tag: argv
// [a.Binary, a.Args..., c.ExtraArgs...], working directory
// a.WorkingDirectory, environment AppEnv(a, c), stdin the null device,
// stdout and stderr appended to the log files of LogFiles(a, now) (the log
// directory is created), in its own process group. Patrol closes its own
// copies of the descriptors before returning: the child writes straight into
// the files and keeps running if Patrol dies.
//
// A restart of an app (its second start and later in this Runner) links
// log files made ahead for it (see spare.go) instead of creating them, and
// has the files of its next start made.
//
// The process is registered with role observed.RoleLauncher for keepalive 2
// (PID_APP) and observed.RoleLeader otherwise. The launch's Started is now,
// the time the log files are named after. Errors have the subject
// `start app "ID"` and say clearly when the binary is missing or not
// executable, the working directory is missing or the log directory cannot
// be created; no log file is created when the binary or working directory is
// unusable.
func (r *Runner) StartApp(a *desired.App, c AppContext, tag string, now time.Time) (observed.Launch, error) {
	l, err := r.startApp(a, c, tag, now)
	if err != nil {
		return observed.Launch{}, fmt.Errorf("start app %q: %w", a.ID, err)
	}
	return l, nil
}

// startApp is StartApp without the error subject.
func (r *Runner) startApp(a *desired.App, c AppContext, tag string, now time.Time) (observed.Launch, error) {
	if err := checkBinary(a.Binary); err != nil {
		return observed.Launch{}, err
	}
	if err := checkDir(a.WorkingDirectory); err != nil {
		return observed.Launch{}, err
	}
	// Who it runs as and its env-file: resolved now, before any log file
	// is made, so that a missing user is a start failure with its reason.
	id, err := ResolveIdentity(a)
	if err != nil {
		return observed.Launch{}, err
	}
	if a.EnvFile != "" {
		data, err := os.ReadFile(a.EnvFile)
		if err != nil {
			return observed.Launch{}, fmt.Errorf("env-file: %w", err)
		}
		if c.FileEnv, err = desired.ParseEnvFile(data); err != nil {
			return observed.Launch{}, fmt.Errorf("env-file %s: %w", a.EnvFile, err)
		}
	}
	// Its cgroups with their limits, made before the log files: a limit
	// that cannot be set fails the start with the reason.
	v1, err := r.cg.prepare(tag, a.Limits)
	if err != nil {
		removeCgroups(r.cg.leafFor(tag), v1)
		return observed.Launch{}, err
	}
	launcher := a.Umask != "" || len(a.Rlimits) > 0
	if launcher && !launcherEnabled {
		removeCgroups(r.cg.leafFor(tag), v1)
		return observed.Launch{}, errors.New("umask and rlimits need Patrol's launcher: call patrol.Launcher() first thing in main (the patrol command does)")
	}
	var (
		outPath, errPath string
		stdin            *os.File
		copiers          []func()
		closeAfter       []*os.File
		cleanup          []*os.File // closed if the start fails
	)
	defer func() {
		for _, f := range closeAfter {
			f.Close()
		}
	}()
	fail := func(err error) (observed.Launch, error) {
		for _, f := range cleanup {
			f.Close()
		}
		removeCgroups(r.cg.leafFor(tag), v1)
		return observed.Launch{}, err
	}
	if c.Stdout == nil || c.Stderr == nil {
		app := *a
		if c.Stdout != nil || c.Stderr != nil {
			app.StdMerge = false // merging only applies to Patrol's own log files
		}
		outPath, errPath = LogFiles(&app, now)
		if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
			return observed.Launch{}, fmt.Errorf("create log directory: %w", err)
		}
	}
	// output returns the child's end of a stream: the writer itself when it
	// is a file, a pipe copied into it, or the log file.
	output := func(w io.Writer, path string) (*os.File, error) {
		switch w := w.(type) {
		case nil:
			f, err := openLog(path)
			if err == nil {
				closeAfter = append(closeAfter, f)
				if id != nil && os.Geteuid() == 0 {
					// The app's own files, for a program that reopens them.
					err = f.Chown(int(id.UID), int(id.GID))
				}
			}
			return f, err
		case *os.File:
			return w, nil
		default:
			pr, pw, err := os.Pipe()
			if err != nil {
				return nil, fmt.Errorf("output pipe: %w", err)
			}
			closeAfter = append(closeAfter, pw)
			cleanup = append(cleanup, pr)
			copiers = append(copiers, func() {
				io.Copy(w, pr)
				pr.Close()
			})
			return pw, nil
		}
	}
	// Both streams in Patrol's own log files: a restart may link the files
	// made ahead for it (spare.go) under their names before opening them,
	// instead of creating them.
	own := c.Stdout == nil && c.Stderr == nil
	key := spareKey{id: a.ID, root: a.LogDirectory, merge: outPath == errPath}
	if own {
		if sp := r.spares.take(key); sp != nil {
			// Named, the files are opened again by their names: the child's
			// descriptors then show the names in /proc/PID/fd, where those of
			// the unnamed files would read "/dir/#123 (deleted)".
			err := sp.link(outPath, errPath)
			sp.close()
			if err != nil {
				r.log.Debug("spare log files not used", "app", a.ID, "err", err)
			}
		}
	}
	stdout, err := output(c.Stdout, outPath)
	if err != nil {
		return fail(err)
	}
	stderr := stdout
	if c.Stdout != nil || c.Stderr != nil || errPath != outPath {
		if stderr, err = output(c.Stderr, errPath); err != nil {
			return fail(err)
		}
	}
	switch in := c.Stdin.(type) {
	case nil:
	case *os.File:
		stdin = in
	default:
		pr, pw, err := os.Pipe()
		if err != nil {
			return fail(fmt.Errorf("input pipe: %w", err))
		}
		closeAfter = append(closeAfter, pr)
		cleanup = append(cleanup, pw)
		stdin = pr
		copiers = append(copiers, func() {
			io.Copy(pw, in)
			pw.Close()
		})
	}
	role := observed.RoleLeader
	if a.Keepalive == schema.KeepalivePIDApp {
		role = observed.RoleLauncher
	}
	var ns *notifySocket
	if a.Notify() {
		if ns, err = r.openNotify(tag); err != nil {
			return fail(err)
		}
		c.NotifySocket = NotifyName(tag)
	}
	args := make([]string, 0, len(a.Args)+len(c.ExtraArgs))
	args = append(append(args, a.Args...), c.ExtraArgs...)
	path := a.Binary
	var cred *syscall.Credential
	switch {
	case launcher:
		// The launcher sets umask, limits and identity, then execs the app.
		la := launcherArgs(a, id, a.Binary, args)
		path, args = la[0], la[1:]
	case id != nil:
		cred = id.credential()
	}
	l, err := r.spawn(Spec{ // checked above, before any log file was made
		Path:       path,
		Cred:       cred,
		Cgroup:     r.cg.leafFor(tag),
		CgroupsV1:  v1,
		Args:       args,
		Dir:        a.WorkingDirectory,
		Env:        AppEnv(a, c),
		Stdin:      stdin,
		Stdout:     stdout,
		Stderr:     stderr,
		ExtraFiles: c.ExtraFiles,
		Tag:        tag,
		Role:       role,
	})
	if err != nil {
		if ns != nil {
			ns.conn.Close()
		}
		return fail(err)
	}
	if ns != nil {
		r.serveNotify(ns, l.PGID, l.PID)
	}
	if own {
		r.spares.started(key)
	}
	switch {
	case c.Stdout == nil:
		r.logCap.started(a.ID, a.LogDirectory, outPath, c.KeepLogs, a.LogsShared())
	case c.Stderr == nil:
		r.logCap.started(a.ID, a.LogDirectory, errPath, c.KeepLogs, a.LogsShared())
	}
	for _, copy := range copiers {
		go copy()
	}
	l.Started = now
	if c.Stdout == nil {
		l.Stdout = outPath
	}
	if c.Stderr == nil {
		l.Stderr = errPath
	}
	return l, nil
}

// openLog opens a log file for appending, creating it.
func openLog(path string) (*os.File, error) {
	f, err := openForChild(path, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	return f, nil
}

// openForChild opens a file only a child will use. os.OpenFile would
// first try to register it with Go's poller (three fcntl calls and an
// epoll_ctl for a file that is never read here); a start opens three.
func openForChild(path string, flags int, mode uint32) (*os.File, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, mode)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
