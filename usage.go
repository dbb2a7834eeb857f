package patrol

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/patrolhq/patrol/api"
	"github.com/patrolhq/patrol/exec"
	"github.com/patrolhq/patrol/schema"
)

// Per-app usage for the GUI's sparklines, from /proc (each app's process
// group) until cgroups measure it: sampled only when the GUI asks (a page
// or its live part is rendered), at most every usageEvery, and kept for
// the last usageKeep samples of each running instance. Nobody looking
// costs nothing: no goroutine, no timer.
const (
	usageEvery = 2 * time.Second
	usageKeep  = 60
)

type usageTracker struct {
	// measure reads the usage of instances by leader pid (the Runner's:
	// from cgroups where there are some); nil: exec.GroupUsage.
	measure func(leaders []int) map[int]exec.Usage

	mu    sync.Mutex
	last  time.Time
	rings map[string]*usageRing
}

// usageRing is one instance's samples (a new pid starts a new ring: the
// CPU time counts from the process's start).
type usageRing struct {
	pid     uint32
	samples []api.UsageSample
}

// decorate sets the usage of each app of st that has samples, taking a
// new sample first when the last is usageEvery old (st is the status that
// sample would read); layout formats the sample time.
func (u *usageTracker) decorate(st *schema.Status, layout string, now time.Time) {
	if st == nil || len(st.Apps) == 0 {
		return
	}
	all, err := u.sample(context.Background(), func(context.Context) (*schema.Status, error) { return st, nil }, now)
	if err != nil {
		return
	}
	for id, e := range st.Apps {
		if s := all[id]; len(s) > 0 && e.PID != 0 {
			e.Usage = usageOf(s, layout)
		}
	}
}

// usageOf is the status's usage from an instance's samples.
func usageOf(s []api.UsageSample, layout string) *schema.Usage {
	last := s[len(s)-1]
	u := &schema.Usage{CPUSeconds: last.CPU.Seconds(), MemoryBytes: last.RSS, Sampled: last.At.Format(layout)}
	if n := len(s); n > 1 {
		if dt := last.At.Sub(s[n-2].At).Seconds(); dt > 0 {
			pct := max(0, (last.CPU-s[n-2].CPU).Seconds()/dt*100)
			pct = float64(int(pct*10+0.5)) / 10
			u.CPUPercent = &pct
		}
	}
	return u
}

// sample returns every running app's samples, oldest first, taking a new
// sample first when the last one is usageEvery old.
func (u *usageTracker) sample(ctx context.Context, status func(context.Context) (*schema.Status, error), now time.Time) (map[string][]api.UsageSample, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if now.Sub(u.last) >= usageEvery {
		st, err := status(ctx)
		if err != nil {
			return nil, err
		}
		u.last = now
		var leaders []int
		for _, e := range st.Apps {
			if e.PID > 0 {
				leaders = append(leaders, int(e.PID))
			}
		}
		measure := u.measure
		if measure == nil {
			measure = exec.GroupUsage
		}
		got := measure(leaders)
		rings := make(map[string]*usageRing, len(got))
		for id, e := range st.Apps {
			g, ok := got[int(e.PID)]
			if e.PID == 0 || !ok {
				continue
			}
			r := u.rings[id]
			if r == nil || r.pid != e.PID {
				r = &usageRing{pid: e.PID}
			}
			if len(r.samples) == usageKeep {
				r.samples = slices.Delete(r.samples, 0, 1)
			}
			r.samples = append(r.samples, api.UsageSample{At: now, CPU: g.CPU, RSS: g.RSS})
			rings[id] = r
		}
		u.rings = rings
	}
	out := make(map[string][]api.UsageSample, len(u.rings))
	for id, r := range u.rings {
		out[id] = slices.Clone(r.samples)
	}
	return out, nil
}
