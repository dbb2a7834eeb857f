package desired_test

import (
	"slices"
	"testing"

	"github.com/patrolhq/patrol/desired"
)

func TestLimitRules(t *testing.T) { runRuleCases(t, limitCases) }

var limitCases = []ruleCase{
	{"all of them", app(`"memory-max": "512M", "memory-high": "384MiB", "cpu-max": "50%", "pids-max": 64`), nil},
	{"numbers and max", app(`"memory-max": 33554432, "memory-high": "max", "cpu-max": "20000 100000", "pids-max": "max"`), nil},
	{"memory garbage", app(`"memory-max": "lots"`), []string{`apps.web.memory-max: must be bytes, a number with K, M, G or T ("512M"), or "max", got "lots"`}},
	{"memory unit unknown", app(`"memory-max": "5P"`), []string{`apps.web.memory-max: must be bytes, a number with K, M, G or T ("512M"), or "max", got "5P"`}},
	{"memory too small", app(`"memory-max": 32`), []string{`apps.web.memory-max: must be at least 1M, got "32" (32 bytes)`}},
	{"memory too large", app(`"memory-max": "99999999999T"`), []string{`apps.web.memory-max: "99999999999T" is too large`}},
	{"memory-high above max", app(`"memory-max": "64M", "memory-high": "1G"`), []string{`apps.web.memory-high: must not be above memory-max (64M), got 1G`}},
	{"cpu garbage", app(`"cpu-max": "half"`), []string{`apps.web.cpu-max: must be a percentage of one CPU ("50%", "200%"), "QUOTA PERIOD" in microseconds ("50000 100000"), or "max", got "half"`}},
	{"cpu zero", app(`"cpu-max": "0%"`), []string{`apps.web.cpu-max: must be between 0.1% and 100000% of one CPU, got "0%"`}},
	{"cpu period out of range", app(`"cpu-max": "500 100"`), []string{`apps.web.cpu-max: needs a period of 1000 to 1000000 µs and a quota of at least 1000 µs, got "500 100"`}},
	{"cpu a number", app(`"cpu-max": 50`), []string{`apps.web.cpu-max: must be a percentage of one CPU ("50%", "200%"), "QUOTA PERIOD" in microseconds ("50000 100000"), or "max", got "50"`}},
	{"pids zero", app(`"pids-max": 0`), []string{`apps.web.pids-max: must be a number of processes from 1 to 4194304, or "max", got "0"`}},
	{"pids negative", app(`"pids-max": "-3"`), []string{`apps.web.pids-max: must be a number of processes from 1 to 4194304, or "max", got "-3"`}},
	{"limit as an object", app(`"pids-max": {"n": 3}`), []string{`apps.web.pids-max: must be a string, got an object`}},
}

// TestLimitsNormalised: the parsed values, every limit is changed in
// place, and the plan's text of them.
func TestLimitsNormalised(t *testing.T) {
	st, err := desired.Parse([]byte(`{"apps": {"web": {"binary": "/bin/true", "memory-max": "1G", "memory-high": 536870912,
		"cpu-max": "150%", "pids-max": "10"}, "db": {"binary": "/bin/true"}}}`), desired.Options{Dir: "/cfg"})
	if err != nil {
		t.Fatal(desired.Problems(err))
	}
	web, _ := st.App("web")
	want := desired.Limits{MemoryMax: 1 << 30, MemoryHigh: 512 << 20, CPUQuota: 150000, CPUPeriod: 100000, PIDsMax: 10}
	if web.Limits != want {
		t.Errorf("limits %+v, want %+v", web.Limits, want)
	}
	if got := []string{web.Limits.Text("memory-max"), web.Limits.Text("memory-high"), web.Limits.Text("cpu-max"), web.Limits.Text("pids-max")}; !slices.Equal(got, []string{"1G", "512M", "150000 100000", "10"}) {
		t.Errorf("texts %q", got)
	}
	if db, _ := st.App("db"); db.Limits.Any() {
		t.Errorf("db has limits: %+v", db.Limits)
	}
	for _, k := range desired.LimitKeys {
		if !slices.Contains(desired.InPlaceFields(), k) {
			t.Errorf("%s is not changed in place", k)
		}
	}
	why := map[string]string{"memory-high": "cgroup v1 has no memory.high", "cpu-max": "no cpu controller"}
	if got := web.Limits.Unenforced(why); got != "not enforced (memory-high: cgroup v1 has no memory.high; cpu-max: no cpu controller)" {
		t.Errorf("unenforced: %q", got)
	}
	if got := (desired.Limits{PIDsMax: 3}).Unenforced(why); got != "" {
		t.Errorf("pids enforced, got %q", got)
	}
}

// BenchmarkShape: what the saved state's shape costs per start.
func BenchmarkShape(b *testing.B) {
	st, err := desired.Parse([]byte(`{"apps": {"web": {"binary": "/bin/web", "args": ["-p", "80"], "env": ["A=1"], "memory-max": "1G"}}}`), desired.Options{Dir: "/cfg"})
	if err != nil {
		b.Fatal(err)
	}
	a, _ := st.App("web")
	for b.Loop() {
		a.Shape()
	}
}
