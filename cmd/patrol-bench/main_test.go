package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// patrolBin is the patrol binary built by TestMain for the smoke test.
var patrolBin string

func TestMain(m *testing.M) {
	// The bench re-executes its own binary as the baseline and the helper
	// apps; under test that binary is the test binary.
	reexecuted(os.Args)
	dir, err := os.MkdirTemp("", "patrol-bench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	patrolBin = filepath.Join(dir, "patrol")
	if out, err := exec.Command("go", "build", "-o", patrolBin, "../patrol").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ../patrol: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
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

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (my (odd) app) S 17 4242 4242 0 -1 4194560 1234 0 0 0 321 45 0 0 20 0 9 0 5555 1000000 300 18446744073709551615\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "my (odd) app" || st.State != 'S' || st.PPID != 17 || st.UTime != 321 || st.STime != 45 {
		t.Errorf("parseStat = %+v", st)
	}
	if !st.alive() {
		t.Error("S is not alive")
	}
	st, err = parseStat([]byte("7 (sleep) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 0\n"))
	if err != nil || st.alive() {
		t.Errorf("zombie: %+v, %v", st, err)
	}
	for _, bad := range []string{"", "12 sleep S 1", "12 (sleep) S 1 2 3", "12 (sleep) S x 1 1 0 -1 0 0 0 0 0 1 1 0"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
	// This process's own stat parses.
	self, err := readStat(os.Getpid())
	if err != nil || self.PPID != os.Getppid() {
		t.Errorf("readStat(self) = %+v, %v; ppid want %d", self, err, os.Getppid())
	}
}

func TestParseStatus(t *testing.T) {
	in := "Name:\tpatrol\nState:\tS (sleeping)\nVmRSS:\t   21764 kB\nThreads:\t9\n" +
		"voluntary_ctxt_switches:\t150\nnonvoluntary_ctxt_switches:\t7\n"
	st, err := parseStatus([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := procStatus{RSSKiB: 21764, Threads: 9, VolCtx: 150, NonVolCtx: 7}
	if st != want {
		t.Errorf("parseStatus = %+v, want %+v", st, want)
	}
	if _, err := parseStatus([]byte("Threads:\tmany\n")); err == nil {
		t.Error("a bad Threads value parsed")
	}
	u, err := readUsage(os.Getpid())
	if err != nil || u.RSSKiB == 0 || u.Threads == 0 {
		t.Errorf("readUsage(self) = %+v, %v", u, err)
	}
}

func TestLogField(t *testing.T) {
	line := `time=2026-01-02T03:04:05.000Z level=INFO msg="http listening" addr=127.0.0.1:4242 tls=false`
	if got := logField(line, "addr"); got != "127.0.0.1:4242" {
		t.Errorf("addr = %q", got)
	}
	if got := logField(`level=INFO msg="x" dir="/a b/c" n=1`, "dir"); got != "/a b/c" {
		t.Errorf("quoted = %q", got)
	}
	if got := logField(line, "port"); got != "" {
		t.Errorf("missing key = %q", got)
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
		pids, _ := listPIDs()
		for _, p := range pids {
			if st, err := readStat(p); err == nil && st.PPID == os.Getpid() && st.alive() {
				argv, _ := readCmdline(p)
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

func TestParsePSS(t *testing.T) {
	b := []byte("55d0c8a3e000-7ffd1b1f4000 ---p 00000000 00:00 0                          [rollup]\n" +
		"Rss:               21340 kB\nPss:               18712 kB\nPss_Dirty:          9000 kB\n")
	if got := parsePSS(b); got != 18712 {
		t.Errorf("parsePSS = %d, want 18712", got)
	}
	if got := parsePSS([]byte("Rss: 1 kB\n")); got != 0 {
		t.Errorf("parsePSS without Pss = %d, want 0", got)
	}
	if readPSS(os.Getpid()) == 0 {
		t.Error("readPSS of this process is 0")
	}
}
