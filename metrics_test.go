package patrol_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMetrics: GET /metrics serves Prometheus metrics: per-entry state,
// restarts and exit code; reconcile pass durations; config reloads; HTTP
// requests by route and code; UDP datagrams.
func TestMetrics(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"web":  appCfg(t, nil, "sleep"),
		"off":  appCfg(t, map[string]any{"disabled": true}, "sleep"),
		"job":  appCfg(t, map[string]any{"schedule": "@hourly"}, "exit", "0"),
		"pool": appCfg(t, map[string]any{"replicas": 2}, "sleep"),
	}, nil))
	d.waitRunning(t, "web", 0, 5*time.Second)
	if resp, err := http.Get("http://" + d.HTTPAddr() + "/status/"); err == nil {
		resp.Body.Close()
	}
	c, _ := net.Dial("udp", d.UDPAddr())
	c.Write([]byte(`{"id":"web","group":"app"}`))
	c.Write([]byte(`not json`))
	c.Close()
	d.Reload()
	var body string
	waitFor(t, "the metrics", 5*time.Second, func() bool {
		resp, err := http.Get("http://" + d.HTTPAddr() + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return strings.Contains(body, `patrol_udp_datagrams_total{result="dropped"} 1`) &&
			strings.Contains(body, `patrol_udp_datagrams_total{result="answered"} 1`)
	})
	for _, want := range []string{
		`patrol_entry_up{group="app",id="web"} 1`,
		`patrol_entry_up{group="app",id="off"} 0`,
		`patrol_entry_state{group="app",id="off",state="disabled"} 1`,
		`patrol_entry_restarts{group="app",id="web"} 0`,
		`patrol_entry_state{group="app",id="job",state="scheduled"} 1`,
		`patrol_app_next_run_timestamp_seconds{id="job"} `,
		`patrol_app_runs_skipped_total{id="job"} 0`,
		`patrol_app_runs_running{id="job"} 0`,
		`patrol_app_replicas{id="pool"} 2`,
		`patrol_reconcile_pass_duration_seconds_count`,
		`patrol_config_reloads_total{result="ok"} 2`, // the reload after the watch starts, and ours
		`patrol_config_reloads_total{result="failed"} 0`,
		`patrol_config_info{`,
		`patrol_http_requests_total{code="200",route="/status/"}`,
		`patrol_udp_datagrams_total{result="answered"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
