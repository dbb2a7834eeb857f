package exec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol/observed"
)

// waiterIdle is the helper "waiter-idle OUT": in a process of its own, the
// waiter watches a child that exited while no Runner runs (the zombie nobody
// reaps yet). It writes to OUT the CPU time the process used over the next
// 300 ms, in microseconds, then whether a Runner that starts running
// afterwards delivers the exit.
func waiterIdle(out string) int {
	r := NewRunner(nil, func(observed.Exit) {})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }() // starts the waiter
	cancel()
	if err := <-done; err != nil {
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		return 1
	}
	exited := make(chan observed.Exit, 1)
	l, err := r.Start(Spec{Path: exe, Args: []string{helperArg, "exit", "7"}, Done: exited})
	if err != nil {
		return 1
	}
	for deadline := time.Now().Add(timeout); ; {
		if _, _, state, err := ProcStat(l.PID); err == nil && state == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			return 1
		}
		time.Sleep(time.Millisecond)
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before := cpu()
	time.Sleep(300 * time.Millisecond) // the window the CPU time is measured over
	used := cpu() - before
	// A Runner that runs now reaps the zombie and delivers its exit.
	r2 := NewRunner(nil, func(observed.Exit) {})
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go r2.Run(ctx2)
	got := "unreaped"
	select {
	case ex := <-exited:
		got = fmt.Sprintf("delivered %d", ex.Code)
	case <-time.After(200 * time.Millisecond):
		// r2 reaps it as an unregistered child: r's registration stays.
		if _, _, _, err := ProcStat(l.PID); err != nil {
			got = "reaped"
		}
	}
	return writeLines(out, []string{strconv.FormatInt(used.Microseconds(), 10), got})
}

// TestWaiterDoesNotSpinOnAZombie: with an exited child that no running
// Runner reaps, the waiter sleeps instead of spinning on waitid, and the
// child is reaped as soon as a Runner runs.
func TestWaiterDoesNotSpinOnAZombie(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	ch := make(chan observed.Exit, 1)
	s := helperSpec(t, "waiter-idle", "waiter-idle", out)
	s.Done = ch
	start(t, s)
	if ex := waitExit(t, ch); ex.Code != 0 {
		b, _ := os.ReadFile(out)
		t.Fatalf("helper exited with %d; output %q", ex.Code, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(strings.TrimSpace(string(b)))
	if len(lines) < 2 {
		t.Fatalf("helper output %q", b)
	}
	us, err := strconv.Atoi(lines[0])
	if err != nil {
		t.Fatalf("helper output %q", b)
	}
	t.Logf("CPU over 300 ms with an unreaped zombie: %d µs; then %s", us, strings.Join(lines[1:], " "))
	// Spinning would use the whole window (300,000 µs); sleeping between
	// looks (every 50 ms) a few hundred.
	if us > 60_000 {
		t.Errorf("the process used %d µs of CPU in 300 ms: the waiter spins", us)
	}
	if got := strings.Join(lines[1:], " "); got != "reaped" && got != "delivered 7" {
		t.Errorf("after a Runner ran: %s, want the zombie reaped", got)
	}
}

// spawnBeforeRun is the helper "spawn-before-run": in a process of its own
// (so the waiter is not started yet), a Runner starts a child while the
// first Runner starts running, as Patrol's loop may launch before its
// reaper's goroutine is scheduled. The exit must be delivered; a -race
// build halts with 66 on a race (the helper runs with halt_on_error).
func spawnBeforeRun() int {
	exe, err := os.Executable()
	if err != nil {
		return 1
	}
	exited := make(chan observed.Exit, 1)
	r := NewRunner(nil, func(observed.Exit) {})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan error, 1)
	go func() {
		_, err := r.Start(Spec{Path: exe, Args: []string{helperArg, "exit", "3"}, Done: exited})
		started <- err
	}()
	go r.Run(ctx)
	if err := <-started; err != nil {
		return 1
	}
	select {
	case ex := <-exited:
		if ex.Code != 3 {
			return 2
		}
	case <-time.After(timeout):
		return 3
	}
	return 0
}

// TestSpawnBeforeRun: a child started before (or while) the first Runner
// starts running is reaped and delivered, without a data race on the
// waiter's start (CI once caught one: kickWaiter read the channel that the
// first Run made).
func TestSpawnBeforeRun(t *testing.T) {
	for i := range 5 {
		ch := make(chan observed.Exit, 1)
		s := helperSpec(t, "spawn-before-run", "spawn-before-run")
		s.Env = append(os.Environ(), "GORACE=halt_on_error=1")
		s.Done = ch
		start(t, s)
		if ex := waitExit(t, ch); ex.Code != 0 {
			t.Fatalf("run %d: helper exited with %d (66: a data race)", i, ex.Code)
		}
	}
}
