package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// probedArg is the sleep argument of the crashed app of the probes
// benchmark, told apart from the n others (sleepArg).
const probedArg = sleepArg + 1

// probeConfig is n /bin/sleep apps plus k1, each with a TCP liveness probe
// every second against port (the bench's own listener): n+1 probes a
// second; port 0 leaves the probes out.
func (e *env) probeConfig(n, port int) *schema.Config {
	cfg := e.scaleConfig(n, 0)
	var probe *schema.Probe
	if port > 0 {
		probe = &schema.Probe{TCP: &schema.TCPProbe{Port: port}, Period: schema.Seconds(1).Ptr(), Timeout: schema.Seconds(1).Ptr()}
	}
	for _, a := range cfg.Apps {
		a.Liveness = probe
	}
	k1 := e.sleepApp(probedArg)
	k1.Liveness = probe
	cfg.Apps["k1"] = k1
	return cfg
}

// probedResult is one supervisor's run of the probes benchmark.
type probedResult struct {
	idle  idleResult
	crash []time.Duration // SIGKILL of k1 → new process in /proc
}

// probed runs a supervisor on probeConfig, measures it idle (Patrol
// probing n+1 apps a second; the baseline does not probe) and then the
// crash → running latency of k1 reps times while the probes go on.
func (e *env) probed(ctx context.Context, kind string, n, reps int, settle, window time.Duration, port int) (probedResult, error) {
	var r probedResult
	s, err := e.start(kind, e.probeConfig(n, port))
	if err != nil {
		return r, err
	}
	defer e.stop(s)
	if err := s.waitAddrs(ctx); err != nil {
		return r, err
	}
	timeout := 60*time.Second + time.Duration(n)*50*time.Millisecond
	err = poll(ctx, 5*time.Millisecond, timeout, func() (bool, error) {
		st, err := s.status()
		return err == nil && len(runningPIDs(st)) >= n+1, err
	})
	if err != nil {
		return r, fmt.Errorf("%s: not all %d apps running (%w):\n%s", kind, n+1, err, s.logTail())
	}
	if r.idle, err = e.idle(ctx, s, settle, window); err != nil {
		return r, err
	}
	if r.crash, _, err = e.crashApp(ctx, s, "k1", sleepMatcher(s.pid, probedArg), reps); err != nil {
		return r, err
	}
	return r, nil
}

// probeListener accepts the probes' connections and closes them.
func probeListener() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln, nil
}

// probes is the probes benchmark of issue 15: 1,000 apps each with a TCP
// liveness probe every second; Patrol's CPU, its reconcile passes, and the
// crash → running latency of one more app against the baseline (which
// runs the same apps and does not probe).
func (b *bencher) probes(ctx context.Context) {
	ln, err := probeListener()
	if err != nil {
		b.errorf("probes: %v", err)
		return
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	n := b.o.probeApps
	res := map[string]probedResult{}
	// Patrol with the probes, the baseline (which never probes), and
	// Patrol on the same apps without probes: what the probes themselves
	// cost the crash path.
	const unprobed = "patrol-unprobed"
	for _, kind := range append(slices.Clone(kinds), unprobed) {
		b.e.logf("probes: %s, %d apps with a 1 s TCP probe, %s idle, %d SIGKILLs", kind, n, b.o.idle, b.o.crashReps)
		super, p := kind, port
		if kind == unprobed {
			super, p = kindPatrol, 0
		}
		r, err := b.e.probed(ctx, super, n, b.o.crashReps, b.o.settle, b.o.idle, p)
		if err != nil {
			if ctx.Err() == nil {
				b.errorf("probes: %v", err)
			}
			return
		}
		res[kind] = r
	}
	p, bl, up := res[kindPatrol], res[kindBaseline], res[unprobed]
	cpu := Result{Name: fmt.Sprintf("probes-cpu-%d", n), Title: fmt.Sprintf("CPU, %d apps probed every 1 s (TCP)", n),
		Unit: "% core", Patrol: value(p.idle.cpuPct), Baseline: value(bl.idle.cpuPct),
		Note: "Patrol probes every app each second; the baseline runs the same apps and probes nothing"}
	cpu.finish("value")
	passes := Result{Name: fmt.Sprintf("probes-passes-%d", n), Title: fmt.Sprintf("reconcile passes, %d probes/s, %s", n, b.o.idle),
		Unit: "", Note: "probe results that change no verdict cost no pass; tick-every 15"}
	if p.idle.passes >= 0 {
		passes.Patrol = value(p.idle.passes)
	}
	passes.finish("value", atMost(p.idle.seconds/15+2, "value", "≤ 1 per 15 s tick (+1)"))
	unp := summarize(ms(up.crash))
	crash := Result{Name: fmt.Sprintf("probes-crash-k1-%d", n), Title: fmt.Sprintf("crash → new child running, keepalive 1, %d probes/s", n),
		Unit: "ms", Patrol: summarize(ms(p.crash)), Baseline: summarize(ms(bl.crash)),
		Extra: map[string]float64{"patrol_unprobed_p50_ms": unp.P50, "patrol_unprobed_p99_ms": unp.P99},
		Note:  fmt.Sprintf("Patrol on the same %d apps without probes: p50 %.2f ms, p99 %.2f ms", n+1, unp.P50, unp.P99)}
	crash.finish("p99", maxRatio(2, "p99"))
	b.add(cpu)
	b.add(passes)
	b.add(crash)
}
