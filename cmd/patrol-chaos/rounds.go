package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/patrolhq/patrol/internal/proctool"
	"github.com/patrolhq/patrol/schema"
)

// The apps of the kill -9 rounds.
const (
	longApps    = 20
	crashApps   = 5
	daemonApps  = 2
	roundsLimit = 30 * time.Second // to settle after a restart
)

// roundsConfig is the config of the kill -9 rounds: long-running apps,
// crash-loopers (restarted at once, every instance living 50-400 ms) and
// forking daemons, all tagged with the run's marker.
func (h *harness) roundsConfig(dir string) map[string]any {
	apps := map[string]any{}
	env := []string{h.marker()}
	app := func(extra map[string]any, args ...string) map[string]any {
		bin, argv := h.helper(args...)
		a := map[string]any{"binary": bin, "args": argv, "env": env, "stop-timeout": 5}
		for k, v := range extra {
			a[k] = v
		}
		return a
	}
	for i := range longApps {
		apps[fmt.Sprintf("long-%d", i)] = app(nil, "sleep")
	}
	for i := range crashApps {
		apps[fmt.Sprintf("crash-%d", i)] = app(map[string]any{
			"backoff": map[string]any{"initial": 0.05, "max": 0.2, "reset-after": 0},
		}, "crash", "50", "400")
	}
	for i := range daemonApps {
		pid := fmt.Sprintf("%s/run/daemon-%d.pid", dir, i)
		apps[fmt.Sprintf("daemon-%d", i)] = app(map[string]any{"keepalive": 2, "pid-path": pid}, "daemonize", pid)
	}
	return map[string]any{"tick-every": 5, "history": 1000, "apps": apps}
}

// isSteady reports whether an app of the rounds must have exactly one
// process (crash-loopers may have none).
func isSteady(id string) bool { return !strings.HasPrefix(id, "crash-") }

// roundTally is what the rounds found.
type roundTally struct {
	settled, adopted, restarted int
	shownEntries, lost          int
	zombies                     int // most zombie children of Patrol seen at once after settling
	problems                    []string
	killAt                      []time.Duration // kills under churn, after the start's settling
	early                       []time.Duration // kills during a start-up, after the start
}

func (t *roundTally) problemf(format string, args ...any) {
	if len(t.problems) < 20 {
		t.problems = append(t.problems, fmt.Sprintf(format, args...))
	}
}

// killRounds runs the kill -9 rounds and the graceful shutdown after them.
func (h *harness) killRounds(ctx context.Context, o *options) []Check {
	name := fmt.Sprintf("kill -9 under churn, %d rounds", o.rounds)
	fail := func(err error) []Check { return []Check{{Name: name, Detail: err.Error()}} }
	dir, err := h.newDaemonDir("rounds", h.roundsConfig(filepath.Join(h.tmp, "rounds")))
	if err != nil {
		return fail(err)
	}
	h.logf("kill -9 rounds: %d long-running apps, %d crash-loopers, %d daemons", longApps, crashApps, daemonApps)
	d, err := h.start(ctx, dir)
	if err != nil {
		return fail(err)
	}
	var t roundTally
	shown := map[string]map[string]bool{} // app -> closed instances some status showed
	if _, ok := h.settle(ctx, d, &t); !ok {
		d.kill()
		return fail(fmt.Errorf("the first Patrol did not settle: %s", strings.Join(t.problems, "; ")))
	}
	maxChurn := 2500 * time.Millisecond
	if o.short {
		maxChurn = 1200 * time.Millisecond
	}
	for round := 1; round <= o.rounds && ctx.Err() == nil; round++ {
		// Churn for a random time from Patrol's start (now and then
		// before it has settled), reading the status all along; the kill
		// follows the last read at once.
		killAt := time.Duration(h.rng.Int64N(int64(maxChurn)))
		last := h.churn(ctx, d, killAt, shown)
		d.kill()
		t.killAt = append(t.killAt, killAt)
		// Patrol stays dead for a moment: crash-loopers exit meanwhile.
		time.Sleep(time.Duration(h.rng.IntN(300)) * time.Millisecond)
		if d, err = h.start(ctx, dir); err != nil {
			return fail(fmt.Errorf("round %d: %w", round, err))
		}
		// One round in three kills the new Patrol again during its
		// start-up (restoring, adopting, starting what is gone).
		if h.rng.IntN(3) == 0 {
			early := time.Duration(h.rng.IntN(400)) * time.Millisecond
			time.Sleep(early)
			d.kill()
			t.early = append(t.early, early)
			if d, err = h.start(ctx, dir); err != nil {
				return fail(fmt.Errorf("round %d: %w", round, err))
			}
		}
		st, ok := h.settle(ctx, d, &t)
		if !ok {
			t.problemf("round %d: did not settle in %v", round, roundsLimit)
			continue
		}
		t.settled++
		h.countAdoptions(st, last, &t)
		h.checkHistory(st, shown, round, &t)
		h.logf("round %d/%d: adopted %d, restarted %d so far", round, o.rounds, t.adopted, t.restarted)
	}
	checks := []Check{{
		Name: name,
		OK:   t.settled == o.rounds && len(t.problems) == 0,
		Detail: fmt.Sprintf("%d/%d rounds settled with exactly one process per app and the pid status shows; "+
			"%d kills under churn (%v-%v into it), %d during a start-up (%s after exec); long-running apps and daemons adopted %d, restarted %d",
			t.settled, o.rounds, len(t.killAt), slices.Min(t.killAt).Round(time.Millisecond), slices.Max(t.killAt).Round(time.Millisecond),
			len(t.early), spread(t.early), t.adopted, t.restarted),
		Values: map[string]float64{"rounds": float64(o.rounds), "settled": float64(t.settled), "kills": float64(len(t.killAt) + len(t.early)),
			"adopted": float64(t.adopted), "restarted": float64(t.restarted)},
	}, {
		Name:   "no zombies after kill -9",
		OK:     t.zombies == 0,
		Detail: fmt.Sprintf("%d zombie children of Patrol after settling (most at once)", t.zombies),
		Values: map[string]float64{"zombies": float64(t.zombies)},
	}, {
		Name:   "history kept across kill -9",
		OK:     t.lost == 0 && t.shownEntries > 0,
		Detail: fmt.Sprintf("%d history entries shown by /status/ before a kill, %d lost", t.shownEntries, t.lost),
		Values: map[string]float64{"shown": float64(t.shownEntries), "lost": float64(t.lost)},
	}}
	if len(t.problems) > 0 {
		checks[0].Detail += "\n" + strings.Join(t.problems, "\n")
	}
	return append(checks, h.gracefulEnd(ctx, d))
}

// spread is "min-max" of ds, or "-".
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("%v-%v", slices.Min(ds).Round(time.Millisecond), slices.Max(ds).Round(time.Millisecond))
}

// churn restarts random long-running apps and writes key/value through the
// API, and reads the status, until killAt after the start; it returns the
// last status read (nil if none) after recording its closed instances in
// shown.
func (h *harness) churn(ctx context.Context, d *daemon, killAt time.Duration, shown map[string]map[string]bool) *schema.Status {
	var last *schema.Status
	end := time.Now().Add(killAt)
	for ctx.Err() == nil {
		if h.rng.IntN(3) == 0 {
			body := fmt.Sprintf(`{"id":"long-%d","group":"app","toggle":3}`, h.rng.IntN(longApps))
			if h.rng.IntN(2) == 0 {
				body = fmt.Sprintf(`{"id":"crash-%d","group":"app","keyvalue":{"n":%d}}`, h.rng.IntN(crashApps), h.rng.IntN(1000))
			}
			d.do("POST", "/api/", []byte(body))
		}
		if st, err := d.status(); err == nil {
			last = st
			for id, a := range st.Apps {
				if shown[id] == nil {
					shown[id] = map[string]bool{}
				}
				for _, r := range a.History {
					shown[id][r.InstanceID] = true
				}
			}
		}
		if time.Now().After(end) {
			break
		}
		time.Sleep(time.Duration(h.rng.IntN(40)) * time.Millisecond)
	}
	return last
}

// settle waits until every steady app runs as exactly one process whose
// pid the status shows, no crash-looper has two, and Patrol has no zombie
// child; it returns the status then.
func (h *harness) settle(ctx context.Context, d *daemon, t *roundTally) (*schema.Status, bool) {
	var (
		st   *schema.Status
		why  string
		most int
	)
	ok := waitFor(ctx, roundsLimit, func() bool {
		var err error
		if st, err = d.status(); err != nil {
			why = err.Error()
			return false
		}
		live, zombies := h.appProcs()
		n := 0
		for _, parent := range zombies {
			if parent == d.pid {
				n++
			}
		}
		most = n
		for id, a := range st.Apps {
			procs := live[id]
			switch {
			case isSteady(id) && (a.State != schema.StateRunning || len(procs) != 1 || int(a.PID) != procs[0]):
				why = fmt.Sprintf("%s: state %s, pid %d, live processes %v", id, a.State, a.PID, procs)
				return false
			case len(procs) > 1:
				why = fmt.Sprintf("%s: %d live processes %v", id, len(procs), procs)
				return false
			}
		}
		if len(st.Apps) != longApps+crashApps+daemonApps {
			why = fmt.Sprintf("%d apps in status", len(st.Apps))
			return false
		}
		return n == 0
	})
	if !ok {
		t.problemf("not settled: %s", why)
		t.zombies = max(t.zombies, most)
		// Duplicates are the one thing that must never be seen, settled
		// or not.
		live, _ := h.appProcs()
		for id, procs := range live {
			if len(procs) > 1 {
				t.problemf("%s has %d live processes %v", id, len(procs), procs)
			}
		}
	}
	return st, ok
}

// countAdoptions compares the steady apps' pids after a restart of Patrol
// with those of the last status before the kill.
func (h *harness) countAdoptions(st, before *schema.Status, t *roundTally) {
	if before == nil {
		return
	}
	for id, a := range st.Apps {
		b := before.Apps[id]
		if !isSteady(id) || b == nil || b.PID == 0 || b.State != schema.StateRunning {
			continue
		}
		if a.PID == b.PID && proctool.Alive(int(a.PID)) {
			t.adopted++
		} else {
			t.restarted++
		}
	}
}

// checkHistory checks that every closed instance a status showed is still
// in its app's history.
func (h *harness) checkHistory(st *schema.Status, shown map[string]map[string]bool, round int, t *roundTally) {
	for id, ids := range shown {
		have := map[string]bool{}
		if a := st.Apps[id]; a != nil {
			for _, r := range a.History {
				have[r.InstanceID] = true
			}
		}
		for inst := range ids {
			if !have[inst] {
				t.lost++
				t.problemf("round %d: %s lost history entry %s", round, id, inst)
			}
		}
	}
	t.shownEntries = 0
	for _, ids := range shown {
		t.shownEntries += len(ids)
	}
}

// gracefulEnd stops Patrol with SIGTERM and checks that no process of its
// apps is left.
func (h *harness) gracefulEnd(ctx context.Context, d *daemon) Check {
	c := Check{Name: "graceful shutdown after the rounds"}
	t0 := time.Now()
	if err := d.stop(); err != nil {
		c.Detail = err.Error()
		return c
	}
	took := time.Since(t0)
	var left []int
	waitFor(ctx, 5*time.Second, func() bool {
		left = left[:0]
		live, _ := h.appProcs()
		for _, procs := range live {
			left = append(left, procs...)
		}
		return len(left) == 0
	})
	c.OK = len(left) == 0
	c.Detail = fmt.Sprintf("exit 0 in %v; %d app processes left", took.Round(time.Millisecond), len(left))
	c.Values = map[string]float64{"left": float64(len(left)), "seconds": took.Seconds()}
	return c
}
