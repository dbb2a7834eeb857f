package exec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/patrolhq/patrol/desired"
)

// Limits (memory-max, memory-high, cpu-max, pids-max) live in the cgroup
// controllers memory, cpu and pids. Patrol picks, per controller:
//
//  1. cgroup v2, when the controller can be enabled for the instances'
//     leaves: it is in the root's cgroup.controllers, or Patrol can enable
//     it on the way down from where it is available (writing
//     cgroup.subtree_control of each cgroup between, which the kernel
//     refuses for a cgroup with processes of its own: run Patrol in a
//     cgroup of its own, such as systemd's DelegateSubgroup=, or set
//     cgroup-root). The limits are written into the instance's leaf before
//     it is started into it.
//  2. else cgroup v1, when that controller's hierarchy is mounted and
//     Patrol can create a directory under its own cgroup there (hybrid
//     hosts, such as those with v2 mounted at /sys/fs/cgroup/unified and
//     the controllers on v1): each instance gets a directory per
//     controller, named like its v2 leaf, with the limits written in, and
//     the app is forked from a thread of Patrol that is in them meanwhile
//     (forkInV1), so that nothing of the app runs outside them. cgroup v1
//     has no memory.high, and memory-max there limits memory only (not
//     swap).
//  3. else the limit is not enforced, and status, plan and validate say
//     why.
//
// A change of a limit is written to the running instance's cgroups (on
// v1, a controller it was not in yet gets a directory and its processes
// are moved in).

// limitControllers are the controllers limits need, in detection order.
var limitControllers = []string{"memory", "cpu", "pids"}

// limitFiles are the files and values that set l's limits for the
// controllers ctls in a cgroup of version v (2 or 1), in an order the
// kernel accepts.
func limitFiles(v int, ctls []string, l desired.Limits) [][2]string {
	var out [][2]string
	num := func(n uint64, none string) string {
		if n == 0 {
			return none
		}
		return strconv.FormatUint(n, 10)
	}
	for _, c := range ctls {
		switch {
		case c == "memory" && v == 2:
			out = append(out, [2]string{"memory.high", num(l.MemoryHigh, "max")}, [2]string{"memory.max", num(l.MemoryMax, "max")})
		case c == "memory":
			out = append(out, [2]string{"memory.limit_in_bytes", num(l.MemoryMax, "-1")})
		case c == "cpu" && v == 2:
			out = append(out, [2]string{"cpu.max", num(l.CPUQuota, "max") + " " + num(l.CPUPeriod, strconv.Itoa(desired.DefaultCPUPeriod))})
		case c == "cpu":
			out = append(out, [2]string{"cpu.cfs_period_us", num(l.CPUPeriod, strconv.Itoa(desired.DefaultCPUPeriod))}, [2]string{"cpu.cfs_quota_us", num(l.CPUQuota, "-1")})
		case c == "pids":
			out = append(out, [2]string{"pids.max", num(l.PIDsMax, "max")})
		}
	}
	return out
}

// writeLimits writes files into dir.
func writeLimits(dir string, files [][2]string) error {
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f[0]), []byte(f[1]), 0o644); err != nil {
			return fmt.Errorf("set %s %s in %s: %w", f[0], f[1], dir, pathErr(err))
		}
	}
	return nil
}

// needs lists the controllers l sets a limit in.
func needs(l desired.Limits) []string {
	var out []string
	for _, k := range desired.LimitKeys {
		if c := desired.Controller(k); l.Set(k) && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// prepare makes an instance's cgroups ready for its start with limits l:
// the v2 leaf with the limits of the v2 controllers written in, and a
// directory per v1 controller that l needs, with its limits. It returns
// the v1 directories (for forkInV1).
func (c *cgroups) prepare(tag string, l desired.Limits) ([]string, error) {
	if !l.Any() {
		return nil, nil
	}
	v2, v1 := c.layout()
	var on2 []string
	var dirs []string
	for _, ctl := range needs(l) {
		switch {
		case v2[ctl]:
			on2 = append(on2, ctl)
		case v1[ctl] != "":
			dir := filepath.Join(v1[ctl], tag)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return dirs, fmt.Errorf("create cgroup %s: %w", dir, pathErr(err))
			}
			dirs = append(dirs, dir)
			if err := writeLimits(dir, limitFiles(1, []string{ctl}, l)); err != nil {
				return dirs, err
			}
		}
	}
	if leaf := c.leafFor(tag); leaf != "" && len(on2) > 0 {
		if err := os.MkdirAll(leaf, 0o755); err != nil {
			return dirs, fmt.Errorf("create cgroup %s: %w", leaf, pathErr(err))
		}
		if err := writeLimits(leaf, limitFiles(2, on2, l)); err != nil {
			os.Remove(leaf)
			return dirs, err
		}
	}
	return dirs, nil
}

// forkInV1 runs fork (a StartProcess) from an OS thread of its own that
// is in the cgroup v1 directories dirs meanwhile, so that the child is
// born in them: cgroup v1 has no clone into a cgroup, but a child starts
// in its parent thread's cgroups, and a thread (unlike the process, and
// unlike umask or rlimits) can be moved alone, through "tasks". The thread
// is moved back to Patrol's own cgroups after the fork; one that cannot be
// is ended with its goroutine rather than reused. It costs two cgroup
// moves per controller (about 0.1 ms each here), where starting the app
// through the launcher would cost a Go program's start (about 10 ms).
func (c *cgroups) forkInV1(dirs []string, fork func() (int, error)) (int, error) {
	c.mu.Lock()
	var homes []string
	for _, d := range dirs {
		for ctl, root := range c.v1 {
			if filepath.Dir(d) == root {
				homes = append(homes, c.v1home[ctl])
			}
		}
	}
	c.mu.Unlock()
	if len(homes) != len(dirs) {
		return 0, fmt.Errorf("cgroups %q are not under Patrol's cgroup v1 directories", dirs)
	}
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		tid := []byte(strconv.Itoa(unix.Gettid()))
		moveBack := func(n int) bool {
			ok := true
			for _, h := range homes[:n] {
				if os.WriteFile(filepath.Join(h, "tasks"), tid, 0) != nil {
					ok = false
				}
			}
			return ok
		}
		for i, d := range dirs {
			if err := os.WriteFile(filepath.Join(d, "tasks"), tid, 0); err != nil {
				if moveBack(i) {
					runtime.UnlockOSThread()
				}
				done <- result{0, &joinError{d, err}}
				return
			}
		}
		pid, err := fork()
		if moveBack(len(homes)) {
			runtime.UnlockOSThread()
		}
		done <- result{pid, err}
	}()
	r := <-done
	return r.pid, r.err
}

// joinError is a cgroup v1 directory the forking thread could not join.
type joinError struct {
	dir string
	err error
}

func (e *joinError) Error() string { return fmt.Sprintf("join cgroup %s: %v", e.dir, e.err) }
func (e *joinError) Unwrap() error { return e.err }

// SetLimits applies l to the running instance whose process group is
// pgid, in place: the files of its cgroups are rewritten ("max" where a
// limit was dropped); on cgroup v1, a controller the instance was not in
// yet gets a directory, and the instance's processes are moved into it.
func (r *Runner) SetLimits(pgid int, l desired.Limits) error {
	ic := r.cg.of(pgid)
	if ic == nil {
		if !l.Any() {
			return nil
		}
		return errors.New("the instance has no cgroup")
	}
	v2, v1 := r.cg.layout()
	var errs []error
	var on2 []string
	for _, ctl := range limitControllers {
		switch {
		case v2[ctl] && ic.leaf != "":
			on2 = append(on2, ctl)
		case v1[ctl] != "":
			dir := ic.v1[ctl]
			if dir == "" {
				if !slices.Contains(needs(l), ctl) {
					continue // never limited there, nothing to lift
				}
				dir = filepath.Join(v1[ctl], filepath.Base(ic.tagDir()))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					errs = append(errs, fmt.Errorf("create cgroup %s: %w", dir, pathErr(err)))
					continue
				}
				r.cg.addV1(pgid, ctl, dir)
			}
			if err := writeLimits(dir, limitFiles(1, []string{ctl}, l)); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := moveInto(dir, r.instancePIDs(pgid, ic)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(on2) > 0 {
		if err := writeLimits(ic.leaf, limitFiles(2, on2, l)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// instancePIDs are an instance's processes: its leaf's, else its process
// group's.
func (r *Runner) instancePIDs(pgid int, ic *instCgroup) []int {
	if ic.leaf != "" {
		return leafPIDs(ic.leaf)
	}
	return groupPIDs(pgid)
}

// moveInto moves pids into the cgroup v1 directory dir (those already in
// it stay); a process that ended meanwhile is skipped.
func moveInto(dir string, pids []int) error {
	in := map[int]bool{}
	for _, p := range leafPIDs(dir) {
		in[p] = true
	}
	for _, p := range pids {
		if in[p] {
			continue
		}
		err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(p)), 0)
		if err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("move process %d into cgroup %s: %w", p, dir, err)
		}
	}
	return nil
}

// oomKilled reports whether the kernel's OOM killer killed a process of
// the instance whose process group is pgid (memory.events on cgroup v2,
// memory.oom_control on v1).
func (c *cgroups) oomKilled(pgid int) bool {
	ic := c.of(pgid)
	if ic == nil {
		return false
	}
	v2, _ := c.layout()
	v2mem := v2["memory"]
	var files []string
	if v2mem && ic.leaf != "" {
		files = append(files, filepath.Join(ic.leaf, "memory.events"))
	}
	if d := ic.v1["memory"]; d != "" {
		files = append(files, filepath.Join(d, "memory.oom_control"))
	}
	for _, f := range files {
		if b, err := readSmall(f); err == nil {
			if n, ok := statField(b, "oom_kill"); ok && n > 0 {
				return true
			}
		}
	}
	return false
}

// groupPIDs lists the processes of process group pgid (a /proc scan: only
// for a limit changed in place on a host without cgroup v2 tracking).
func groupPIDs(pgid int) []int {
	names, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range names {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, _, _, err := ProcStat(pid); err == nil && g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// removeCgroups removes an instance's cgroups made for a start that
// failed (rmdir: only empty ones).
func removeCgroups(leaf string, v1 []string) {
	if leaf != "" {
		os.Remove(leaf)
	}
	for _, d := range v1 {
		os.Remove(d)
	}
}
