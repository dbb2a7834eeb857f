package patrol

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patrolhq/patrol/schema"
)

// metrics are Patrol's Prometheus metrics (GET /metrics). Entry metrics
// are read from one status snapshot per scrape, so they agree with each
// other and cost nothing between scrapes.
type metrics struct {
	reg       *prometheus.Registry
	pass      prometheus.Histogram
	reloads   *prometheus.CounterVec
	requests  *prometheus.CounterVec
	datagrams *prometheus.CounterVec
	unhealthy *prometheus.CounterVec
}

func newMetrics(p *Patrol) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		pass: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "patrol_reconcile_pass_duration_seconds",
			Help:    "Duration of a reconcile pass (observe, plan, execute, persist).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10),
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patrol_config_reloads_total",
			Help: "Config loads after start, by result (ok: applied or unchanged; failed: the last good config stayed).",
		}, []string{"result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patrol_http_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		datagrams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patrol_udp_datagrams_total",
			Help: "UDP API datagrams by result (answered, dropped).",
		}, []string{"result"}),
		unhealthy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patrol_app_unhealthy_total",
			Help: "Instances restarted for failing a check, by app and reason (liveness-failed, startup-failed, watchdog).",
		}, []string{"id", "reason"}),
	}
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("failed")
	m.reg.MustRegister(m.pass, m.reloads, m.requests, m.datagrams, m.unhealthy, &entryCollector{p: p},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) observeRequest(route string, code int) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

func (m *metrics) observeDatagram(answered bool) {
	if answered {
		m.datagrams.WithLabelValues("answered").Inc()
	} else {
		m.datagrams.WithLabelValues("dropped").Inc()
	}
}

var (
	descUp = prometheus.NewDesc("patrol_entry_up",
		"1 when the entry runs, else 0.", []string{"group", "id"}, nil)
	descState = prometheus.NewDesc("patrol_entry_state",
		"1 for the entry's current state.", []string{"group", "id", "state"}, nil)
	descRestarts = prometheus.NewDesc("patrol_entry_restarts",
		"Instances started since Patrol started, minus one.", []string{"group", "id"}, nil)
	descExit = prometheus.NewDesc("patrol_entry_last_exit_code",
		"Exit code of the entry's last ended instance (128+N for signal N).", []string{"group", "id"}, nil)
	descBackoff = prometheus.NewDesc("patrol_entry_backoff_seconds",
		"Seconds until a delayed restart (0 when none).", []string{"group", "id"}, nil)
	descReady = prometheus.NewDesc("patrol_app_ready",
		"1 while the app's instance is ready (readiness passed, or none defined), 0 while it runs unready; absent without an instance.", []string{"id"}, nil)
	descProbe = prometheus.NewDesc("patrol_app_probe_success",
		"1 while the probe passes (after its thresholds), 0 while it fails or has not passed yet.", []string{"id", "probe"}, nil)
	descCPU = prometheus.NewDesc("patrol_app_cpu_seconds_total",
		"CPU time (user and system) of a running app's live processes (its process group), sampled at most every 2 s when scraped; it restarts with each instance.", []string{"id"}, nil)
	descMemory = prometheus.NewDesc("patrol_app_memory_bytes",
		"Resident memory of a running app's processes (its process group), sampled at most every 2 s when scraped.", []string{"id"}, nil)
	descNextRun = prometheus.NewDesc("patrol_app_next_run_timestamp_seconds",
		"When a scheduled app's next run is due (Unix time); absent while it is disabled.", []string{"id"}, nil)
	descSkipped = prometheus.NewDesc("patrol_app_runs_skipped_total",
		"Runs of a scheduled app skipped since Patrol started because the last one still ran (concurrency forbid).", []string{"id"}, nil)
	descRuns = prometheus.NewDesc("patrol_app_runs_running",
		"Runs of a scheduled app running now (more than 1 only with concurrency allow).", []string{"id"}, nil)
	descReplicas = prometheus.NewDesc("patrol_app_replicas",
		"Replicas in force of an app with replicas (the file's count, or a scale's), on replica 0's id.", []string{"id"}, nil)
	descConfig = prometheus.NewDesc("patrol_config_info",
		"The config in force (revision label); 1.", []string{"revision", "path"}, nil)
	descConfigErr = prometheus.NewDesc("patrol_config_error",
		"1 while the config file fails to load (the last good config stays in force).", nil, nil)
)

var allStates = []schema.State{schema.StateRunning, schema.StateStopped, schema.StateStarting,
	schema.StateStopping, schema.StateBackoff, schema.StateDisabled, schema.StateWaiting, schema.StateScheduled}

// entryCollector reports per-entry metrics from a status snapshot.
type entryCollector struct{ p *Patrol }

func (c *entryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descState, descRestarts, descExit, descBackoff, descReady, descProbe, descCPU, descMemory,
		descNextRun, descSkipped, descRuns, descReplicas, descConfig, descConfigErr} {
		ch <- d
	}
}

func (c *entryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.p.loop.Status(ctx)
	if err != nil {
		return
	}
	layout := c.p.loop.TimestampLayout()
	c.p.usage.decorate(st, layout, time.Now())
	emit := func(group string, entries map[string]*schema.Response) {
		for id, e := range entries {
			up := 0.0
			if e.State == schema.StateRunning {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, group, id)
			for _, s := range allStates {
				v := 0.0
				if e.State == s {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, group, id, string(s))
			}
			ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.GaugeValue, float64(e.Restarts), group, id)
			if n := len(e.History); n > 0 {
				ch <- prometheus.MustNewConstMetric(descExit, prometheus.GaugeValue, float64(e.History[n-1].ExitCode), group, id)
			}
			backoff := 0.0
			if t, err := time.Parse(layout, e.BackoffUntil); err == nil && e.BackoffUntil != "" {
				backoff = max(0, time.Until(t).Seconds())
			}
			ch <- prometheus.MustNewConstMetric(descBackoff, prometheus.GaugeValue, backoff, group, id)
			if e.Ready != nil {
				ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, boolGauge(*e.Ready), id)
			}
			for probe, ps := range e.Probes {
				ch <- prometheus.MustNewConstMetric(descProbe, prometheus.GaugeValue, boolGauge(ps.OK), id, probe)
			}
			if u := e.Usage; u != nil {
				ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, u.CPUSeconds, id)
				ch <- prometheus.MustNewConstMetric(descMemory, prometheus.GaugeValue, float64(u.MemoryBytes), id)
			}
			if e.Schedule != "" {
				if t, err := time.Parse(layout, e.NextRun); err == nil && e.NextRun != "" {
					ch <- prometheus.MustNewConstMetric(descNextRun, prometheus.GaugeValue, float64(t.Unix()), id)
				}
				ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(e.Skipped), id)
				running := float64(len(e.Runs))
				if e.PID != 0 {
					running++
				}
				ch <- prometheus.MustNewConstMetric(descRuns, prometheus.GaugeValue, running, id)
			}
			if e.Replicas > 0 {
				ch <- prometheus.MustNewConstMetric(descReplicas, prometheus.GaugeValue, float64(e.Replicas), id)
			}
		}
	}
	emit(string(schema.GroupApp), st.Apps)
	emit(string(schema.GroupService), st.Services)
	if cfg := st.Config; cfg != nil {
		ch <- prometheus.MustNewConstMetric(descConfig, prometheus.GaugeValue, 1, cfg.Revision, cfg.Path)
		e := 0.0
		if cfg.Error != "" {
			e = 1
		}
		ch <- prometheus.MustNewConstMetric(descConfigErr, prometheus.GaugeValue, e)
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
