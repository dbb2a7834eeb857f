package patrol_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// cgroupFile is the file name of process pid's cgroup for controller ctl
// (see testhelper.CgroupFile).
func cgroupFile(t *testing.T, pid int, ctl, v2name, v1name string) string {
	t.Helper()
	p, err := testhelper.WaitCgroupFile(pid, ctl, v2name, v1name, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readTrim reads a small file, trimmed.
func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// requireLimits skips (outside CI) where this host cannot enforce the
// limit keys given, saying why; in CI it fails.
func requireLimits(t *testing.T, d *daemon, id string) {
	t.Helper()
	if l := d.app(t, id).Limits; l != "enforced" {
		if os.Getenv("CI") != "" {
			t.Fatalf("limits of %s on this CI machine: %s", id, l)
		}
		t.Skipf("this host cannot enforce the limits: %s", l)
	}
}

// allocScript waits for the file argv[1], then allocates and touches
// argv[2] MiB, says so and sleeps (python: the race-instrumented test
// binary alone needs more memory than the limits under test).
const allocScript = `import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
data = b"x" * (int(sys.argv[2]) << 20)
print("allocated", sys.argv[2], flush=True)
while True:
    time.sleep(3600)
`

// TestMemoryMaxOOM: an app that allocates 64 MiB under memory-max 32 MiB
// is killed by the kernel, recorded "oom-killed" and restarted; raising
// memory-max in the file is an update in place (the plan says so, the pid
// stays, the cgroup's limit is the new one), after which the same
// allocation succeeds in the same process.
func TestMemoryMaxOOM(t *testing.T) {
	py := python3(t, "the OOM test's app needs it")
	dir := t.TempDir()
	trigger := filepath.Join(dir, "allocate")
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	app := func(limit string) map[string]any {
		return map[string]any{"keepalive": 1, "binary": py, "args": []string{"-c", allocScript, trigger, "64"},
			"memory-max": limit, "backoff": map[string]any{"initial": 0.05, "max": 0.05}}
	}
	cfg := config(map[string]any{"hog": app("32M")}, nil)
	d := startPatrol(t, cfg)
	requireLimits(t, d, "hog")

	var oom *schema.History
	waitFor(t, "an oom-killed instance in history", 20*time.Second, func() bool {
		for _, h := range d.app(t, "hog").History {
			if h.Reason == schema.ReasonOOMKilled {
				oom = &h
				return true
			}
		}
		return false
	})
	t.Logf("history: pid %d ended %s, exit code %d", oom.PID, oom.Reason, oom.ExitCode)
	if oom.ExitCode != 128+9 {
		t.Errorf("oom-killed exit code %d, want 137", oom.ExitCode)
	}
	// Restarted per policy: a new instance runs (or is about to).
	os.Remove(trigger)
	e, _ := d.waitRunning(t, "hog", oom.PID, 20*time.Second)
	pid := int(e.PID)
	limitFile := cgroupFile(t, pid, "memory", "memory.max", "memory.limit_in_bytes")
	if got := readTrim(t, limitFile); got != strconv.Itoa(32<<20) {
		t.Fatalf("%s = %s, want %d", limitFile, got, 32<<20)
	}

	// The plan of the raised limit: an update in place.
	cfg["apps"].(map[string]any)["hog"] = app("128M")
	raw, _ := json.Marshal(cfg)
	plan, err := d.Plan(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Actions) != 1 || plan.Actions[0].Action != schema.ActionUpdate || len(plan.Actions[0].Changes) != 1 ||
		plan.Actions[0].Changes[0].Field != "memory-max" || plan.Actions[0].Changes[0].Restart {
		t.Fatalf("plan of memory-max 32M -> 128M:\n%s", plan.Text())
	}
	if !strings.Contains(plan.Text(), `~ app     hog  update   (memory-max: "32M" -> "128M")`) || !strings.Contains(plan.Text(), "1 to update in place") {
		t.Errorf("plan text:\n%s", plan.Text())
	}
	writeConfig(t, d.config, cfg)
	waitFor(t, "memory-max 128M in the cgroup", 10*time.Second, func() bool { return readTrim(t, limitFile) == strconv.Itoa(128<<20) })
	if now := d.app(t, "hog"); int(now.PID) != pid {
		t.Fatalf("pid %d -> %d: the limit change restarted the app", pid, now.PID)
	}
	// The same process can now allocate the 64 MiB.
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the app to allocate 64 MiB", 10*time.Second, func() bool { return d.logsContain("hog", "allocated 64") })
	if now := d.app(t, "hog"); int(now.PID) != pid || now.State != schema.StateRunning {
		t.Fatalf("after the allocation: pid %d, state %s (was pid %d)", now.PID, now.State, pid)
	}
}

// TestPIDsMaxContainsForkBomb: a (bounded) fork bomb under pids-max 10
// never has more than 10 processes; the kernel refuses its other forks,
// and the rest of the host goes on: another app is restarted at once,
// Patrol answers.
func TestPIDsMaxContainsForkBomb(t *testing.T) {
	bomb := map[string]any{"keepalive": 1, "binary": "/bin/sh", "pids-max": 10, "stop-timeout": 2,
		"args": []string{"-c", `i=0; while [ $i -lt 60 ]; do (sleep 120 &) 2>/dev/null; i=$((i+1)); done; echo done; exec sleep 120`}}
	d := startPatrol(t, config(map[string]any{"bomb": bomb, "bystander": appCfg(t, nil, "sleep")}, nil))
	requireLimits(t, d, "bomb")
	e, _ := d.waitRunning(t, "bomb", 0, 10*time.Second)
	current := cgroupFile(t, int(e.PID), "pids", "pids.current", "pids.current")
	events := filepath.Join(filepath.Dir(current), "pids.events")
	waitFor(t, "forks refused by pids.max", 20*time.Second, func() bool {
		if n, _ := strconv.Atoi(readTrim(t, current)); n > 10 {
			t.Fatalf("pids.current %d above pids-max 10", n)
		}
		return strings.Contains(readTrim(t, events), "max ") && !strings.HasSuffix(readTrim(t, events), "max 0")
	})
	t.Logf("%s: %s; %s", current, readTrim(t, current), readTrim(t, events))
	if max := readTrim(t, filepath.Join(filepath.Dir(current), "pids.max")); max != "10" {
		t.Errorf("pids.max %s", max)
	}
	// The rest of the host is unaffected: another app restarts at once.
	by := d.app(t, "bystander")
	if _, err := d.Request(t.Context(), &schema.Request{ID: "bystander", Group: "app", Toggle: schema.ToggleRestart}, schema.TransportLibrary); err != nil {
		t.Fatal(err)
	}
	d.waitRunning(t, "bystander", by.PID, 10*time.Second)
	// Stopping the bomb ends all of it (its cgroup).
	leaf := filepath.Dir(current)
	if _, err := d.Request(t.Context(), &schema.Request{ID: "bomb", Group: "app", Toggle: schema.ToggleDisable}, schema.TransportLibrary); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, "bomb", schema.StateDisabled)
	waitFor(t, "the bomb's processes gone", 10*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(leaf, "cgroup.procs"))
		return err != nil || strings.TrimSpace(string(b)) == ""
	})
	testhelper.ReapOrphans()
}

// TestLimitNotApplied: on cgroup v1 a memory-max lowered below what the
// app uses cannot be written (the kernel cannot reclaim anonymous memory
// without swap): the app runs on with its pid, and its status says the
// change was not applied, and why; raising it again clears that. (On
// cgroup v2 the kernel reclaims or OOM-kills instead: nothing fails.)
func TestLimitNotApplied(t *testing.T) {
	py := python3(t, "the test's app needs it")
	trigger := filepath.Join(t.TempDir(), "allocate")
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	app := func(limit string) map[string]any {
		return map[string]any{"keepalive": 1, "binary": py, "args": []string{"-c", allocScript, trigger, "64"}, "memory-max": limit}
	}
	cfg := config(map[string]any{"big": app("256M")}, nil)
	d := startPatrol(t, cfg)
	requireLimits(t, d, "big")
	e, _ := d.waitRunning(t, "big", 0, 10*time.Second)
	if f := cgroupFile(t, int(e.PID), "memory", "memory.max", "memory.limit_in_bytes"); filepath.Base(f) != "memory.limit_in_bytes" {
		t.Skipf("memory is on cgroup v2 here (%s): lowering memory.max reclaims or OOM-kills, it does not fail", f)
	}
	waitFor(t, "the app to allocate 64 MiB", 10*time.Second, func() bool { return d.logsContain("big", "allocated 64") })
	cfg["apps"].(map[string]any)["big"] = app("16M")
	writeConfig(t, d.config, cfg)
	var now *schema.Response
	waitFor(t, "status to say the change was not applied", 20*time.Second, func() bool {
		now = d.app(t, "big")
		return strings.HasPrefix(now.Limits, "not applied to the running instance (")
	})
	t.Logf("limits: %s", now.Limits)
	if now.PID != e.PID || now.State != schema.StateRunning {
		t.Errorf("pid %d -> %d, state %s", e.PID, now.PID, now.State)
	}
	cfg["apps"].(map[string]any)["big"] = app("512M")
	writeConfig(t, d.config, cfg)
	waitFor(t, "status enforced again", 10*time.Second, func() bool { return d.app(t, "big").Limits == "enforced" })
}
