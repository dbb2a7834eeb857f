package exec

import (
	"slices"
	"testing"
	"time"
)

// TestFindSpawnedByEnvironment: two apps running the same command in the
// same directory (a pool of workers) are told apart by PATROL_ID in their
// environments; without it, both match.
func TestFindSpawnedByEnvironment(t *testing.T) {
	dir := t.TempDir()
	at := time.Now()
	var pids []int
	for _, id := range []string{"worker-a", "worker-b"} {
		tag, _ := subscribe(t)
		s := helperSpec(t, tag, "sleep")
		s.Dir, s.Env = dir, []string{"PATROL_ID=" + id}
		pids = append(pids, start(t, s).PID)
	}
	argv := append([]string{testBinary(t)}, helperSpec(t, "", "sleep").Args...)
	find := func(env string) []int {
		var got []int
		eventually(t, "both helpers exec'd", func() bool {
			got = FindSpawned(argv, dir, "", at, 5*time.Second)
			return len(got) == 2
		})
		got = FindSpawned(argv, dir, env, at, 5*time.Second)
		slices.Sort(got)
		return got
	}
	if got := find(""); !slices.Equal(got, pids) {
		t.Errorf("without an environment entry: got %v, want both %v", got, pids)
	}
	if got := find("PATROL_ID=worker-b"); !slices.Equal(got, pids[1:]) {
		t.Errorf("PATROL_ID=worker-b: got %v, want %v", got, pids[1:])
	}
	if got := find("PATROL_ID=worker"); len(got) != 0 {
		t.Errorf("a prefix of the entry matched %v", got)
	}
	if got := FindSpawned(argv, dir, "PATROL_ID=worker-a", at.Add(time.Hour), time.Second); len(got) != 0 {
		t.Errorf("outside the window: got %v", got)
	}
}
