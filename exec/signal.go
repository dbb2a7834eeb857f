package exec

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The signals Patrol itself reacts to (DESIGN §2), for the command line's
// signal wiring, which must not import syscall.
var (
	// ShutdownSignals start a graceful shutdown; a second one forces it.
	ShutdownSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT}
	// ReloadSignal reloads the config file.
	ReloadSignal os.Signal = syscall.SIGHUP
)

// SignalNumber maps a canonical signal name such as "SIGTERM" to its number.
func SignalNumber(name string) (syscall.Signal, bool) {
	n := unix.SignalNum(name)
	return n, n != 0
}

// SignalGroup sends sig (a canonical name such as "SIGTERM", from
// desired.App.StopSignal, or "SIGKILL") to every member of process group
// pgid. The error wraps ErrNoProcess when the group has no member. It refuses
// pgid 1 or less (kill(2) would read those as "every process" or "Patrol's
// own group") and Patrol's own process group.
func SignalGroup(pgid int, sig string) error {
	if err := sendSignal(-pgid, sig, checkGroup(pgid)); err != nil {
		return fmt.Errorf("signal process group %d: %w", pgid, err)
	}
	return nil
}

// SignalProcess sends sig (a canonical name) to process pid. The error wraps
// ErrNoProcess when there is no such process. It refuses pid 0 or less and
// Patrol itself.
func SignalProcess(pid int, sig string) error {
	if err := sendSignal(pid, sig, checkProcess(pid)); err != nil {
		return fmt.Errorf("signal process %d: %w", pid, err)
	}
	return nil
}

// sendSignal is kill(target, sig) unless the target was refused.
func sendSignal(target int, sig string, refused error) error {
	if refused != nil {
		return refused
	}
	n, ok := SignalNumber(sig)
	if !ok {
		return fmt.Errorf("unknown signal %q", sig)
	}
	if err := syscall.Kill(target, n); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return ErrNoProcess
		}
		return fmt.Errorf("%s: %w", sig, err)
	}
	return nil
}

// checkGroup refuses process groups that must never be signalled.
func checkGroup(pgid int) error {
	switch {
	case pgid <= 1:
		return fmt.Errorf("%d is not a process group Patrol may signal", pgid)
	case pgid == syscall.Getpgrp():
		return errors.New("refusing to signal Patrol's own process group")
	}
	return nil
}

// checkProcess refuses pids that must never be signalled.
func checkProcess(pid int) error {
	switch {
	case pid <= 0:
		return fmt.Errorf("%d is not a process id", pid)
	case pid == os.Getpid():
		return errors.New("refusing to signal Patrol itself")
	}
	return nil
}

// GroupAlive reports whether process group pgid has a member that has not
// exited. A group whose members are all zombies (exited, not reaped yet by
// whichever process is their parent) is not alive: nothing in it runs. A
// pgid of 1 or less has no members.
func GroupAlive(pgid int) bool {
	if pgid <= 1 || !probe(-pgid) {
		return false
	}
	return groupHasLiveMember(pgid)
}

// groupHasLiveMember scans /proc for a process of group pgid that is not a
// zombie. It runs only when kill(-pgid, 0) found a member, which for a
// stopped instance is rare and brief.
func groupHasLiveMember(pgid int) bool {
	d, err := os.Open("/proc")
	if err != nil {
		return true // without /proc, existence is all that is known
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return true
	}
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		g, _, state, err := ProcStat(pid)
		if err == nil && g == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	return false
}

// Alive reports whether process pid exists and has not exited: a zombie
// (exited, not reaped yet) is not alive.
func Alive(pid int) bool {
	if pid <= 0 || !probe(pid) {
		return false
	}
	_, _, state, err := ProcStat(pid)
	if err != nil {
		// Without /proc, existence is all that is known.
		return !errors.Is(err, ErrNoProcess)
	}
	return state != 'Z' && state != 'X'
}

// probe reports whether kill(target, 0) finds a process; EPERM means one
// exists that Patrol may not signal.
func probe(target int) bool {
	err := syscall.Kill(target, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
