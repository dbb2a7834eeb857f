package exec

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/schema"
)

// openDir makes a directory every user can write (an app running as
// nobody works and writes there), removed at the end of the test.
func openDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "patrol-identity-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// procField reads a "Name:\tvalue" line of /proc/PID/status.
func procField(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + `:\s*(.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /proc/%d/status", name, pid)
	}
	return strings.Join(strings.Fields(string(m[1])), " ")
}

// TestStartAppIdentity: an app as nobody, with umask 027 and nofile 256,
// started through the launcher: its credentials in /proc, the mode of a
// file it creates, its limits; and the same user without umask or limits
// (set at fork, no launcher).
func TestStartAppIdentity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs apps as nobody: needs root")
	}
	nobody, err := lookupUser("nobody")
	if err != nil {
		t.Skip("no user nobody on this host")
	}
	for _, c := range []struct {
		name     string
		umask    string
		rlimits  []desired.Rlimit
		wantMode os.FileMode
	}{
		{"launcher", "027", []desired.Rlimit{{Name: "nofile", Soft: 256, Hard: 256}, {Name: "core", Soft: 0, Hard: 0}}, 0o640},
		{"fork credential", "", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := openDir(t)
			a := &desired.App{ID: "who", Keepalive: schema.KeepalivePIDPatrol, Binary: "/bin/sh",
				Args:             []string{"-c", "touch made; exec sleep 60"},
				WorkingDirectory: dir, LogDirectory: filepath.Join(dir, "logs"), StopSignal: "SIGTERM",
				User: "nobody", Umask: c.umask, Rlimits: c.rlimits}
			tag, _ := subscribe(t)
			l, err := testRunner.StartApp(a, AppContext{}, tag, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			killGroupAtCleanup(t, l.PGID)
			made := filepath.Join(dir, "made")
			deadline := time.Now().Add(timeout)
			for {
				if _, err := os.Stat(made); err == nil {
					break
				}
				if time.Now().After(deadline) {
					out, _ := os.ReadFile(filepath.Join(dir, "logs"))
					t.Fatalf("the app made no file (%s)", out)
				}
				time.Sleep(10 * time.Millisecond)
			}
			uid := procField(t, l.PID, "Uid")
			gid := procField(t, l.PID, "Gid")
			if want := strings.Repeat(nobody.Uid+" ", 4); uid != strings.TrimSpace(want) {
				t.Errorf("Uid %q, want %s four times", uid, nobody.Uid)
			}
			if want := strings.Repeat(nobody.Gid+" ", 4); gid != strings.TrimSpace(want) {
				t.Errorf("Gid %q, want %s four times", gid, nobody.Gid)
			}
			fi, err := os.Stat(made)
			if err != nil {
				t.Fatal(err)
			}
			if c.wantMode != 0 && fi.Mode().Perm() != c.wantMode {
				t.Errorf("the file it made has mode %v, want %v (umask %s)", fi.Mode().Perm(), c.wantMode, c.umask)
			}
			limits, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(l.PID), "limits"))
			if err != nil {
				t.Fatal(err)
			}
			nofile := regexp.MustCompile(`Max open files\s+(\S+)\s+(\S+)`).FindStringSubmatch(string(limits))
			if c.rlimits != nil && (nofile == nil || nofile[1] != "256" || nofile[2] != "256") {
				t.Errorf("Max open files %v, want 256 256", nofile)
			}
			if c.rlimits == nil && nofile != nil && nofile[1] == "256" {
				t.Error("nofile 256 without rlimits")
			}
			if logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*", "*", "*", "*.log")); len(logs) == 0 {
				t.Error("no log files")
			} else if fi, err := os.Stat(logs[0]); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(atoi(t, nobody.Uid)) {
				t.Errorf("log file %s is not the app's user's", logs[0])
			}
		})
	}
}

// TestStartAppIdentityFails: a user that does not exist, or an
// unreadable env-file, fail the start with the reason and make no log
// file.
func TestStartAppIdentityFails(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		edit func(a *desired.App)
		want string
	}{
		{"no such user", func(a *desired.App) { a.User = "no-such-user-here" }, `no user "no-such-user-here" on this host`},
		{"no such group", func(a *desired.App) { a.Group = "no-such-group-here" }, `no group "no-such-group-here" on this host`},
		{"env-file missing", func(a *desired.App) { a.EnvFile = filepath.Join(dir, "none.env") }, "env-file: open "},
	} {
		a := &desired.App{ID: "x", Binary: "/bin/true", WorkingDirectory: dir, LogDirectory: filepath.Join(dir, "logs"), StopSignal: "SIGTERM"}
		c.edit(a)
		_, err := testRunner.StartApp(a, AppContext{}, "never", time.Now())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "logs")); err == nil {
		t.Error("a failed start made log files")
	}
}

// TestStartAppEnvFile: the env-file's variables come after env and
// before Patrol's own, read at each start.
func TestStartAppEnvFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env.out")
	a := helperApp(t, "print-env", out)
	a.Env = []string{"A=from-env", "B=from-env"}
	a.EnvFile = filepath.Join(a.WorkingDirectory, "app.env")
	os.WriteFile(a.EnvFile, []byte("B=from-file\nC=\"quoted value\"\nPATROL_ID=spoofed\n"), 0o644)
	runApp(t, a, AppContext{})
	env := readLines(t, out)
	for _, want := range []string{"A=from-env", "B=from-file", "C=quoted value", "PATROL_ID=web"} {
		if !contains(env, want) {
			t.Errorf("environment lacks %s: %q", want, env)
		}
	}
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestRlimitNames: every limit the config accepts has a resource here.
func TestRlimitNames(t *testing.T) {
	for _, n := range desired.RlimitNames {
		if _, ok := rlimitResource[n]; !ok {
			t.Errorf("rlimit %q has no resource", n)
		}
	}
	if len(rlimitResource) != len(desired.RlimitNames) {
		t.Errorf("%d resources, %d names", len(rlimitResource), len(desired.RlimitNames))
	}
}
