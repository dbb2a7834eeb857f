package exec

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/patrolhq/patrol/schema"
)

func TestSignalNumber(t *testing.T) {
	for _, name := range schema.StopSignals() {
		if n, ok := SignalNumber(name); !ok || n == 0 {
			t.Errorf("SignalNumber(%q) = %d, %v; want a signal", name, n, ok)
		}
	}
	for name, want := range map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGKILL": syscall.SIGKILL, "SIGUSR1": syscall.SIGUSR1} {
		if n, _ := SignalNumber(name); n != want {
			t.Errorf("SignalNumber(%q) = %d, want %d", name, n, want)
		}
	}
	for _, name := range []string{"", "TERM", "SIGBOGUS", "sigterm"} {
		if n, ok := SignalNumber(name); ok {
			t.Errorf("SignalNumber(%q) = %d, want none", name, n)
		}
	}
}

// TestSignalRefusals checks the targets kill(2) would read as "every
// process" or "Patrol itself". The signal name is unknown, so nothing is
// sent even if a refusal were missing.
func TestSignalRefusals(t *testing.T) {
	for _, pgid := range []int{-1, 0, 1, syscall.Getpgrp()} {
		err := SignalGroup(pgid, "SIGBOGUS")
		if err == nil || strings.Contains(err.Error(), "unknown signal") {
			t.Errorf("SignalGroup(%d): got %v, want a refusal", pgid, err)
		}
		if GroupAlive(pgid) && pgid <= 1 {
			t.Errorf("GroupAlive(%d) = true", pgid)
		}
	}
	for _, pid := range []int{-1, 0, os.Getpid()} {
		err := SignalProcess(pid, "SIGBOGUS")
		if err == nil || strings.Contains(err.Error(), "unknown signal") {
			t.Errorf("SignalProcess(%d): got %v, want a refusal", pid, err)
		}
	}
	if Alive(0) || Alive(-1) {
		t.Error("Alive of a non-positive pid = true")
	}
}

func TestSignalErrors(t *testing.T) {
	tag, ch := subscribe(t)
	l := start(t, helperSpec(t, tag, "sleep"))
	if err := SignalProcess(l.PID, "SIGBOGUS"); err == nil || err.Error() != "signal process "+strconv.Itoa(l.PID)+`: unknown signal "SIGBOGUS"` {
		t.Errorf("got %v, want an unknown signal error", err)
	}
	if !Alive(l.PID) {
		t.Fatalf("Alive(%d) = false for a running process", l.PID)
	}
	if err := SignalProcess(l.PID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	waitExit(t, ch)
	if err := SignalProcess(l.PID, "SIGTERM"); !errors.Is(err, ErrNoProcess) {
		t.Errorf("signal to a gone process: got %v, want ErrNoProcess", err)
	}
	if GroupAlive(l.PGID) {
		t.Errorf("GroupAlive(%d) = true for a gone group", l.PGID)
	}
}
