package exec

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

func TestAppEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		app  desired.App
		ctx  AppContext
		want []string
	}{
		{
			name: "no parent environment",
			app:  desired.App{ID: "web", Keepalive: schema.KeepalivePIDPatrol, Env: []string{"A=1", "B=2", "A=3"}},
			ctx:  AppContext{ParentEnv: []string{"HOME=/root"}, ExtraEnv: []string{"C=4"}},
			want: []string{"B=2", "A=3", "C=4", "PATROL_ID=web", "PATROL_KEEPALIVE=1"},
		},
		{
			name: "parent environment first, PATROL_ variables win",
			app: desired.App{ID: "web", Keepalive: schema.KeepalivePIDApp, EnvParent: true,
				Env: []string{"A=1", "PATROL_KEEPALIVE=9"}, PIDPath: "/run/web.pid"},
			ctx: AppContext{
				ParentEnv:  []string{"PATH=/bin", "PATROL_ID=outer", "A=0", "HOME=/root"},
				ListenHTTP: []string{"127.0.0.1:8421"},
				ListenUDP:  []string{"127.0.0.1:1248", "[::1]:1248"},
			},
			want: []string{"PATH=/bin", "HOME=/root", "A=1", "PATROL_ID=web", "PATROL_KEEPALIVE=2",
				"PATROL_PID=/run/web.pid", `PATROL_HTTP=["127.0.0.1:8421"]`, `PATROL_UDP=["127.0.0.1:1248","[::1]:1248"]`},
		},
		{
			name: "extra environment after the app's",
			app:  desired.App{ID: "api", Keepalive: schema.KeepaliveHTTP, Env: []string{"X=1", "Y=1"}},
			ctx:  AppContext{ExtraEnv: []string{"X=2"}, ListenHTTP: []string{"127.0.0.1:0"}, ListenUDP: []string{}},
			want: []string{"Y=1", "X=2", "PATROL_ID=api", "PATROL_KEEPALIVE=3", `PATROL_HTTP=["127.0.0.1:0"]`},
		},
		{
			name: "no escaping of HTML characters",
			app:  desired.App{ID: "u", Keepalive: schema.KeepaliveUDP},
			ctx:  AppContext{ListenUDP: []string{"<host>&:1"}},
			want: []string{"PATROL_ID=u", "PATROL_KEEPALIVE=4", `PATROL_UDP=["<host>&:1"]`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AppEnv(&tc.app, tc.ctx); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLogFiles(t *testing.T) {
	at := time.Date(2024, time.March, 7, 9, 5, 0, 123, time.Local)
	nano := strconv.FormatInt(at.UnixNano(), 10)
	dir := filepath.Join("/srv/logs", "2024", "march", "7")
	a := &desired.App{LogDirectory: "/srv/logs"}
	out, errPath := LogFiles(a, at)
	if want := filepath.Join(dir, nano+".stdout.log"); out != want {
		t.Errorf("stdout: got %s, want %s", out, want)
	}
	if want := filepath.Join(dir, nano+".stderr.log"); errPath != want {
		t.Errorf("stderr: got %s, want %s", errPath, want)
	}
	a.StdMerge = true
	out, errPath = LogFiles(a, at.UTC()) // dated in local time whatever t's location
	if want := filepath.Join(dir, nano+".stdmerge.log"); out != want || errPath != want {
		t.Errorf("std-merge: got %s and %s, want %s", out, errPath, want)
	}
}

// helperApp is an app running the helper command args in a new directory.
func helperApp(t *testing.T, args ...string) *desired.App {
	dir := t.TempDir()
	return &desired.App{
		ID:               "web",
		Keepalive:        schema.KeepalivePIDPatrol,
		Binary:           testBinary(t),
		WorkingDirectory: dir,
		LogDirectory:     filepath.Join(dir, "logs"),
		Args:             append([]string{helperArg}, args...),
		StopSignal:       "SIGTERM",
	}
}

// runApp starts a with testRunner and waits for it to exit with code 0.
func runApp(t *testing.T, a *desired.App, c AppContext) observed.Launch {
	t.Helper()
	tag, ch := subscribe(t)
	l, err := testRunner.StartApp(a, c, tag, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	killGroupAtCleanup(t, l.PGID)
	if e := waitExit(t, ch); e.PID != l.PID || e.Code != 0 {
		t.Fatalf("got %+v, want pid %d exiting with 0", e, l.PID)
	}
	return l
}

// readLines reads a file written by the helper's writeLines.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestStartAppEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name      string
		envParent bool
		want      []string
	}{
		{"env-parent false", false, []string{"B=2", "A=3", "E=5", "PATROL_ID=web", "PATROL_KEEPALIVE=1",
			"PATROL_PID=/run/web.pid", `PATROL_HTTP=["127.0.0.1:8421","127.0.0.1:8422"]`, `PATROL_UDP=["127.0.0.1:1248"]`}},
		{"env-parent true", true, []string{"PATH=/usr/bin:/bin", "HOME=/root", "B=2", "A=3", "E=5", "PATROL_ID=web", "PATROL_KEEPALIVE=1",
			"PATROL_PID=/run/web.pid", `PATROL_HTTP=["127.0.0.1:8421","127.0.0.1:8422"]`, `PATROL_UDP=["127.0.0.1:1248"]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "env")
			a := helperApp(t, "print-env", out)
			a.EnvParent = tc.envParent
			a.Env = []string{"A=1", "B=2", "PATROL_ID=mine", "A=3"}
			a.PIDPath = "/run/web.pid"
			c := AppContext{
				ParentEnv:  []string{"PATH=/usr/bin:/bin", "A=0", "PATROL_HTTP=old", "HOME=/root"},
				ListenHTTP: []string{"127.0.0.1:8421", "127.0.0.1:8422"},
				ListenUDP:  []string{"127.0.0.1:1248"},
				ExtraEnv:   []string{"E=5"},
			}
			runApp(t, a, c)
			if got := readLines(t, out); !slices.Equal(got, tc.want) {
				t.Errorf("child environment:\ngot  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestStartAppArgs(t *testing.T) {
	out := filepath.Join(t.TempDir(), "args")
	a := helperApp(t, "print-args", out)
	runApp(t, a, AppContext{ExtraArgs: []string{"--extra", "two words"}})
	var got []string
	if err := json.Unmarshal([]byte(readLines(t, out)[0]), &got); err != nil {
		t.Fatal(err)
	}
	want := []string{a.Binary, helperArg, "print-args", out, "--extra", "two words"}
	if !slices.Equal(got, want) {
		t.Errorf("got argv %q, want %q", got, want)
	}
}

func TestStartAppWorkingDirectoryAndStdin(t *testing.T) {
	out := filepath.Join(t.TempDir(), "wd")
	a := helperApp(t, "print-wd", out)
	runApp(t, a, AppContext{})
	want, err := filepath.EvalSymlinks(a.WorkingDirectory)
	if err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, out)[0]; got != want {
		t.Errorf("got working directory %s, want %s", got, want)
	}

	out = filepath.Join(t.TempDir(), "stdin")
	runApp(t, helperApp(t, "print-stdin", out), AppContext{})
	if got := readLines(t, out)[0]; got != os.DevNull {
		t.Errorf("got stdin %s, want %s", got, os.DevNull)
	}
}

func TestStartAppLogs(t *testing.T) {
	for _, merge := range []bool{false, true} {
		t.Run("std-merge "+strconv.FormatBool(merge), func(t *testing.T) {
			a := helperApp(t, "write-stdout-stderr")
			a.StdMerge = merge
			tag, ch := subscribe(t)
			now := time.Now()
			l, err := testRunner.StartApp(a, AppContext{}, tag, now)
			if err != nil {
				t.Fatal(err)
			}
			killGroupAtCleanup(t, l.PGID)
			if e := waitExit(t, ch); e.Code != 0 {
				t.Fatalf("got %+v, want code 0", e)
			}
			if !l.Started.Equal(now) {
				t.Errorf("got Started %v, want %v", l.Started, now)
			}
			wantOut, wantErr := LogFiles(a, now)
			if l.Stdout != wantOut || l.Stderr != wantErr {
				t.Errorf("got log files %s and %s, want %s and %s", l.Stdout, l.Stderr, wantOut, wantErr)
			}
			local := now.Local()
			dir := filepath.Join(a.LogDirectory, strconv.Itoa(local.Year()), strings.ToLower(local.Month().String()), strconv.Itoa(local.Day()))
			if filepath.Dir(l.Stdout) != dir {
				t.Errorf("got log directory %s, want %s", filepath.Dir(l.Stdout), dir)
			}
			files := map[string]string{l.Stdout: "out\n", l.Stderr: "err\n"}
			if merge {
				files = map[string]string{l.Stdout: "out\nerr\n"}
			}
			for path, want := range files {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if string(b) != want {
					t.Errorf("%s: got %q, want %q", filepath.Base(path), b, want)
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != len(files) {
				t.Errorf("got %d files in the log directory, want %d", len(entries), len(files))
			}
		})
	}
}

// openFDs lists the test process's open descriptors and what they are.
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	dir := "/proc/self/fd"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fds := map[string]string{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // the descriptor ReadDir itself used
		}
		fds[e.Name()] = target
	}
	return fds
}

func TestStartAppKeepsNoDescriptor(t *testing.T) {
	a := helperApp(t, "exit", "0")
	// The first start warms up whatever the runtime opens once; the second,
	// a restart, has the spare log files of the next start made (spare.go).
	runApp(t, a, AppContext{})
	runApp(t, a, AppContext{})
	settleSpares(t)
	// spares splits off the descriptors of unnamed files in the app's log
	// directory: the spares, which a start replaces.
	spares := func(fds map[string]string) int {
		n := 0
		for fd, target := range fds {
			if strings.HasPrefix(target, a.LogDirectory+"/#") && strings.HasSuffix(target, " (deleted)") {
				delete(fds, fd)
				n++
			}
		}
		return n
	}
	before := openFDs(t)
	spareBefore := spares(before)
	runApp(t, a, AppContext{})
	settleSpares(t)
	after := openFDs(t)
	if n := spares(after); n != 2 || spareBefore != 2 {
		t.Errorf("spare log files open: %d before the start, %d after; want 2 both times", spareBefore, n)
	}
	for fd, target := range after {
		if before[fd] != target {
			t.Errorf("descriptor %s (%s) left open after StartApp", fd, target)
		}
	}
}

func TestStartAppRole(t *testing.T) {
	for _, k := range []schema.Keepalive{schema.KeepalivePIDPatrol, schema.KeepalivePIDApp, schema.KeepaliveHTTP, schema.KeepaliveUDP} {
		t.Run(k.String(), func(t *testing.T) {
			a := helperApp(t, "exit", "0")
			a.Keepalive = k
			tag, ch := subscribe(t)
			l, err := testRunner.StartApp(a, AppContext{}, tag, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			killGroupAtCleanup(t, l.PGID)
			want := observed.RoleLeader
			if k == schema.KeepalivePIDApp {
				want = observed.RoleLauncher
			}
			if e := waitExit(t, ch); e.Role != want || e.Tag != tag {
				t.Errorf("got %+v, want role %v", e, want)
			}
		})
	}
}

func TestStartAppErrors(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		modify func(a *desired.App)
		want   string
		is     error
	}{
		{"missing binary", func(a *desired.App) { a.Binary = filepath.Join(dir, "nope") },
			"binary " + filepath.Join(dir, "nope") + ": no such file or directory", fs.ErrNotExist},
		{"binary not executable", func(a *desired.App) { a.Binary = plain },
			"binary " + plain + " is not executable (mode -rw-r--r--)", nil},
		{"missing working directory", func(a *desired.App) { a.WorkingDirectory = filepath.Join(dir, "gone") },
			"working directory " + filepath.Join(dir, "gone") + ": no such file or directory", fs.ErrNotExist},
		{"uncreatable log directory", func(a *desired.App) { a.LogDirectory = filepath.Join(plain, "logs") },
			"create log directory: mkdir " + plain + ": not a directory", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := helperApp(t, "sleep")
			tc.modify(a)
			_, err := testRunner.StartApp(a, AppContext{}, "never", time.Now())
			if err == nil {
				t.Fatal("got no error")
			}
			if want := `start app "web": ` + tc.want; err.Error() != want {
				t.Errorf("got %q, want %q", err, want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got %v, want it to wrap %v", err, tc.is)
			}
			if _, err := os.Stat(a.LogDirectory); err == nil {
				t.Errorf("log directory %s created for an app that did not start", a.LogDirectory)
			}
		})
	}
}
