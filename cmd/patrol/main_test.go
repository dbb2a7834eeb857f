package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patrolhq/patrol/schema"
)

// cli runs the command line in-process and returns its exit code and
// output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(t.Context(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestValidateExamples(t *testing.T) {
	paths, err := filepath.Glob("../../examples/*.json")
	if err != nil || len(paths) < 6 {
		t.Fatalf("examples: %v %v", paths, err)
	}
	code, out, errOut := cli(t, append([]string{"validate"}, paths...)...)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(paths) {
		t.Fatalf("got %d lines for %d files:\n%s", len(lines), len(paths), out)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, paths[i]+": valid (") {
			t.Errorf("line %d: got %q", i, l)
		}
	}
}

// TestValidateThreeMistakes: a typo'd key, a bad id and a missing binary
// are all reported, one per line, each with its file and path.
func TestValidateThreeMistakes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	cfg := `{
  "tick-evry": 5,
  "apps": {
    "web_1": {"binary": "/usr/bin/web"},
    "api": {"keepalive": 1, "args": ["-p", "80"]}
  }
}`
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "validate", path)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if out != "" {
		t.Errorf("stdout: %q", out)
	}
	want := []string{
		path + ": apps.api.binary: required",
		path + `: apps.web_1: invalid id "web_1": only A-Z, a-z, 0-9 and "-" are allowed`,
		path + `: tick-evry: unknown key, did you mean "tick-every"?`,
	}
	if got := strings.Split(strings.TrimSpace(errOut), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n got %q\nwant %q", got, want)
	}
}

func TestValidateMixed(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(good, []byte(`{"apps": {"a": {"binary": "/bin/true"}}}`), 0o644)
	os.WriteFile(bad, []byte(`{"apps": {"a": {"binary": "/bin/true"}}`), 0o644)
	missing := filepath.Join(dir, "missing.json")
	code, out, errOut := cli(t, "validate", good, bad, missing)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(out, good+": valid (1 app, 0 services; revision ") {
		t.Errorf("stdout: %q", out)
	}
	if !strings.Contains(errOut, bad+": invalid JSON: unexpected end of file\n") {
		t.Errorf("stderr lacks the bad file: %q", errOut)
	}
	if !strings.Contains(errOut, missing+": read config: open "+missing+": no such file or directory\n") {
		t.Errorf("stderr lacks the missing file: %q", errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		in   string // expected in stderr
	}{
		{[]string{"validate"}, 2, "no config files given"},
		{[]string{"validate", "--bogus", "x.json"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"schema", "extra"}, 2, "takes no arguments"},
	} {
		code, _, errOut := cli(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.in) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d with %q", c.args, code, errOut, c.code, c.in)
		}
	}
	if code, out, _ := cli(t); code != 2 || !strings.Contains(out, "usage: patrol COMMAND") {
		t.Errorf("no arguments: exit %d, stdout %q", code, out)
	}
}

func TestHelp(t *testing.T) {
	for _, name := range []string{"run", "validate", "plan", "status", "toggle", "schema", "version"} {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {"help", name}} {
			code, out, errOut := cli(t, args...)
			if code != 0 || !strings.HasPrefix(out, "usage: patrol "+name) || errOut != "" {
				t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
			}
		}
	}
	code, out, _ := cli(t, "--help")
	if code != 0 || !strings.Contains(out, "validate") || !strings.Contains(out, "schema") {
		t.Errorf("--help: exit %d, stdout %q", code, out)
	}
}

func TestSchemaAndVersion(t *testing.T) {
	code, out, _ := cli(t, "schema")
	if code != 0 || out != string(schema.JSONSchema) {
		t.Errorf("schema: exit %d, output differs from the embedded schema", code)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("schema output: %v, $schema %v", err, v["$schema"])
	}
	code, out, _ = cli(t, "version")
	if code != 0 || !strings.HasPrefix(out, "patrol ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func TestParseInterspersed(t *testing.T) {
	code, _, errOut := cli(t, "validate", "../../examples/http.json", "--", "--not-a-flag.json")
	if code != 1 || !strings.Contains(errOut, "--not-a-flag.json: read config") {
		t.Errorf("after --: exit %d, stderr %q", code, errOut)
	}
}

// TestValidateHealth: validate rejects a dependency cycle, spelled out,
// and a probe with two forms, each with its path.
func TestValidateHealth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	cfg := `{"apps": {
  "a": {"binary": "/bin/a", "depends-on": [{"app": "b", "condition": "ready"}]},
  "b": {"binary": "/bin/b", "depends-on": ["c"]},
  "c": {"binary": "/bin/c", "depends-on": ["a"], "liveness": {"tcp": {"port": 1}, "http": {"port": 1}}}
}}`
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "validate", path)
	if code != 1 || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	want := []string{
		path + ": apps.a.depends-on: cycle a -> b -> c -> a",
		path + `: apps.c.liveness: must have exactly one of "exec", "http" and "tcp", got 2`,
	}
	if got := strings.Split(strings.TrimSpace(errOut), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n got %q\nwant %q", got, want)
	}
}
