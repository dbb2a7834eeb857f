package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// TestScheduleAcrossRestarts: after kill -9 of Patrol, the next one adopts
// a job's runs that still run, the earlier runs of concurrency "allow"
// included; a job with catch-up whose run came due meanwhile runs at once,
// not at its next time.
func TestScheduleAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, []byte(fmt.Sprintf(`{"tick-every": 60, "apps": {"many": %s, "catch": %s}}`,
		helperApp(`"schedule": "@every 1s", "concurrency": "allow"`, "exit-after", "30s", "0"),
		helperApp(`"schedule": "@every 3s", "catch-up": true`, "exit", "0"))), 0o644)
	p := startDaemon(t, path)
	var st *schema.Status
	poll(t, "two runs of many and a run of catch", 15*time.Second, func() bool {
		st = p.status(t)
		return len(st.Apps["many"].Runs) >= 1 && st.Apps["catch"].State == schema.StateScheduled &&
			strings.HasPrefix(st.Apps["catch"].Reason, "last run completed")
	})
	// The runs of catch so far, by instance id.
	runsOf := func(p *proc) map[string]bool {
		r, _ := p.apiPost(t, map[string]any{"id": "catch", "group": "app", "history": true})
		ids := map[string]bool{r.InstanceID: r.InstanceID != ""}
		for _, h := range r.History {
			ids[h.InstanceID] = true
		}
		delete(ids, "")
		return ids
	}
	many := st.Apps["many"]
	before := []uint32{many.PID}
	for _, r := range many.Runs {
		before = append(before, r.PID)
	}
	ran := runsOf(p)
	p.kill9(t)
	killed := time.Now()
	// catch's next run comes due while no Patrol runs.
	poll(t, "catch's run to come due", 10*time.Second, func() bool { return time.Since(killed) > 3100*time.Millisecond })
	p = startDaemon(t, path)
	started := time.Now()
	var ranAt time.Duration
	poll(t, "catch to catch up", 5*time.Second, func() bool {
		for id := range runsOf(p) {
			if !ran[id] {
				ranAt = time.Since(started)
				return true
			}
		}
		return false
	})
	if ranAt > 1500*time.Millisecond {
		t.Errorf("catch ran %v after Patrol started; with catch-up it runs at once (its next time was ~3s away)", ranAt)
	}
	st = p.status(t)
	after := []uint32{st.Apps["many"].PID}
	for _, r := range st.Apps["many"].Runs {
		after = append(after, r.PID)
	}
	for _, pid := range before {
		if !slices.Contains(after, pid) {
			t.Errorf("run %d of many was not adopted: before %v, after %v", pid, before, after)
		}
	}
	shutdown(t, p)
	for _, pid := range before {
		if testhelper.Alive(int(pid)) {
			t.Errorf("run %d survived the shutdown", pid)
		}
	}
	testhelper.ReapOrphans()
}
