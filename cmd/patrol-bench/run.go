package main

import (
	"context"
	"fmt"
	"math"
	"time"
)

// kinds are the supervisors of every benchmark, in the order they run.
var kinds = []string{kindPatrol, kindBaseline}

// bencher runs the selected benchmarks and collects their results.
type bencher struct {
	e   *env
	o   *options
	rep *Report
}

func (b *bencher) add(r Result) { b.rep.Results = append(b.rep.Results, r) }
func (b *bencher) errorf(f string, a ...any) {
	msg := fmt.Sprintf(f, a...)
	b.e.logf("error: %s", msg)
	b.rep.Errors = append(b.rep.Errors, msg)
}
func (b *bencher) warnf(f string, a ...any) {
	msg := fmt.Sprintf(f, a...)
	b.e.logf("warning: %s", msg)
	b.rep.Warnings = append(b.rep.Warnings, msg)
}

// stop stops a supervisor and warns about processes it left behind.
func (b *bencher) stop(s *super) time.Duration {
	took, left := b.e.stop(s)
	if left > 0 {
		b.warnf("%s left %d processes running after its graceful shutdown (killed)", s.kind, left)
	}
	return took
}

func (b *bencher) all(ctx context.Context) {
	o := b.o
	if o.only["crash"] {
		b.crash(ctx)
	}
	if o.only["start"] || o.only["idle"] || o.only["status"] {
		for _, n := range o.sizes {
			if ctx.Err() != nil {
				return
			}
			b.scale(ctx, n)
		}
	}
	if o.only["edit"] && ctx.Err() == nil {
		b.edit(ctx)
	}
	if o.only["ping"] && ctx.Err() == nil {
		b.ping(ctx)
	}
	if o.only["probes"] && ctx.Err() == nil {
		b.probes(ctx)
	}
	if o.only["usage"] && ctx.Err() == nil {
		b.usage(ctx)
	}
}

func (b *bencher) crash(ctx context.Context) {
	res := map[string]*crashResult{}
	for _, kind := range kinds {
		b.e.logf("crash: %s, %d SIGKILLs per app", kind, b.o.crashReps)
		r, err := b.e.crash(ctx, kind, b.o.crashReps)
		if err != nil {
			if ctx.Err() == nil {
				b.errorf("crash: %v", err)
			}
			return
		}
		res[kind] = r
	}
	p, bl := res[kindPatrol], res[kindBaseline]
	for _, c := range []struct {
		id    string
		k     int
		ratio float64
	}{{"k1", 1, 2}, {"k2", 2, 3}} {
		r := Result{Name: "crash-" + c.id, Title: fmt.Sprintf("crash → new child running, keepalive %d", c.k), Unit: "ms",
			Patrol: summarize(ms(p.proc[c.id])), Baseline: summarize(ms(bl.proc[c.id]))}
		r.finish("p99", maxRatio(c.ratio, "p99"))
		b.add(r)
	}
	for _, c := range []struct {
		id string
		k  int
	}{{"k1", 1}, {"k2", 2}} {
		r := Result{Name: "crash-api-" + c.id, Title: fmt.Sprintf("crash → /api/ shows new pid, keepalive %d", c.k), Unit: "ms",
			Patrol: summarize(ms(p.api[c.id])), Baseline: summarize(ms(bl.api[c.id]))}
		r.finish("p99")
		b.add(r)
	}
}

// scale starts n apps startReps times (alternating Patrol and the baseline)
// and, on the last start of each, measures idle cost and /status/ latency.
func (b *bencher) scale(ctx context.Context, n int) {
	o := b.o
	reps := 1
	if o.only["start"] {
		reps = o.startReps
	}
	starts := map[string][]startResult{}
	stops := map[string][]time.Duration{}
	idles := map[string]idleResult{}
	lat := map[string][]time.Duration{}
	for rep := range reps {
		for _, kind := range kinds {
			b.e.logf("start %d: %s, %d/%d", n, kind, rep+1, reps)
			s, r, err := b.e.startN(ctx, kind, n)
			if err != nil {
				if ctx.Err() == nil {
					b.errorf("start %d: %v", n, err)
				}
				return
			}
			starts[kind] = append(starts[kind], r)
			if rep == reps-1 && o.only["idle"] {
				b.e.logf("idle %d: %s, %s", n, kind, o.idle)
				ir, err := b.e.idle(ctx, s, o.settle, o.idle)
				if err != nil {
					b.stop(s)
					if ctx.Err() == nil {
						b.errorf("idle %d: %s: %v", n, kind, err)
					}
					return
				}
				idles[kind] = ir
			}
			if rep == reps-1 && o.only["status"] {
				b.e.logf("status %d: %s, %d requests", n, kind, o.statusReqs)
				l, err := b.e.statusLatency(ctx, s, n, o.statusReqs)
				if err != nil {
					b.stop(s)
					if ctx.Err() == nil {
						b.errorf("status %d: %s: %v", n, kind, err)
					}
					return
				}
				lat[kind] = l
			}
			stops[kind] = append(stops[kind], b.stop(s))
		}
	}
	if o.only["start"] {
		side := func(kind string) (*Stats, *Stats) {
			var proc, status []time.Duration
			for _, r := range starts[kind] {
				proc = append(proc, r.proc)
				status = append(status, r.status)
			}
			return summarize(ms(status)), summarize(ms(proc))
		}
		ps, pp := side(kindPatrol)
		bs, bp := side(kindBaseline)
		r := Result{Name: fmt.Sprintf("start-%d", n), Title: fmt.Sprintf("start %d apps until all running", n), Unit: "ms",
			Patrol: ps, Baseline: bs, Extra: map[string]float64{
				"patrol_proc_p50_ms": pp.P50, "baseline_proc_p50_ms": bp.P50,
				"patrol_stop_p50_ms":   summarize(ms(stops[kindPatrol])).P50,
				"baseline_stop_p50_ms": summarize(ms(stops[kindBaseline])).P50,
			},
			Note: "from the supervisor's exec until every app's pid is alive in /proc and /status/ reports it running " +
				"(JSON extra: /proc alone, and the graceful stop)"}
		var ts []target
		if n == 500 {
			ts = append(ts, maxRatio(1.3, "p50"))
		}
		r.finish("p50", ts...)
		b.add(r)
	}
	if o.only["idle"] {
		p, bl := idles[kindPatrol], idles[kindBaseline]
		cpu := Result{Name: fmt.Sprintf("idle-cpu-%d", n), Title: fmt.Sprintf("idle CPU, %d apps, %s", n, o.idle),
			Unit: "% core", Patrol: value(p.cpuPct), Baseline: value(bl.cpuPct)}
		rss := Result{Name: fmt.Sprintf("idle-rss-%d", n), Title: fmt.Sprintf("idle RSS, %d apps", n), Unit: "MB",
			Patrol: value(p.rssMB), Baseline: value(bl.rssMB)}
		pss := Result{Name: fmt.Sprintf("idle-pss-%d", n), Title: fmt.Sprintf("idle PSS, %d apps", n), Unit: "MB",
			Patrol: value(p.pssMB), Baseline: value(bl.pssMB),
			Note: "proportional set size from /proc/PID/smaps_rollup (the supervisor alone, not its apps)"}
		switch n {
		case 1000:
			cpu.finish("value", below(0.5, "value", "< 0.5 % of a core"))
			rss.finish("value", maxRatio(1.5, "value"))
			pss.finish("value")
		case 100:
			cpu.finish("value")
			rss.finish("value")
			pss.finish("value", maxRatioPlus(1.5, 5, "value", "MB"))
		default:
			cpu.finish("value")
			rss.finish("value")
			pss.finish("value")
		}
		threads := Result{Name: fmt.Sprintf("idle-threads-%d", n), Title: fmt.Sprintf("OS threads, %d apps", n), Unit: "",
			Patrol: value(float64(p.threads)), Baseline: value(float64(bl.threads))}
		threads.finish("value")
		gor := Result{Name: fmt.Sprintf("idle-goroutines-%d", n), Title: fmt.Sprintf("goroutines, %d apps", n), Unit: ""}
		if p.goroutines >= 0 {
			gor.Patrol = value(p.goroutines)
		} else {
			gor.Note = "Patrol serves no go_goroutines in /metrics: not measurable from outside (see OS threads)"
		}
		if bl.goroutines >= 0 {
			gor.Baseline = value(bl.goroutines)
		}
		gor.finish("value")
		wake := Result{Name: fmt.Sprintf("idle-wakeups-%d", n), Title: fmt.Sprintf("idle wakeups, %d apps", n), Unit: "/s",
			Patrol: value(p.wakeups), Baseline: value(bl.wakeups),
			Note: "context switches per second summed over all threads (runtime included), tick-every 15"}
		wake.finish("value")
		// Nothing happens in the window, so one pass per tick at most (a
		// window of 30 s holds two or three tick boundaries).
		passes := Result{Name: fmt.Sprintf("idle-passes-%d", n), Title: fmt.Sprintf("reconcile passes, %d idle apps, %s", n, o.idle),
			Unit: "", Note: "from patrol_reconcile_pass_duration_seconds_count in /metrics; tick-every 15"}
		if p.passes >= 0 {
			passes.Patrol = value(p.passes)
		}
		passes.finish("value", atMost(math.Floor(p.seconds/15)+1, "value", "≤ 1 per 15 s tick"))
		b.add(cpu)
		b.add(rss)
		b.add(pss)
		b.add(threads)
		b.add(gor)
		b.add(wake)
		b.add(passes)
	}
	if o.only["status"] {
		r := Result{Name: fmt.Sprintf("status-%d", n), Title: fmt.Sprintf("GET /status/, %d entries", n), Unit: "ms",
			Patrol: summarize(ms(lat[kindPatrol])), Baseline: summarize(ms(lat[kindBaseline]))}
		switch n {
		case 100:
			r.finish("p50", atMost(1, "p50", "p50 ≤ 1 ms"))
		case 1000:
			r.finish("p50", atMost(5, "p50", "p50 ≤ 5 ms"))
		default:
			r.finish("p50")
		}
		b.add(r)
	}
}

func (b *bencher) edit(ctx context.Context) {
	n := b.o.editSize
	res := map[string]*editResult{}
	for _, kind := range kinds {
		b.e.logf("edit: %s, %d apps, %d edits", kind, n, b.o.editReps)
		r, err := b.e.edit(ctx, kind, n, b.o.editReps)
		if err != nil {
			if ctx.Err() == nil {
				b.errorf("edit: %v", err)
			}
			return
		}
		res[kind] = r
	}
	p, bl := res[kindPatrol], res[kindBaseline]
	live := Result{Name: fmt.Sprintf("edit-%d", n), Title: fmt.Sprintf("config edit → changed app live, %d apps", n), Unit: "ms",
		Patrol: summarize(ms(p.proc)), Baseline: summarize(ms(bl.proc)),
		Note: "rename over config.json → the new process in /proc; baseline: inotify, re-read, SIGTERM and respawn the changed app"}
	live.finish("p50", atMost(50, "p50", "p50 ≤ 50 ms"))
	st := Result{Name: fmt.Sprintf("edit-status-%d", n), Title: fmt.Sprintf("config edit → /status/ shows it, %d apps", n), Unit: "ms",
		Patrol: summarize(ms(p.status)), Baseline: summarize(ms(bl.status))}
	st.finish("p50")
	others := Result{Name: fmt.Sprintf("edit-others-%d", n), Title: fmt.Sprintf("other apps restarted by %d edits", len(p.proc)),
		Unit: "", Patrol: value(float64(p.others)), Baseline: value(float64(bl.others))}
	others.finish("", atMost(0, "value", "0"))
	b.add(live)
	b.add(st)
	b.add(others)
}

func (b *bencher) ping(ctx context.Context) {
	type pr struct{ http, udp *pingResult }
	res := map[string]pr{}
	for _, kind := range kinds {
		b.e.logf("ping: %s, %d workers, %s per transport", kind, b.o.workers, b.o.pingDuration)
		h, u, err := b.e.ping(ctx, kind, b.o.pingDuration, b.o.workers)
		if err != nil {
			if ctx.Err() == nil {
				b.errorf("ping: %v", err)
			}
			return
		}
		res[kind] = pr{h, u}
	}
	p, bl := res[kindPatrol], res[kindBaseline]
	for _, c := range []struct {
		name, title string
		p, b        *pingResult
		min         float64
	}{
		{"ping-http", "HTTP pings (POST /api/)", p.http, bl.http, 20000},
		{"ping-udp", "UDP pings", p.udp, bl.udp, 50000},
	} {
		note := fmt.Sprintf("%d closed-loop clients for %s on loopback, sharing the cores with the supervisor", b.o.workers, b.o.pingDuration)
		if c.p.errors > 0 || c.b.errors > 0 {
			note += fmt.Sprintf("; failed or unanswered: Patrol %d, baseline %d", c.p.errors, c.b.errors)
		}
		rps := Result{Name: c.name + "-rps", Title: c.title + ", throughput", Unit: "req/s",
			Patrol: value(c.p.rps), Baseline: value(c.b.rps), Note: note}
		rps.finish("value", atLeast(c.min, "value", fmt.Sprintf("≥ %.0f/s", c.min)))
		lat := Result{Name: c.name + "-latency", Title: c.title + ", latency", Unit: "ms",
			Patrol: summarize(ms(c.p.lat)), Baseline: summarize(ms(c.b.lat))}
		lat.finish("p99", below(5, "p99", "p99 < 5 ms"))
		b.add(rps)
		b.add(lat)
	}
}
