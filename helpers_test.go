package patrol_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// The test binary doubles as every app the tests supervise: run with
// "patrol-helper CMD ARGS..." it behaves as CMD (see package testhelper)
// instead of running tests, as the os/exec package's own tests do.
func TestMain(m *testing.M) {
	patrol.Launcher()
	testhelper.Dispatch()
	// Patrol makes itself a subreaper when it starts; do it up front so
	// that processes started before a Patrol (TestAdoptRunningDaemon) are
	// reparented the same way in every test order.
	if err := testhelper.SetSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "subreaper:", err)
		os.Exit(1)
	}
	fdsBefore := testhelper.CountFDs()
	code := m.Run()
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		for _, p := range testhelper.LeakCheck(fdsBefore, 4) {
			fmt.Fprintln(os.Stderr, "leak check:", p)
			code = 1
		}
	}
	os.Exit(code)
}

// self is the test binary, the binary of every helper app.
func self(t testing.TB) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// daemon is a Patrol running in the test process.
type daemon struct {
	*patrol.Patrol
	dir    string
	config string
	cancel context.CancelFunc
	done   chan error
}

// startPatrol writes cfg (a Go value or JSON text) into a temp dir as
// config.json and runs Patrol on it until the test ends.
func startPatrol(t *testing.T, cfg any) *daemon {
	t.Helper()
	return startPatrolWith(t, cfg, patrol.Options{})
}

// startPatrolWith is startPatrol with options (config path and listeners
// are filled in, and the log when opts has none).
func startPatrolWith(t *testing.T, cfg any, opts patrol.Options) *daemon {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	writeConfig(t, path, cfg)
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts.ConfigPath, opts.HTTPAddr, opts.UDPAddr = path, "127.0.0.1:0", "127.0.0.1:0"
	p, err := patrol.New(opts)
	if err != nil {
		t.Fatalf("new: %q", patrol.Problems(err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{Patrol: p, dir: dir, config: path, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-d.done:
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

// stop shuts the daemon down gracefully and waits for it.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cancel()
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
		d.done <- err // later calls return at once
	case <-time.After(30 * time.Second):
		d.Kill()
		t.Fatal("graceful shutdown did not finish in 30s")
	}
}

func writeConfig(t testing.TB, path string, cfg any) {
	t.Helper()
	var data []byte
	switch c := cfg.(type) {
	case string:
		data = []byte(c)
	default:
		var err error
		if data, err = json.MarshalIndent(c, "", "  "); err != nil {
			t.Fatal(err)
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// status returns one app's status entry.
func (d *daemon) app(t *testing.T, id string) *schema.Response {
	t.Helper()
	st, err := d.Status(t.Context())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	a := st.Apps[id]
	if a == nil {
		t.Fatalf("no app %q in status", id)
	}
	return a
}

// waitFor polls cond every millisecond until it holds or the deadline
// passes, and returns how long it took.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// waitRunning waits until app id runs with a pid other than notPID.
func (d *daemon) waitRunning(t *testing.T, id string, notPID uint32, timeout time.Duration) (*schema.Response, time.Duration) {
	t.Helper()
	var a *schema.Response
	took := waitFor(t, id+" running", timeout, func() bool {
		a = d.app(t, id)
		return a.State == schema.StateRunning && a.PID != 0 && a.PID != notPID
	})
	return a, took
}

func alive(pid int) bool { return testhelper.Alive(pid) }

func readPID(t *testing.T, path string, timeout time.Duration) int {
	t.Helper()
	var pid int
	waitFor(t, "pid file "+path, timeout, func() bool {
		pid = testhelper.ReadPID(path)
		return pid > 0
	})
	return pid
}

// testWriter sends Patrol's logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// python3 is the path of python3, for tests whose app is a python script
// (why says what for); missing, it fails the test in CI and skips it
// elsewhere, saying so.
func python3(t *testing.T, why string) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is missing (.ci/run installs it)")
		}
		t.Skip("python3 is not installed: " + why)
	}
	return py
}

// logsContain reports whether a stdout log file of app id
// holds text.
func (d *daemon) logsContain(id, text string) bool {
	logs, _ := filepath.Glob(filepath.Join(d.dir, "logs", id, "*", "*", "*", "*.stdout.log"))
	for _, f := range logs {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), text) {
			return true
		}
	}
	return false
}
