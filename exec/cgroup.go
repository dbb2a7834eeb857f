package exec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	root   string         // the directory of the instances' leaves; "" off
	mount  string         // the unified hierarchy's mount point
	byPGID map[int]string // spawn process group -> leaf
}

// DetectCgroups finds where this host lets Patrol put its apps'
// cgroups: root (a configured directory) when given, else the directory
// name under Patrol's own cgroup in the unified hierarchy (a name stable
// across Patrol's restarts, so that a new Patrol finds its instances'
// cgroups). It returns the directory, created, or "" and why not.
func DetectCgroups(root, name string) (string, string) {
	if root == "" {
		mount, err := cgroup2Mount()
		if err != nil {
			return "", err.Error()
		}
		own, err := ownCgroup()
		if err != nil {
			return "", err.Error()
		}
		root = filepath.Join(mount, own, name)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Sprintf("cannot create %s: %v", root, err)
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		return "", fmt.Sprintf("%s is not a cgroup v2 directory", root)
	}
	// Leaves of instances that ended while no Patrol watched them (after
	// a kill -9) are empty: remove them. A populated one is an instance
	// this Patrol is about to adopt.
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if leaf := filepath.Join(root, e.Name()); e.IsDir() && !populated(leaf) {
			os.Remove(leaf)
		}
	}
	return root, ""
}

// cgroup2Mount is the mount point of the unified hierarchy.
func cgroup2Mount() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("no cgroup v2: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// ... mount-point ... - fstype source options
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f := strings.Fields(pre)
		if ok && len(f) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return f[4], nil
		}
	}
	return "", errors.New("no cgroup v2 (unified) hierarchy is mounted")
}

// ownCgroup is this process's cgroup in the unified hierarchy ("/" at
// its root).
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("this process has no cgroup v2 membership")
}

// UseCgroups makes the Runner start each app instance in a leaf under
// root (from DetectCgroups; "" leaves it tracking process groups only).
func (r *Runner) UseCgroups(root string) {
	r.cg.mu.Lock()
	defer r.cg.mu.Unlock()
	r.cg.root = root
	r.cg.mount, _ = cgroup2Mount()
	r.cg.byPGID = map[int]string{}
}

// RemoveCgroupRoot removes the root of the instances' cgroups if nothing
// is left in it (at Patrol's clean shutdown).
func (r *Runner) RemoveCgroupRoot() {
	if root := r.CgroupRoot(); root != "" {
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if e.IsDir() {
				os.Remove(filepath.Join(root, e.Name())) // empty leaves only
			}
		}
		os.Remove(root)
	}
}

// CgroupRoot is where the Runner puts its instances' cgroups ("": none).
func (r *Runner) CgroupRoot() string {
	r.cg.mu.Lock()
	defer r.cg.mu.Unlock()
	return r.cg.root
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

// register records an instance's leaf under its process group.
func (c *cgroups) register(pgid int, leaf string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byPGID == nil {
		return
	}
	c.byPGID[pgid] = leaf
}

// leafOf is the leaf of a process group: registered at its start, or found
// through its leader's /proc/PID/cgroup (an instance adopted after
// Patrol's restart) when that is a leaf under root.
func (c *cgroups) leafOf(pgid int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.root == "" || pgid <= 1 {
		return ""
	}
	if leaf, ok := c.byPGID[pgid]; ok {
		return leaf
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pgid) + "/cgroup")
	if err != nil || c.mount == "" {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			leaf := filepath.Join(c.mount, p)
			if filepath.Dir(leaf) == c.root {
				c.byPGID[pgid] = leaf
				return leaf
			}
		}
	}
	return ""
}

// forget drops a leaf from the registry.
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
// instance, still has a live process. An instance's leaf is removed (in
// the background) once nothing is left in it.
func (r *Runner) GroupAlive(pgid int) bool {
	alive := GroupAlive(pgid)
	leaf := r.cg.leafOf(pgid)
	if leaf == "" {
		return alive
	}
	if populated(leaf) {
		return true
	}
	if !alive {
		// The rmdir (tens of microseconds on cgroupfs) is not the loop's
		// to wait for; one that fails leaves an empty leaf, which
		// RemoveCgroupRoot (and the next Patrol's start) removes.
		r.cg.forget(pgid)
		go os.Remove(leaf)
	}
	return alive
}
