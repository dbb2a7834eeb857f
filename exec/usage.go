package exec

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Usage is what a process group used: CPU time (user and system, of the
// processes alive now; exited children's time is not counted) and
// resident memory.
type Usage struct {
	CPU time.Duration
	RSS uint64 // bytes
}

// clockTick is the unit of /proc/PID/stat's times: USER_HZ, 100 on every
// Linux architecture Go runs on.
const clockTick = 10 * time.Millisecond

// GroupUsage reads /proc once and sums, for each leader pid given, the
// usage of every process in the leader's process group (so a worker the
// app forked counts; a daemon that left the group does not, until
// cgroups track apps). A leader that is gone has no entry. It costs one
// read of /proc/PID/stat per process on the host: callers sample it only
// while someone looks.
func GroupUsage(leaders []int) map[int]Usage {
	if len(leaders) == 0 {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	page := uint64(os.Getpagesize())
	groups := map[int]Usage{} // by pgid
	pgidOf := map[int]int{}   // leader pid -> pgid
	want := map[int]bool{}
	for _, p := range leaders {
		want[p] = true
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := readSmall("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		pgid, cpu, rss, ok := parseUsage(b)
		if !ok {
			continue
		}
		u := groups[pgid]
		u.CPU += cpu
		u.RSS += rss * page
		groups[pgid] = u
		if want[pid] {
			pgidOf[pid] = pgid
		}
	}
	out := make(map[int]Usage, len(pgidOf))
	for pid, pgid := range pgidOf {
		out[pid] = groups[pgid]
	}
	return out
}

// parseUsage reads the process group (field 5), utime and stime (14, 15)
// and rss in pages (24) of a /proc/PID/stat.
func parseUsage(b []byte) (pgid int, cpu time.Duration, rss uint64, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:])) // f[k] is field k+3
	if len(f) < 22 {
		return 0, 0, 0, false
	}
	pgid, err1 := strconv.Atoi(f[2])
	ut, err2 := strconv.ParseUint(f[11], 10, 64)
	st, err3 := strconv.ParseUint(f[12], 10, 64)
	rss, err4 := strconv.ParseUint(f[21], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return 0, 0, 0, false
	}
	return pgid, time.Duration(ut+st) * clockTick, rss, true
}

// Usage is GroupUsage with what the instances' cgroups know better: CPU
// from the leaf's cpu.stat (every process the instance ran, ended ones
// and those that left the process group too), memory from memory.current
// (cgroup v2 with the memory controller) or memory.usage_in_bytes (a
// cgroup v1 memory directory) where the instance is in a memory cgroup.
// It costs one /proc scan plus a read or two per instance.
func (r *Runner) Usage(leaders []int) map[int]Usage {
	out := GroupUsage(leaders)
	v2, _ := r.cg.layout()
	v2mem := v2["memory"]
	for pid, u := range out {
		ic := r.cg.of(pid)
		if ic == nil {
			continue
		}
		if ic.leaf != "" {
			if b, err := readSmall(filepath.Join(ic.leaf, "cpu.stat")); err == nil {
				if n, ok := statField(b, "usage_usec"); ok {
					u.CPU = time.Duration(n) * time.Microsecond
				}
			}
		}
		mem := ""
		switch {
		case v2mem && ic.leaf != "":
			mem = filepath.Join(ic.leaf, "memory.current")
		case ic.v1["memory"] != "":
			mem = filepath.Join(ic.v1["memory"], "memory.usage_in_bytes")
		}
		if mem != "" {
			if b, err := readSmall(mem); err == nil {
				if n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64); err == nil {
					u.RSS = n
				}
			}
		}
		out[pid] = u
	}
	return out
}

// statField reads "name N" from a flat-keyed cgroup file (cpu.stat).
func statField(b []byte, name string) (uint64, bool) {
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
