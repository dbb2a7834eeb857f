package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/patrolhq/patrol/internal/testhelper"
)

// patrolBin is the patrol binary built by TestMain.
var patrolBin string

func TestMain(m *testing.M) {
	// The harness re-executes its own binary as the helper apps; under
	// test that binary is the test binary.
	if len(os.Args) > 1 && os.Args[1] == "helper" {
		os.Exit(runHelper(os.Args[2:]))
	}
	os.Exit(testhelper.RunWithPatrol(m, "../patrol", &patrolBin))
}

// TestChaosShort is `make chaos` in short: a few kill -9 rounds, a short
// soak, the connection and request checks, against a real `patrol run`.
// Every check must pass and nothing of the run may be left.
func TestChaosShort(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"--short", "--patrol", patrolBin, "--dir", t.TempDir()}, &out, &errOut)
	t.Logf("\n%s", out.String())
	if code != 0 {
		t.Fatalf("exit code %d\nstderr:\n%s", code, errOut.String())
	}
	for _, want := range []string{"kill -9 under churn", "no zombies", "history kept", "graceful shutdown", "leak soak",
		"log files capped", "idle connections", "malformed and oversized HTTP", "malformed and oversized UDP"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q check in the report", want)
		}
	}
	if strings.Contains(out.String(), "FAILED") {
		t.Error("a check failed")
	}
}

func TestFlags(t *testing.T) {
	o, err := parseFlags([]string{"--short"}, &bytes.Buffer{})
	if err != nil || o.rounds != 3 || o.cycles != 1000 || o.conns != 50 || o.seed == 0 {
		t.Errorf("--short: %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"--rounds", "7", "--seed", "42"}, &bytes.Buffer{})
	if err != nil || o.rounds != 7 || o.cycles != 20000 || o.seed != 42 {
		t.Errorf("--rounds 7 --seed 42: %+v, %v", o, err)
	}
	if _, err := parseFlags([]string{"--rounds", "-1"}, &bytes.Buffer{}); err == nil {
		t.Error("--rounds -1 accepted")
	}
	if _, err := parseFlags([]string{"extra"}, &bytes.Buffer{}); err == nil {
		t.Error("an argument accepted")
	}
}
