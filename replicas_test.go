package patrol_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// replicaIDs are the entry ids of n replicas of web.
func replicaIDs(n int) []string {
	ids := []string{"web"}
	for i := 1; i < n; i++ {
		ids = append(ids, fmt.Sprintf("web-%d", i))
	}
	return ids
}

// TestReplicasScale: "replicas": 3 is three processes with their own
// PATROL_REPLICA and "{replica}" replaced in their args; 3 -> 5 starts two
// more and leaves the three alone; 5 -> 2 stops the three highest
// (gracefully) and leaves replicas 0 and 1 alone.
func TestReplicasScale(t *testing.T) {
	dir := t.TempDir()
	web := func(n int) map[string]any {
		return appCfg(t, map[string]any{"replicas": n}, "print-env", filepath.Join(dir, "env-{replica}"))
	}
	cfg := config(map[string]any{"web": web(3)}, nil)
	d := startPatrol(t, cfg)
	pids := map[string]uint32{}
	for i, id := range replicaIDs(3) {
		e, _ := d.waitRunning(t, id, 0, 10*time.Second)
		pids[id] = e.PID
		var env string
		waitFor(t, id+"'s environment", 10*time.Second, func() bool {
			b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("env-%d", i)))
			env = string(b)
			return env != ""
		})
		for _, want := range []string{fmt.Sprintf("PATROL_REPLICA=%d", i), "PATROL_REPLICAS=3", "PATROL_ID=" + id} {
			if !slices.Contains(strings.Split(env, "\n"), want) {
				t.Errorf("%s: no %s in its environment", id, want)
			}
		}
	}

	cfg["apps"].(map[string]any)["web"] = web(5)
	writeConfig(t, d.config, cfg)
	for _, id := range replicaIDs(5)[3:] {
		waitFor(t, id+" running", 10*time.Second, func() bool {
			st, err := d.Status(t.Context())
			return err == nil && st.Apps[id] != nil && st.Apps[id].State == schema.StateRunning
		})
	}
	for _, id := range replicaIDs(3) {
		if got := d.app(t, id).PID; got != pids[id] {
			t.Errorf("%s: pid %d -> %d after scaling up", id, pids[id], got)
		}
	}

	high := map[string]uint32{}
	for _, id := range replicaIDs(5)[2:] {
		high[id] = d.app(t, id).PID
	}
	ch := events(t, d, "")
	cfg["apps"].(map[string]any)["web"] = web(2)
	writeConfig(t, d.config, cfg)
	// Gracefully: each ends on its stop signal (SIGTERM: 143), as scaled.
	for range high {
		ev := waitEvent(t, ch, "a high replica's end", 10*time.Second, func(ev schema.Event) bool { return ev.Event == schema.EventExited })
		if _, ok := high[ev.ID]; !ok || ev.Reason != schema.ReasonScaled || ev.ExitCode == nil || *ev.ExitCode != 143 {
			t.Errorf("end of %s: reason %q, code %v; want a high replica scaled, SIGTERM (143)", ev.ID, ev.Reason, ev.ExitCode)
		}
	}
	var st *schema.Status
	waitFor(t, "replicas 2-4 stopped", 10*time.Second, func() bool {
		for _, pid := range high {
			if alive(int(pid)) {
				return false
			}
		}
		var err error
		if st, err = d.Status(t.Context()); err != nil {
			return false
		}
		for id := range high {
			if e := st.Apps[id]; e != nil && e.PID != 0 {
				return false // its end not processed yet
			}
		}
		return true
	})
	for _, id := range replicaIDs(2) {
		if got := st.Apps[id]; got == nil || got.PID != pids[id] || got.State != schema.StateRunning {
			t.Errorf("%s after scaling down: %+v (pid was %d)", id, got, pids[id])
		}
	}
}

// TestReplicasRolling: a change that needs a restart restarts three
// replicas one after the other: in the events, a replica ends only once
// the previous one has started again, so never two are down at once.
func TestReplicasRolling(t *testing.T) {
	web := func(gen string) map[string]any {
		return appCfg(t, map[string]any{"replicas": 3, "env": []string{"GEN=" + gen}}, "sleep")
	}
	cfg := config(map[string]any{"web": web("1")}, nil)
	d := startPatrol(t, cfg)
	old := map[string]uint32{}
	for _, id := range replicaIDs(3) {
		e, _ := d.waitRunning(t, id, 0, 10*time.Second)
		old[id] = e.PID
	}
	ch := events(t, d, "")
	cfg["apps"].(map[string]any)["web"] = web("2")
	writeConfig(t, d.config, cfg)
	var order []string
	for len(order) < 6 {
		ev := waitEvent(t, ch, "the rolling restart's ends and starts", 15*time.Second, func(ev schema.Event) bool {
			return ev.Group == schema.GroupApp && (ev.Event == schema.EventExited || ev.Event == schema.EventStarted)
		})
		order = append(order, string(ev.Event)+" "+ev.ID)
	}
	want := []string{"exited web", "started web", "exited web-1", "started web-1", "exited web-2", "started web-2"}
	if !slices.Equal(order, want) {
		t.Errorf("events %q, want %q", order, want)
	}
	for _, id := range replicaIDs(3) {
		if e := d.app(t, id); e.PID == old[id] || e.State != schema.StateRunning {
			t.Errorf("%s: %+v (old pid %d)", id, e, old[id])
		}
	}
}
