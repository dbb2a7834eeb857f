package exec

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A cgroup per app instance (cgroup v2, the unified hierarchy): each
// instance is started straight into a leaf of its own (clone3 with
// CLONE_INTO_CGROUP, so no process of it ever runs outside it), and its
// processes are those of the leaf, not only of its process group: a
// daemon that called setsid() is still the app's. Stopping signals the
// process group and every process of the leaf; SIGKILL is cgroup.kill;
// an instance's processes are gone when cgroup.events says "populated 0".
// Where the unified hierarchy is missing or not writable Patrol tracks
// process groups only, as before (see DetectCgroups).

// cgroups is a Runner's cgroup state.
type cgroups struct {
	mu     sync.Mutex
	root   string              // the directory of the instances' leaves; "" off
	mount  string              // the unified hierarchy's mount point
	v2     map[string]bool     // controllers enabled for the leaves
	v1     map[string]string   // controller -> cgroup v1 directory of the instances'
	v1m    map[string]string   // controller -> its v1 mount point
	v1home map[string]string   // controller -> Patrol's own v1 cgroup
	byPGID map[int]*instCgroup // spawn process group -> its cgroups
}

// instCgroup is one instance's cgroups.
type instCgroup struct {
	leaf string            // its cgroup v2 leaf ("": none)
	v1   map[string]string // controller -> its cgroup v1 directory
}

// tagDir is a directory of the instance named after its tag.
func (ic *instCgroup) tagDir() string {
	if ic.leaf != "" {
		return ic.leaf
	}
	for _, d := range ic.v1 {
		return d
	}
	return ""
}

// remove removes the instance's cgroups (rmdir: only when empty).
func (ic *instCgroup) remove() { removeCgroups(ic.leaf, slices.Collect(maps.Values(ic.v1))) }

// UseCgroups makes the Runner start each app instance in a leaf under
// c.Root ("" leaves it tracking process groups only) and enforce limits
// as c found possible.
func (r *Runner) UseCgroups(c Cgroups) {
	r.cg.mu.Lock()
	defer r.cg.mu.Unlock()
	r.cg.root = c.Root
	r.cg.mount = c.mounts.v2
	r.cg.v2, r.cg.v1 = c.V2, c.V1
	r.cg.v1m = c.mounts.v1
	r.cg.v1home = map[string]string{}
	for ctl := range c.V1 {
		r.cg.v1home[ctl] = filepath.Join(c.mounts.v1[ctl], c.own.v1[ctl])
	}
	r.cg.byPGID = map[int]*instCgroup{}
}

// RemoveCgroupRoot removes the root of the instances' cgroups if nothing
// is left in it (at Patrol's clean shutdown).
func (r *Runner) RemoveCgroupRoot() {
	if root := r.CgroupRoot(); root != "" {
		removeEmptyChildren(root)
		os.Remove(root)
	}
	r.cg.mu.Lock()
	v1 := r.cg.v1
	r.cg.mu.Unlock()
	for _, d := range v1 {
		removeEmptyChildren(d)
		os.Remove(d)
	}
}

// CgroupRoot is where the Runner puts its instances' cgroups ("": none).
func (r *Runner) CgroupRoot() string {
	r.cg.mu.Lock()
	defer r.cg.mu.Unlock()
	return r.cg.root
}

// layout is the controllers the instances' limits use: on cgroup v2, and
// the v1 directories (maps set once by UseCgroups, read-only after).
func (c *cgroups) layout() (v2 map[string]bool, v1 map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.v2, c.v1
}

// leafFor names an instance's leaf ("" without cgroups): one per
// instance, so that nothing aimed at an ended instance (a late SIGKILL,
// cgroup.kill) can reach the next one.
func (c *cgroups) leafFor(tag string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.root == "" || tag == "" || strings.ContainsAny(tag, "/\x00") || tag == "." || tag == ".." {
		return ""
	}
	return filepath.Join(c.root, tag)
}

// openLeaf makes an instance's leaf and opens it for clone3: one mkdir
// and one open (each leaf is new); the root is made again only when the
// mkdir finds it gone (an operator or a test's clean-up may remove it while
// it is empty).
func openLeaf(leaf string) (int, error) {
	err := unix.Mkdir(leaf, 0o755)
	if errors.Is(err, unix.ENOENT) {
		if err := os.MkdirAll(filepath.Dir(leaf), 0o755); err != nil {
			return -1, fmt.Errorf("create cgroup %s: %w", filepath.Dir(leaf), err)
		}
		err = unix.Mkdir(leaf, 0o755)
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("create cgroup %s: %w", leaf, err)
	}
	fd, err := unix.Open(leaf, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(leaf)
		return -1, fmt.Errorf("open cgroup %s: %w", leaf, err)
	}
	return fd, nil
}

// register records an instance's cgroups under its process group.
func (c *cgroups) register(pgid int, leaf string, v1 []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byPGID == nil {
		return
	}
	ic := &instCgroup{leaf: leaf}
	for _, d := range v1 {
		for ctl, root := range c.v1 {
			if filepath.Dir(d) == root {
				if ic.v1 == nil {
					ic.v1 = map[string]string{}
				}
				ic.v1[ctl] = d
			}
		}
	}
	c.byPGID[pgid] = ic
}

// addV1 records that an instance is in a cgroup v1 directory now.
func (c *cgroups) addV1(pgid int, ctl, dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ic := c.byPGID[pgid]; ic != nil {
		if ic.v1 == nil {
			ic.v1 = map[string]string{}
		}
		ic.v1[ctl] = dir
	}
}

// leafOf is the cgroup v2 leaf of a process group ("": none).
func (c *cgroups) leafOf(pgid int) string {
	if ic := c.of(pgid); ic != nil {
		return ic.leaf
	}
	return ""
}

// of is the cgroups of a process group: registered at its start, or found
// through its leader's /proc/PID/cgroup (an instance adopted after
// Patrol's restart) when they are under Patrol's roots. nil: none.
func (c *cgroups) of(pgid int) *instCgroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	if (c.root == "" && len(c.v1) == 0) || pgid <= 1 || c.byPGID == nil {
		return nil
	}
	if ic, ok := c.byPGID[pgid]; ok {
		return ic
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pgid) + "/cgroup")
	if err != nil {
		return nil
	}
	p := parseCgroupFile(b)
	ic := &instCgroup{}
	if leaf := filepath.Join(c.mount, p.v2); p.hasV2 && c.root != "" && c.mount != "" && filepath.Dir(leaf) == c.root {
		ic.leaf = leaf
	}
	for ctl, path := range p.v1 {
		if root := c.v1[ctl]; root != "" && filepath.Dir(filepath.Join(c.v1m[ctl], path)) == root {
			if ic.v1 == nil {
				ic.v1 = map[string]string{}
			}
			ic.v1[ctl] = filepath.Join(c.v1m[ctl], path)
		}
	}
	if ic.leaf == "" && ic.v1 == nil {
		return nil
	}
	c.byPGID[pgid] = ic
	return ic
}

// forget drops an instance's cgroups from the registry.
func (c *cgroups) forget(pgid int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byPGID, pgid)
}

// leafPIDs lists a leaf's processes.
func leafPIDs(leaf string) []int {
	b, err := os.ReadFile(filepath.Join(leaf, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil && n > 1 && n != os.Getpid() {
			out = append(out, n)
		}
	}
	return out
}

// populated reads a leaf's cgroup.events ("populated 1"); a leaf that
// cannot be read is empty.
func populated(leaf string) bool {
	b, err := os.ReadFile(filepath.Join(leaf, "cgroup.events"))
	if err != nil {
		return len(leafPIDs(leaf)) > 0
	}
	return bytes.Contains(b, []byte("populated 1"))
}

// SignalGroup sends sig to process group pgid and, when the group's
// instance has a cgroup, to every process in it (SIGKILL through
// cgroup.kill, which reaches processes forked meanwhile too). It succeeds
// when anything was signalled.
func (r *Runner) SignalGroup(pgid int, sig string) error {
	err := SignalGroup(pgid, sig)
	leaf := r.cg.leafOf(pgid)
	if leaf == "" {
		return err
	}
	s, ok := SignalNumber(sig)
	if !ok {
		return err
	}
	sent := false
	if s == syscall.SIGKILL {
		if werr := os.WriteFile(filepath.Join(leaf, "cgroup.kill"), []byte("1"), 0); werr == nil {
			sent = true
		}
	}
	for _, pid := range leafPIDs(leaf) {
		if syscall.Kill(pid, s) == nil {
			sent = true
		}
	}
	if sent {
		return nil
	}
	return err
}

// GroupAlive reports whether process group pgid, or the cgroup of its
// instance, still has a live process. An instance's cgroups are removed
// (in the background) once nothing is left in them.
func (r *Runner) GroupAlive(pgid int) bool {
	alive := GroupAlive(pgid)
	ic := r.cg.of(pgid)
	if ic == nil {
		return alive
	}
	if ic.leaf != "" && populated(ic.leaf) {
		return true
	}
	if !alive {
		// The rmdirs (tens of microseconds each on cgroupfs) are not the
		// loop's to wait for; one that fails leaves an empty cgroup, which
		// RemoveCgroupRoot (and the next Patrol's start) removes.
		r.cg.forget(pgid)
		go ic.remove()
	}
	return alive
}
