package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// TestLogsFollow: `patrol logs -f APP` prints the lines of two successive
// instances of the app, in order, and says where the new one starts; and
// `patrol status APP` shows the app with its history.
func TestLogsFollow(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	write := func(words ...string) {
		t.Helper()
		data := fmt.Sprintf(`{"apps": {"talker": %s}}`, helperApp(`"name": "Talker"`, append([]string{"say", "10ms"}, words...)...))
		if err := os.WriteFile(cfg+".tmp", []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cfg+".tmp", cfg); err != nil {
			t.Fatal(err)
		}
	}
	write("first-a", "first-b")
	d := startDaemon(t, cfg)
	defer shutdown(t, d)
	poll(t, "talker running", 10*time.Second, func() bool { return pids(d.status(t))["talker"] != 0 })

	ctx, cancel := context.WithCancel(t.Context())
	var out, errOut testhelper.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"logs", "-f", "--server", d.addr, "talker"}, &out, &errOut) }()
	poll(t, "the first instance's lines", 10*time.Second, func() bool { return strings.Contains(out.String(), "first-b\n") })
	write("second-a", "second-b")
	poll(t, "the second instance's lines", 15*time.Second, func() bool { return strings.Contains(out.String(), "second-b\n") })
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("logs -f: exit %d, stderr %q", code, errOut.String())
	}
	got := out.String()
	idx := func(s string) int { return strings.Index(got, s) }
	if !(idx("first-a\n") >= 0 && idx("first-a\n") < idx("first-b\n") && idx("first-b\n") < idx("--- new instance: ") &&
		idx("--- new instance: ") < idx("second-a\n") && idx("second-a\n") < idx("second-b\n")) {
		t.Errorf("logs -f printed, out of order or incomplete:\n%s", got)
	}

	// --since: both instances' whole output, oldest first, each after a
	// header line.
	code, since, e := cli(t, "logs", "--server", d.addr, "--since", "1m", "talker")
	second := strings.LastIndex(since, "--- instance started ")
	if code != 0 || strings.Count(since, "--- instance started ") != 2 || !strings.HasPrefix(since, "--- instance started ") ||
		!(strings.Index(since, "first-b\n") < second && second < strings.Index(since, "second-a\n")) {
		t.Errorf("logs --since 1m: exit %d, stderr %q\n%s", code, e, since)
	}
	code, stat, e := cli(t, "status", "--server", d.addr, "talker")
	if code != 0 || !strings.Contains(stat, "app        talker (Talker)") || !strings.Contains(stat, "history (newest first):") ||
		!strings.Contains(stat, "stopped-by-config") {
		t.Errorf("status talker: exit %d, stderr %q\n%s", code, e, stat)
	}
	if code, _, e := cli(t, "status", "--server", d.addr, "nope"); code != 1 || !strings.Contains(e, `no app or service "nope"`) {
		t.Errorf("status nope: exit %d, %q", code, e)
	}
	if code, _, e := cli(t, "logs", "--server", d.addr, "nope"); code != 1 || !strings.Contains(e, "Unknown App (see the ids with `patrol status`)") {
		t.Errorf("logs nope: exit %d, %q", code, e)
	}
}

// TestCompletionBash: the bash completion script is sourced by bash
// without error and completes subcommands and a command's flags.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	code, script, _ := cli(t, "completion", "bash")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	path := filepath.Join(t.TempDir(), "patrol.bash")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		arr := `"` + strings.Join(words, `" "`) + `"`
		c := exec.Command(bash, "--norc", "--noprofile", "-c", fmt.Sprintf(`set -e; source %q; COMP_WORDS=(%s); COMP_CWORD=%d; _patrol; echo "${COMPREPLY[*]}"`, path, arr, len(words)-1))
		b, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, b)
		}
		return strings.TrimSpace(string(b))
	}
	if got := complete("patrol", "st"); got != "status" {
		t.Errorf("patrol st<TAB>: %q, want status", got)
	}
	if got := complete("patrol", "l"); got != "logs" {
		t.Errorf("patrol l<TAB>: %q, want logs", got)
	}
	if got := complete("patrol", "logs", "--ta"); got != "--tail" {
		t.Errorf("patrol logs --ta<TAB>: %q, want --tail", got)
	}
	for _, shell := range []string{"zsh", "fish"} {
		if code, out, _ := cli(t, "completion", shell); code != 0 || !strings.Contains(out, "logs") {
			t.Errorf("completion %s: exit %d", shell, code)
		}
	}
	if code, _, e := cli(t, "completion", "tcsh"); code != 2 || !strings.Contains(e, "want bash, zsh or fish") {
		t.Errorf("completion tcsh: exit %d %q", code, e)
	}
}

// TestVersionAndPlanExitCodes: --version; plan --detailed-exitcode exits 1
// (never 2, which means changes) for usage errors and for a chosen server
// that does not answer; --require-server fails without a daemon.
func TestVersionAndPlanExitCodes(t *testing.T) {
	if code, out, _ := cli(t, "--version"); code != 0 || !strings.HasPrefix(out, "patrol ") {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`{"apps": {"a": %s}}`, helperApp("", "sleep"))), 0o644)
	addr := closedAddr(t)
	for _, c := range []struct {
		args []string
		code int
		in   string
	}{
		{[]string{"plan", "--detailed-exitcode"}, 1, "want exactly one config file"},
		{[]string{"plan", "--detailed-exitcode", "--server", addr, cfg}, 1, "cannot reach Patrol"},
		{[]string{"plan", "--require-server", "--server", addr, cfg}, 1, "cannot reach Patrol"},
		{[]string{"plan", "--server", addr, cfg}, 0, "planning against an empty Patrol"},
		{[]string{"plan"}, 2, "want exactly one config file"},
	} {
		code, _, e := cli(t, c.args...)
		if code != c.code || !strings.Contains(e, c.in) {
			t.Errorf("%q: exit %d (want %d), stderr %q", c.args, code, c.code, e)
		}
	}
	t.Setenv("PATROL_SERVER", addr)
	if code, _, e := cli(t, "plan", "--detailed-exitcode", cfg); code != 1 || !strings.Contains(e, addr) {
		t.Errorf("PATROL_SERVER unreachable with --detailed-exitcode: exit %d, %q", code, e)
	}
}

// TestNewcomerFixes: validate warns about a binary that is not there (an
// error with --strict); `patrol run` without a config says how to give
// one; a second Patrol on the same state directory fails before it
// listens.
func TestNewcomerFixes(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	os.WriteFile(missing, []byte(`{"apps": {"x": {"binary": "/nonexistent/x"}}}`), 0o644)
	code, out, e := cli(t, "validate", missing)
	if code != 0 || !strings.Contains(out, "valid (1 app") || !strings.Contains(e, "apps.x.binary: warning: /nonexistent/x does not exist here") {
		t.Errorf("validate: exit %d, stdout %q, stderr %q", code, out, e)
	}
	nouser := filepath.Join(dir, "nouser.json")
	os.WriteFile(nouser, []byte(`{"apps": {"x": {"binary": "/bin/true", "user": "no-such-user-here"}}}`), 0o644)
	if code, _, e := cli(t, "validate", nouser); code != 0 || !strings.Contains(e, `apps.x.user: warning: no user "no-such-user-here" on this host`) {
		t.Errorf("validate an unknown user: exit %d, %q", code, e)
	}
	code, out, e = cli(t, "validate", "--strict", missing)
	if code != 1 || out != "" || !strings.Contains(e, "apps.x.binary: error: ") {
		t.Errorf("validate --strict: exit %d, stdout %q, stderr %q", code, out, e)
	}

	code, _, e = cli(t, "run", "--config", filepath.Join(dir, "none.json"))
	if code != 1 || !strings.Contains(e, "give one with --config PATH") {
		t.Errorf("run without a config: exit %d, %q", code, e)
	}

	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`{"apps": {"a": %s}}`, helperApp("", "sleep"))), 0o644)
	d := startDaemon(t, cfg)
	code, _, e = cli(t, "run", "--config", cfg, "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0")
	if code != 1 || !strings.Contains(e, "another Patrol uses this state directory") || strings.Contains(e, "listening") {
		t.Errorf("a second Patrol: exit %d, stderr:\n%s", code, e)
	}

	// A clean shutdown and a new Patrol: the app is started again, which
	// is not a restart.
	poll(t, "a running", 10*time.Second, func() bool { return pids(d.status(t))["a"] != 0 })
	shutdown(t, d)
	d = startDaemon(t, cfg)
	poll(t, "a running again", 10*time.Second, func() bool { return pids(d.status(t))["a"] != 0 })
	if a := d.status(t).Apps["a"]; a.Restarts != 0 || len(a.History) != 1 || a.History[0].Reason != "shutdown" {
		t.Errorf("after a clean shutdown and a new Patrol: restarts %d, history %+v", a.Restarts, a.History)
	}
	logged := false
	for deadline := time.After(5 * time.Second); !logged; {
		select {
		case l := <-d.logs:
			logged = strings.Contains(l, "msg=started app=a") && strings.Contains(l, "reason=resumed")
		case <-deadline:
			t.Fatal(`no "started app=a ... reason=resumed" in the new Patrol's log`)
		}
	}
	shutdown(t, d)
}

// TestColor: colour only on a terminal and never with NO_COLOR; the
// coloured table, codes stripped, is the plain one (the columns align).
func TestColor(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	if useColor(&bytes.Buffer{}, env()) {
		t.Error("colour into a buffer")
	}
	// A character device stands for a terminal (there may be no /dev/tty
	// where the tests run).
	dev, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if !useColor(dev, env("TERM", "xterm")) || useColor(dev, env("NO_COLOR", "1")) || useColor(dev, env("TERM", "dumb")) {
		t.Error("a terminal: colour unless NO_COLOR or TERM=dumb")
	}
	if f, err := os.Create(filepath.Join(t.TempDir(), "out")); err == nil {
		defer f.Close()
		if useColor(f, env("TERM", "xterm")) {
			t.Error("colour into a regular file")
		}
	}
	var st schema.Status
	if err := json.Unmarshal([]byte(cannedStatus), &st); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	var plain, colored bytes.Buffer
	printStatus(&plain, &st, now, false)
	printStatus(&colored, &st, now, true)
	if !strings.Contains(colored.String(), "\x1b[32mrunning\x1b[0m") {
		t.Errorf("no green running:\n%q", colored.String())
	}
	stripped := regexp.MustCompile("\x1b\\[[0-9]+m").ReplaceAllString(colored.String(), "")
	// Each cell of the STATE column carries 9 bytes of codes, so the
	// visible columns line up exactly as without colour.
	if want := plain.String(); stripped != want {
		t.Errorf("coloured table, stripped:\n%s\nplain:\n%s", stripped, want)
	}
}
