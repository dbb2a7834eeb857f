package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/proctool"
	"github.com/patrolhq/patrol/internal/testhelper"
)

// patrolBin is the patrol binary built by TestMain for the smoke test.
var patrolBin string

func TestMain(m *testing.M) {
	// The bench re-executes its own binary as the baseline and the helper
	// apps; under test that binary is the test binary.
	reexecuted(os.Args)
	os.Exit(testhelper.RunWithPatrol(m, "../patrol", &patrolBin))
}

func TestPercentile(t *testing.T) {
	var s []float64
	for i := 1; i <= 200; i++ {
		s = append(s, float64(i))
	}
	for _, c := range []struct {
		p    float64
		want float64
	}{{0, 1}, {1, 2}, {50, 100}, {99, 198}, {100, 200}} {
		if got := percentile(s, c.p); got != c.want {
			t.Errorf("percentile(1..200, %g) = %g, want %g", c.p, got, c.want)
		}
	}
	// With fewer than 100 samples p99 is the maximum.
	if got := percentile([]float64{1, 2, 3, 4, 5}, 99); got != 5 {
		t.Errorf("p99 of 5 samples = %g, want 5", got)
	}
	if got := percentile([]float64{1, 2, 3, 4}, 50); got != 2 {
		t.Errorf("p50 of 1..4 = %g, want 2 (nearest rank)", got)
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing is not NaN")
	}
	st := summarize([]float64{3, 1, 2})
	if st.N != 3 || st.Min != 1 || st.P50 != 2 || st.P99 != 3 || st.Max != 3 || st.Mean != 2 {
		t.Errorf("summarize = %+v", *st)
	}
	if summarize(nil) != nil {
		t.Error("summarize(nil) is not nil")
	}
}

func TestPromValue(t *testing.T) {
	body := []byte("# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 17\ngo_goroutines_other 3\n")
	if v, ok := promValue(body, "go_goroutines"); !ok || v != 17 {
		t.Errorf("go_goroutines = %v, %v", v, ok)
	}
	if _, ok := promValue(body, "go_threads"); ok {
		t.Error("found a missing metric")
	}
}

func TestTargetsAndTable(t *testing.T) {
	r := Result{Name: "crash-k1", Title: "crash k1", Unit: "ms",
		Patrol: summarize([]float64{1, 2, 3}), Baseline: summarize([]float64{1, 1, 2})}
	r.finish("p99", maxRatio(2, "p99"))
	if r.Ratio == nil || *r.Ratio != 1.5 || r.Met == nil || !*r.Met {
		t.Fatalf("crash: ratio %v met %v", r.Ratio, r.Met)
	}
	rps := Result{Name: "ping", Title: "UDP pings", Unit: "req/s", Patrol: value(35000), Baseline: value(70000)}
	rps.finish("value", atLeast(50000, "value", "≥ 50000/s"))
	if rps.Met == nil || *rps.Met || *rps.Ratio != 0.5 {
		t.Fatalf("ping: %+v", rps)
	}
	none := Result{Name: "edit", Title: "edit", Unit: "ms", Patrol: summarize([]float64{4}), Note: "no baseline: none"}
	none.finish("p50", atMost(50, "p50", "p50 ≤ 50 ms"))
	if none.Ratio != nil || none.Met == nil || !*none.Met {
		t.Fatalf("edit: %+v", none)
	}
	missing := Result{Name: "gor", Title: "goroutines", Baseline: value(3)}
	missing.finish("value", atMost(10, "value", "≤ 10"))
	if missing.Met != nil || missing.Ratio != nil {
		t.Fatalf("missing: %+v", missing)
	}
	var buf bytes.Buffer
	if err := writeTable(&buf, []Result{r, rps, none, missing}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"crash k1", "1.00 / 2.00 / 3.00 ms (n=3)", "1.50× (p99)", "≤ 2× baseline p99", " met",
		"35000 req/s", "0.50× (value)", "NOT MET",
		"no baseline", "goroutines", "n/a",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// Aligned: the header and the first row put column 2 at one offset.
	if i, j := strings.Index(lines[0], "Patrol"), strings.Index(lines[1], "1.00 /"); i != j {
		t.Errorf("columns not aligned (%d, %d):\n%s", i, j, out)
	}
}

func TestFormatNumber(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 12345.6: "12346", 8: "8.00", 123.45: "123.5", 12.345: "12.35", 0.456: "0.46", 0.0123: "0.012"} {
		if got := formatNumber(v); got != want {
			t.Errorf("formatNumber(%g) = %q, want %q", v, got, want)
		}
	}
}

func TestFlags(t *testing.T) {
	var buf bytes.Buffer
	if _, err := parseFlags([]string{"--only", "crash,nope"}, &buf); err == nil {
		t.Error("--only nope accepted")
	}
	o, err := parseFlags([]string{"--quick"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if o.crashReps != 10 || o.idle != 10*time.Second || fmt.Sprint(o.sizes) != "[100 500]" || !o.only["ping"] {
		t.Errorf("--quick: %+v", o)
	}
	if code := run(context.Background(), func() {}, []string{"--patrol", "/nonexistent/patrol"}, &buf, &buf); code != 2 ||
		!strings.Contains(buf.String(), "make build") {
		t.Errorf("missing binary: exit %d, %q", code, buf.String())
	}
}

// TestSmoke runs every benchmark, tiny, against a real patrol binary and
// checks that the JSON has numbers for each measurement and that no process
// is left behind.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"--patrol", patrolBin, "--json", "--quick", "--sizes", "10", "--edit-size", "10",
		"--crash-reps", "3", "--start-reps", "2", "--edit-reps", "2", "--status-reqs", "50",
		"--idle", "1s", "--settle", "100ms", "--ping-duration", "300ms", "--workers", "2"}
	code := run(ctx, cancel, args, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, stdout.String())
	}
	byName := map[string]Result{}
	for _, r := range rep.Results {
		byName[r.Name] = r
	}
	positive := func(name, which string, s *Stats) {
		t.Helper()
		v, ok := s.pick(which)
		if !ok || !(v > 0) {
			t.Errorf("%s: %s %s = %v (%v)", name, which, "", v, ok)
		}
	}
	for _, name := range []string{"crash-k1", "crash-k2", "crash-api-k1", "crash-api-k2", "start-10", "status-10",
		"edit-10", "edit-status-10", "ping-http-latency", "ping-udp-latency"} {
		r, ok := byName[name]
		if !ok {
			t.Errorf("no result %s", name)
			continue
		}
		positive(name+" patrol", "p50", r.Patrol)
		positive(name+" baseline", "p50", r.Baseline)
		if r.Ratio == nil || !(*r.Ratio > 0) {
			t.Errorf("%s: no ratio", name)
		}
	}
	for _, name := range []string{"idle-rss-10", "idle-threads-10", "ping-http-rps", "ping-udp-rps"} {
		r, ok := byName[name]
		if !ok {
			t.Errorf("no result %s", name)
			continue
		}
		positive(name+" patrol", "value", r.Patrol)
		positive(name+" baseline", "value", r.Baseline)
	}
	for _, name := range []string{"idle-cpu-10", "idle-wakeups-10", "edit-others-10"} {
		if r, ok := byName[name]; !ok || r.Patrol == nil || r.Patrol.Value == nil || r.Baseline == nil || r.Baseline.Value == nil {
			t.Errorf("%s: missing values: %+v", name, r)
		}
	}
	if r := byName["idle-passes-10"]; r.Patrol == nil || r.Patrol.Value == nil || r.Met == nil {
		t.Errorf("idle-passes-10: no count of passes: %+v", r)
	}
	if o := byName["edit-others-10"]; o.Met == nil || !*o.Met {
		t.Errorf("edit restarted other apps: %+v", o)
	}
	if rep.Machine.Cores == 0 || rep.Machine.Kernel == "" || rep.Machine.PatrolVersion == "" || rep.Machine.FileSystem == "" || rep.Machine.FileSystem == "unknown" {
		t.Errorf("machine: %+v", rep.Machine)
	}
	if len(rep.Warnings) > 0 {
		t.Errorf("warnings: %q", rep.Warnings)
	}
	// Nothing is left: no live child of this process (a subreaper now).
	// Orphans reparented here are reaped by the bench as they exit; give
	// them until a deadline.
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		left = left[:0]
		pids, _ := proctool.ListPIDs()
		for _, p := range pids {
			if st, err := proctool.ReadStat(p); err == nil && st.PPID == os.Getpid() && st.Alive() {
				argv, _ := proctool.ReadCmdline(p)
				left = append(left, fmt.Sprintf("pid %d %q", p, argv))
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, l := range left {
		t.Errorf("left running: %s", l)
	}
}
