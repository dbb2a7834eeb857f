package main

import (
	"context"
	"fmt"
	"time"

	"github.com/patrolhq/patrol/internal/proctool"
)

// usage is the usage-sampling benchmark of issue 18: Patrol on n apps,
// its CPU while nobody reads (sampling must then cost nothing) and while
// /status/ (which carries each app's CPU and memory) is read every 2 s,
// the most often a new sample is taken; and the time of a /status/ that
// takes a fresh sample. The baseline has no usage to compare with.
func (b *bencher) usage(ctx context.Context) {
	n := b.o.probeApps
	b.e.logf("usage: Patrol, %d apps, %s idle then %s reading /status/ every 2 s", n, b.o.idle, b.o.idle)
	s, _, err := b.e.startN(ctx, kindPatrol, n)
	if err != nil {
		if ctx.Err() == nil {
			b.errorf("usage: %v", err)
		}
		return
	}
	defer b.e.stop(s)
	idle, err := b.e.idle(ctx, s, b.o.settle, b.o.idle)
	if err != nil {
		b.errorf("usage: %v", err)
		return
	}
	u0, err := proctool.ReadUsage(s.pid)
	if err != nil {
		b.errorf("usage: %v", err)
		return
	}
	var fresh []time.Duration
	for end := time.Now().Add(b.o.idle); time.Now().Before(end) && ctx.Err() == nil; {
		if err := sleepCtx(ctx, 2*time.Second+10*time.Millisecond); err != nil {
			return
		}
		t := time.Now()
		if _, err := s.status(); err != nil {
			b.errorf("usage: %v", err)
			return
		}
		fresh = append(fresh, time.Since(t))
	}
	u1, err := proctool.ReadUsage(s.pid)
	if err != nil {
		b.errorf("usage: %v", err)
		return
	}
	reading := float64(u1.CPU-u0.CPU) / proctool.ClockTicks / u1.At.Sub(u0.At).Seconds() * 100
	cpu := Result{Name: fmt.Sprintf("usage-cpu-%d", n), Title: fmt.Sprintf("CPU, %d apps, /status/ every 2 s", n),
		Unit: "% core", Patrol: value(reading),
		Note: fmt.Sprintf("with nobody reading: %.2f %% (usage is sampled only when read, at most every 2 s)", idle.cpuPct)}
	cpu.finish("")
	lat := Result{Name: fmt.Sprintf("usage-status-%d", n), Title: fmt.Sprintf("GET /status/ with a fresh usage sample, %d apps", n),
		Unit: "ms", Patrol: summarize(ms(fresh))}
	lat.finish("")
	b.add(cpu)
	b.add(lat)
}
