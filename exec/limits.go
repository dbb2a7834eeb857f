package exec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

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

// Cgroups is what DetectCgroups found.
type Cgroups struct {
	// Root is the directory of the instances' cgroup v2 leaves; "" when
	// cgroup v2 is not used, and RootWhy says why.
	Root    string
	RootWhy string
	// V2 are the controllers enabled for the leaves; V1 the cgroup v1
	// directories (per controller) of the instances' directories.
	V2 map[string]bool
	V1 map[string]string
	// NotEnforced maps a limit key ("memory-max") this host cannot enforce
	// to why.
	NotEnforced map[string]string
}

// enableV2 makes controller c available to root's children: it enables it
// on the way down from the highest of root's ancestors (up to the
// hierarchy's mount) that has it. It returns why not.
func enableV2(mount, root, c string) string {
	if !hasWord(readSmallFile(filepath.Join(root, "cgroup.controllers")), c) {
		var chain []string // root's ancestors below the mount, nearest last
		for d := filepath.Dir(root); strings.HasPrefix(d, mount) && d != mount; d = filepath.Dir(d) {
			chain = append([]string{d}, chain...)
		}
		chain = append([]string{mount}, chain...)
		from := -1
		for i, d := range chain {
			if hasWord(readSmallFile(filepath.Join(d, "cgroup.controllers")), c) {
				from = i
				break
			}
		}
		if from < 0 {
			return fmt.Sprintf("no cgroup v2 %s controller (not in %s)", c, filepath.Join(mount, "cgroup.controllers"))
		}
		for _, d := range chain[from:] {
			if hasWord(readSmallFile(filepath.Join(d, "cgroup.subtree_control")), c) {
				continue
			}
			if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+"+c), 0); err != nil {
				if errors.Is(err, unix.EBUSY) {
					return fmt.Sprintf("cannot enable the cgroup v2 %s controller below %s: it has processes of its own (run Patrol in a cgroup of its own, such as systemd's DelegateSubgroup=, or set cgroup-root)", c, d)
				}
				return fmt.Sprintf("cannot enable the cgroup v2 %s controller below %s: %v", c, d, err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+"+c), 0); err != nil {
		return fmt.Sprintf("cannot enable the cgroup v2 %s controller in %s: %v", c, root, err)
	}
	return ""
}

// hasWord reports whether the space-separated list s has w.
func hasWord(s, w string) bool { return slices.Contains(strings.Fields(s), w) }

// readSmallFile reads a small file ("" when it cannot).
func readSmallFile(path string) string {
	b, _ := readSmall(path)
	return string(b)
}

// v1Mounts maps each cgroup v1 controller to its hierarchy's mount point.
func v1Mounts() map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// ... mount-point ... - cgroup cgroup rw,memory
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, p := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(p) < 3 || p[0] != "cgroup" {
			continue
		}
		for _, o := range strings.Split(p[2], ",") {
			if slices.Contains(limitControllers, o) {
				out[o] = f[4]
			}
		}
	}
	return out
}

// ownV1Cgroups maps each cgroup v1 controller to this process's cgroup in
// its hierarchy.
func ownV1Cgroups(pid string) map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return out
	}
	for line := range strings.Lines(string(b)) {
		// 4:memory:/path, or 1:cpu,cpuacct:/path
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 || f[1] == "" {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			out[c] = f[2]
		}
	}
	return out
}

// v1Probe is a file every cgroup v1 directory of a controller has.
var v1Probe = map[string]string{"memory": "memory.limit_in_bytes", "cpu": "cpu.cfs_quota_us", "pids": "pids.max"}

// detectV1 finds the cgroup v1 directory (created) for controller c under
// this process's own cgroup, or says why there is none.
func detectV1(mounts, own map[string]string, c, name string) (string, string) {
	mount, ok := mounts[c]
	if !ok {
		return "", fmt.Sprintf("no cgroup v1 %s hierarchy is mounted", c)
	}
	dir := filepath.Join(mount, own[c], name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Sprintf("cannot create %s: %v", dir, pathErr(err))
	}
	if _, err := os.Stat(filepath.Join(dir, v1Probe[c])); err != nil {
		return "", fmt.Sprintf("%s is not a cgroup v1 %s directory", dir, c)
	}
	removeEmptyChildren(dir)
	return dir, ""
}

// removeEmptyChildren removes the empty instance directories under dir
// (rmdir fails for one with processes).
func removeEmptyChildren(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// notEnforced says, per limit key, why the found layout cannot enforce it.
func (c *Cgroups) notEnforced(why map[string]string) {
	c.NotEnforced = map[string]string{}
	for _, k := range desired.LimitKeys {
		ctl := desired.Controller(k)
		switch {
		case c.V2[ctl]:
		case c.V1[ctl] != "" && k == "memory-high":
			c.NotEnforced[k] = "cgroup v1 has no memory.high (only cgroup v2 throttles)"
		case c.V1[ctl] != "":
		default:
			c.NotEnforced[k] = why[ctl]
		}
	}
}

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
// the v1 directories (for the launcher to join).
func (c *cgroups) prepare(tag string, l desired.Limits) ([]string, error) {
	if !l.Any() {
		return nil, nil
	}
	c.mu.Lock()
	v2, v1 := c.v2, c.v1
	c.mu.Unlock()
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
	r.cg.mu.Lock()
	v2, v1 := r.cg.v2, r.cg.v1
	r.cg.mu.Unlock()
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
	c.mu.Lock()
	v2mem := c.v2["memory"]
	c.mu.Unlock()
	var files []string
	if v2mem && ic.leaf != "" {
		files = append(files, filepath.Join(ic.leaf, "memory.events"))
	}
	if d := ic.v1["memory"]; d != "" {
		files = append(files, filepath.Join(d, "memory.oom_control"))
	}
	for _, f := range files {
		for line := range strings.Lines(readSmallFile(f)) {
			if n, ok := strings.CutPrefix(strings.TrimSpace(line), "oom_kill "); ok && n != "0" {
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

// CgroupSupport says, without changing anything, which limits a Patrol
// started on this host (with cgroup-root root) could not enforce, and why
// (by limit key): for `patrol validate` and plans made without a running
// Patrol. It follows DetectCgroups's choice, from what is mounted and
// writable now; the controllers Patrol would enable on the way are
// assumed enabled where it could write.
func CgroupSupport(root string) map[string]string {
	why := map[string]string{}
	mount, err := cgroup2Mount()
	v2dir := ""
	if err == nil {
		if root != "" {
			v2dir = filepath.Join(mount, root)
		} else if own, err := ownCgroup(); err == nil {
			v2dir = filepath.Join(mount, own)
		}
		// The nearest existing directory: its controllers are what the
		// root can have.
		for v2dir != "" && v2dir != mount {
			if _, err := os.Stat(filepath.Join(v2dir, "cgroup.controllers")); err == nil {
				break
			}
			v2dir = filepath.Dir(v2dir)
		}
	}
	mounts, own := v1Mounts(), ownV1Cgroups("self")
	c := Cgroups{V2: map[string]bool{}, V1: map[string]string{}}
	for _, ctl := range limitControllers {
		w2 := "no cgroup v2 (unified) hierarchy is mounted"
		if v2dir != "" {
			w2 = fmt.Sprintf("no cgroup v2 %s controller (not in %s)", ctl, filepath.Join(v2dir, "cgroup.controllers"))
			if hasWord(readSmallFile(filepath.Join(v2dir, "cgroup.controllers")), ctl) {
				if unix.Access(v2dir, unix.W_OK) == nil {
					c.V2[ctl] = true
					continue
				}
				w2 = fmt.Sprintf("%s is not writable", v2dir)
			}
		}
		w1 := fmt.Sprintf("no cgroup v1 %s hierarchy is mounted", ctl)
		if m, ok := mounts[ctl]; ok {
			dir := filepath.Join(m, own[ctl])
			if unix.Access(dir, unix.W_OK) == nil {
				c.V1[ctl] = dir
				continue
			}
			w1 = fmt.Sprintf("%s is not writable", dir)
		}
		why[ctl] = w2 + "; " + w1
	}
	c.notEnforced(why)
	return c.NotEnforced
}
