// Package proctool reads what Linux tells about processes from /proc and
// cleans up after them, for the tools that watch a real `patrol run` from
// outside (patrol-bench, patrol-chaos): they are not Patrol, so they may
// start, signal and reap processes themselves.
package proctool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports.
const ClockTicks = 100

// Stat is the part of /proc/PID/stat these tools use.
type Stat struct {
	Comm  string
	State byte
	PPID  int
	// UTime and STime are in clock ticks (1/ClockTicks s).
	UTime, STime uint64
}

// alive reports whether the process is neither a zombie nor dead.
func (s Stat) Alive() bool { return s.State != 'Z' && s.State != 'X' && s.State != 'x' }

// ParseStat parses the content of /proc/PID/stat. The command name is in
// parentheses and may itself contain spaces and parentheses, so the fields
// after it are found from the last ')'.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
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

func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}

// ReadCmdline returns the argv of a process (empty for a zombie or a kernel
// thread).
func ReadCmdline(pid int) ([]string, error) {
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

// Status is the part of /proc/PID/status these tools use.
type Status struct {
	RSSKiB    uint64 // VmRSS
	Threads   int
	VolCtx    uint64 // voluntary_ctxt_switches
	NonVolCtx uint64 // nonvoluntary_ctxt_switches
}

// ParseStatus parses the "Key:\tvalue" lines of /proc/PID/status that
// Status holds; a missing key leaves its field zero.
func ParseStatus(b []byte) (Status, error) {
	var s Status
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

func ReadStatus(path string) (Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(b)
}

// Usage is a process's resource use at one moment.
type Usage struct {
	At      time.Time
	CPU     uint64 // utime+stime, clock ticks, all threads
	Ctx     uint64 // context switches summed over all threads
	RSSKiB  uint64
	PSSKiB  uint64 // 0 when smaps_rollup cannot be read
	Threads int
}

// ReadUsage samples a process: CPU time from /proc/PID/stat (which counts
// every thread, exited ones included), RSS and threads from
// /proc/PID/status, and context switches summed over /proc/PID/task/*/status
// (the process-level file shows only the main thread's).
func ReadUsage(pid int) (Usage, error) {
	u := Usage{At: time.Now()}
	st, err := ReadStat(pid)
	if err != nil {
		return u, err
	}
	u.CPU = st.UTime + st.STime
	ps, err := ReadStatus("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return u, err
	}
	u.RSSKiB, u.Threads = ps.RSSKiB, ps.Threads
	u.PSSKiB = ReadPSS(pid)
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return u, err
	}
	for _, t := range tasks {
		ts, err := ReadStatus(dir + "/" + t.Name() + "/status")
		if err != nil {
			continue // the thread exited
		}
		u.Ctx += ts.VolCtx + ts.NonVolCtx
	}
	return u, nil
}

// ReadPSS returns the proportional set size of pid from
// /proc/PID/smaps_rollup, in KiB: its private pages plus its share of the
// pages it shares (with its children after a fork, or the binary's pages
// with other copies). 0 when it cannot be read.
func ReadPSS(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	return ParsePSS(b)
}

// ParsePSS reads the "Pss:" line of smaps_rollup.
func ParsePSS(b []byte) uint64 {
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
			num, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
			n, _ := strconv.ParseUint(num, 10, 64)
			return n
		}
	}
	return 0
}

// ListPIDs returns the pids in /proc, unsorted.
func ListPIDs() ([]int, error) {
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

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	st, err := ReadStat(pid)
	return err == nil && st.Alive()
}

// MarkedPIDs returns the processes whose environment holds marker
// ("KEY=VALUE"): everything a benchmark run started, directly or not.
func MarkedPIDs(marker string) []int {
	pids, _ := ListPIDs()
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
func Sweep(marker string, exclude map[int]bool) int {
	n := 0
	for range 50 {
		pids := MarkedPIDs(marker)
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
		ReapOrphans(exclude)
		if killed == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// ReapOrphans reaps the bench's zombie children that os/exec does not own
// (orphans re-parented to the bench as a subreaper).
func ReapOrphans(exclude map[int]bool) {
	self := os.Getpid()
	pids, _ := ListPIDs()
	for _, p := range pids {
		if exclude[p] {
			continue
		}
		st, err := ReadStat(p)
		if err != nil || st.PPID != self {
			continue
		}
		if st.State == 'Z' {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(p, &ws, syscall.WNOHANG, nil)
		}
	}
}

// BecomeSubreaper makes the calling process a child subreaper, so that the
// orphaned descendants of the processes it starts are re-parented to it.
func BecomeSubreaper() error {
	const prSetChildSubreaper = 36
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// LogField returns the value of key=value in a log/slog text line.
func LogField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if u, err := strconv.QuotedPrefix(v); err == nil {
			v, _ = strconv.Unquote(u)
			return v
		}
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// Getenv returns the value of key in the environment pid started with.
func Getenv(pid int, key string) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return "", false
	}
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte(key+"=")); ok {
			return string(v), true
		}
	}
	return "", false
}

// FDs counts the open file descriptors of pid (-1 when they cannot be
// listed).
func FDs(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
