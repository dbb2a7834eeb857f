package patrol_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// appCfg is one helper app: the test binary running a helper command.
func appCfg(t *testing.T, extra map[string]any, helperArgs ...string) map[string]any {
	a := map[string]any{
		"keepalive": 1,
		"binary":    self(t),
		"args":      append([]string{"patrol-helper"}, helperArgs...),
	}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

func config(apps map[string]any, top map[string]any) map[string]any {
	c := map[string]any{"tick-every": 60, "apps": apps}
	for k, v := range top {
		c[k] = v
	}
	return c
}

// TestCrashIsRestartedAtOnce: a keepalive 1 app killed with SIGKILL runs
// again with a new pid at once, with tick-every 60 (no tick wait) and no
// backoff (its instance had stayed up reset-after), and the old instance
// is in history with exit code 137.
func TestCrashIsRestartedAtOnce(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"web": appCfg(t, map[string]any{"backoff": map[string]any{"reset-after": 0.05}}, "sleep"),
	}, nil))
	first, _ := d.waitRunning(t, "web", 0, 5*time.Second)
	time.Sleep(60 * time.Millisecond) // outlive reset-after
	if err := syscall.Kill(int(first.PID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second, took := d.waitRunning(t, "web", first.PID, 2*time.Second)
	t.Logf("SIGKILL -> new child running in %v", took)
	if took > 250*time.Millisecond {
		t.Errorf("restart took %v; want it immediate (well under the 1 s backoff and the 60 s tick)", took)
	}
	if second.InstanceID == first.InstanceID {
		t.Error("same instance id after a restart")
	}
	a := d.app(t, "web")
	if len(a.History) != 1 {
		t.Fatalf("history: got %d entries, want 1: %+v", len(a.History), a.History)
	}
	h := a.History[0]
	if h.PID != first.PID || h.ExitCode != 137 || h.Reason != schema.ReasonSignal || h.InstanceID != first.InstanceID {
		t.Errorf("history entry: got %+v, want pid %d, exit-code 137, reason signal", h, first.PID)
	}
	if h.Started == "" || h.Stopped == "" || h.ConfigRevision == "" {
		t.Errorf("history entry lacks times or revision: %+v", h)
	}
	if a.Restarts != 1 {
		t.Errorf("restarts: got %d, want 1", a.Restarts)
	}
}

// TestForkingDaemon: a keepalive 2 app whose launcher forks a daemon and
// exits: the recorded pid is the daemon's, the launcher's exit does not end
// the instance, and the daemon's death is seen at once (pidfd), not at the
// next tick.
func TestForkingDaemon(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"daemon": appCfg(t, map[string]any{"keepalive": 2, "pid-path": "daemon.pid", "pid-verify": true,
			"backoff": map[string]any{"reset-after": 0.05}}, "daemonize"),
	}, nil))
	pidFile := filepath.Join(d.dir, "daemon.pid")
	first, _ := d.waitRunning(t, "daemon", 0, 5*time.Second)
	if pid := readPID(t, pidFile, time.Second); uint32(pid) != first.PID {
		t.Fatalf("status pid %d, pid file %d", first.PID, pid)
	}
	// Once the launcher has exited, the daemon is reparented to Patrol (a
	// subreaper); the instance must still be the same.
	waitFor(t, "the daemon reparented to patrol", 5*time.Second, func() bool {
		return testhelper.Parent(int(first.PID)) == os.Getpid()
	})
	if a := d.app(t, "daemon"); a.InstanceID != first.InstanceID || a.State != schema.StateRunning || len(a.History) != 0 {
		t.Fatalf("launcher exit changed the instance: %+v", a)
	}
	time.Sleep(60 * time.Millisecond) // outlive reset-after
	if err := syscall.Kill(int(first.PID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second, took := d.waitRunning(t, "daemon", first.PID, 3*time.Second)
	t.Logf("daemon SIGKILL -> new daemon running in %v", took)
	if took > 500*time.Millisecond {
		t.Errorf("took %v with tick-every 60: the death was not seen at once", took)
	}
	if pid := readPID(t, pidFile, time.Second); uint32(pid) != second.PID {
		t.Errorf("status pid %d, pid file %d", second.PID, pid)
	}
	a := d.app(t, "daemon")
	if len(a.History) != 1 || a.History[0].PID != first.PID || a.History[0].ExitCode != 137 {
		t.Errorf("history: %+v", a.History)
	}
}

// TestDisableStopsTheProcessGroup: disabling an app stops its process and
// the children in its process group.
func TestDisableStopsTheProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "leader.pid")
	d := startPatrol(t, config(map[string]any{
		"group": appCfg(t, nil, "spawn-grandchild", pidFile),
	}, nil))
	d.waitRunning(t, "group", 0, 5*time.Second)
	leader := readPID(t, pidFile, 5*time.Second)
	grandchild := readPID(t, pidFile+".grandchild", 5*time.Second)
	if err := d.Toggle(t.Context(), schema.GroupApp, "group", schema.ToggleDisable, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leader and grandchild gone", 5*time.Second, func() bool { return !alive(leader) && !alive(grandchild) })
	a := d.app(t, "group")
	waitFor(t, "state disabled", 5*time.Second, func() bool { a = d.app(t, "group"); return a.State == schema.StateDisabled })
	if len(a.History) != 1 || a.History[0].Reason != schema.ReasonStoppedByAPI || !a.History[0].Disabled {
		t.Errorf("history: %+v", a.History)
	}
	if a.Override == nil || a.Override.Disabled == nil || !*a.Override.Disabled || a.ConfigDisabled {
		t.Errorf("override not shown: %+v", a)
	}
	// Enable again: it starts.
	if err := d.Toggle(t.Context(), schema.GroupApp, "group", schema.ToggleEnable, 0); err != nil {
		t.Fatal(err)
	}
	d.waitRunning(t, "group", 0, 5*time.Second)
	if a := d.app(t, "group"); a.Override != nil {
		t.Errorf("enable equal to the file should clear the override: %+v", a.Override)
	}
}

// TestStopTimeoutEscalates: an app ignoring SIGTERM gets SIGKILL after
// stop-timeout.
func TestStopTimeoutEscalates(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "stubborn.pid")
	d := startPatrol(t, config(map[string]any{
		"stubborn": appCfg(t, map[string]any{"stop-timeout": 0.3}, "ignore-sigterm", pidFile),
	}, nil))
	first, _ := d.waitRunning(t, "stubborn", 0, 5*time.Second)
	readPID(t, pidFile, 5*time.Second) // SIGTERM is ignored from now on
	start := time.Now()
	if err := d.Toggle(t.Context(), schema.GroupApp, "stubborn", schema.ToggleDisable, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stopping", time.Second, func() bool { return d.app(t, "stubborn").State == schema.StateStopping })
	waitFor(t, "killed", 5*time.Second, func() bool { return !alive(int(first.PID)) })
	took := time.Since(start)
	if took < 300*time.Millisecond {
		t.Errorf("killed after %v, before stop-timeout (0.3 s)", took)
	}
	waitFor(t, "history", time.Second, func() bool { return len(d.app(t, "stubborn").History) == 1 })
	if h := d.app(t, "stubborn").History[0]; h.ExitCode != 137 || h.Reason != schema.ReasonStoppedByAPI {
		t.Errorf("history: %+v", h)
	}
}

// TestCrashLoopBacksOff: an app exiting at once is restarted with growing
// delays; once an instance stays up reset-after, the delay resets.
func TestCrashLoopBacksOff(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"flaky": appCfg(t, map[string]any{"backoff": map[string]any{"initial": 0.05, "max": 10, "reset-after": 5}}, "exit", "1"),
	}, nil))
	// Scaled down 20x from the default backoff (1 s initial): in 0.5 s at
	// most ~6 starts, with doubling gaps.
	time.Sleep(500 * time.Millisecond)
	a := d.app(t, "flaky")
	n := len(a.History)
	if n < 3 || n > 6 {
		t.Errorf("%d instances in 0.5 s; want 3-6 with doubling delays from 50 ms", n)
	}
	var gaps []time.Duration
	for i := 1; i < len(a.History); i++ {
		prev, _ := time.Parse(time.RFC1123Z, a.History[i-1].Stopped)
		cur, _ := time.Parse(time.RFC1123Z, a.History[i].Started)
		gaps = append(gaps, cur.Sub(prev))
	}
	t.Logf("gaps between an exit and the next start (1 s resolution): %v", gaps)
	for _, h := range a.History {
		if h.ExitCode != 1 || h.Reason != schema.ReasonCrashed {
			t.Errorf("history entry: %+v", h)
		}
	}
	if a.State != schema.StateBackoff && a.State != schema.StateRunning {
		t.Errorf("state %s, want backoff or running", a.State)
	}
}

// TestBackoffResetsAfterStableUptime: instances that stay up reset-after
// are restarted immediately every time.
func TestBackoffResetsAfterStableUptime(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"steady": appCfg(t, map[string]any{"backoff": map[string]any{"initial": 5, "max": 10, "reset-after": 0.1}}, "exit-after", "150ms", "1"),
	}, map[string]any{"json-timestamp": "RFC3339Nano"}))
	waitFor(t, "three instances ended", 5*time.Second, func() bool { return len(d.app(t, "steady").History) >= 3 })
	h := d.app(t, "steady").History
	for i := 1; i < len(h); i++ {
		prev, _ := time.Parse(time.RFC3339Nano, h[i-1].Stopped)
		cur, _ := time.Parse(time.RFC3339Nano, h[i].Started)
		if gap := cur.Sub(prev); gap > time.Second {
			t.Errorf("restart %d waited %v after a stable instance; want immediate", i, gap)
		}
	}
}

// TestChildEnvironment: the child sees exactly env plus the PATROL_*
// variables (no env-parent), and the PATROL_* variables win.
func TestChildEnvironment(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	d := startPatrol(t, config(map[string]any{
		"Env-App": appCfg(t, map[string]any{
			"keepalive": 3, "pid-path": "sub/x.pid",
			"env": []string{"A=B", "PATROL_ID=spoofed", "EMPTY="},
		}, "print-env", envFile),
	}, map[string]any{"listen-udp": []string{"127.0.0.1:1248", "10.0.0.1:9"}, "ping-timeout": 1}))
	got := strings.Split(string(mustRead(t, envFile, 5*time.Second)), "\n")
	want := []string{
		"A=B",
		"EMPTY=",
		"PATROL_ID=env-app",
		"PATROL_KEEPALIVE=3",
		"PATROL_PID=" + filepath.Join(d.dir, "sub/x.pid"),
		fmt.Sprintf(`PATROL_HTTP=["%s"]`, d.HTTPAddr()),
		`PATROL_UDP=["127.0.0.1:1248","10.0.0.1:9"]`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("environment:\n got %q\nwant %q", got, want)
	}
}

// TestExecuteTimeout: execute-timeout stops a long-running app gracefully
// after that many seconds.
func TestExecuteTimeout(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"batch": appCfg(t, map[string]any{"execute-timeout": 1, "restart-policy": "never"}, "sleep"),
	}, map[string]any{"json-timestamp": "RFC3339Nano"}))
	first, _ := d.waitRunning(t, "batch", 0, 5*time.Second)
	waitFor(t, "stopped by execute-timeout", 5*time.Second, func() bool { return len(d.app(t, "batch").History) == 1 })
	h := d.app(t, "batch").History[0]
	if h.Reason != schema.ReasonExecuteTimeout || h.PID != first.PID || h.ExitCode != 128+15 {
		t.Errorf("history: %+v", h)
	}
	started, _ := time.Parse(time.RFC3339Nano, h.Started)
	stopped, _ := time.Parse(time.RFC3339Nano, h.Stopped)
	if ran := stopped.Sub(started); ran < time.Second || ran > 2*time.Second {
		t.Errorf("ran %v; want about 1 s", ran)
	}
	// execute-timeout is Patrol's stop, so it is restarted (restart-policy
	// applies to instances ending by themselves).
	d.waitRunning(t, "batch", first.PID, 5*time.Second)
}

// TestRunOnce: a run-once instance disables the entry when it ends.
func TestRunOnce(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"once": appCfg(t, map[string]any{"disabled": true}, "exit-after", "100ms", "0"),
	}, nil))
	if a := d.app(t, "once"); a.State != schema.StateDisabled {
		t.Fatalf("state %s, want disabled", a.State)
	}
	if err := d.Toggle(t.Context(), schema.GroupApp, "once", schema.ToggleEnableRunOnceEnable, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ran once and disabled", 5*time.Second, func() bool {
		a := d.app(t, "once")
		return len(a.History) == 1 && a.State == schema.StateDisabled
	})
	h := d.app(t, "once").History[0]
	if !h.RunOnce || h.Reason != schema.ReasonExited {
		t.Errorf("history: %+v", h)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(d.app(t, "once").History); n != 1 {
		t.Errorf("ran %d times, want once", n)
	}
}

// TestShutdownStopsEverything: a graceful shutdown stops every app and its
// process group, and records shutdown in history.
func TestShutdownStopsEverything(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "leader.pid")
	d := startPatrol(t, config(map[string]any{
		"group":    appCfg(t, nil, "spawn-grandchild", pidFile),
		"stubborn": appCfg(t, map[string]any{"stop-timeout": 0.2}, "ignore-sigterm", filepath.Join(dir, "stubborn.pid")),
	}, nil))
	d.waitRunning(t, "group", 0, 5*time.Second)
	d.waitRunning(t, "stubborn", 0, 5*time.Second)
	pids := []int{readPID(t, pidFile, 5*time.Second), readPID(t, pidFile+".grandchild", 5*time.Second), readPID(t, filepath.Join(dir, "stubborn.pid"), 5*time.Second)}
	d.stop(t)
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d still alive after shutdown", pid)
		}
	}
}

func mustRead(t *testing.T, path string, timeout time.Duration) []byte {
	t.Helper()
	var b []byte
	waitFor(t, "file "+path, timeout, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil && len(b) > 0
	})
	return b
}

// TestAdoptRunningDaemon: a keepalive 2 daemon already running when Patrol
// starts (named by its pid file) is adopted, not started twice; its death
// is then seen like any other.
func TestAdoptRunningDaemon(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "daemon.pid")
	launcher, err := os.StartProcess(self(t), []string{self(t), testhelper.Arg, "daemonize"},
		&os.ProcAttr{Env: []string{"PATROL_PID=" + pidFile}, Files: []*os.File{nil, os.Stdout, os.Stderr}})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := launcher.Wait(); err != nil || !st.Success() {
		t.Fatalf("launcher: %v %v", st, err)
	}
	daemonPID := readPID(t, pidFile, 5*time.Second)
	t.Cleanup(func() {
		syscall.Kill(daemonPID, syscall.SIGKILL)
		testhelper.ReapOrphans()
	})

	d := startPatrol(t, config(map[string]any{
		"daemon": appCfg(t, map[string]any{"keepalive": 2, "pid-path": pidFile, "pid-verify": true,
			"backoff": map[string]any{"reset-after": 0.05}}, "daemonize"),
	}, nil))
	a, _ := d.waitRunning(t, "daemon", 0, 5*time.Second)
	if int(a.PID) != daemonPID || a.Restarts != 0 {
		t.Fatalf("adopted pid %d (restarts %d), want the running daemon %d", a.PID, a.Restarts, daemonPID)
	}
	time.Sleep(60 * time.Millisecond) // outlive reset-after
	syscall.Kill(daemonPID, syscall.SIGKILL)
	b, _ := d.waitRunning(t, "daemon", a.PID, 5*time.Second)
	if h := d.app(t, "daemon").History; len(h) != 1 || int(h[0].PID) != daemonPID || h[0].ExitCode != 137 {
		t.Errorf("history after the adopted daemon died: %+v", h)
	}
	if int(b.PID) == daemonPID {
		t.Error("no new daemon")
	}
}

// TestGarbagePIDFile: a pid file holding no process id is a clear reason,
// and the instance fails after start-timeout.
func TestGarbagePIDFile(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"daemon": appCfg(t, map[string]any{"keepalive": 2, "pid-path": "daemon.pid", "start-timeout": 0.5, "stop-timeout": 1}, "write-pidfile", "abcd"),
	}, nil))
	waitFor(t, "the reason", 5*time.Second, func() bool {
		a := d.app(t, "daemon")
		return a.State == schema.StateStarting && strings.Contains(a.Reason, `"abcd" is not a process id`)
	})
	waitFor(t, "start-failed", 5*time.Second, func() bool {
		h := d.app(t, "daemon").History
		return len(h) == 1 && h[0].Reason == schema.ReasonStartFailed
	})
	if a := d.app(t, "daemon"); a.State != schema.StateBackoff && a.State != schema.StateStarting {
		t.Errorf("after a failed start: state %s (%s)", a.State, a.Reason)
	}
}

// TestShutdownDuringDaemonStart: a Patrol stopped while a keepalive 2
// app's launcher is still forking its daemon stops the daemon too.
func TestShutdownDuringDaemonStart(t *testing.T) {
	for i := range 3 {
		d := startPatrol(t, config(map[string]any{
			"daemon": appCfg(t, map[string]any{"keepalive": 2, "pid-path": "daemon.pid"}, "daemonize"),
		}, nil))
		pidFile := filepath.Join(d.dir, "daemon.pid")
		time.Sleep(time.Duration(i*5) * time.Millisecond)
		d.stop(t)
		if pid := testhelper.ReadPID(pidFile); pid > 0 && alive(pid) {
			t.Errorf("round %d: daemon %d left running after shutdown", i, pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		testhelper.ReapOrphans()
	}
}
