package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/patrolhq/patrol/internal/proctool"
	"github.com/patrolhq/patrol/schema"
)

// harness is the run's shared setup.
type harness struct {
	patrol string // the patrol binary
	self   string // this binary: the helper apps
	tmp    string
	token  string // tags every process of the run
	log    io.Writer
	rng    *mrand.Rand

	mu     sync.Mutex
	waited map[int]bool // pids of the patrols started, each reaped by its own Wait
}

// marker is the environment entry every process of the run carries.
func (h *harness) marker() string { return "PATROL_CHAOS=" + h.token }

func (h *harness) logf(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(h.log, "patrol-chaos: "+format+"\n", args...)
}

// exclude returns the pids the harness's reaper must leave alone.
func (h *harness) exclude() map[int]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	ex := make(map[int]bool, len(h.waited))
	for p := range h.waited {
		ex[p] = true
	}
	return ex
}

// startReaper reaps, every 20 ms, the apps re-parented to the harness (a
// child subreaper) when a Patrol is killed: their exits are the next
// Patrol's to see (it watches them with pidfds), but their zombies are the
// harness's to collect. It returns a function that stops it.
func (h *harness) startReaper() func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				proctool.ReapOrphans(h.exclude())
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// sweep kills every process of the run but the Patrols being waited for,
// and reaps them; it returns how many it killed.
func (h *harness) sweep() int { return proctool.Sweep(h.marker(), h.exclude()) }

// helper returns the argv of a helper app.
func (h *harness) helper(args ...string) (string, []string) {
	return h.self, append([]string{"helper"}, args...)
}

// daemon is one `patrol run`.
type daemon struct {
	h      *harness
	dir    string
	config string
	cmd    *exec.Cmd
	pid    int
	exited chan struct{}
	addr   string // HTTP
	udp    string
	client *http.Client
}

// newDaemonDir makes a directory for a Patrol and writes its config (a
// config.json as a Go value).
func (h *harness) newDaemonDir(name string, cfg map[string]any) (string, error) {
	dir := filepath.Join(h.tmp, name)
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(cfg, "", " ")
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
}

// start runs `patrol run` in dir (its config, state and logs there) and
// waits until it listens.
func (h *harness) start(ctx context.Context, dir string) (*daemon, error) {
	d := &daemon{h: h, dir: dir, config: filepath.Join(dir, "config.json"), exited: make(chan struct{})}
	logPath := filepath.Join(dir, "patrol.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	fi, _ := logFile.Stat()
	offset := fi.Size()
	d.cmd = exec.Command(h.patrol, "run", "--config", d.config, "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0",
		"--state-dir", filepath.Join(dir, "state"))
	d.cmd.Dir = dir
	d.cmd.Env = append(os.Environ(), h.marker())
	d.cmd.Stderr = logFile
	// Its own process group, so a Ctrl-C reaches only the harness;
	// Pdeathsig stops it gracefully should the harness die.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	h.mu.Lock()
	if err := d.cmd.Start(); err != nil {
		h.mu.Unlock()
		return nil, err
	}
	d.pid = d.cmd.Process.Pid
	h.waited[d.pid] = true
	h.mu.Unlock()
	go func() {
		d.cmd.Wait()
		h.mu.Lock()
		delete(h.waited, d.pid)
		h.mu.Unlock()
		close(d.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for d.addr == "" || d.udp == "" {
		b, _ := os.ReadFile(logPath)
		if int64(len(b)) > offset {
			for line := range strings.SplitSeq(string(b[offset:]), "\n") {
				switch {
				case strings.Contains(line, `msg="http listening"`):
					d.addr = proctool.LogField(line, "addr")
				case strings.Contains(line, `msg="udp listening"`):
					d.udp = proctool.LogField(line, "addr")
				}
			}
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("patrol exited before listening:\n%s", tail(logPath))
		case <-ctx.Done():
			d.kill()
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.kill()
			return nil, fmt.Errorf("patrol did not listen in 30 s:\n%s", tail(logPath))
		}
	}
	d.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	return d, nil
}

// tail returns the last lines of a log file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// kill sends SIGKILL to Patrol alone (not its apps) and waits until it is
// reaped.
func (d *daemon) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
	d.client.CloseIdleConnections()
}

// stop shuts Patrol down gracefully (SIGTERM) and waits up to a minute.
func (d *daemon) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(time.Minute):
		d.kill()
		return fmt.Errorf("patrol did not stop within a minute of SIGTERM")
	}
	d.client.CloseIdleConnections()
	if c := d.cmd.ProcessState.ExitCode(); c != 0 {
		return fmt.Errorf("patrol exited %d after SIGTERM", c)
	}
	return nil
}

// do sends an HTTP request and returns the status code and body.
func (d *daemon) do(method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+d.addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// status fetches /status/.
func (d *daemon) status() (*schema.Status, error) {
	code, b, err := d.do("GET", "/status/", nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /status/: %d", code)
	}
	var st schema.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("GET /status/: %w", err)
	}
	return &st, nil
}

// metric reads an unlabelled metric from /metrics.
func (d *daemon) metric(name string) (float64, bool) {
	code, b, err := d.do("GET", "/metrics", nil)
	if err != nil || code != http.StatusOK {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			_, err := fmt.Sscan(rest, &v)
			return v, err == nil
		}
	}
	return 0, false
}

// udpExchange sends one datagram and returns the reply, or nil when none
// comes within wait.
func (d *daemon) udpExchange(msg []byte, wait time.Duration) ([]byte, error) {
	c, err := net.Dial("udp", d.udp)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil, nil
		}
		return nil, err
	}
	return buf[:n], nil
}

// appProcs maps each app id to the live processes of the run that carry it
// as PATROL_ID, and lists the zombies among the run's processes with their
// parents.
func (h *harness) appProcs() (live map[string][]int, zombies map[int]int) {
	live, zombies = map[string][]int{}, map[int]int{}
	for _, pid := range proctool.MarkedPIDs(h.marker()) {
		st, err := proctool.ReadStat(pid)
		if err != nil {
			continue
		}
		if !st.Alive() {
			zombies[pid] = st.PPID
			continue
		}
		if id, ok := proctool.Getenv(pid, "PATROL_ID"); ok {
			live[id] = append(live[id], pid)
		}
	}
	return live, zombies
}

// waitFor polls cond every 10 ms until it holds, ctx ends or timeout
// passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
