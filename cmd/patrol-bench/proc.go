package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat is the part of /proc/PID/stat the benchmarks use.
type procStat struct {
	Comm  string
	State byte
	PPID  int
	// UTime and STime are in clock ticks (1/clockTicks s).
	UTime, STime uint64
}

// alive reports whether the process is neither a zombie nor dead.
func (s procStat) alive() bool { return s.State != 'Z' && s.State != 'X' && s.State != 'x' }

// parseStat parses the content of /proc/PID/stat. The command name is in
// parentheses and may itself contain spaces and parentheses, so the fields
// after it are found from the last ')'.
func parseStat(b []byte) (procStat, error) {
	var s procStat
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return s, errors.New("stat: no command name")
	}
	s.Comm = string(b[open+1 : end])
	// Fields after the name, from field 3 (state) on.
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("stat: %d fields after the name, want at least 13", len(f))
	}
	if len(f[0]) != 1 {
		return s, fmt.Errorf("stat: bad state %q", f[0])
	}
	s.State = f[0][0]
	var err error
	if s.PPID, err = strconv.Atoi(f[1]); err != nil {
		return s, fmt.Errorf("stat: ppid: %w", err)
	}
	// utime and stime are fields 14 and 15, f[11] and f[12].
	if s.UTime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return s, fmt.Errorf("stat: utime: %w", err)
	}
	if s.STime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return s, fmt.Errorf("stat: stime: %w", err)
	}
	return s, nil
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// readCmdline returns the argv of a process (empty for a zombie or a kernel
// thread).
func readCmdline(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil, nil
	}
	return strings.Split(string(b), "\x00"), nil
}

// procStatus is the part of /proc/PID/status the benchmarks use.
type procStatus struct {
	RSSKiB    uint64 // VmRSS
	Threads   int
	VolCtx    uint64 // voluntary_ctxt_switches
	NonVolCtx uint64 // nonvoluntary_ctxt_switches
}

// parseStatus parses the "Key:\tvalue" lines of /proc/PID/status that
// procStatus holds; a missing key leaves its field zero.
func parseStatus(b []byte) (procStatus, error) {
	var s procStatus
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "VmRSS":
			num, _, _ := strings.Cut(val, " ")
			s.RSSKiB, err = strconv.ParseUint(num, 10, 64)
		case "Threads":
			s.Threads, err = strconv.Atoi(val)
		case "voluntary_ctxt_switches":
			s.VolCtx, err = strconv.ParseUint(val, 10, 64)
		case "nonvoluntary_ctxt_switches":
			s.NonVolCtx, err = strconv.ParseUint(val, 10, 64)
		}
		if err != nil {
			return s, fmt.Errorf("status: %s: %w", key, err)
		}
	}
	return s, nil
}

func readStatus(path string) (procStatus, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return procStatus{}, err
	}
	return parseStatus(b)
}

// usage is a process's resource use at one moment.
type usage struct {
	At      time.Time
	CPU     uint64 // utime+stime, clock ticks, all threads
	Ctx     uint64 // context switches summed over all threads
	RSSKiB  uint64
	PSSKiB  uint64 // 0 when smaps_rollup cannot be read
	Threads int
}

// readUsage samples a process: CPU time from /proc/PID/stat (which counts
// every thread, exited ones included), RSS and threads from
// /proc/PID/status, and context switches summed over /proc/PID/task/*/status
// (the process-level file shows only the main thread's).
func readUsage(pid int) (usage, error) {
	u := usage{At: time.Now()}
	st, err := readStat(pid)
	if err != nil {
		return u, err
	}
	u.CPU = st.UTime + st.STime
	ps, err := readStatus("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return u, err
	}
	u.RSSKiB, u.Threads = ps.RSSKiB, ps.Threads
	u.PSSKiB = readPSS(pid)
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return u, err
	}
	for _, t := range tasks {
		ts, err := readStatus(dir + "/" + t.Name() + "/status")
		if err != nil {
			continue // the thread exited
		}
		u.Ctx += ts.VolCtx + ts.NonVolCtx
	}
	return u, nil
}

// readPSS returns the proportional set size of pid from
// /proc/PID/smaps_rollup, in KiB: its private pages plus its share of the
// pages it shares (with its children after a fork, or the binary's pages
// with other copies). 0 when it cannot be read.
func readPSS(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	return parsePSS(b)
}

// parsePSS reads the "Pss:" line of smaps_rollup.
func parsePSS(b []byte) uint64 {
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
			num, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
			n, _ := strconv.ParseUint(num, 10, 64)
			return n
		}
	}
	return 0
}

// listPIDs returns the pids in /proc, unsorted.
func listPIDs() ([]int, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if n[0] < '0' || n[0] > '9' {
			continue
		}
		if pid, err := strconv.Atoi(n); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

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
	st, err := readStat(pid)
	if err != nil {
		return vNever
	}
	if !st.alive() {
		return vNever
	}
	if m.PPID != 0 && st.PPID != m.PPID {
		return vNever
	}
	if m.Comm != "" && st.Comm != m.Comm {
		return vNo
	}
	if m.Argv != nil {
		argv, err := readCmdline(pid)
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
	pids, err := listPIDs()
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
	pids, err := listPIDs()
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

// pidAlive reports whether pid exists and is not a zombie.
func pidAlive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.alive()
}

// markedPIDs returns the processes whose environment holds marker
// ("KEY=VALUE"): everything a benchmark run started, directly or not.
func markedPIDs(marker string) []int {
	pids, _ := listPIDs()
	self := os.Getpid()
	var out []int
	needle := []byte(marker)
	for _, p := range pids {
		if p == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/environ")
		if err != nil {
			continue
		}
		for kv := range bytes.SplitSeq(b, []byte{0}) {
			if bytes.Equal(kv, needle) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// sweep SIGKILLs every process carrying marker and reaps those that are the
// bench's children (it is a child subreaper, so orphans become its
// children). It returns how many it killed.
func sweep(marker string, exclude map[int]bool) int {
	n := 0
	for range 50 {
		pids := markedPIDs(marker)
		killed := 0
		for _, p := range pids {
			if exclude[p] {
				continue
			}
			if syscall.Kill(p, syscall.SIGKILL) == nil {
				killed++
			}
		}
		n += killed
		reapOrphans(exclude)
		if killed == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// reapOrphans reaps the bench's zombie children that os/exec does not own
// (orphans re-parented to the bench as a subreaper).
func reapOrphans(exclude map[int]bool) {
	self := os.Getpid()
	pids, _ := listPIDs()
	for _, p := range pids {
		if exclude[p] {
			continue
		}
		st, err := readStat(p)
		if err != nil || st.PPID != self {
			continue
		}
		if st.State == 'Z' {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(p, &ws, syscall.WNOHANG, nil)
		}
	}
}

// becomeSubreaper makes the calling process a child subreaper, so that the
// orphaned descendants of the processes it starts are re-parented to it.
func becomeSubreaper() error {
	const prSetChildSubreaper = 36
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
