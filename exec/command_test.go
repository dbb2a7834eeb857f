package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// helperCommand is a Command running helper command args.
func helperCommand(t *testing.T, args ...string) Command {
	return Command{Argv: append([]string{testBinary(t), helperArg}, args...)}
}

// noLeaks checks at the end of the test that the goroutines and descriptors
// of the test process are back to what they were (polling: goroutines take
// a moment to end).
func noLeaks(t *testing.T) {
	t.Helper()
	goroutines := runtime.NumGoroutine()
	fds := openFDs(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(timeout)
		for runtime.NumGoroutine() > goroutines {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines, %d before the test:\n%s", runtime.NumGoroutine(), goroutines, buf)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		for fd, target := range openFDs(t) {
			if fds[fd] != target {
				t.Errorf("descriptor %s (%s) left open", fd, target)
			}
		}
	})
}

// runCommand runs c with testRunner and checks the fields every result must
// have right.
func runCommand(t *testing.T, ctx context.Context, c Command) CommandResult {
	t.Helper()
	before := time.Now()
	res := testRunner.RunCommand(ctx, c)
	after := time.Now()
	if res.Started.Before(before) || res.Ended.Before(res.Started) || res.Ended.After(after) {
		t.Errorf("Started %v, Ended %v, not within [%v, %v]", res.Started, res.Ended, before, after)
	}
	return res
}

func TestRunCommandExitCodes(t *testing.T) {
	noLeaks(t)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		signal int
		output string
	}{
		{"exit 0", []string{"print-args-and-exit", "0"}, 0, 0, `["patrol-helper","print-args-and-exit","0"]` + "\n"},
		{"exit 3", []string{"print-args-and-exit", "3"}, 3, 0, `["patrol-helper","print-args-and-exit","3"]` + "\n"},
		{"killed", []string{"kill-self"}, 137, 9, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runCommand(t, context.Background(), helperCommand(t, tc.args...))
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			if res.Code != tc.code || res.Signal != tc.signal || res.TimedOut {
				t.Errorf("got code %d, signal %d, timed out %v; want %d, %d, false", res.Code, res.Signal, res.TimedOut, tc.code, tc.signal)
			}
			if string(res.Output) != tc.output {
				t.Errorf("output %q, want %q", res.Output, tc.output)
			}
		})
	}
}

func TestRunCommandInterleavesOutput(t *testing.T) {
	res := runCommand(t, context.Background(), helperCommand(t, "interleave"))
	if res.Err != nil || res.Code != 0 {
		t.Fatalf("code %d, err %v", res.Code, res.Err)
	}
	want := "out0\nerr0\nout1\nerr1\nout2\nerr2\nout3\nerr3\nout4\nerr4\n"
	if string(res.Output) != want {
		t.Errorf("output %q, want %q", res.Output, want)
	}
}

func TestRunCommandKeepsTheTail(t *testing.T) {
	noLeaks(t)
	const n = 1 << 20
	all := lotsOfBytes(n)
	for _, maxOutput := range []int{0, 1000, n, 2 * n} {
		t.Run(strconv.Itoa(maxOutput), func(t *testing.T) {
			c := helperCommand(t, "print-lots", strconv.Itoa(n))
			c.MaxOutput = maxOutput
			res := runCommand(t, context.Background(), c)
			if res.Err != nil || res.Code != 0 {
				t.Fatalf("code %d, err %v", res.Code, res.Err)
			}
			keep := min(orDefault(maxOutput, DefaultMaxOutput), n)
			if !bytes.Equal(res.Output, all[n-keep:]) {
				t.Errorf("got %d bytes, want the last %d bytes of the output", len(res.Output), keep)
			}
		})
	}
}

// orDefault returns v, or def when v is 0.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func TestTailBuffer(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, maxOutput := range []int{1, 7, 64, 1000} {
		b := &tailBuffer{max: maxOutput}
		var all []byte
		for range 500 {
			p := make([]byte, rng.IntN(3*maxOutput+2))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			b.write(p)
			all = append(all, p...)
			want := all[max(0, len(all)-maxOutput):]
			if got := b.bytes(); !bytes.Equal(got, want) {
				t.Fatalf("max %d after %d bytes: got %x, want %x", maxOutput, len(all), got, want)
			}
		}
	}
}

func TestRunCommandEnvDirStdin(t *testing.T) {
	t.Setenv("PATROL_TEST_VAR", "from patrol")
	dir := t.TempDir()
	envFile, wdFile, stdinFile := filepath.Join(dir, "env"), filepath.Join(dir, "wd"), filepath.Join(dir, "stdin")

	if res := runCommand(t, context.Background(), helperCommand(t, "print-env", envFile)); res.Code != 0 || res.Err != nil {
		t.Fatalf("print-env: code %d, err %v", res.Code, res.Err)
	}
	if env, _ := os.ReadFile(envFile); !strings.Contains("\n"+string(env), "\nPATROL_TEST_VAR=from patrol\n") {
		t.Errorf("nil Env is not Patrol's environment: %q", env)
	}
	c := helperCommand(t, "print-env", envFile)
	c.Env = []string{"ONLY=this"}
	if res := runCommand(t, context.Background(), c); res.Code != 0 || res.Err != nil {
		t.Fatalf("print-env: code %d, err %v", res.Code, res.Err)
	}
	if env, _ := os.ReadFile(envFile); string(env) != "ONLY=this\n" {
		t.Errorf("environment %q, want only ONLY=this", env)
	}

	if res := runCommand(t, context.Background(), helperCommand(t, "print-wd", wdFile)); res.Code != 0 || res.Err != nil {
		t.Fatalf("print-wd: code %d, err %v", res.Code, res.Err)
	}
	if wd, _ := os.ReadFile(wdFile); string(wd) != "/\n" {
		t.Errorf("working directory %q, want /", wd)
	}
	c = helperCommand(t, "print-wd", wdFile)
	c.Dir = dir
	if res := runCommand(t, context.Background(), c); res.Code != 0 || res.Err != nil {
		t.Fatalf("print-wd: code %d, err %v", res.Code, res.Err)
	}
	if wd, _ := os.ReadFile(wdFile); string(wd) != dir+"\n" {
		t.Errorf("working directory %q, want %s", wd, dir)
	}

	if res := runCommand(t, context.Background(), helperCommand(t, "print-stdin", stdinFile)); res.Code != 0 || res.Err != nil {
		t.Fatalf("print-stdin: code %d, err %v", res.Code, res.Err)
	}
	if in, _ := os.ReadFile(stdinFile); string(in) != os.DevNull+"\n" {
		t.Errorf("stdin %q, want %s", in, os.DevNull)
	}
}

func TestRunCommandCannotRun(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		c    Command
		want string
	}{
		{"empty", Command{}, "empty argv"},
		{"missing", Command{Argv: []string{"/nonexistent/binary", "status"}}, "command /nonexistent/binary status: binary /nonexistent/binary: no such file or directory"},
		{"relative", Command{Argv: []string{"service"}}, `binary "service" is not an absolute path`},
		{"not executable", Command{Argv: []string{"/etc/passwd"}}, "not executable"},
		{"bad dir", Command{Argv: []string{testBinary(t), helperArg, "exit", "0"}, Dir: filepath.Join(dir, "missing")}, "working directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runCommand(t, context.Background(), tc.c)
			if res.Err == nil || !strings.Contains(res.Err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", res.Err, tc.want)
			}
			if res.Code != -1 || res.Signal != 0 || res.TimedOut || res.Output != nil {
				t.Errorf("got %+v, want code -1 and nothing else", res)
			}
		})
	}
}

func TestRunCommandTimeout(t *testing.T) {
	noLeaks(t)
	const limit = 300 * time.Millisecond
	c := helperCommand(t, "hang")
	c.Timeout = limit
	begin := time.Now()
	res := runCommand(t, context.Background(), c)
	took := time.Since(begin)
	if !res.TimedOut || res.Code != 137 || res.Signal != 9 {
		t.Errorf("got timed out %v, code %d, signal %d; want true, 137, 9", res.TimedOut, res.Code, res.Signal)
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) || !strings.Contains(res.Err.Error(), "hang: timed out after 300ms") {
		t.Errorf("err %v, want a timeout naming the command", res.Err)
	}
	if took < limit || took > limit+5*time.Second {
		t.Errorf("took %v with a timeout of %v", took, limit)
	}
	if string(res.Output) != "hanging\n" {
		t.Errorf("output %q", res.Output)
	}
}

func TestRunCommandTimeoutGrandchildHoldsOutput(t *testing.T) {
	noLeaks(t)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	const limit = 300 * time.Millisecond
	c := helperCommand(t, "hang-with-child-holding-stdout", pidFile)
	c.Timeout = limit
	begin := time.Now()
	res := runCommand(t, context.Background(), c)
	took := time.Since(begin)
	if !res.TimedOut || res.Code != 137 {
		t.Errorf("got timed out %v, code %d; want true, 137", res.TimedOut, res.Code)
	}
	if took > limit+5*time.Second {
		t.Errorf("took %v with a timeout of %v", took, limit)
	}
	if string(res.Output) != "child started\n" {
		t.Errorf("output %q", res.Output)
	}
	child, err := ReadPIDFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the grandchild gone", func() bool { return !Alive(child) })
}

func TestRunCommandExitedChildHoldsOutput(t *testing.T) {
	noLeaks(t)
	// An init script that started a daemon which kept its stdout: the
	// command ends when the script does, and the daemon keeps running.
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	begin := time.Now()
	res := runCommand(t, context.Background(), helperCommand(t, "exit-with-child-holding-stdout", pidFile))
	took := time.Since(begin)
	child, err := ReadPIDFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		SignalProcess(child, "SIGKILL")
		eventually(t, "the daemon gone", func() bool { return !Alive(child) })
	})
	if res.Err != nil || res.Code != 0 || res.TimedOut {
		t.Errorf("got code %d, timed out %v, err %v", res.Code, res.TimedOut, res.Err)
	}
	if string(res.Output) != "child started\n" {
		t.Errorf("output %q", res.Output)
	}
	if took > 5*time.Second {
		t.Errorf("took %v", took)
	}
	if !Alive(child) {
		t.Errorf("the daemon %d was killed", child)
	}
}

func TestRunCommandCancel(t *testing.T) {
	noLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(200*time.Millisecond, cancel)
	defer timer.Stop()
	c := helperCommand(t, "hang")
	c.Timeout = time.Minute
	res := runCommand(t, ctx, c)
	if res.TimedOut || res.Code != 137 || !errors.Is(res.Err, context.Canceled) {
		t.Errorf("got timed out %v, code %d, err %v; want false, 137, context canceled", res.TimedOut, res.Code, res.Err)
	}

	// A command is not even started once ctx is done.
	res = runCommand(t, ctx, helperCommand(t, "exit", "0"))
	if res.Code != -1 || !errors.Is(res.Err, context.Canceled) {
		t.Errorf("after cancel: code %d, err %v", res.Code, res.Err)
	}
}

func TestRunCommandManyConcurrent(t *testing.T) {
	noLeaks(t)
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			code := strconv.Itoa(i % 7)
			c := helperCommand(t, "print-args-and-exit", code, strconv.Itoa(i))
			if i%3 == 0 {
				c.Timeout = time.Minute
			}
			res := testRunner.RunCommand(context.Background(), c)
			if res.Err != nil || res.Code != i%7 {
				t.Errorf("command %d: code %d, err %v; want code %d", i, res.Code, res.Err, i%7)
				return
			}
			var args []string
			if err := json.Unmarshal(res.Output, &args); err != nil || len(args) != 4 || args[3] != strconv.Itoa(i) {
				t.Errorf("command %d: output %q", i, res.Output)
			}
		})
	}
	wg.Wait()
}

// fakeServiceTools writes fake service and systemctl commands into a new
// directory put first on PATH, and a fake init.d directory with the script
// "web". Each records its argv ($0, then one argument per line) into
// $FAKE_RECORD, prints "fake NAME" and exits with $FAKE_EXIT (0 if unset).
func fakeServiceTools(t *testing.T) (bin, initd, record string) {
	t.Helper()
	dir := t.TempDir()
	bin, initd, record = filepath.Join(dir, "bin"), filepath.Join(dir, "init.d"), filepath.Join(dir, "record")
	for _, d := range []string{bin, initd} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := func(name string) string {
		return "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > \"$FAKE_RECORD\"\necho fake " + name + "\nexit ${FAKE_EXIT:-0}\n"
	}
	for path, name := range map[string]string{
		filepath.Join(bin, "service"):   "service",
		filepath.Join(bin, "systemctl"): "systemctl",
		filepath.Join(initd, "web"):     "web",
	} {
		if err := os.WriteFile(path, []byte(script(name)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_RECORD", record)
	return bin, initd, record
}

func TestServiceArgvFakes(t *testing.T) {
	noLeaks(t)
	bin, initd, record := fakeServiceTools(t)
	for _, tc := range []struct {
		m    schema.Management
		verb string
		want []string
		out  string
	}{
		{schema.ManagementService, "status", []string{filepath.Join(bin, "service"), "web", "status"}, "fake service\n"},
		{schema.ManagementInitd, "force-reload", []string{filepath.Join(initd, "web"), "force-reload"}, "fake web\n"},
		{schema.ManagementSystemd, "restart", []string{filepath.Join(bin, "systemctl"), "restart", "web"}, "fake systemctl\n"},
	} {
		t.Run(tc.m.String(), func(t *testing.T) {
			argv, err := ServiceArgv(tc.m, initd, "web", tc.verb)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(argv, tc.want) {
				t.Fatalf("argv %q, want %q", argv, tc.want)
			}
			for _, code := range []int{0, 3} {
				t.Setenv("FAKE_EXIT", strconv.Itoa(code))
				os.Remove(record)
				res := runCommand(t, context.Background(), Command{Argv: argv, Timeout: time.Minute})
				if res.Err != nil || res.Code != code || string(res.Output) != tc.out {
					t.Errorf("code %d, output %q, err %v; want %d, %q", res.Code, res.Output, res.Err, code, tc.out)
				}
				rec, err := os.ReadFile(record)
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.Split(strings.TrimSuffix(string(rec), "\n"), "\n"); !slices.Equal(got, argv) {
					t.Errorf("the fake recorded %q, want %q", got, argv)
				}
			}
		})
	}
}

func TestServiceArgvErrors(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	for _, tc := range []struct {
		name    string
		m       schema.Management
		initd   string
		service string
		want    string
	}{
		{"no service", schema.ManagementService, "/etc/init.d", "web", `service command "service" not found in PATH`},
		{"no systemctl", schema.ManagementSystemd, "/etc/init.d", "web", `service command "systemctl" not found in PATH`},
		{"no init script", schema.ManagementInitd, empty, "web", "init script " + filepath.Join(empty, "web") + ": no such file"},
		{"init script dir", schema.ManagementInitd, filepath.Dir(empty), filepath.Base(empty), "is a directory"},
		{"relative init.d", schema.ManagementInitd, "init.d", "web", "not an absolute path"},
		{"slash", schema.ManagementInitd, "/etc/init.d", "../../bin/sh", `invalid service name "../../bin/sh"`},
		{"dot", schema.ManagementInitd, "/etc/init.d", ".", `invalid service name "."`},
		{"dot dot", schema.ManagementInitd, "/etc/init.d", "..", `invalid service name ".."`},
		{"empty", schema.ManagementService, "/etc/init.d", "", `invalid service name ""`},
		{"method 0", 0, "/etc/init.d", "web", "unknown management method 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv, err := ServiceArgv(tc.m, tc.initd, tc.service, "status")
			if err == nil || err.Error() != tc.want && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("argv %q, err %v; want an error containing %q", argv, err, tc.want)
			}
		})
	}
	if _, err := ServiceArgv(schema.ManagementService, "/etc/init.d", "web", "status"); err == nil ||
		err.Error() != `service command "service" not found in PATH` {
		t.Errorf("err %v", err)
	}
	if _, err := ServiceArgv(schema.ManagementInitd, "/nonexistent/init.d", "x", "status"); err == nil ||
		err.Error() != "init script /nonexistent/init.d/x: no such file" {
		t.Errorf("err %v", err)
	}
}

func TestStartDoneChannel(t *testing.T) {
	tag, ch := subscribe(t)
	done := make(chan observed.Exit, 1)
	s := helperSpec(t, tag, "sleep")
	s.Done = done
	l := start(t, s)
	// Forget leaves a registration with a Done channel alone.
	testRunner.Forget(tag)
	if err := SignalProcess(l.PID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	e := waitExit(t, done)
	if e.PID != l.PID || e.Tag != tag || e.Code != 137 || e.Signal != 9 {
		t.Errorf("got %+v, want pid %d, tag %s, code 137", e, l.PID, tag)
	}
	noExit(t, ch)
	noExit(t, done)
}

func TestCloseSendsUnknownToDone(t *testing.T) {
	r := NewRunner(nil, func(e observed.Exit) { t.Errorf("notified: %+v", e) })
	done := make(chan observed.Exit, 1)
	s := helperSpec(t, "close", "exit", "0")
	s.Done = done
	// r never runs; testRunner's reaper collects the child as unregistered.
	l, err := r.Start(s)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	e := waitExit(t, done)
	if e.PID != l.PID || e.Code != observed.CodeUnknown {
		t.Errorf("got %+v, want pid %d with an unknown code", e, l.PID)
	}
	res := r.RunCommand(context.Background(), helperCommand(t, "exit", "0"))
	if res.Code != -1 || res.Err == nil || !strings.Contains(res.Err.Error(), "runner is closed") {
		t.Errorf("RunCommand after Close: code %d, err %v", res.Code, res.Err)
	}
}
