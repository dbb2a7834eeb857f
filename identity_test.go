package patrol_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdentityAndLimits: an app configured with user nobody, umask 027
// and rlimits nofile 256 runs as nobody (/proc/PID/status), creates files
// with mode 0640 and has 256 open files at most (/proc/PID/limits); its
// env-file is read. Changing the umask in the file restarts it.
func TestIdentityAndLimits(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs an app as nobody: needs root")
	}
	dir, err := os.MkdirTemp("", "patrol-identity-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	os.WriteFile(filepath.Join(dir, "app.env"), []byte("GREETING='hello there'\n"), 0o644)
	app := func(umask string) map[string]any {
		return map[string]any{"apps": map[string]any{"who": map[string]any{
			"binary": "/bin/sh", "args": []any{"-c", `echo "$GREETING" > said; touch made; exec sleep 60`},
			"working-directory": dir, "user": "nobody", "umask": umask, "rlimits": map[string]any{"nofile": 256},
			"env-file": "app.env",
		}}}
	}
	d := startPatrol(t, app("027"))
	e, _ := d.waitRunning(t, "who", 0, 10*time.Second)
	waitFile := func(p string) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(p); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not made", p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFile(filepath.Join(dir, "made"))
	status, err := os.ReadFile("/proc/" + strconv.Itoa(int(e.PID)) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)`).FindSubmatch(status); m == nil || string(m[1]) != "65534" {
		t.Errorf("Uid %q, want 65534 (nobody)", m)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "made")); fi == nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("made: %v, want mode 0640", fi)
	}
	limits, _ := os.ReadFile("/proc/" + strconv.Itoa(int(e.PID)) + "/limits")
	if !regexp.MustCompile(`Max open files\s+256\s+256`).Match(limits) {
		t.Errorf("limits:\n%s", limits)
	}
	if said, _ := os.ReadFile(filepath.Join(dir, "said")); strings.TrimSpace(string(said)) != "hello there" {
		t.Errorf("the env-file's GREETING: %q", said)
	}

	// umask is a restart key.
	os.Remove(filepath.Join(dir, "made"))
	writeConfig(t, d.config, app("077"))
	e2, _ := d.waitRunning(t, "who", e.PID, 10*time.Second)
	waitFile(filepath.Join(dir, "made"))
	if fi, _ := os.Stat(filepath.Join(dir, "made")); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("after umask 077: %v, want mode 0600 (pid %d -> %d)", fi, e.PID, e2.PID)
	}
}
