package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/patrolhq/patrol/internal/proctool"
	"github.com/patrolhq/patrol/schema"
)

// sample is Patrol's resource use at one moment of the soak.
type sample struct {
	cycles     int
	fds        int
	threads    int
	goroutines float64
	rssMB      float64
	pssMB      float64
}

// soak runs an app that exits at once, restarted at once (reset-after 0),
// for o.cycles crash cycles after a warm-up, sampling Patrol's resource use, and checks
// that nothing grows with the cycles and that the log files stay within
// log-retention.max-instances.
func (h *harness) soak(ctx context.Context, o *options) []Check {
	name := fmt.Sprintf("leak soak, %d crash cycles", o.cycles)
	fail := func(err error) []Check { return []Check{{Name: name, Detail: err.Error()}} }
	bin, args := "/bin/false", []string{}
	if _, err := os.Stat(bin); err != nil {
		bin, args = h.helper("crash", "0", "1")
	}
	const keep = 100
	cfg := map[string]any{
		"tick-every": 15,
		"apps": map[string]any{"flap": map[string]any{
			"binary": bin, "args": args, "env": []string{h.marker()},
			"backoff": map[string]any{"reset-after": 0},
		}},
		"log-retention": map[string]any{"max-instances": keep},
	}
	dir, err := h.newDaemonDir("soak", cfg)
	if err != nil {
		return fail(err)
	}
	d, err := h.start(ctx, dir)
	if err != nil {
		return fail(err)
	}
	defer d.kill()
	take := func() (sample, error) {
		s := sample{cycles: h.restarts(d, "flap"), fds: proctool.FDs(d.pid)}
		u, err := proctool.ReadUsage(d.pid)
		if err != nil {
			return s, err
		}
		s.threads, s.rssMB, s.pssMB = u.Threads, float64(u.RSSKiB)/1024, float64(u.PSSKiB)/1024
		s.goroutines, _ = d.metric("go_goroutines")
		return s, nil
	}
	h.logf("leak soak: %d crash cycles of %s", o.cycles, bin)
	t0 := time.Now()
	var warm, peak sample
	for ctx.Err() == nil {
		s, err := take()
		if err != nil {
			return fail(err)
		}
		// The warm-up sample: the loop runs, and Patrol settled its
		// start-up memory (2 s after its first pass). o.cycles follow it.
		if warm.cycles == 0 && s.cycles > 0 && time.Since(t0) > 3*time.Second {
			warm = s
		}
		peak = sample{cycles: s.cycles, fds: max(peak.fds, s.fds), threads: max(peak.threads, s.threads),
			goroutines: max(peak.goroutines, s.goroutines), rssMB: max(peak.rssMB, s.rssMB), pssMB: max(peak.pssMB, s.pssMB)}
		if warm.cycles > 0 && s.cycles >= warm.cycles+o.cycles {
			break
		}
		if time.Since(t0) > 10*time.Minute {
			return fail(fmt.Errorf("only %d crash cycles in 10 minutes", s.cycles))
		}
		time.Sleep(500 * time.Millisecond)
	}
	secs := time.Since(t0).Seconds()
	// Stop the loop; what it used must be back.
	d.do("POST", "/api/", []byte(`{"id":"flap","group":"app","toggle":2}`))
	var end sample
	waitFor(ctx, 10*time.Second, func() bool {
		st, err := d.status()
		return err == nil && st.Apps["flap"] != nil && st.Apps["flap"].State == schema.StateDisabled
	})
	time.Sleep(time.Second) // the remover and the spare-file maker finish
	if end, err = take(); err != nil {
		return fail(err)
	}
	instances, files := logInstances(filepath.Join(dir, "logs", "flap"))
	checks := []Check{{
		Name: name,
		OK: end.fds <= warm.fds+2 && end.threads <= warm.threads+2 && end.goroutines <= warm.goroutines+3 &&
			end.rssMB <= warm.rssMB+10,
		Detail: fmt.Sprintf("%d cycles in %.0f s; from the warm-up (%d cycles in) to the end: fds %d -> %d, threads %d -> %d, goroutines %.0f -> %.0f, "+
			"RSS %.1f -> %.1f MB, PSS %.1f -> %.1f MB (peaks %d fds, %d threads, %.0f goroutines, %.1f MB RSS)",
			end.cycles, secs, warm.cycles, warm.fds, end.fds, warm.threads, end.threads, warm.goroutines, end.goroutines,
			warm.rssMB, end.rssMB, warm.pssMB, end.pssMB, peak.fds, peak.threads, peak.goroutines, peak.rssMB),
		Values: map[string]float64{"cycles": float64(end.cycles), "seconds": secs, "fds_warm": float64(warm.fds), "fds_end": float64(end.fds),
			"threads_warm": float64(warm.threads), "threads_end": float64(end.threads), "goroutines_warm": warm.goroutines,
			"goroutines_end": end.goroutines, "rss_mb_warm": warm.rssMB, "rss_mb_end": end.rssMB, "pss_mb_warm": warm.pssMB, "pss_mb_end": end.pssMB},
	}, {
		Name:   "log files capped by count in a crash loop",
		OK:     instances <= keep && instances > 0,
		Detail: fmt.Sprintf("%d instances' log files (%d files) after %d starts, max-instances %d", instances, files, end.cycles+1, keep),
		Values: map[string]float64{"instances": float64(instances), "files": float64(files)},
	}}
	if err := d.stop(); err != nil {
		checks[0].OK = false
		checks[0].Detail += "; " + err.Error()
	}
	return checks
}

// restarts returns an app's restart count from /api/ (-1 on error).
func (h *harness) restarts(d *daemon, id string) int {
	code, b, err := d.do("GET", "/api/?group=app&id="+id, nil)
	if err != nil || code != 200 {
		return -1
	}
	var r schema.Response
	if json.Unmarshal(b, &r) != nil {
		return -1
	}
	return r.Restarts
}

// logInstances counts the instances whose log files are under root, and
// the files.
func logInstances(root string) (instances, files int) {
	stems := map[string]bool{}
	filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasSuffix(p, ".log") {
			files++
			stem, _, _ := strings.Cut(filepath.Base(p), ".")
			stems[stem] = true
		}
		return nil
	})
	return len(stems), files
}
