package patrol_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// TestCgroupKillsEscapedChild: an app whose child calls setsid() and
// keeps running; disabling the app stops the child too (it is in the
// instance's cgroup, not in its process group), within stop-timeout; the
// instance's cgroup is removed, and Patrol's directory at its shutdown. Where the host has no usable cgroup
// v2 the test is skipped outside CI, saying so.
func TestCgroupKillsEscapedChild(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err != nil {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("no cgroup v2 hierarchy on this CI machine")
			}
			t.Skip("no cgroup v2 hierarchy mounted: the cgroup tracking cannot be tested here")
		}
	}
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	d := startPatrol(t, map[string]any{"apps": map[string]any{"escaper": appCfg(t, map[string]any{"stop-timeout": 2}, "setsid-child", pidFile)}})
	e, _ := d.waitRunning(t, "escaper", 0, 10*time.Second)
	var child int
	deadline := time.Now().Add(10 * time.Second)
	for child = testhelper.ReadPID(pidFile); child == 0; child = testhelper.ReadPID(pidFile) {
		if time.Now().After(deadline) {
			t.Fatal("the app wrote no child pid")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cg, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	own, _ := os.ReadFile("/proc/" + strconv.Itoa(int(e.PID)) + "/cgroup")
	line := func(b []byte) string {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "0::") {
				return strings.TrimPrefix(l, "0::")
			}
		}
		return ""
	}
	leaf := line(own)
	if leaf == "" || line(cg) != leaf || !strings.Contains(leaf, "/patrol-") {
		t.Fatalf("the app is in cgroup %q, its escaped child in %q: want both in the instance's leaf", leaf, line(cg))
	}
	t.Logf("the instance's cgroup: %s", leaf)

	start := time.Now()
	if _, err := d.Request(t.Context(), &schema.Request{ID: "escaper", Group: "app", Toggle: schema.ToggleDisable}, schema.TransportLibrary); err != nil {
		t.Fatal(err)
	}
	for testhelper.Alive(child) || testhelper.Alive(int(e.PID)) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the escaped child %d (or the app) still runs %v after the stop", child, time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("app and escaped child gone %v after the stop", time.Since(start).Round(time.Millisecond))
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the stop took %v, beyond stop-timeout (2 s)", took)
	}
	testhelper.ReapOrphans()
	waitState(t, d, "escaper", schema.StateDisabled)
	mount := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(mount + "/cgroup.procs"); err != nil {
		mount = "/sys/fs/cgroup"
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(mount, leaf)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instance's cgroup %s is still there", leaf)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Patrol's clean shutdown removes its directory.
	d.stop(t)
	if _, err := os.Stat(filepath.Join(mount, filepath.Dir(leaf))); !os.IsNotExist(err) {
		t.Errorf("Patrol's cgroup directory %s is still there after its shutdown (%v)", filepath.Dir(leaf), err)
	}
}

// TestCgroupsUnavailableFallback: where Patrol cannot make its cgroups (a
// cgroup-root it cannot create: here under a file), it logs why and
// tracks process groups, as the README documents: the app runs and stops
// with its process group, and a child that left the group with setsid()
// is not stopped with it.
func TestCgroupsUnavailableFallback(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	var log testhelper.Buffer
	d := startPatrolWith(t, map[string]any{"cgroup-root": "/cgroup.procs/patrol", "apps": map[string]any{
		"escaper": appCfg(t, map[string]any{"stop-timeout": 1}, "setsid-child", pidFile)}},
		patrol.Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
	e, _ := d.waitRunning(t, "escaper", 0, 10*time.Second)
	if !strings.Contains(log.String(), "cgroups not used; apps are tracked by process group") {
		t.Errorf("no fallback in the log:\n%s", log.String())
	}
	var child int
	waitFor(t, "the child's pid", 10*time.Second, func() bool { child = testhelper.ReadPID(pidFile); return child != 0 })
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL); testhelper.ReapOrphans() })
	if b, _ := os.ReadFile("/proc/" + strconv.Itoa(int(e.PID)) + "/cgroup"); strings.Contains(string(b), "/patrol-") {
		t.Errorf("the app is in a Patrol cgroup:\n%s", b)
	}
	if _, err := d.Request(t.Context(), &schema.Request{ID: "escaper", Group: "app", Toggle: schema.ToggleDisable}, schema.TransportLibrary); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, "escaper", schema.StateDisabled)
	if testhelper.Alive(int(e.PID)) {
		t.Error("the app still runs")
	}
	if !testhelper.Alive(child) {
		t.Error("the escaped child was stopped: without cgroups it should have been out of reach (the README says so)")
	}
}
