package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLimitsNotEnforced: a limit this host cannot enforce (memory-high
// where memory is on cgroup v1, as on this project's machines) is a
// validate warning with its path and why (an error with --strict), a
// note in the plan made without a Patrol and in the running Patrol's, and
// "not enforced (why)" in status; an enforceable one is none of these.
func TestLimitsNotEnforced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, []byte(fmt.Sprintf(`{"apps": {"soft": %s, "hard": %s}}`,
		helperApp(`"memory-high": "64M"`, "sleep"), helperApp(`"pids-max": 50`, "sleep"))), 0o644)
	code, out, e := cli(t, "validate", path)
	if !strings.Contains(e, "apps.soft.memory-high: warning: limits: not enforced") {
		if os.Getenv("CI") != "" || code != 0 {
			t.Fatalf("validate: exit %d, stdout %q, stderr %q", code, out, e)
		}
		t.Skipf("this host enforces memory-high (cgroup v2 with the memory controller): nothing to report; validate said %q", e)
	}
	t.Logf("validate: %s", e)
	if code != 0 || !strings.Contains(out, "valid (2 apps") || strings.Contains(e, "apps.hard") {
		t.Errorf("validate: exit %d, stdout %q, stderr %q", code, out, e)
	}
	if code, out, e := cli(t, "validate", "--strict", path); code != 1 || out != "" || !strings.Contains(e, "apps.soft.memory-high: error: limits: not enforced") {
		t.Errorf("validate --strict: exit %d, stdout %q, stderr %q", code, out, e)
	}

	// A plan with no Patrol to ask (a port nothing listens on).
	code, out, e = cli(t, "plan", "--server", closedAddr(t), path)
	if code != 0 || !strings.Contains(out, "start    (added; limits: not enforced (memory-high: ") || strings.Contains(out, "hard     start    (added;") {
		t.Errorf("plan without Patrol: exit %d, stdout %q, stderr %q", code, out, e)
	}

	p := startDaemon(t, path)
	poll(t, "both running", 10*time.Second, func() bool { ps := pids(p.status(t)); return ps["soft"] != 0 && ps["hard"] != 0 })
	st := p.status(t)
	if l := st.Apps["soft"].Limits; !strings.HasPrefix(l, "not enforced (memory-high: ") {
		t.Errorf("status of soft: limits %q", l)
	}
	if l := st.Apps["hard"].Limits; l != "enforced" {
		t.Errorf("status of hard: limits %q", l)
	}
	code, out, _ = cli(t, "status", "--server", p.addr)
	if code != 0 || !strings.Contains(out, "app soft: limits: not enforced (memory-high: ") || strings.Contains(out, "app hard: limits") {
		t.Errorf("patrol status: exit %d:\n%s", code, out)
	}
	code, out, _ = cli(t, "plan", "--server", p.addr, path)
	if code != 0 || !strings.Contains(out, "! app     soft  limits: not enforced (memory-high: ") {
		t.Errorf("plan of the running Patrol: exit %d:\n%s", code, out)
	}
	shutdown(t, p)
}
