package patrol_test

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/testhelper"
)

// rssKB is this process's resident set size.
func rssKB() int {
	b, _ := os.ReadFile("/proc/self/statm")
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.Atoi(f[1])
	return pages * os.Getpagesize() / 1024
}

// TestNoLeakOverCrashCycles: thousands of crash/restart cycles of one app
// leave Patrol's goroutines, file descriptors and memory flat.
func TestNoLeakOverCrashCycles(t *testing.T) {
	cycles := 2000
	if testing.Short() {
		cycles = 300
	}
	if _, err := os.Stat("/bin/false"); err != nil {
		t.Skip("needs /bin/false")
	}
	d := startPatrol(t, config(map[string]any{
		// Exits at once; reset-after 0 makes every restart immediate.
		"flaky": map[string]any{"binary": "/bin/false", "backoff": map[string]any{"reset-after": 0}},
	}, map[string]any{"history": 5}))
	starts := func() int { return d.app(t, "flaky").Restarts }
	type sample struct{ goroutines, fds, rss int }
	measure := func() sample {
		runtime.GC()
		return sample{runtime.NumGoroutine(), testhelper.CountFDs(), rssKB()}
	}
	waitFor(t, "200 cycles", time.Minute, func() bool { return starts() >= 200 })
	warm := measure()
	waitFor(t, "all cycles", 5*time.Minute, func() bool { return starts() >= cycles })
	end := measure()
	t.Logf("after %d cycles: goroutines %d -> %d, fds %d -> %d, RSS %d KB -> %d KB", starts(), warm.goroutines, end.goroutines, warm.fds, end.fds, warm.rss, end.rss)
	if end.goroutines > warm.goroutines+3 {
		t.Errorf("goroutines grew: %d -> %d", warm.goroutines, end.goroutines)
	}
	if end.fds > warm.fds+10 { // a leak per cycle would be hundreds
		t.Errorf("file descriptors grew: %d -> %d", warm.fds, end.fds)
	}
	if end.rss > warm.rss*3/2+4096 {
		t.Errorf("RSS grew: %d KB -> %d KB", warm.rss, end.rss)
	}
}
