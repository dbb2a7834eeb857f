package exec

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol/observed"
)

// burn is the helper "burn": it touches 32 MiB, spins for 300 ms of CPU,
// then says so on stdout and sleeps.
func burn() int {
	mem := make([]byte, 32<<20)
	for i := range mem {
		mem[i] = byte(i)
	}
	// 300 ms of this process's own CPU time, however busy the machine.
	for {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= 300*time.Millisecond {
			break
		}
	}
	fmt.Println("burnt")
	time.Sleep(helperLife)
	runtime.KeepAlive(mem)
	return 0
}

// TestGroupUsage: a process that touched 32 MiB and spun 300 ms shows at
// least that much resident memory and CPU time; a gone pid has no entry;
// the parser refuses garbage.
func TestGroupUsage(t *testing.T) {
	out := make(chan observed.Exit, 1)
	s := helperSpec(t, "burn", "burn")
	s.Done = out
	l := start(t, s)
	deadline := time.Now().Add(timeout)
	var u Usage
	for {
		u = GroupUsage([]int{l.PID, 1 << 30})[l.PID]
		if u.CPU >= 250*time.Millisecond && u.RSS >= 32<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage %+v, want at least 250 ms of CPU and 32 MiB", u)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("usage of the burner: %+v", u)
	if got := GroupUsage([]int{1 << 30}); len(got) != 0 {
		t.Errorf("a pid that does not exist: %v", got)
	}
	if GroupUsage(nil) != nil {
		t.Error("no leaders: a result")
	}
	for _, b := range []string{"", "1 (x", "1 (x) S 1 2", "1 (a b) S 1 x 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22"} {
		if _, _, _, ok := parseUsage([]byte(b)); ok {
			t.Errorf("parseUsage(%q) accepted", b)
		}
	}
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	if pgid, _, rss, ok := parseUsage(self); !ok || pgid <= 0 || rss == 0 {
		t.Errorf("parseUsage(/proc/self/stat): %d %d %v", pgid, rss, ok)
	}
}
