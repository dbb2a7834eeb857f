// Package etcdtest runs a real etcd cluster for tests: members of the etcd
// server binary (Debian's etcd-server package, or $PATROL_ETCD) on
// loopback ports, their data in the test's temp dir, every member stopped
// and its data removed when the test ends. Real Raft, real watches: what
// the fleet's tests need. Only tests import it.
package etcdtest

import (
	"crypto/rand"
	"encoding/hex"
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
	"syscall"
	"testing"
	"time"
)

// Binary returns the etcd server binary: $PATROL_ETCD, or etcd on PATH.
// Without one the test is skipped, saying what is missing, except in CI
// (CI set), where it fails: CI installs it.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PATROL_ETCD"); p != "" {
		return p
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("the etcd server is missing (.ci/run installs Debian's etcd-server)")
		}
		t.Skip("the etcd server is not installed: apt-get install etcd-server (or set PATROL_ETCD)")
	}
	return p
}

// Cluster is a running etcd cluster.
type Cluster struct {
	t       testing.TB
	bin     string
	dir     string
	token   string
	members []*Member
}

// Member is one etcd server of a Cluster.
type Member struct {
	Name       string
	ClientURL  string // http://127.0.0.1:PORT
	PeerURL    string
	dataDir    string
	logPath    string
	cmd        *exec.Cmd
	exited     chan struct{}
	extraFlags []string
}

// Start starts an n-member cluster and waits until every member is
// healthy; extra flags go to every member (for example
// "--auth-token=simple"). The cluster is stopped at the end of the test.
func Start(t testing.TB, n int, extra ...string) *Cluster {
	t.Helper()
	bin := Binary(t)
	// A port picked free can be taken before etcd binds it: try again
	// with other ports (a member that cannot bind exits at once).
	var why string
	for range 3 {
		c, err := start(t, bin, n, extra)
		if err == nil {
			return c
		}
		why = err.Error()
		t.Logf("etcd cluster did not start, trying other ports: %s", firstLine(why))
	}
	t.Fatalf("etcd cluster did not start:\n%s", why)
	return nil
}

func start(t testing.TB, bin string, n int, extra []string) (*Cluster, error) {
	c := &Cluster{t: t, bin: bin, dir: t.TempDir(), token: randomToken()}
	var initial []string
	for i := range n {
		m := &Member{Name: fmt.Sprintf("m%d", i), ClientURL: "http://" + freeAddr(t), PeerURL: "http://" + freeAddr(t),
			extraFlags: extra}
		m.dataDir = filepath.Join(c.dir, m.Name)
		m.logPath = filepath.Join(c.dir, m.Name+".log")
		c.members = append(c.members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	t.Cleanup(c.stopAll)
	for _, m := range c.members {
		c.start(m, "new", strings.Join(initial, ","))
	}
	for _, m := range c.members {
		if err := c.healthy(m, 30*time.Second); err != nil {
			c.stopAll()
			return nil, err
		}
	}
	return c, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.ClientURL
	}
	return out
}

// Members are the cluster's members.
func (c *Cluster) Members() []*Member { return c.members }

// PIDs are the running members' process ids (for CPU measurements).
func (c *Cluster) PIDs() []int {
	var out []int
	for _, m := range c.members {
		select {
		case <-m.exited:
		default:
			if m.cmd != nil {
				out = append(out, m.cmd.Process.Pid)
			}
		}
	}
	return out
}

// Stop stops member i (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	stopMember(c.members[i])
}

// Restart starts stopped member i again with its data and waits until
// it is healthy.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	m := c.members[i]
	c.start(m, "existing", "")
	c.waitHealthy(m, 30*time.Second)
}

// RestartAll starts every stopped member again, then waits until all are
// healthy (a member alone cannot be: it needs a quorum).
func (c *Cluster) RestartAll() {
	c.t.Helper()
	for _, m := range c.members {
		select {
		case <-m.exited:
			c.start(m, "existing", "")
		default:
		}
	}
	for _, m := range c.members {
		c.waitHealthy(m, 30*time.Second)
	}
}

// RestartAllHidden starts every stopped member again on client ports no
// client knows and waits until all are healthy: a cluster being restored
// before it is opened to its clients. It returns the hidden endpoints;
// StopAll, then RestartAll, bring the cluster back on its own ports.
func (c *Cluster) RestartAllHidden() []string {
	c.t.Helper()
	own := make([]string, len(c.members))
	var hidden []string
	for i, m := range c.members {
		own[i] = m.ClientURL
		m.ClientURL = "http://" + freeAddr(c.t)
		hidden = append(hidden, m.ClientURL)
	}
	defer func() {
		for i, m := range c.members {
			m.ClientURL = own[i]
		}
	}()
	for _, m := range c.members {
		select {
		case <-m.exited:
			c.start(m, "existing", "")
		default:
			c.t.Fatalf("RestartAllHidden: member %s is running", m.Name)
		}
	}
	for _, m := range c.members {
		c.waitHealthy(m, 30*time.Second)
	}
	return hidden
}

// StopAll stops every member.
func (c *Cluster) StopAll() {
	c.t.Helper()
	c.stopAll()
}

func (c *Cluster) start(m *Member, state, initial string) {
	c.t.Helper()
	args := []string{
		"--name", m.Name, "--data-dir", m.dataDir,
		"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster-token", c.token, "--initial-cluster-state", state,
		"--logger", "zap", "--log-outputs", "stderr",
	}
	if initial != "" {
		args = append(args, "--initial-cluster", initial)
	} else {
		var all []string
		for _, o := range c.members {
			all = append(all, o.Name+"="+o.PeerURL)
		}
		args = append(args, "--initial-cluster", strings.Join(all, ","))
	}
	args = append(args, m.extraFlags...)
	log, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		c.t.Fatalf("start etcd member %s: %v", m.Name, err)
	}
	log.Close()
	m.cmd, m.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(m.exited)
	}()
}

// waitHealthy polls the member's /health until it says so.
func (c *Cluster) waitHealthy(m *Member, timeout time.Duration) {
	c.t.Helper()
	if err := c.healthy(m, timeout); err != nil {
		c.t.Fatal(err)
	}
}

// healthy polls the member's /health until it says so, or says why not.
func (c *Cluster) healthy(m *Member, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-m.exited:
			return fmt.Errorf("etcd member %s exited:\n%s", m.Name, tail(m.logPath))
		default:
		}
		if resp, err := client.Get(m.ClientURL + "/health"); err == nil {
			var h struct{ Health string }
			json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&h)
			resp.Body.Close()
			if h.Health == "true" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd member %s not healthy after %v:\n%s", m.Name, timeout, tail(m.logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopAll stops every member; their data goes with the temp dir.
func (c *Cluster) stopAll() {
	for _, m := range c.members {
		stopMember(m)
	}
}

func stopMember(m *Member) {
	if m.cmd == nil {
		return
	}
	select {
	case <-m.exited:
		return
	default:
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.exited
	}
}

// freeAddr returns a loopback address whose port was free a moment ago,
// below the ephemeral range (32768 and up on Linux), where the ports of
// outgoing connections and of listeners on port 0 come from: no one
// takes it in the moment before etcd binds it.
func freeAddr(t testing.TB) string {
	for range 100 {
		port := 20000 + mrand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return ln.Addr().String()
	}
	t.Fatal("no free port between 20000 and 32000")
	return ""
}

func randomToken() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "patrol-test-" + hex.EncodeToString(b)
}

// tail returns the end of a member's log, for failure messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
