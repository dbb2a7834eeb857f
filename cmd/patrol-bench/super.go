package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/patrolhq/patrol/schema"

	"github.com/patrolhq/patrol/internal/proctool"
)

// The two kinds of supervisor a benchmark runs.
const (
	kindPatrol   = "patrol"
	kindBaseline = "baseline"
)

// env is the run's shared setup.
type env struct {
	patrol string // the patrol binary
	self   string // this binary (the baseline and the helper apps)
	tmp    string // the run's temporary directory
	token  string // unique per run; tags every process the run starts
	log    io.Writer
	logMu  sync.Mutex
	limits bool // apps get cgroup limits (--limits)

	mu     sync.Mutex
	supers map[int]*super // running supervisors, by pid
	seq    int
}

// marker is the environment entry every process of the run carries, so
// that whatever survives can be found and killed.
func (e *env) marker() string { return "PATROL_BENCH=" + e.token }

// logf prints progress to stderr.
func (e *env) logf(format string, args ...any) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	fmt.Fprintf(e.log, "patrol-bench: "+format+"\n", args...)
}

// super is one running supervisor: `patrol run` or the baseline.
type super struct {
	kind    string
	pid     int
	dir     string // its temporary directory (config.json, state, logs)
	config  string // path of config.json
	started time.Time
	cmd     *exec.Cmd

	logPath string        // its stderr
	addrs   chan struct{} // closed when both addresses are known
	mu      sync.Mutex
	http    string
	udp     string
	exited  chan struct{}
	waitErr error

	client *client
}

// writeConfig writes cfg to path (a supervisor's first config, before it
// starts).
func writeConfig(path string, cfg *schema.Config) error {
	b, err := json.MarshalIndent(cfg, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// start starts a supervisor of kind on cfg in a fresh directory. It returns
// at once: started is taken just before the process is started; addresses
// arrive later (see waitAddrs).
func (e *env) start(kind string, cfg *schema.Config) (*super, error) {
	e.mu.Lock()
	e.seq++
	dir := filepath.Join(e.tmp, fmt.Sprintf("%s-%d", kind, e.seq))
	e.mu.Unlock()
	// run/ holds the pid files, outside the directory Patrol watches.
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		return nil, err
	}
	s := &super{kind: kind, dir: dir, config: filepath.Join(dir, "config.json"),
		addrs: make(chan struct{}), exited: make(chan struct{})}
	if err := writeConfig(s.config, cfg); err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	switch kind {
	case kindPatrol:
		cmd = exec.Command(e.patrol, "run", "--config", s.config, "--http", "127.0.0.1:0",
			"--udp", "127.0.0.1:0", "--state-dir", filepath.Join(dir, "state"))
	case kindBaseline:
		cmd = exec.Command(e.self, "baseline", "--config", s.config, "--http", "127.0.0.1:0",
			"--udp", "127.0.0.1:0")
	default:
		return nil, fmt.Errorf("unknown supervisor %q", kind)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), e.marker())
	// Its own process group: a Ctrl-C at the terminal reaches only the
	// bench, which then stops the supervisor itself. Pdeathsig stops it
	// gracefully should the bench die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	// Its log goes to a file, not a pipe: should the bench die, the
	// supervisor must not die of SIGPIPE on its next log line and leave its
	// apps behind.
	s.logPath = filepath.Join(dir, "stderr.log")
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	s.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.cmd, s.pid = cmd, cmd.Process.Pid
	e.mu.Lock()
	e.supers[s.pid] = s
	e.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(s.exited)
	}()
	go s.findAddrs()
	return s, nil
}

// findAddrs reads the supervisor's log every millisecond until it has the
// bound addresses of the "http listening" and "udp listening" lines.
func (s *super) findAddrs() {
	for {
		b, _ := os.ReadFile(s.logPath)
		var httpAddr, udpAddr string
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(line, `msg="http listening"`) {
				httpAddr = proctool.LogField(line, "addr")
			}
			if strings.Contains(line, `msg="udp listening"`) {
				udpAddr = proctool.LogField(line, "addr")
			}
		}
		if httpAddr != "" && udpAddr != "" {
			s.mu.Lock()
			s.http, s.udp = httpAddr, udpAddr
			s.mu.Unlock()
			close(s.addrs)
			return
		}
		select {
		case <-s.exited:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// logTail returns the last lines of the supervisor's log.
func (s *super) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}

// waitAddrs waits until the supervisor logged its HTTP and UDP addresses.
func (s *super) waitAddrs(ctx context.Context) error {
	select {
	case <-s.addrs:
		s.mu.Lock()
		s.client = newClient(s.http)
		s.mu.Unlock()
		return nil
	case <-s.exited:
		return fmt.Errorf("%s exited before listening (%v):\n%s", s.kind, s.waitErr, s.logTail())
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not log its addresses in 30 s:\n%s", s.kind, s.logTail())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop stops the supervisor gracefully (SIGTERM; SIGKILL after a minute),
// then kills and reaps whatever of the run is left. It returns how many
// leftover processes had to be killed.
func (e *env) stop(s *super) (time.Duration, int) {
	if s == nil || s.cmd == nil {
		return 0, 0
	}
	if s.client != nil {
		s.client.close()
	}
	t0 := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		e.logf("%s (pid %d) did not stop in a minute; killing it", s.kind, s.pid)
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	took := time.Since(t0)
	e.mu.Lock()
	delete(e.supers, s.pid)
	e.mu.Unlock()
	return took, e.sweep()
}

// sweep kills and reaps every leftover process of the run that is not a
// running supervisor.
func (e *env) sweep() int {
	e.mu.Lock()
	exclude := map[int]bool{}
	for pid := range e.supers {
		exclude[pid] = true
	}
	e.mu.Unlock()
	return proctool.Sweep(e.marker(), exclude)
}

// stopAll stops every running supervisor (on Ctrl-C and at exit).
func (e *env) stopAll() {
	e.mu.Lock()
	var all []*super
	for _, s := range e.supers {
		all = append(all, s)
	}
	e.mu.Unlock()
	for _, s := range all {
		e.stop(s)
	}
	e.sweep()
}

// status fetches and decodes /status/.
func (s *super) status() (*schema.Status, error) {
	code, body, err := s.client.do("GET", "/status/", nil, true)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /status/: HTTP %d: %s", code, body)
	}
	var st schema.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("GET /status/: %w", err)
	}
	return &st, nil
}

// appPID returns the pid /api/ reports for an app.
func (s *super) appPID(id string) (int, error) {
	code, body, err := s.client.do("GET", "/api/?group=app&id="+id, nil, true)
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("GET /api/ %s: HTTP %d: %s", id, code, body)
	}
	var r schema.Response
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, err
	}
	return int(r.PID), nil
}

// runningPIDs returns the pid of every running app in status.
func runningPIDs(st *schema.Status) map[string]int {
	out := map[string]int{}
	for id, a := range st.Apps {
		if a.State == schema.StateRunning && a.PID > 0 {
			out[id] = int(a.PID)
		}
	}
	return out
}

// client is a minimal HTTP/1.1 keep-alive client on one connection: lighter
// than net/http's Client, so that on a 2-core machine the load generator
// takes less CPU away from the server it measures.
type client struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
	buf  bytes.Buffer
}

func newClient(addr string) *client { return &client{addr: addr} }

func (c *client) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// request formats a request.
func request(method, path, host string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, host)
	if body != nil {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// do sends one request and reads the response; with keep false the body is
// discarded and nil is returned for it. A broken connection is re-dialled
// once.
func (c *client) do(method, path string, body []byte, keep bool) (int, []byte, error) {
	return c.raw(request(method, path, c.addr, body), keep)
}

// raw sends a formatted request.
func (c *client) raw(req []byte, keep bool) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		code, b, err := c.roundTrip(req, keep)
		if err == nil || attempt == 1 {
			return code, b, err
		}
		c.close()
	}
}

func (c *client) roundTrip(req []byte, keep bool) (int, []byte, error) {
	if c.c == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return 0, nil, err
		}
		c.c, c.br = conn, bufio.NewReaderSize(conn, 64<<10)
	}
	_ = c.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.c.Write(req); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if !keep {
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil, err
	}
	c.buf.Reset()
	_, err = c.buf.ReadFrom(resp.Body)
	return resp.StatusCode, bytes.Clone(c.buf.Bytes()), err
}

// errTimeout is returned by polls that gave up.
var errTimeout = errors.New("timed out")

// poll calls f every interval (slept with nanosleep) until it returns true,
// an error, the context ends or the timeout passes.
func poll(ctx context.Context, interval, timeout time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := f()
		if err != nil || done {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		nap(interval)
	}
}
