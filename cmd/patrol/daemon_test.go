package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// mainArg makes the test binary run as `patrol` itself, so the daemon
// tests exercise the real main with real signals.
const mainArg = "patrol-main"

func TestMain(m *testing.M) {
	patrol.Launcher()
	testhelper.Dispatch()
	if len(os.Args) > 1 && os.Args[1] == mainArg {
		os.Exit(run(context.Background(), os.Args[2:], os.Stdout, os.Stderr))
	}
	// Orphans of a daemon under test come to us, so the leak check sees
	// anything it leaves behind.
	if err := testhelper.SetSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "subreaper:", err)
		os.Exit(1)
	}
	fds := testhelper.CountFDs()
	code := m.Run()
	if code == 0 {
		for _, p := range testhelper.LeakCheck(fds, 4) {
			fmt.Fprintln(os.Stderr, "leak check:", p)
			code = 1
		}
	}
	os.Exit(code)
}

// proc is a `patrol run` process under test.
type proc struct {
	cmd    *osexec.Cmd
	addr   string
	logs   chan string
	exited chan error
}

var listening = regexp.MustCompile(`msg="http listening" addr=(\S+)`)

// startDaemon runs `patrol run --config path --http 127.0.0.1:0 --udp
// 127.0.0.1:0` and waits until it listens. Both ports are free ones, so that
// test binaries running at once do not collide on the default UDP port.
func startDaemon(t *testing.T, path string) *proc {
	t.Helper()
	return startDaemonIn(t, "", "--config", path)
}

// startDaemonIn runs `patrol run ARGS --http 127.0.0.1:0 --udp
// 127.0.0.1:0` in dir (the test's directory when "").
func startDaemonIn(t testing.TB, dir string, args ...string) *proc {
	t.Helper()
	self, _ := os.Executable()
	cmd := osexec.Command(self, append(append([]string{mainArg, "run"}, args...), "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0")...)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: make(chan string, 1000), exited: make(chan error, 1)}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.exited
		}
	})
	deadline := time.After(10 * time.Second)
	for p.addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("patrol exited before listening: %v", <-p.exited)
			}
			t.Log(l)
			if m := listening.FindStringSubmatch(l); m != nil {
				p.addr = m[1]
			}
		case <-deadline:
			t.Fatal("patrol did not listen within 10s")
		}
	}
	go func() {
		for l := range lines {
			select {
			case p.logs <- l:
			default:
			}
		}
		close(p.logs)
	}()
	return p
}

func (p *proc) status(t testing.TB) *schema.Status {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/status/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st schema.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// wait waits for the daemon to exit and returns its exit code.
func (p *proc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-p.exited:
		if err == nil {
			return 0
		}
		if ee, ok := err.(*osexec.ExitError); ok {
			// Its log tells why (a race report exits 66).
			for l := range p.logs {
				t.Log(l)
			}
			return ee.ExitCode()
		}
		t.Fatalf("wait: %v", err)
	case <-time.After(timeout):
		t.Fatalf("patrol did not exit within %v", timeout)
	}
	return -1
}

func poll(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func helperApp(extra string, args ...string) string {
	self, _ := os.Executable()
	q, _ := json.Marshal(append([]string{testhelper.Arg}, args...))
	b, _ := json.Marshal(self)
	if extra != "" {
		extra = ", " + extra
	}
	return fmt.Sprintf(`{"binary": %s, "args": %s%s}`, b, q, extra)
}

// TestSIGTERMLeavesNothing: after `patrol run` exits on SIGTERM, no process
// it started, nor their children, is left, and no zombie remains.
func TestSIGTERMLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	cfg := fmt.Sprintf(`{"tick-every": 60, "apps": {
		"group": %s,
		"plain": %s,
		"stubborn": %s,
		"daemon": %s
	}}`,
		helperApp("", "spawn-grandchild", filepath.Join(dir, "group.pid")),
		helperApp("", "sleep", filepath.Join(dir, "plain.pid")),
		helperApp(`"stop-timeout": 0.3`, "ignore-sigterm", filepath.Join(dir, "stubborn.pid")),
		helperApp(`"keepalive": 2, "pid-path": "daemon.pid"`, "daemonize"))
	os.WriteFile(path, []byte(cfg), 0o644)
	p := startDaemon(t, path)
	var pids []int
	for _, f := range []string{"group.pid", "group.pid.grandchild", "plain.pid", "stubborn.pid", "daemon.pid"} {
		f = filepath.Join(dir, f)
		poll(t, f, 10*time.Second, func() bool { return testhelper.ReadPID(f) > 0 })
		pids = append(pids, testhelper.ReadPID(f))
	}
	poll(t, "every app running", 10*time.Second, func() bool {
		st := p.status(t)
		for _, a := range st.Apps {
			if a.State != schema.StateRunning {
				return false
			}
		}
		return len(st.Apps) == 4
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	for _, pid := range pids {
		if testhelper.Alive(pid) {
			t.Errorf("pid %d survived patrol's shutdown", pid)
		}
	}
	if kids := testhelper.Children(); len(kids) > 0 {
		t.Errorf("left behind (zombies or orphans reparented to the test): %v", kids)
	}
}

// TestSecondSignalKills: a second SIGTERM during a graceful shutdown kills
// what is left at once.
func TestSecondSignalKills(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	pidFile := filepath.Join(dir, "stubborn.pid")
	os.WriteFile(path, []byte(fmt.Sprintf(`{"apps": {"stubborn": %s}}`,
		helperApp(`"stop-timeout": 600`, "ignore-sigterm", pidFile))), 0o644)
	p := startDaemon(t, path)
	poll(t, "pid file", 10*time.Second, func() bool { return testhelper.ReadPID(pidFile) > 0 })
	pid := testhelper.ReadPID(pidFile)
	p.cmd.Process.Signal(syscall.SIGTERM)
	poll(t, "stopping", 5*time.Second, func() bool {
		a := p.status(t).Apps["stubborn"]
		return a != nil && a.State == schema.StateStopping
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if testhelper.Alive(pid) {
		t.Errorf("pid %d survived the second signal", pid)
	}
	testhelper.ReapOrphans()
}

// TestSIGHUPReloads: SIGHUP applies an edited config; an invalid edit is
// reported and changes nothing.
func TestSIGHUPReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	one := helperApp("", "sleep", filepath.Join(dir, "one.pid"))
	os.WriteFile(path, []byte(fmt.Sprintf(`{"apps": {"one": %s}}`, one)), 0o644)
	p := startDaemon(t, path)
	poll(t, "one running", 10*time.Second, func() bool {
		a := p.status(t).Apps["one"]
		return a != nil && a.State == schema.StateRunning
	})
	onePID := p.status(t).Apps["one"].PID

	os.WriteFile(path, []byte(`{"apps": {"one": {"binnary": "/x"}}}`), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	two := helperApp("", "sleep", filepath.Join(dir, "two.pid"))
	// Give the bad reload time to be (not) applied, then a good one.
	poll(t, "reload failure logged", 5*time.Second, func() bool {
		for {
			select {
			case l := <-p.logs:
				if strings.Contains(l, "config reload failed") {
					return true
				}
			default:
				return false
			}
		}
	})
	os.WriteFile(path, []byte(fmt.Sprintf(`{"apps": {"one": %s, "two": %s}}`, one, two)), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	poll(t, "two running", 10*time.Second, func() bool {
		a := p.status(t).Apps["two"]
		return a != nil && a.State == schema.StateRunning
	})
	if got := p.status(t).Apps["one"].PID; got != onePID {
		t.Errorf("unchanged app one restarted: pid %d -> %d", onePID, got)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestRunInvalidConfig: an invalid config at start-up exits 1 with every
// problem.
func TestRunInvalidConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, []byte(`{"tick-evry": 1, "apps": {"a": {}}}`), 0o644)
	code, _, errOut := cli(t, "run", "--config", path)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{path + ": apps.a.binary: required", path + `: tick-evry: unknown key, did you mean "tick-every"?`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}
