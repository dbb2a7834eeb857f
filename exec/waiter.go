package exec

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The waiter collects child exits for the Runners of the process: one
// goroutine that blocks in waitid(P_ALL, WEXITED|WNOWAIT) until some child
// of the process has exited, then has every running Runner reap. The kernel
// wakes it directly when a child exits; with SIGCHLD the exit took three
// goroutine hand-offs to reach the loop (the signal handler's goroutine,
// os/signal's, the reaper's) and now takes one, the reaper's own call into
// the loop. It parks one OS thread in the kernel while the process has
// children (none while it has none), instead of the baseline's thread per
// child.
//
// The waiter is started with the first Runner and lives as long as the
// process: a goroutine blocked in waitid cannot be woken when a Runner
// closes. WNOWAIT makes it only look: reaping is done by the Runners, under
// their lock, so a Runner that is not running never loses an exit to it.
var waiter struct {
	once sync.Once
	// kick wakes the waiter when it has nothing to wait for: a child was
	// started, or a Runner started running (an exit may be waiting). It is
	// made here, not by once: a Runner may spawn before any Runner runs.
	kick chan struct{}

	mu      sync.Mutex
	runners map[*Runner]struct{} // the Runners inside Run
}

func init() {
	waiter.kick = make(chan struct{}, 1)
	waiter.runners = map[*Runner]struct{}{}
}

// kickWaiter wakes the waiter if it waits for a child to be started.
func kickWaiter() {
	select {
	case waiter.kick <- struct{}{}:
	default:
	}
}

// addRunning makes r reap on the waiter's behalf until removeRunning.
func addRunning(r *Runner) {
	waiter.once.Do(func() { go waitChildren() })
	waiter.mu.Lock()
	waiter.runners[r] = struct{}{}
	waiter.mu.Unlock()
	kickWaiter()
}

func removeRunning(r *Runner) {
	waiter.mu.Lock()
	delete(waiter.runners, r)
	waiter.mu.Unlock()
}

// running returns the Runners inside Run.
func running() []*Runner {
	waiter.mu.Lock()
	defer waiter.mu.Unlock()
	rs := make([]*Runner, 0, len(waiter.runners))
	for r := range waiter.runners {
		rs = append(rs, r)
	}
	return rs
}

// stuckWait bounds how long the waiter sleeps when an exited child stays
// unreaped (no Runner is running, or reaping it failed): it waits for a
// kick or this long, rather than spin on the zombie.
const stuckWait = 50 * time.Millisecond

// waitChildren is the waiter's goroutine.
func waitChildren() {
	stuck := time.NewTimer(stuckWait)
	stuck.Stop()
	last := 0
	for {
		c, err := waitid(unix.P_ALL, 0, unix.WEXITED|unix.WNOWAIT)
		if err != nil {
			// ECHILD: no children. Nothing else is expected, but any error
			// is waited out the same way rather than spun on.
			<-waiter.kick
			continue
		}
		reaped := false
		for _, r := range running() {
			if r.reap() {
				reaped = true
			}
		}
		if reaped || c.pid != last {
			last = c.pid
			continue
		}
		// The same child is still unreaped: wait for a Runner or a start.
		stuck.Reset(stuckWait)
		select {
		case <-waiter.kick:
		case <-stuck.C:
		}
		stuck.Stop()
	}
}
