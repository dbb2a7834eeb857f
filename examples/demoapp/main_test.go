package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitTimeout bounds every wait in these tests. It is generous so that slow
// or loaded machines (and -race) do not cause failures; passing runs finish
// far sooner.
const waitTimeout = 10 * time.Second

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// demoBin is the demoapp binary built by TestMain.
var demoBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "demoapp-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	demoBin = filepath.Join(dir, "demoapp")
	if out, err := exec.Command("go", "build", "-o", demoBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building demoapp: %v\n%s", err, out)
		return 1
	}
	// A mode 2 daemon is orphaned when its launcher exits. As a child
	// subreaper this process inherits it, so the tests can reap it even where
	// pid 1 (for example in a container) does not reap orphans.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		fmt.Fprintf(os.Stderr, "prctl(PR_SET_CHILD_SUBREAPER): %v\n", errno)
		return 1
	}
	return m.Run()
}

// output collects the lines written to one pipe by a child process.
type output struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	eof     bool
	changed chan struct{} // closed and replaced whenever lines or eof change
	done    chan struct{} // closed when the reader goroutine has returned
}

// readOutput starts collecting the lines read from r.
func readOutput(r io.Reader) *output {
	o := &output{changed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			o.mu.Lock()
			o.partial = append(o.partial, buf[:n]...)
			for {
				i := bytes.IndexByte(o.partial, '\n')
				if i < 0 {
					break
				}
				o.lines = append(o.lines, string(o.partial[:i]))
				o.partial = o.partial[i+1:]
			}
			if err != nil {
				if len(o.partial) > 0 {
					o.lines = append(o.lines, string(o.partial))
					o.partial = nil
				}
				o.eof = true
			}
			close(o.changed)
			o.changed = make(chan struct{})
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return o
}

// snapshot returns the lines read so far, whether the pipe is at EOF, and a
// channel that is closed on the next change.
func (o *output) snapshot() ([]string, bool, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.lines), o.eof, o.changed
}

// waitFor waits until n lines at index from or later satisfy match and
// returns the lines and the index just past the nth matching line.
func (o *output) waitFor(t *testing.T, what string, from, n int, match func(string) bool) ([]string, int) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		lines, eof, changed := o.snapshot()
		var found []string
		for i := from; i < len(lines); i++ {
			if match(lines[i]) {
				found = append(found, lines[i])
				if len(found) == n {
					return found, i + 1
				}
			}
		}
		if eof {
			t.Fatalf("output ended before %d %s; got:\n%s", n, what, strings.Join(lines, "\n"))
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("timed out waiting for %d %s; got:\n%s", n, what, strings.Join(lines, "\n"))
		}
	}
}

// waitContains waits for a line containing s and returns the index after it.
func (o *output) waitContains(t *testing.T, s string) int {
	t.Helper()
	_, next := o.waitFor(t, fmt.Sprintf("line(s) containing %q", s), 0, 1, func(l string) bool {
		return strings.Contains(l, s)
	})
	return next
}

// child is a running demoapp process.
type child struct {
	cmd            *exec.Cmd
	stdout, stderr *output
	done           chan struct{} // closed when the process has been waited for
	state          *os.ProcessState
}

// startDemo starts demoapp with args and, besides a cleaned copy of this
// process's environment, env. The process is killed and waited for when the
// test ends.
func startDemo(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	// The stdout and stderr pipes are *os.File, so that Wait does not wait
	// for a mode 2 daemon that inherited them.
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), demoBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout = outW
	cmd.Stderr = errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		t.Fatal(err)
	}
	c := &child{
		cmd:    cmd,
		stdout: readOutput(outR),
		stderr: readOutput(errR),
		done:   make(chan struct{}),
	}
	go func() {
		_ = cmd.Wait() // the exit status is in ProcessState
		c.state = cmd.ProcessState
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // fails harmlessly if it has exited
		<-c.done
		outR.Close()
		errR.Close()
		<-c.stdout.done
		<-c.stderr.done
		if t.Failed() {
			lines, _, _ := c.stderr.snapshot()
			t.Logf("demoapp stderr:\n%s", strings.Join(lines, "\n"))
		}
	})
	return c
}

// cleanEnv returns this process's environment without the variables that
// would change demoapp's behaviour.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATROL_") && !strings.HasPrefix(kv, "DEMOAPP_") {
			env = append(env, kv)
		}
	}
	return env
}

// pid returns the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// signal sends sig to the child.
func (c *child) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v: %v", sig, err)
	}
}

// wait waits for the child to exit and returns its state.
func (c *child) wait(t *testing.T) *os.ProcessState {
	t.Helper()
	select {
	case <-c.done:
		return c.state
	case <-time.After(waitTimeout):
		t.Fatalf("demoapp pid %d did not exit within %v", c.pid(), waitTimeout)
		return nil
	}
}

// waitExitCode waits for the child to exit and checks its exit code.
func (c *child) waitExitCode(t *testing.T, want int) {
	t.Helper()
	if st := c.wait(t); st.ExitCode() != want {
		t.Fatalf("demoapp exited with %v, want exit code %d", st, want)
	}
}

// waitStarted waits for the line demoapp prints once its signal handlers
// are installed.
func (c *child) waitStarted(t *testing.T) {
	t.Helper()
	c.stdout.waitContains(t, fmt.Sprintf(": started pid %d ", c.pid()))
}

// tickRE returns a pattern for the tick lines of an app with prefix.
func tickRE(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `: tick (\d+) at (\S+)$`)
}

func TestTicks(t *testing.T) {
	tests := []struct {
		name   string
		env    []string
		args   []string
		prefix string
		sig    syscall.Signal
		stop   string
	}{
		{
			name:   "default mode",
			env:    []string{"PATROL_ID=clock"},
			prefix: "demoapp clock",
			sig:    syscall.SIGTERM,
			stop:   "demoapp: stopping (SIGTERM)",
		},
		{
			name:   "PATROL_KEEPALIVE=1",
			env:    []string{"PATROL_ID=clock", "PATROL_KEEPALIVE=1"},
			prefix: "demoapp clock",
			sig:    syscall.SIGINT,
			stop:   "demoapp: stopping (SIGINT)",
		},
		{
			name:   "-mode overrides PATROL_KEEPALIVE",
			env:    []string{"PATROL_ID=clock", "PATROL_KEEPALIVE=4"},
			args:   []string{"-mode", "1"},
			prefix: "demoapp clock",
			sig:    syscall.SIGTERM,
			stop:   "demoapp: stopping (SIGTERM)",
		},
		{
			name:   "no PATROL_ID",
			prefix: "demoapp",
			sig:    syscall.SIGTERM,
			stop:   "demoapp: stopping (SIGTERM)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startDemo(t, tt.env, append([]string{"-interval", "20ms"}, tt.args...)...)
			c.stdout.waitContains(t, tt.prefix+": started pid "+strconv.Itoa(c.pid())+" keepalive mode 1 ")

			re := tickRE(tt.prefix)
			ticks, _ := c.stdout.waitFor(t, "tick lines", 0, 5, re.MatchString)
			for i, line := range ticks {
				m := re.FindStringSubmatch(line)
				if m[1] != strconv.Itoa(i+1) {
					t.Errorf("tick line %q has number %s, want %d", line, m[1], i+1)
				}
				if _, err := time.Parse(time.RFC3339, m[2]); err != nil {
					t.Errorf("tick line %q: time is not RFC 3339: %v", line, err)
				}
			}
			c.stderr.waitContains(t, tt.prefix+": tick 5 on stderr")

			c.signal(t, tt.sig)
			c.waitExitCode(t, 0)
			c.stdout.waitContains(t, tt.stop)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"bad -mode", nil, []string{"-mode", "5"}, 2, "keepalive mode must be 1, 2, 3 or 4, got 5"},
		{"bad PATROL_KEEPALIVE", []string{"PATROL_KEEPALIVE=http"}, nil, 2, `PATROL_KEEPALIVE="http" is not a number`},
		{"mode 3 without PATROL_HTTP", []string{"PATROL_KEEPALIVE=3"}, nil, 2, "needs at least one address in PATROL_HTTP"},
		{"mode 4 with bad PATROL_UDP", []string{"PATROL_UDP=127.0.0.1:1248"}, []string{"-mode", "4"}, 2, "PATROL_UDP=\"127.0.0.1:1248\" is not a JSON array"},
		{"zero -interval", nil, []string{"-interval", "0s"}, 2, "-interval must be positive"},
		{"unknown flag", nil, []string{"-bogus"}, 2, "flag provided but not defined: -bogus"},
		{"mode 2 without PATROL_PID", []string{"PATROL_KEEPALIVE=2"}, nil, 1, "PATROL_PID is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startDemo(t, tt.env, tt.args...)
			c.waitExitCode(t, tt.wantCode)
			c.stderr.waitContains(t, tt.wantErr)
		})
	}
}

// procStat returns the state, parent pid and session id of pid from
// /proc/<pid>/stat.
func procStat(pid int) (state string, ppid, sid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, 0, err
	}
	// The command name is in parentheses and may contain anything, so the
	// fields are counted from the last ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 4 {
		return "", 0, 0, fmt.Errorf("short /proc/%d/stat: %q", pid, s)
	}
	ppid, err1 := strconv.Atoi(fields[1])
	sid, err2 := strconv.Atoi(fields[3])
	if err := errors.Join(err1, err2); err != nil {
		return "", 0, 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return fields[0], ppid, sid, nil
}

// reapDaemon waits, polling, for the orphaned daemon pid (inherited by this
// subreaper) to exit and reaps it.
func reapDaemon(t *testing.T, pid int) syscall.WaitStatus {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if err != nil {
			t.Fatalf("wait4(%d): %v", pid, err)
		}
		if got == pid {
			return ws
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon pid %d did not exit within %v", pid, waitTimeout)
		}
		<-tick.C
	}
}

func TestDaemon(t *testing.T) {
	tests := []struct {
		name        string
		replacePID  bool // another process has taken over the pid file
		wantRemoved bool
	}{
		{name: "graceful stop removes pid file", wantRemoved: true},
		{name: "pid file of another process is kept", replacePID: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidPath := filepath.Join(t.TempDir(), "daemon.pid")
			launcher := startDemo(t, []string{
				"PATROL_ID=daemon",
				"PATROL_KEEPALIVE=2",
				"PATROL_PID=" + pidPath,
			}, "-interval", "20ms")
			launcher.waitExitCode(t, 0)

			b, err := os.ReadFile(pidPath)
			if err != nil {
				t.Fatalf("reading pid file after the launcher exited: %v", err)
			}
			if !regexp.MustCompile(`^[1-9][0-9]*\n$`).Match(b) {
				t.Fatalf("pid file holds %q, want a pid and a newline", b)
			}
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if pid == launcher.pid() {
				t.Fatalf("pid file holds the launcher's pid %d, want the daemon's", pid)
			}

			reaped := false
			t.Cleanup(func() {
				if !reaped {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					var ws syscall.WaitStatus
					_, _ = syscall.Wait4(pid, &ws, 0, nil)
				}
			})

			launcher.stdout.waitContains(t, fmt.Sprintf("demoapp: daemon started with pid %d", pid))
			state, ppid, sid, err := procStat(pid)
			if err != nil {
				t.Fatalf("daemon pid %d is not running: %v", pid, err)
			}
			if state == "Z" || state == "X" {
				t.Fatalf("daemon pid %d is dead (state %s)", pid, state)
			}
			if sid != pid {
				t.Errorf("daemon pid %d is in session %d, want its own session", pid, sid)
			}
			if ppid != os.Getpid() {
				t.Errorf("daemon pid %d has parent %d, want this subreaper %d", pid, ppid, os.Getpid())
			}
			// The daemon keeps the launcher's stdout.
			launcher.stdout.waitFor(t, "daemon tick lines", 0, 2, tickRE("demoapp daemon").MatchString)

			if tt.replacePID {
				if err := os.WriteFile(pidPath, []byte("1\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			ws := reapDaemon(t, pid)
			reaped = true
			if !ws.Exited() || ws.ExitStatus() != 0 {
				t.Errorf("daemon exit status %#x, want exit code 0", ws)
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("/proc/%d still exists after the daemon was reaped (err %v)", pid, err)
			}
			launcher.stdout.waitContains(t, "demoapp: stopping (SIGTERM)")

			b, err = os.ReadFile(pidPath)
			switch {
			case tt.wantRemoved && !errors.Is(err, os.ErrNotExist):
				t.Errorf("pid file still exists after a graceful stop (content %q, err %v)", b, err)
			case !tt.wantRemoved && (err != nil || string(b) != "1\n"):
				t.Errorf("pid file of another process was changed: content %q, err %v", b, err)
			}
			entries, err := os.ReadDir(filepath.Dir(pidPath))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() != filepath.Base(pidPath) {
					t.Errorf("leftover file %s next to the pid file", e.Name())
				}
			}
		})
	}
}

// checkPing checks that body is the keepalive JSON of process pid.
func checkPing(t *testing.T, body []byte, id string, pid int, secret string) {
	t.Helper()
	var got map[string]json.RawMessage
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("ping %q is not a JSON object: %v", body, err)
	}
	want := map[string]string{
		"id":    strconv.Quote(id),
		"group": `"app"`,
		"ping":  "true",
		"pid":   strconv.Itoa(pid),
	}
	if secret != "" {
		want["secret"] = strconv.Quote(secret)
	}
	if len(got) != len(want) {
		t.Errorf("ping %s has fields %v, want %v", body, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("ping %s: %q is %s, want %s", body, k, got[k], v)
		}
	}
}

// addrsJSON returns addrs as a JSON array, as in PATROL_HTTP and PATROL_UDP.
func addrsJSON(t *testing.T, addrs ...string) string {
	t.Helper()
	b, err := json.Marshal(addrs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHTTPKeepalive(t *testing.T) {
	tests := []struct {
		name       string
		env        []string
		args       []string
		interval   string
		pings      int
		wantSecret string
	}{
		{name: "pings", interval: "20ms", pings: 2},
		{name: "first ping at once", interval: "1h", pings: 1},
		{name: "-secret", args: []string{"-secret", "s3cret"}, interval: "20ms", pings: 2, wantSecret: "s3cret"},
		{name: "DEMOAPP_SECRET", env: []string{"DEMOAPP_SECRET=from-env"}, interval: "20ms", pings: 2, wantSecret: "from-env"},
		{name: "-secret beats DEMOAPP_SECRET", env: []string{"DEMOAPP_SECRET=from-env"}, args: []string{"-secret", "flag"}, interval: "20ms", pings: 2, wantSecret: "flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type request struct {
				method, path, contentType string
				body                      []byte
			}
			reqs := make(chan request, 100)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				select {
				case reqs <- request{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body}:
				default:
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"ok":true}`)
			}))
			t.Cleanup(srv.Close) // registered first, so it runs after demoapp is stopped

			env := append([]string{
				"PATROL_ID=web",
				"PATROL_KEEPALIVE=3",
				"PATROL_HTTP=" + addrsJSON(t, srv.Listener.Addr().String()),
			}, tt.env...)
			c := startDemo(t, env, append([]string{"-interval", tt.interval}, tt.args...)...)

			timeout := time.After(waitTimeout)
			for i := range tt.pings {
				select {
				case r := <-reqs:
					if r.method != http.MethodPost || r.path != "/api/" || r.contentType != "application/json" {
						t.Errorf("ping %d: %s %s with Content-Type %q, want POST /api/ with application/json", i, r.method, r.path, r.contentType)
					}
					checkPing(t, r.body, "web", c.pid(), tt.wantSecret)
				case <-timeout:
					t.Fatalf("got %d pings within %v, want %d", i, waitTimeout, tt.pings)
				}
			}
		})
	}
}

func TestUDPKeepalive(t *testing.T) {
	tests := []struct {
		name      string
		interval  string
		pings     int
		wantReply bool // the reply is printed, so it must arrive in time
	}{
		{name: "pings and replies", interval: "50ms", pings: 2, wantReply: true},
		{name: "first ping at once", interval: "1h", pings: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pc.Close() })

			c := startDemo(t, []string{
				"PATROL_ID=beacon",
				"PATROL_KEEPALIVE=4",
				"PATROL_UDP=" + addrsJSON(t, pc.LocalAddr().String()),
			}, "-interval", tt.interval)

			if err := pc.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64<<10)
			for i := range tt.pings {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					t.Fatalf("after %d datagrams: %v", i, err)
				}
				checkPing(t, buf[:n], "beacon", c.pid(), "")
				if tt.wantReply {
					if _, err := pc.WriteTo(fmt.Appendf(nil, "pong %d", i+1), from); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tt.wantReply {
				c.stdout.waitContains(t, "demoapp beacon: keepalive reply: pong 1")
			}
		})
	}
}

func TestCrashAfter(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"-exit-code 3", []string{"-exit-code", "3"}, 3},
		{"default exit code", nil, 1},
		{"-exit-code 0", []string{"-exit-code", "0"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startDemo(t, nil, append([]string{"-crash-after", "50ms"}, tt.args...)...)
			c.waitExitCode(t, tt.wantCode)
			c.stderr.waitContains(t, fmt.Sprintf("demoapp: crashing on purpose with code %d", tt.wantCode))
		})
	}
}

func TestExitSignals(t *testing.T) {
	tests := []struct {
		sig      syscall.Signal
		wantCode int
	}{
		{syscall.SIGUSR1, 10},
		{syscall.SIGUSR2, 12},
	}
	for _, tt := range tests {
		t.Run(signalName(tt.sig), func(t *testing.T) {
			c := startDemo(t, nil)
			c.waitStarted(t)
			c.signal(t, tt.sig)
			c.waitExitCode(t, tt.wantCode)
		})
	}
}

func TestSIGHUPContinues(t *testing.T) {
	c := startDemo(t, []string{"PATROL_ID=hup"}, "-interval", "20ms")
	c.waitStarted(t)
	c.signal(t, syscall.SIGHUP)
	next := c.stdout.waitContains(t, "demoapp: got SIGHUP")
	c.stdout.waitFor(t, "tick line after SIGHUP", next, 1, tickRE("demoapp hup").MatchString)
	c.signal(t, syscall.SIGTERM)
	c.waitExitCode(t, 0)
}

func TestIgnoreSIGTERM(t *testing.T) {
	c := startDemo(t, []string{"PATROL_ID=stubborn"}, "-interval", "20ms", "-ignore-sigterm")
	c.waitStarted(t)
	c.signal(t, syscall.SIGTERM)
	c.stderr.waitContains(t, "demoapp: ignoring SIGTERM")
	// The message and the ticks come from the same loop, so a tick line
	// after this point was printed after the signal was handled.
	lines, _, _ := c.stdout.snapshot()
	c.stdout.waitFor(t, "tick line after SIGTERM", len(lines), 1, tickRE("demoapp stubborn").MatchString)
	select {
	case <-c.done:
		t.Fatalf("demoapp exited after SIGTERM with -ignore-sigterm: %v", c.state)
	default:
	}

	c.signal(t, syscall.SIGKILL)
	st := c.wait(t)
	if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("demoapp ended with %v, want killed by SIGKILL", st)
	}
}
