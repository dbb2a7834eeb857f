package patrol_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// TestUsage: /status/ over HTTP carries each running app's usage (its
// process group's CPU time and resident memory, and the CPU share once
// two samples exist), and /metrics has patrol_app_cpu_seconds_total and
// patrol_app_memory_bytes; the loop's own status (the library's) has none.
func TestUsage(t *testing.T) {
	d := startPatrol(t, map[string]any{"apps": map[string]any{"sleeper": appCfg(t, nil, "sleep")}})
	d.waitRunning(t, "sleeper", 0, 10*time.Second)
	status := func() *schema.Response {
		t.Helper()
		resp, err := http.Get("http://" + d.HTTPAddr() + "/status/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st schema.Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st.Apps["sleeper"]
	}
	first := status().Usage
	if first == nil || first.MemoryBytes < 1<<20 || first.CPUSeconds < 0 || first.Sampled == "" {
		t.Fatalf("usage: %+v, want at least 1 MiB of memory", first)
	}
	// A second sample, at least 2 s later, gives the CPU share.
	deadline := time.Now().Add(10 * time.Second)
	for status().Usage.CPUPercent == nil {
		if time.Now().After(deadline) {
			t.Fatal("no cpu-percent after two samples")
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, err := http.Get("http://" + d.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^patrol_app_memory_bytes\{id="sleeper"\} (\S+)$`).FindStringSubmatch(b.String())
	if m == nil || !strings.Contains(b.String(), `patrol_app_cpu_seconds_total{id="sleeper"}`) {
		t.Fatalf("metrics lack the usage:\n%s", b.String())
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v < 1<<20 {
		t.Errorf("patrol_app_memory_bytes %s", m[1])
	}
	st, err := d.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Apps["sleeper"].Usage != nil {
		t.Error("the library's status has usage: it must cost nothing unless read over the API")
	}
}
