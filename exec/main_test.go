package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	osexec "os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol/observed"
)

// The test binary re-executes itself as the child processes of the tests:
// "patrol-helper CMD ARGS..." runs a helper command instead of the tests.
const helperArg = "patrol-helper"

// helperLife bounds how long a helper lives, so a crashed test run leaves no
// process behind for long.
const helperLife = 2 * time.Minute

// timeout bounds every wait of the tests.
const timeout = 20 * time.Second

// testRunner is the Runner of the test process; its Run runs for the whole
// test run, as Patrol's would.
var testRunner *Runner

// exits routes delivered exits to the tests by tag.
var exits = &exitHub{chans: map[string]chan observed.Exit{}}

func TestMain(m *testing.M) {
	Launcher()
	if len(os.Args) > 1 && os.Args[1] == helperArg {
		// syscall.Exit skips the race detector's exit hook, which sleeps a
		// second in every helper of a -race build.
		syscall.Exit(helper(os.Args[2:]))
	}
	testRunner = NewRunner(slog.New(slog.DiscardHandler), exits.notify)
	testRunner.OnNotify(notes.deliver)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- testRunner.Run(ctx) }()

	code := m.Run()

	// Every test killed what it started; the reaper must have collected
	// them all, and no exit may have gone astray.
	var problems []string
	if left := waitNoChildren(); len(left) > 0 {
		problems = append(problems, fmt.Sprintf("children left after the tests: %v", left))
		for _, p := range left {
			syscall.Kill(p.PID, syscall.SIGKILL)
		}
	}
	cancel()
	if err := <-runDone; err != nil {
		problems = append(problems, fmt.Sprintf("Run: %v", err))
	}
	testRunner.Close()
	if stray := exits.strays(); len(stray) > 0 {
		problems = append(problems, fmt.Sprintf("exits delivered for no test: %+v", stray))
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "FAIL:", p)
		code = 1
	}
	os.Exit(code)
}

// waitNoChildren waits until the test process has no child left (alive or
// zombie) and returns those still there at the deadline.
func waitNoChildren() []procInfo {
	deadline := time.Now().Add(timeout)
	for {
		left := childrenOf(os.Getpid())
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procInfo is a process found in /proc.
type procInfo struct {
	PID   int
	State byte
}

// childrenOf lists the processes whose parent is ppid.
func childrenOf(ppid int) []procInfo {
	entries, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err == nil && st.ppid == ppid {
			out = append(out, procInfo{PID: pid, State: st.state})
		}
	}
	return out
}

// zombiesOf lists the zombie children of ppid.
func zombiesOf(ppid int) []procInfo {
	var out []procInfo
	for _, p := range childrenOf(ppid) {
		if p.State == 'Z' {
			out = append(out, p)
		}
	}
	return out
}

// exitHub hands each delivered exit to the test that owns its tag. Exits
// for a tag no test subscribed to, or more than a channel holds, are strays.
type exitHub struct {
	mu    sync.Mutex
	n     int
	chans map[string]chan observed.Exit
	stray []observed.Exit
}

func (h *exitHub) notify(e observed.Exit) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.chans[e.Tag]
	if ok && ch == nil {
		return // the test is over
	}
	if ok {
		select {
		case ch <- e:
			return
		default:
		}
	}
	h.stray = append(h.stray, e)
}

func (h *exitHub) strays() []observed.Exit {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]observed.Exit(nil), h.stray...)
}

// subscribe returns a new tag and the channel its exits arrive on. At the
// end of the test the Runner forgets the tag, and exits still delivered for
// it are ignored: the processes the test leaves are killed at its end.
func subscribe(t *testing.T) (string, chan observed.Exit) {
	t.Helper()
	exits.mu.Lock()
	exits.n++
	tag := fmt.Sprintf("%s#%d", t.Name(), exits.n)
	ch := make(chan observed.Exit, 256)
	exits.chans[tag] = ch
	exits.mu.Unlock()
	t.Cleanup(func() {
		testRunner.Forget(tag)
		exits.mu.Lock()
		exits.chans[tag] = nil
		exits.mu.Unlock()
	})
	return tag, ch
}

// waitExit returns the next exit delivered on ch.
func waitExit(t *testing.T, ch <-chan observed.Exit) observed.Exit {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(timeout):
		t.Fatalf("no exit delivered within %v", timeout)
		return observed.Exit{}
	}
}

// noExit checks that nothing more is delivered on ch for a short while: a
// negative check needs a window.
func noExit(t *testing.T, ch <-chan observed.Exit) {
	t.Helper()
	select {
	case e := <-ch:
		t.Errorf("unexpected exit: %+v", e)
	case <-time.After(100 * time.Millisecond):
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testBinary is the test executable, which the helper processes run.
func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// helperSpec is a Spec running helper command args.
func helperSpec(t *testing.T, tag string, args ...string) Spec {
	return Spec{Path: testBinary(t), Args: append([]string{helperArg}, args...), Tag: tag, Role: observed.RoleLeader}
}

// start starts s with testRunner and kills its process group at the end of
// the test.
func start(t *testing.T, s Spec) observed.Launch {
	t.Helper()
	l, err := testRunner.Start(s)
	if err != nil {
		t.Fatal(err)
	}
	killGroupAtCleanup(t, l.PGID)
	return l
}

// killGroupAtCleanup kills process group pgid at the end of the test.
func killGroupAtCleanup(t *testing.T, pgid int) {
	t.Cleanup(func() {
		if err := SignalGroup(pgid, "SIGKILL"); err != nil && !errors.Is(err, ErrNoProcess) {
			t.Errorf("kill process group %d: %v", pgid, err)
		}
	})
}

// readPIDEventually waits until the pid file at path holds a process id.
func readPIDEventually(t *testing.T, path string) int {
	t.Helper()
	var pid int
	eventually(t, "pid file "+path, func() bool {
		var err error
		pid, err = ReadPIDFile(path)
		return err == nil
	})
	return pid
}

// registered returns the number of live registrations of tag in r.
func (r *Runner) registered(tag string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, reg := range r.procs {
		if reg.tag == tag {
			n++
		}
	}
	for reg := range r.watched {
		if reg.tag == tag && r.procs[reg.pid] != reg {
			n++
		}
	}
	return n
}

// helper runs a helper command in a child process and returns its exit
// code.
func helper(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "patrol-helper: no command")
		return 2
	}
	cmd, args := args[0], args[1:]
	arg := func(i int) string {
		if i >= len(args) {
			fmt.Fprintf(os.Stderr, "patrol-helper %s: missing argument %d\n", cmd, i+1)
			os.Exit(2)
		}
		return args[i]
	}
	switch cmd {
	case "sleep":
		time.Sleep(helperLife)
	case "write-pid-sleep":
		if err := writeLines(arg(0), []string{strconv.Itoa(os.Getpid())}); err != 0 {
			return err
		}
		time.Sleep(helperLife)
	case "notify":
		// Send each argument as one datagram to NOTIFY_SOCKET, then sleep.
		c, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "notify:", err)
			return 3
		}
		for _, m := range args {
			if _, err := c.Write([]byte(m)); err != nil {
				fmt.Fprintln(os.Stderr, "notify:", err)
				return 3
			}
		}
		time.Sleep(helperLife)
	case "exit":
		n, err := strconv.Atoi(arg(0))
		if err != nil {
			return 2
		}
		return n
	case "waiter-idle":
		return waiterIdle(arg(0))
	case "spawn-before-run":
		return spawnBeforeRun()
	case "burn":
		return burn()
	case "ignore-sigterm":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(helperLife)
	case "print-env":
		return writeLines(arg(0), os.Environ())
	case "print-args":
		b, _ := json.Marshal(os.Args)
		return writeLines(arg(0), []string{string(b)})
	case "print-wd":
		wd, err := os.Getwd()
		if err != nil {
			return 1
		}
		return writeLines(arg(0), []string{wd})
	case "print-stdin":
		target, err := os.Readlink("/proc/self/fd/0")
		if err != nil {
			return 1
		}
		return writeLines(arg(0), []string{target})
	case "write-fd3":
		if _, err := os.NewFile(3, "fd3").WriteString("fd3\n"); err != nil {
			return 1
		}
	case "write-stdout-stderr":
		os.Stdout.WriteString("out\n")
		os.Stderr.WriteString("err\n")
	case "daemonize":
		return daemonize()
	case "daemon":
		// Exit 7 on SIGTERM, a code only the real exit status carries.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		if err := writeFileAtomic(os.Getenv("PATROL_PID"), strconv.Itoa(os.Getpid())+"\n"); err != nil {
			return 1
		}
		select {
		case <-sigs:
			return 7
		case <-time.After(helperLife):
		}
	case "spawn-grandchild":
		// The grandchild stays in this process group; this process reaps it,
		// so it is never reparented while this one lives.
		c := osexec.Command(os.Args[0], helperArg, "sleep")
		if err := c.Start(); err != nil {
			return 1
		}
		go c.Wait()
		if err := writeFileAtomic(arg(0), strconv.Itoa(c.Process.Pid)); err != nil {
			return 1
		}
		time.Sleep(helperLife)
	case "orphans":
		// The grandchildren are left behind: they are reparented to the
		// nearest subreaper, the test process.
		n, err := strconv.Atoi(arg(0))
		if err != nil {
			return 2
		}
		var pids []string
		for range n {
			c := osexec.Command(os.Args[0], helperArg, "sleep")
			if err := c.Start(); err != nil {
				return 1
			}
			pids = append(pids, strconv.Itoa(c.Process.Pid))
		}
		return writeLines(arg(1), pids)
	case "print-args-and-exit":
		// Writes its arguments (JSON) to stdout and exits with code N.
		n, err := strconv.Atoi(arg(0))
		if err != nil {
			return 2
		}
		b, _ := json.Marshal(os.Args[1:])
		os.Stdout.Write(append(b, '\n'))
		return n
	case "interleave":
		// Alternates between stdout and stderr, one write each.
		for i := range 5 {
			os.Stdout.WriteString("out" + strconv.Itoa(i) + "\n")
			os.Stderr.WriteString("err" + strconv.Itoa(i) + "\n")
		}
	case "print-lots":
		n, err := strconv.Atoi(arg(0))
		if err != nil {
			return 2
		}
		if _, err := os.Stdout.Write(lotsOfBytes(n)); err != nil {
			return 1
		}
	case "kill-self":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(helperLife)
	case "hang":
		os.Stdout.WriteString("hanging\n")
		time.Sleep(helperLife)
	case "hang-with-child-holding-stdout", "exit-with-child-holding-stdout":
		// A child in this process group (or, for "exit-...", a session of
		// its own, as a daemon) inherits stdout; its pid is written to
		// arg(0). "hang-..." then hangs, "exit-..." exits 0.
		c := osexec.Command(os.Args[0], helperArg, "sleep")
		c.Stdout = os.Stdout
		if cmd == "exit-with-child-holding-stdout" {
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		}
		if err := c.Start(); err != nil {
			return 1
		}
		if err := writeFileAtomic(arg(0), strconv.Itoa(c.Process.Pid)); err != nil {
			return 1
		}
		os.Stdout.WriteString("child started\n")
		if cmd == "exit-with-child-holding-stdout" {
			return 0
		}
		go c.Wait()
		time.Sleep(helperLife)
	default:
		fmt.Fprintf(os.Stderr, "patrol-helper: unknown command %q\n", cmd)
		return 2
	}
	return 0
}

// daemonize starts "daemon" in a new session and exits once the daemon has
// written its pid to $PATROL_PID, as a forking daemon's launcher does.
func daemonize() int {
	pidPath := os.Getenv("PATROL_PID")
	c := osexec.Command(os.Args[0], helperArg, "daemon")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	want := strconv.Itoa(c.Process.Pid)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(pidPath); err == nil && strings.TrimSpace(string(b)) == want {
			return 0
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 1
}

// writeLines writes lines, each followed by a newline, to path.
func writeLines(path string, lines []string) int {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	if err := writeFileAtomic(path, b.String()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// writeFileAtomic writes a file that readers see whole or not at all.
func writeFileAtomic(path, content string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lotsOfBytes is n bytes of a pattern that does not repeat every power of
// two, so a tail taken at the wrong offset shows.
func lotsOfBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}
