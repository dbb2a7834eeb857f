package exec

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
)

// fakeCgroupFS makes directories with the files of cgroup v2 (a pure v2
// host cannot be had here: the unified hierarchy of this project's
// machines has no controllers). controllers maps a directory, relative to
// the mount, to its cgroup.controllers.
func fakeCgroupFS(t *testing.T, controllers map[string]string) string {
	mount := t.TempDir()
	for dir, ctls := range controllers {
		d := filepath.Join(mount, dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{"cgroup.controllers": ctls, "cgroup.subtree_control": "", "cgroup.procs": ""} {
			if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return mount
}

// TestEnableV2: a controller available higher up is enabled on the way
// down to the root (each cgroup between writes "+memory" into
// cgroup.subtree_control), and then for the root's leaves; one available
// nowhere says so.
func TestEnableV2(t *testing.T) {
	mount := fakeCgroupFS(t, map[string]string{".": "cpu memory pids", "svc": "", "svc/patrol-x": ""})
	root := filepath.Join(mount, "svc/patrol-x")
	if why := enableV2(mount, root, "memory"); why != "" {
		t.Fatal(why)
	}
	for _, d := range []string{mount, filepath.Join(mount, "svc"), root} {
		if got := readSmallFile(filepath.Join(d, "cgroup.subtree_control")); got != "+memory" {
			t.Errorf("%s/cgroup.subtree_control = %q, want +memory", d, got)
		}
	}
	// Available at the root already: only the root's subtree_control.
	mount = fakeCgroupFS(t, map[string]string{".": "pids", "svc": "pids", "svc/patrol-x": "pids"})
	root = filepath.Join(mount, "svc/patrol-x")
	if why := enableV2(mount, root, "pids"); why != "" {
		t.Fatal(why)
	}
	if got := readSmallFile(filepath.Join(mount, "svc", "cgroup.subtree_control")); got != "" {
		t.Errorf("the parent's subtree_control was written: %q", got)
	}
	if got := readSmallFile(filepath.Join(root, "cgroup.subtree_control")); got != "+pids" {
		t.Errorf("root subtree_control %q", got)
	}
	want := "no cgroup v2 cpu controller (not in " + filepath.Join(mount, "cgroup.controllers") + ")"
	if why := enableV2(mount, root, "cpu"); why != want {
		t.Errorf("cpu: %q, want %q", why, want)
	}
}

// TestLimitFiles: what each layout gets written, dropped limits as the
// kernel's "no limit".
func TestLimitFiles(t *testing.T) {
	l := desired.Limits{MemoryMax: 64 << 20, MemoryHigh: 48 << 20, CPUQuota: 50000, CPUPeriod: 100000, PIDsMax: 10}
	for _, c := range []struct {
		name    string
		version int
		limits  desired.Limits
		want    [][2]string
	}{
		{"v2", 2, l, [][2]string{{"memory.high", "50331648"}, {"memory.max", "67108864"}, {"cpu.max", "50000 100000"}, {"pids.max", "10"}}},
		{"v2 none", 2, desired.Limits{}, [][2]string{{"memory.high", "max"}, {"memory.max", "max"}, {"cpu.max", "max 100000"}, {"pids.max", "max"}}},
		{"v1", 1, l, [][2]string{{"memory.limit_in_bytes", "67108864"}, {"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "50000"}, {"pids.max", "10"}}},
		{"v1 none", 1, desired.Limits{}, [][2]string{{"memory.limit_in_bytes", "-1"}, {"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "-1"}, {"pids.max", "max"}}},
	} {
		if got := limitFiles(c.version, []string{"memory", "cpu", "pids"}, c.limits); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// TestPrepareLayouts: on a (fake) pure cgroup v2 host the limits are
// written into the instance's leaf before its start and no v1 directory is
// made; on a hybrid one the v1 controllers get a directory each, for the
// fork to be born in; a limit on a controller that is nowhere is not
// written anywhere (status says it is not enforced).
func TestPrepareLayouts(t *testing.T) {
	l := desired.Limits{MemoryMax: 32 << 20, PIDsMax: 10, CPUQuota: 20000, CPUPeriod: 100000}
	root := t.TempDir()
	c := &cgroups{root: root, v2: map[string]bool{"memory": true, "pids": true}, byPGID: map[int]*instCgroup{}}
	dirs, err := c.prepare("inst1", l)
	if err != nil || dirs != nil {
		t.Fatalf("v2: %v %v", dirs, err)
	}
	for f, v := range map[string]string{"memory.max": "33554432", "memory.high": "max", "pids.max": "10"} {
		if got := readSmallFile(filepath.Join(root, "inst1", f)); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
	if fileExists(filepath.Join(root, "inst1", "cpu.max")) {
		t.Error("cpu.max written without a cpu controller")
	}

	pids, mem := t.TempDir(), t.TempDir()
	c = &cgroups{root: t.TempDir(), v1: map[string]string{"pids": pids, "memory": mem}, byPGID: map[int]*instCgroup{}}
	dirs, err = c.prepare("inst2", l)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(dirs)
	want := []string{filepath.Join(mem, "inst2"), filepath.Join(pids, "inst2")}
	slices.Sort(want)
	if !slices.Equal(dirs, want) {
		t.Fatalf("v1 directories %q, want %q", dirs, want)
	}
	if got := readSmallFile(filepath.Join(pids, "inst2", "pids.max")); got != "10" {
		t.Errorf("pids.max %q", got)
	}
	if got := readSmallFile(filepath.Join(mem, "inst2", "memory.limit_in_bytes")); got != "33554432" {
		t.Errorf("memory.limit_in_bytes %q", got)
	}
	c.register(4242, filepath.Join(c.root, "inst2"), dirs)
	if ic := c.of(4242); ic == nil || ic.v1["pids"] != filepath.Join(pids, "inst2") || ic.v1["memory"] != filepath.Join(mem, "inst2") {
		t.Errorf("registered: %+v", ic)
	}
	// No limits: nothing made.
	if dirs, err := c.prepare("inst3", desired.Limits{}); err != nil || dirs != nil || fileExists(filepath.Join(pids, "inst3")) {
		t.Errorf("no limits: %v %v", dirs, err)
	}
}

// TestNotEnforced: how the reasons are told per limit key.
func TestNotEnforced(t *testing.T) {
	c := Cgroups{V2: map[string]bool{"cpu": true}, V1: map[string]string{"memory": "/sys/fs/cgroup/memory/patrol-x"}}
	c.notEnforced(map[string]string{"pids": "no pids controller"})
	want := map[string]string{"memory-high": "cgroup v1 has no memory.high (only cgroup v2 throttles)", "pids-max": "no pids controller"}
	if len(c.NotEnforced) != len(want) || c.NotEnforced["memory-high"] != want["memory-high"] || c.NotEnforced["pids-max"] != want["pids-max"] {
		t.Errorf("not enforced: %q", c.NotEnforced)
	}
}

// TestForkInV1: a child forked by forkInV1 is born in the given cgroup
// v1 directory (on this host's real pids hierarchy) and Patrol's threads
// stay in Patrol's own; a directory that cannot be joined fails the start
// and leaves no thread behind.
func TestForkInV1(t *testing.T) {
	mount := readMounts().v1["pids"]
	if mount == "" || os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("no writable cgroup v1 pids hierarchy on this CI machine")
		}
		t.Skip("needs root and a cgroup v1 pids hierarchy (hybrid hosts)")
	}
	home := filepath.Join(mount, ownCgroups().v1["pids"])
	root := filepath.Join(home, "patrol-test-forkinv1")
	dir := filepath.Join(root, "inst")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir); os.Remove(root) })
	c := &cgroups{v1: map[string]string{"pids": root}, v1home: map[string]string{"pids": home}}
	tag, _ := subscribe(t)
	s := helperSpec(t, tag, "sleep")
	pid, err := c.forkInV1([]string{dir}, func() (int, error) {
		l, err := testRunner.Start(s)
		return l.PGID, err
	})
	if err != nil {
		t.Fatal(err)
	}
	killGroupAtCleanup(t, pid)
	if got := readSmallFile(filepath.Join(dir, "cgroup.procs")); strings.TrimSpace(got) != strconv.Itoa(pid) {
		t.Errorf("%s/cgroup.procs = %q, want the child %d", dir, got, pid)
	}
	if got := readSmallFile(filepath.Join(dir, "tasks")); strings.Contains(got, strconv.Itoa(os.Getpid())) || strings.Count(got, "\n") != 1 {
		t.Errorf("%s/tasks = %q: a thread of Patrol stayed in it", dir, got)
	}
	if _, err := c.forkInV1([]string{filepath.Join(root, "missing")}, func() (int, error) { t.Fatal("forked"); return 0, nil }); err == nil {
		t.Error("joined a missing cgroup")
	}
}

// TestWatchEmpty: with the real unified hierarchy, an instance's leaf
// emptying is told through OnEmpty (inotify on cgroup.events) once its
// last process (here a child that left the process group) is gone.
func TestWatchEmpty(t *testing.T) {
	c := DetectCgroups("", "patrol-test-"+strings.ToLower(t.Name()))
	if c.Root == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("no usable cgroup v2 on this CI machine: %s", c.RootWhy)
		}
		t.Skipf("no usable cgroup v2 here: %s", c.RootWhy)
	}
	r := NewRunner(slog.New(slog.DiscardHandler), func(observed.Exit) {})
	r.UseCgroups(c)
	t.Cleanup(r.RemoveCgroupRoot)
	emptied := make(chan struct{}, 4)
	r.OnEmpty(func() { emptied <- struct{}{} })
	tag := "watch-empty"
	s := helperSpec(t, tag, "sleep")
	s.Cgroup = r.cg.leafFor(tag)
	l, err := r.Start(s)
	if err != nil {
		t.Fatal(err)
	}
	killGroupAtCleanup(t, l.PGID)
	if !r.WatchEmpty(l.PGID) {
		t.Fatal("WatchEmpty refused a leaf")
	}
	select {
	case <-emptied:
		t.Fatal("told empty while the process runs")
	case <-time.After(50 * time.Millisecond):
	}
	if err := r.SignalGroup(l.PGID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-emptied:
	case <-time.After(timeout):
		t.Fatal("not told that the leaf emptied")
	}
	if populated(s.Cgroup) {
		t.Error("told empty, but the leaf is populated")
	}
	eventually(t, "the group gone", func() bool { return !r.GroupAlive(l.PGID) })
	r.Close()
	// A closed Runner watches nothing.
	if r.WatchEmpty(l.PGID) {
		t.Error("a closed Runner watches")
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// BenchmarkSpawnCgroup: a start (fork, exec of /bin/true) without a
// cgroup, into a new cgroup v2 leaf, and with cgroup v1 limits (a
// directory per controller, the fork from a thread in them): the cost per
// start of each.
func BenchmarkSpawnCgroup(b *testing.B) {
	c := DetectCgroups("", "patrol-bench-spawn")
	if c.Root == "" {
		b.Skip(c.RootWhy)
	}
	r := NewRunner(slog.New(slog.DiscardHandler), func(observed.Exit) {})
	r.UseCgroups(c)
	defer r.RemoveCgroupRoot()
	lim := desired.Limits{MemoryMax: 256 << 20, PIDsMax: 64}
	for _, mode := range []string{"none", "v2 leaf", "v1 limits"} {
		b.Run(mode, func(b *testing.B) {
			for i := range b.N {
				tag := fmt.Sprintf("b%d", i)
				s := Spec{Path: "/bin/true", Tag: tag, Role: observed.RoleLeader}
				if mode != "none" {
					s.Cgroup = r.cg.leafFor(tag)
				}
				if mode == "v1 limits" {
					dirs, err := r.cg.prepare(tag, lim)
					if err != nil {
						b.Fatal(err)
					}
					s.CgroupsV1 = dirs
				}
				l, err := r.Start(s)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				for r.GroupAlive(l.PGID) {
					time.Sleep(100 * time.Microsecond)
				}
				b.StartTimer()
			}
		})
	}
}

// TestJoinFailureKeepsV2: a start whose cgroup v1 directory cannot be
// joined fails with that reason and leaves no v2 leaf; the Runner goes on
// using cgroup v2.
func TestJoinFailureKeepsV2(t *testing.T) {
	c := DetectCgroups("", "patrol-test-joinfailure")
	if c.Root == "" || c.V1["pids"] == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("this CI machine should be hybrid: v2 %q (%s), v1 %v", c.Root, c.RootWhy, c.V1)
		}
		t.Skip("needs a hybrid host (cgroup v2 and the v1 pids hierarchy)")
	}
	r := NewRunner(slog.New(slog.DiscardHandler), func(observed.Exit) {})
	r.UseCgroups(c)
	t.Cleanup(r.RemoveCgroupRoot)
	tag := "join-failure"
	dirs, err := r.cg.prepare(tag, desired.Limits{PIDsMax: 5})
	if err != nil || len(dirs) != 1 {
		t.Fatalf("prepare: %v %v", dirs, err)
	}
	if err := os.Remove(dirs[0]); err != nil {
		t.Fatal(err)
	}
	_, err = r.Start(Spec{Path: "/bin/true", Tag: tag, Role: observed.RoleLeader, Cgroup: r.cg.leafFor(tag), CgroupsV1: dirs})
	if err == nil || !strings.Contains(err.Error(), "join cgroup "+dirs[0]) {
		t.Fatalf("start with a missing v1 directory: %v", err)
	}
	if r.CgroupRoot() == "" {
		t.Error("a failed v1 join turned cgroup v2 off")
	}
	if fileExists(r.cg.leafFor(tag)) {
		t.Error("the failed start's v2 leaf is left")
	}
}

// TestSIGKILLIsCgroupKill: SIGKILL to an instance with a cgroup is
// cgroup.kill on its leaf (which also reaches processes forked while the
// signal goes out); a gentler signal is not. The leaf here is a plain
// directory standing for one, so the write can be seen.
func TestSIGKILLIsCgroupKill(t *testing.T) {
	tag, ch := subscribe(t)
	l := start(t, helperSpec(t, tag, "sleep"))
	leaf := filepath.Join(t.TempDir(), "leaf")
	if err := os.Mkdir(leaf, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Runner{}
	r.cg.root = filepath.Dir(leaf)
	r.cg.byPGID = map[int]*instCgroup{l.PGID: {leaf: leaf}}
	kill := filepath.Join(leaf, "cgroup.kill")
	if err := r.SignalGroup(l.PGID, "SIGWINCH"); err != nil {
		t.Fatal(err)
	}
	if fileExists(kill) {
		t.Error("SIGWINCH wrote cgroup.kill")
	}
	if !Alive(l.PID) {
		t.Fatal("SIGWINCH ended the helper")
	}
	if err := r.SignalGroup(l.PGID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	if got := readSmallFile(kill); got != "1" {
		t.Errorf("cgroup.kill = %q after SIGKILL, want 1", got)
	}
	waitExit(t, ch)
}
