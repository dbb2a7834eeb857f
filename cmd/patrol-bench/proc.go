package main

import (
	"context"
	"syscall"
	"time"

	"github.com/patrolhq/patrol/internal/proctool"
)

// matcher says which processes are app processes of a benchmark: exec'd
// (not a supervisor's fork that has not exec'd yet), alive, and matching
// every set field.
type matcher struct {
	PPID int      // the parent, if non-zero
	Comm string   // the command name, if set
	Argv []string // the exact argv, if set
}

// verdict is the result of checking one process against a matcher.
type verdict int

const (
	vNo    verdict = iota // not (yet) a match: check again later
	vNever                // can never match (gone, or another parent)
	vYes
)

func (m matcher) check(pid int) verdict {
	st, err := proctool.ReadStat(pid)
	if err != nil {
		return vNever
	}
	if !st.Alive() {
		return vNever
	}
	if m.PPID != 0 && st.PPID != m.PPID {
		return vNever
	}
	if m.Comm != "" && st.Comm != m.Comm {
		return vNo
	}
	if m.Argv != nil {
		argv, err := proctool.ReadCmdline(pid)
		if err != nil {
			return vNever
		}
		if !equalStrings(argv, m.Argv) {
			return vNo
		}
	}
	return vYes
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// scanner finds processes that appeared after it was created (or last
// reset) and match a matcher. Each poll lists /proc and checks only the new
// pids that have not been decided yet, so polling stays cheap with
// thousands of processes.
type scanner struct {
	m       matcher
	ignore  map[int]bool // existed before, or can never match
	matched map[int]bool
}

func newScanner(m matcher) (*scanner, error) {
	s := &scanner{m: m, ignore: map[int]bool{}, matched: map[int]bool{}}
	pids, err := proctool.ListPIDs()
	if err != nil {
		return nil, err
	}
	for _, p := range pids {
		s.ignore[p] = true
	}
	return s, nil
}

// poll checks the new pids and returns the pids matched so far that are
// still in /proc.
func (s *scanner) poll() error {
	pids, err := proctool.ListPIDs()
	if err != nil {
		return err
	}
	for _, p := range pids {
		if s.ignore[p] || s.matched[p] {
			continue
		}
		switch s.m.check(p) {
		case vYes:
			s.matched[p] = true
		case vNever:
			s.ignore[p] = true
		}
	}
	return nil
}

// first polls every 150 µs until a matching process appears, for up to
// timeout, and returns its pid.
func (s *scanner) first(ctx context.Context, timeout time.Duration) (int, error) {
	var found int
	err := poll(ctx, 150*time.Microsecond, timeout, func() (bool, error) {
		if err := s.poll(); err != nil {
			return false, err
		}
		for pid := range s.matched {
			found = pid
			return true, nil
		}
		return false, nil
	})
	return found, err
}

// nap sleeps for d with nanosleep(2): Go's timers round sub-millisecond
// sleeps up to about a millisecond, too coarse for polling at 0.2 ms.
func nap(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
