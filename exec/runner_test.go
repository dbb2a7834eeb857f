package exec

import (
	"bufio"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

func TestStartExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"exit 0", []string{"exit", "0"}, 0},
		{"exit 3", []string{"exit", "3"}, 3},
		{"exit 255", []string{"exit", "255"}, 255},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tag, ch := subscribe(t)
			s := helperSpec(t, tag, tc.args...)
			s.Role = observed.RoleLauncher
			l := start(t, s)
			e := waitExit(t, ch)
			want := observed.Exit{Tag: tag, Role: observed.RoleLauncher, PID: l.PID, Code: tc.code}
			if e.Ended.Before(l.Started) {
				t.Errorf("Ended %v before Started %v", e.Ended, l.Started)
			}
			e.Ended = time.Time{}
			if e != want {
				t.Errorf("got %+v, want %+v", e, want)
			}
		})
	}
}

func TestStartKilledBySignal(t *testing.T) {
	tag, ch := subscribe(t)
	l := start(t, helperSpec(t, tag, "sleep"))
	if err := SignalProcess(l.PID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	e := waitExit(t, ch)
	if e.PID != l.PID || e.Code != 137 || e.Signal != 9 || e.Role != observed.RoleLeader {
		t.Errorf("got %+v, want pid %d, code 137, signal 9, role leader", e, l.PID)
	}
}

func TestStartManyConcurrent(t *testing.T) {
	const n = 50
	tag, ch := subscribe(t)
	var (
		mu    sync.Mutex
		codes = map[int]int{} // pid -> expected code
		wg    sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			code := i % 5
			l, err := testRunner.Start(helperSpec(t, tag, "exit", strconv.Itoa(code)))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			codes[l.PID] = code
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	seen := map[int]int{}
	for range n {
		e := waitExit(t, ch)
		seen[e.PID]++
		mu.Lock()
		want, ok := codes[e.PID]
		mu.Unlock()
		if !ok || e.Code != want || e.Signal != 0 {
			t.Errorf("got %+v, want pid of this test with code %d", e, want)
		}
	}
	for pid, c := range seen {
		if c != 1 {
			t.Errorf("pid %d: %d exits delivered, want 1", pid, c)
		}
	}
	eventually(t, "no registration left", func() bool { return testRunner.registered(tag) == 0 })
	noExit(t, ch)
}

func TestStartOwnProcessGroup(t *testing.T) {
	tag, _ := subscribe(t)
	l := start(t, helperSpec(t, tag, "sleep"))
	pgid, st, _, err := ProcStat(l.PID)
	if err != nil {
		t.Fatal(err)
	}
	if pgid != l.PID || l.PGID != l.PID {
		t.Errorf("got pgid %d (launch %d), want the pid %d", pgid, l.PGID, l.PID)
	}
	if pgid == syscall.Getpgrp() {
		t.Errorf("child is in the test's process group %d", pgid)
	}
	if st == 0 || st != l.StartTime {
		t.Errorf("got start time %d, launch says %d", st, l.StartTime)
	}
	if !GroupAlive(l.PGID) {
		t.Errorf("GroupAlive(%d) = false for a running group", l.PGID)
	}
}

func TestSignalGroupReachesGrandchild(t *testing.T) {
	tag, ch := subscribe(t)
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	l := start(t, helperSpec(t, tag, "spawn-grandchild", pidFile))
	gc := readPIDEventually(t, pidFile)
	if pgid, _, _, err := ProcStat(gc); err != nil || pgid != l.PGID {
		t.Fatalf("grandchild %d: pgid %d, err %v; want pgid %d", gc, pgid, err, l.PGID)
	}
	if !GroupAlive(l.PGID) || !Alive(gc) {
		t.Fatal("group or grandchild not alive before the signal")
	}
	if err := SignalGroup(l.PGID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	if e := waitExit(t, ch); e.PID != l.PID || e.Signal != 9 {
		t.Errorf("got %+v, want pid %d killed by signal 9", e, l.PID)
	}
	eventually(t, "grandchild gone", func() bool { return !Alive(gc) })
	eventually(t, "group gone", func() bool { return !GroupAlive(l.PGID) })
	// A zombie still counts for kill(2) until its parent reaps it.
	eventually(t, "a gone group refused", func() bool { return errors.Is(SignalGroup(l.PGID, "SIGKILL"), ErrNoProcess) })
}

func TestStopSignalIgnored(t *testing.T) {
	tag, ch := subscribe(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	s := helperSpec(t, tag, "ignore-sigterm")
	s.Stdout = pw
	l := start(t, s)
	pw.Close()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("got %q, %v; want ready", line, err)
	}
	if err := SignalGroup(l.PGID, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	noExit(t, ch)
	if err := SignalGroup(l.PGID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	if e := waitExit(t, ch); e.Code != 137 || e.Signal != int(syscall.SIGKILL) {
		t.Errorf("got %+v, want code 137", e)
	}
}

func TestStartExtraFiles(t *testing.T) {
	tag, ch := subscribe(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	s := helperSpec(t, tag, "write-fd3")
	s.ExtraFiles = []*os.File{pw}
	start(t, s)
	pw.Close()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || line != "fd3\n" {
		t.Errorf("got %q, %v; want fd3", line, err)
	}
	if e := waitExit(t, ch); e.Code != 0 {
		t.Errorf("got %+v, want code 0", e)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := testBinary(t)
	for _, tc := range []struct {
		name string
		spec Spec
		want string
		is   error
	}{
		{"missing binary", Spec{Path: filepath.Join(dir, "nope")}, "binary " + filepath.Join(dir, "nope") + ": no such file or directory", os.ErrNotExist},
		{"relative binary", Spec{Path: "bin/app"}, `binary "bin/app" is not an absolute path`, nil},
		{"directory binary", Spec{Path: dir}, "is a directory", nil},
		{"not executable", Spec{Path: plain}, "binary " + plain + " is not executable", nil},
		{"missing directory", Spec{Path: exe, Dir: filepath.Join(dir, "gone")}, "working directory " + filepath.Join(dir, "gone") + ": no such file or directory", os.ErrNotExist},
		{"file as directory", Spec{Path: exe, Dir: plain}, "working directory " + plain + " is not a directory", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testRunner.Start(tc.spec)
			if err == nil {
				t.Fatal("got no error")
			}
			if !strings.HasPrefix(err.Error(), "start "+tc.spec.Path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got %v, want it to wrap %v", err, tc.is)
			}
		})
	}
}

// startDaemonApp starts a keepalive 2 app whose launcher daemonizes, and
// returns the launch and the daemon's pid.
func startDaemonApp(t *testing.T, tag string) (observed.Launch, int) {
	t.Helper()
	dir := t.TempDir()
	a := &desired.App{
		ID:               "daemon",
		Keepalive:        schema.KeepalivePIDApp,
		Binary:           testBinary(t),
		WorkingDirectory: dir,
		LogDirectory:     filepath.Join(dir, "logs"),
		PIDPath:          filepath.Join(dir, "app.pid"),
		Args:             []string{helperArg, "daemonize"},
	}
	l, err := testRunner.StartApp(a, AppContext{}, tag, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	killGroupAtCleanup(t, l.PGID)
	daemon := readPIDEventually(t, a.PIDPath)
	killGroupAtCleanup(t, daemon) // a session leader leads its own group
	return l, daemon
}

func TestWatchDaemon(t *testing.T) {
	tag, ch := subscribe(t)
	before := runtime.NumGoroutine()
	l, daemon := startDaemonApp(t, tag)
	st, err := testRunner.Watch(daemon, tag, observed.RoleLeader)
	if err != nil {
		t.Fatal(err)
	}
	if _, want, _, err := ProcStat(daemon); err != nil || st != want {
		t.Errorf("got start time %d, want %d (%v)", st, want, err)
	}
	e := waitExit(t, ch)
	if e.PID != l.PID || e.Role != observed.RoleLauncher || e.Code != 0 {
		t.Fatalf("got %+v, want the launcher %d exiting with 0", e, l.PID)
	}
	// The daemon's parent exited: the subreaper adopts it.
	eventually(t, "daemon reparented to the test process", func() bool {
		s, err := readProcStat(daemon)
		return err == nil && s.ppid == os.Getpid()
	})
	if err := SignalProcess(daemon, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	e = waitExit(t, ch)
	want := observed.Exit{Tag: tag, Role: observed.RoleLeader, PID: daemon, Code: 7}
	e.Ended = time.Time{}
	if e != want {
		t.Errorf("got %+v, want %+v", e, want)
	}
	noExit(t, ch)
	eventually(t, "no registration left", func() bool { return testRunner.registered(tag) == 0 })
	eventually(t, "watcher goroutine gone", func() bool { return runtime.NumGoroutine() <= before })
	if z := zombiesOf(os.Getpid()); len(z) > 0 {
		t.Errorf("zombies left: %v", z)
	}
}

// startGrandchild starts a helper whose child (the grandchild) it keeps and
// reaps itself, and returns the grandchild's pid: a process that is not the
// test process's child.
func startGrandchild(t *testing.T) int {
	t.Helper()
	tag, _ := subscribe(t)
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	l := start(t, helperSpec(t, tag, "spawn-grandchild", pidFile))
	gc := readPIDEventually(t, pidFile)
	if s, err := readProcStat(gc); err != nil || s.ppid != l.PID {
		t.Fatalf("grandchild %d: %+v, %v; want parent %d", gc, s, err, l.PID)
	}
	return gc
}

func TestWatchNotChild(t *testing.T) {
	before := runtime.NumGoroutine()
	gc := startGrandchild(t)
	tag, ch := subscribe(t)
	st, err := testRunner.Watch(gc, tag, observed.RoleLeader)
	if err != nil {
		t.Fatal(err)
	}
	if _, want, _, _ := ProcStat(gc); st != want || st == 0 {
		t.Errorf("got start time %d, want %d", st, want)
	}
	if n := testRunner.registered(tag); n != 1 {
		t.Errorf("got %d registrations, want 1", n)
	}
	if err := SignalProcess(gc, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	e := waitExit(t, ch)
	want := observed.Exit{Tag: tag, Role: observed.RoleLeader, PID: gc, Code: observed.CodeUnknown}
	e.Ended = time.Time{}
	if e != want {
		t.Errorf("got %+v, want %+v", e, want)
	}
	noExit(t, ch)
	eventually(t, "no registration left", func() bool { return testRunner.registered(tag) == 0 })
	eventually(t, "watcher goroutine gone", func() bool { return runtime.NumGoroutine() <= before })
}

func TestWatchRetagsChild(t *testing.T) {
	tag, ch := subscribe(t)
	s := helperSpec(t, tag, "sleep")
	s.Role = observed.RoleLauncher
	l := start(t, s)
	tag2, ch2 := subscribe(t)
	st, err := testRunner.Watch(l.PID, tag2, observed.RoleLeader)
	if err != nil {
		t.Fatal(err)
	}
	if st != l.StartTime {
		t.Errorf("got start time %d, want %d", st, l.StartTime)
	}
	testRunner.mu.Lock()
	reg := testRunner.procs[l.PID]
	testRunner.mu.Unlock()
	if reg == nil || reg.pidfd != nil {
		t.Errorf("got registration %+v, want the child's, re-tagged, without a pidfd", reg)
	}
	if n := testRunner.registered(tag) + testRunner.registered(tag2); n != 1 {
		t.Errorf("got %d registrations, want 1", n)
	}
	if err := SignalProcess(l.PID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	e := waitExit(t, ch2)
	if e.PID != l.PID || e.Tag != tag2 || e.Role != observed.RoleLeader || e.Code != 137 {
		t.Errorf("got %+v, want pid %d under %s as leader, code 137", e, l.PID, tag2)
	}
	noExit(t, ch)
	noExit(t, ch2)
}

func TestWatchNoProcess(t *testing.T) {
	tag, ch := subscribe(t)
	l := start(t, helperSpec(t, tag, "exit", "0"))
	waitExit(t, ch)
	for _, pid := range []int{l.PID, 0, -1} {
		_, err := testRunner.Watch(pid, tag, observed.RoleLeader)
		if !errors.Is(err, ErrNoProcess) {
			t.Errorf("Watch(%d): got %v, want ErrNoProcess", pid, err)
		}
	}
	if n := testRunner.registered(tag); n != 0 {
		t.Errorf("got %d registrations, want 0", n)
	}
}

func TestForget(t *testing.T) {
	before := runtime.NumGoroutine()
	gc := startGrandchild(t)
	tag, ch := subscribe(t)
	l := start(t, helperSpec(t, tag, "sleep"))
	if _, err := testRunner.Watch(gc, tag, observed.RoleLeader); err != nil {
		t.Fatal(err)
	}
	testRunner.Forget(tag)
	if n := testRunner.registered(tag); n != 0 {
		t.Errorf("got %d registrations after Forget, want 0", n)
	}
	eventually(t, "watcher goroutine gone", func() bool { return runtime.NumGoroutine() <= before })
	for _, pid := range []int{l.PID, gc} {
		if err := SignalProcess(pid, "SIGKILL"); err != nil {
			t.Fatal(err)
		}
	}
	// The forgotten child is still reaped, silently.
	eventually(t, "forgotten child reaped", func() bool {
		_, err := readProcStat(l.PID)
		return errors.Is(err, ErrNoProcess)
	})
	noExit(t, ch)
}

func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()
	gc := startGrandchild(t)
	r := NewRunner(slog.New(slog.DiscardHandler), func(e observed.Exit) { t.Errorf("unexpected exit %+v", e) })
	if _, err := r.Watch(gc, "x", observed.RoleLeader); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if n := len(r.watched) + len(r.procs); n != 0 {
		t.Errorf("got %d registrations after Close, want 0", n)
	}
	// Close waited for the watcher; other goroutines (the runtime's cleanup
	// goroutine running a user cleanup counts) may come and go.
	eventually(t, "watcher goroutine gone", func() bool { return runtime.NumGoroutine() <= before })
	if _, err := r.Watch(gc, "x", observed.RoleLeader); err == nil || errors.Is(err, ErrNoProcess) {
		t.Errorf("Watch after Close: got %v, want a closed runner error", err)
	}
	if _, err := r.Start(helperSpec(t, "x", "sleep")); err == nil {
		t.Error("Start after Close: got no error")
	}
}

func TestOrphanReaped(t *testing.T) {
	tag, ch := subscribe(t)
	pidFile := filepath.Join(t.TempDir(), "orphan.pid")
	l := start(t, helperSpec(t, tag, "orphans", "1", pidFile))
	orphan := readPIDEventually(t, pidFile) // in l's group, killed at cleanup
	if e := waitExit(t, ch); e.PID != l.PID || e.Code != 0 {
		t.Fatalf("got %+v, want the helper %d exiting with 0", e, l.PID)
	}
	eventually(t, "orphan reparented to the test process", func() bool {
		s, err := readProcStat(orphan)
		return err == nil && s.ppid == os.Getpid()
	})
	if err := SignalProcess(orphan, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "orphan reaped", func() bool {
		_, err := readProcStat(orphan)
		return errors.Is(err, ErrNoProcess)
	})
	if z := zombiesOf(os.Getpid()); len(z) > 0 {
		t.Errorf("zombies left: %v", z)
	}
	noExit(t, ch)
}

// TestWatcherCollectsChildStatus holds the test Runner's reaper off while a
// second Runner watches a child of the test process: the pidfd watcher, not
// the reaper, sees the exit first and collects the real status itself.
func TestWatcherCollectsChildStatus(t *testing.T) {
	tag, _ := subscribe(t)
	l := start(t, helperSpec(t, tag, "sleep"))
	got := make(chan observed.Exit, 4)
	r := NewRunner(slog.New(slog.DiscardHandler), func(e observed.Exit) { got <- e })
	defer r.Close()
	if _, err := r.Watch(l.PID, "watched", observed.RoleLeader); err != nil {
		t.Fatal(err)
	}
	testRunner.mu.Lock()
	if err := SignalProcess(l.PID, "SIGKILL"); err != nil {
		testRunner.mu.Unlock()
		t.Fatal(err)
	}
	var e observed.Exit
	select {
	case e = <-got:
	case <-time.After(timeout):
	}
	testRunner.mu.Unlock()
	// The test Runner's registration can never be delivered now.
	testRunner.Forget(tag)
	want := observed.Exit{Tag: "watched", Role: observed.RoleLeader, PID: l.PID, Code: 137, Signal: 9}
	e.Ended = time.Time{}
	if e != want {
		t.Errorf("got %+v, want %+v", e, want)
	}
	if _, err := readProcStat(l.PID); !errors.Is(err, ErrNoProcess) {
		t.Errorf("child not reaped by the watcher: %v", err)
	}
}

// TestReaperChecksIdentity gives the reaper a pidfd registration whose
// process is not the zombie with that pid (as after the watched process died
// and a new child reused its pid): the reaper must not deliver the zombie's
// exit for it.
func TestReaperChecksIdentity(t *testing.T) {
	gc := startGrandchild(t)
	tag, ch := subscribe(t)
	l := start(t, helperSpec(t, tag, "sleep"))
	fd, err := unix.PidfdOpen(gc, unix.PIDFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	other := &registration{pid: l.PID, tag: tag, role: observed.RoleLeader, pidfd: os.NewFile(uintptr(fd), "pidfd")}
	defer other.pidfd.Close()
	testRunner.mu.Lock()
	testRunner.procs[l.PID] = other
	testRunner.mu.Unlock()
	defer func() {
		testRunner.mu.Lock()
		testRunner.drop(other)
		testRunner.mu.Unlock()
	}()
	if err := SignalProcess(l.PID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "child reaped", func() bool {
		_, err := readProcStat(l.PID)
		return errors.Is(err, ErrNoProcess)
	})
	noExit(t, ch)
	testRunner.mu.Lock()
	kept := testRunner.procs[l.PID] == other && !other.done
	testRunner.mu.Unlock()
	if !kept {
		t.Error("the reaper dropped a registration that was not the reaped process's")
	}
}

// threads counts the test process's OS threads.
func threads(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestWatchManyWithoutThreads watches many processes and checks that no OS
// thread is parked per process (DESIGN §5.1a), then that every exit arrives
// once, with the real status: the orphans are the subreaper's children.
func TestWatchManyWithoutThreads(t *testing.T) {
	const n = 40
	tag, ch := subscribe(t)
	pidFile := filepath.Join(t.TempDir(), "orphans")
	l := start(t, helperSpec(t, tag, "orphans", strconv.Itoa(n), pidFile))
	if e := waitExit(t, ch); e.PID != l.PID || e.Code != 0 {
		t.Fatalf("got %+v, want the helper %d exiting with 0", e, l.PID)
	}
	var pids []int
	for _, line := range readLines(t, pidFile) {
		pid, err := strconv.Atoi(line)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	before, goroutines := threads(t), runtime.NumGoroutine()
	for _, pid := range pids {
		if _, err := testRunner.Watch(pid, tag, observed.RoleLeader); err != nil {
			t.Fatal(err)
		}
	}
	if got := threads(t); got > before+n/4 {
		t.Errorf("got %d threads watching %d processes, had %d", got, n, before)
	}
	if err := SignalGroup(l.PGID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for range n {
		e := waitExit(t, ch)
		seen[e.PID]++
		if e.Code != 137 || e.Signal != 9 {
			t.Errorf("got %+v, want code 137 from the reaper", e)
		}
	}
	for _, pid := range pids {
		if seen[pid] != 1 {
			t.Errorf("pid %d: %d exits, want 1", pid, seen[pid])
		}
	}
	noExit(t, ch)
	eventually(t, "watcher goroutines gone", func() bool { return runtime.NumGoroutine() <= goroutines })
}
