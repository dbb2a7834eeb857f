package exec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/patrolhq/patrol/desired"
	"golang.org/x/sys/unix"
)

// How Patrol finds the host's cgroup layout (see limits.go for the
// choice it makes): the hierarchies' mount points, Patrol's own cgroups,
// and the controllers it can use for the instances' limits.

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

	// What was read to find the above, for UseCgroups: the hierarchies'
	// mount points and Patrol's own cgroups.
	mounts cgroupMounts
	own    cgroupPaths
}

// cgroupMounts is where the cgroup hierarchies are mounted: the unified
// one ("" when none) and each v1 hierarchy of a limit controller.
type cgroupMounts struct {
	v2 string
	v1 map[string]string
}

// readMounts reads /proc/self/mountinfo once for both.
func readMounts() cgroupMounts {
	m := cgroupMounts{v1: map[string]string{}}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return m
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// ... mount-point ... - fstype source options
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, p := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(p) < 3 {
			continue
		}
		switch p[0] {
		case "cgroup2":
			if m.v2 == "" {
				m.v2 = f[4]
			}
		case "cgroup":
			for _, o := range strings.Split(p[2], ",") {
				if slices.Contains(limitControllers, o) {
					m.v1[o] = f[4]
				}
			}
		}
	}
	return m
}

// cgroupPaths is a process's cgroups, from its /proc/PID/cgroup: in the
// unified hierarchy (hasV2 false when it has none there) and in each v1
// hierarchy by controller.
type cgroupPaths struct {
	v2    string
	hasV2 bool
	v1    map[string]string
}

// parseCgroupFile reads a /proc/PID/cgroup: "0::/path" lines and, for
// v1, "4:memory:/path" or "1:cpu,cpuacct:/path".
func parseCgroupFile(b []byte) cgroupPaths {
	p := cgroupPaths{v1: map[string]string{}}
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		switch {
		case len(f) != 3:
		case f[0] == "0" && f[1] == "":
			p.v2, p.hasV2 = f[2], true
		case f[1] != "":
			for _, c := range strings.Split(f[1], ",") {
				p.v1[c] = f[2]
			}
		}
	}
	return p
}

// ownCgroups are this process's cgroups.
func ownCgroups() cgroupPaths {
	b, _ := os.ReadFile("/proc/self/cgroup")
	return parseCgroupFile(b)
}

// DetectCgroups finds where this host lets Patrol put its apps' cgroups
// and enforce their limits: root (a configured directory, relative to
// the unified hierarchy's mount) when given, else the directory name
// under Patrol's own cgroup in the unified hierarchy (a name stable
// across Patrol's restarts, so that a new Patrol finds its instances'
// cgroups), and for the limits' controllers what limits.go describes.
// The directories are created; empty instance cgroups left by an earlier
// Patrol are removed.
func DetectCgroups(root, name string) Cgroups {
	c := Cgroups{mounts: readMounts(), own: ownCgroups()}
	c.Root, c.RootWhy = detectV2(c.mounts, c.own, root, name)
	c.V2, c.V1 = map[string]bool{}, map[string]string{}
	why := map[string]string{}
	for _, ctl := range limitControllers {
		w2 := c.RootWhy
		if c.Root != "" {
			if w2 = enableV2(c.mounts.v2, c.Root, ctl); w2 == "" {
				c.V2[ctl] = true
				continue
			}
		}
		dir, w1 := detectV1(c.mounts, c.own, ctl, name)
		if dir != "" {
			c.V1[ctl] = dir
			continue
		}
		why[ctl] = w2 + "; " + w1
	}
	c.notEnforced(why)
	return c
}

// detectV2 is DetectCgroups for the unified hierarchy: the root, or ""
// and why not.
func detectV2(mounts cgroupMounts, own cgroupPaths, root, name string) (string, string) {
	switch {
	case mounts.v2 == "":
		return "", "no cgroup v2 (unified) hierarchy is mounted"
	case root != "":
		root = filepath.Join(mounts.v2, root)
	case !own.hasV2:
		return "", "this process has no cgroup v2 membership"
	default:
		root = filepath.Join(mounts.v2, own.v2, name)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Sprintf("cannot create %s: %v", root, err)
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		return "", fmt.Sprintf("%s is not a cgroup v2 directory", root)
	}
	// Leaves of instances that ended while no Patrol watched them (after
	// a kill -9) are empty: remove them (rmdir refuses a populated one:
	// an instance this Patrol is about to adopt).
	removeEmptyChildren(root)
	return root, ""
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

// v1Probe is a file every cgroup v1 directory of a controller has.
var v1Probe = map[string]string{"memory": "memory.limit_in_bytes", "cpu": "cpu.cfs_quota_us", "pids": "pids.max"}

// detectV1 finds the cgroup v1 directory (created) for controller c under
// this process's own cgroup, or says why there is none.
func detectV1(mounts cgroupMounts, own cgroupPaths, c, name string) (string, string) {
	mount, ok := mounts.v1[c]
	if !ok {
		return "", fmt.Sprintf("no cgroup v1 %s hierarchy is mounted", c)
	}
	dir := filepath.Join(mount, own.v1[c], name)
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

// CgroupSupport says, without changing anything, which limits a Patrol
// started on this host (with cgroup-root root) could not enforce, and why
// (by limit key): for `patrol validate` and plans made without a running
// Patrol. It follows DetectCgroups's choice, from what is mounted and
// writable now; the controllers Patrol would enable on the way are
// assumed enabled where it could write.
func CgroupSupport(root string) map[string]string {
	mounts, own := readMounts(), ownCgroups()
	v2dir := ""
	if mounts.v2 != "" {
		if root != "" {
			v2dir = filepath.Join(mounts.v2, root)
		} else if own.hasV2 {
			v2dir = filepath.Join(mounts.v2, own.v2)
		}
		// The nearest existing directory: its controllers are what the
		// root can have.
		for v2dir != "" && v2dir != mounts.v2 {
			if _, err := os.Stat(filepath.Join(v2dir, "cgroup.controllers")); err == nil {
				break
			}
			v2dir = filepath.Dir(v2dir)
		}
	}
	why := map[string]string{}
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
		if m, ok := mounts.v1[ctl]; ok {
			dir := filepath.Join(m, own.v1[ctl])
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
