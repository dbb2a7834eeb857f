package exec

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of /proc start times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// bootTime returns when the system booted (/proc/stat's btime).
func bootTime() (time.Time, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("/proc/stat btime: %w", err)
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, errors.New("/proc/stat has no btime")
}

// StartedAt converts a /proc start time (clock ticks since boot) to wall
// time, to within a second (btime's resolution).
func StartedAt(startTime uint64) (time.Time, error) {
	bt, err := bootTime()
	if err != nil {
		return time.Time{}, err
	}
	return bt.Add(time.Duration(startTime) * time.Second / clockTicks), nil
}

// FindSpawned finds processes that look like ones Patrol started for an
// app around a given time and then lost track of (it crashed between
// starting a process and recording its pid): processes running argv[0]
// (by /proc/PID/exe) with exactly argv (by /proc/PID/cmdline) in directory
// dir (by /proc/PID/cwd), with env (such as "PATROL_ID=web", when not
// empty) in their environment (by /proc/PID/environ), that lead their own
// process group, started within window of at. It is a fallback for
// re-adoption after a crash; every criterion must hold. The environment
// tells apart apps that run the same command in the same directory (a
// pool of workers), which would otherwise all match.
func FindSpawned(argv []string, dir, env string, at time.Time, window time.Duration) []int {
	if len(argv) == 0 {
		return nil
	}
	want, err := filepath.EvalSymlinks(argv[0])
	if err != nil {
		want = argv[0]
	}
	wantCmd := strings.Join(argv, "\x00") + "\x00"
	bt, err := bootTime()
	if err != nil {
		return nil
	}
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	var out []int
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid == os.Getpid() {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.pgid != pid || st.state == 'Z' || st.state == 'X' {
			continue
		}
		started := bt.Add(time.Duration(st.startTime) * time.Second / clockTicks)
		if started.Before(at.Add(-window)) || started.After(at.Add(window)) {
			continue
		}
		exe, err := os.Readlink("/proc/" + n + "/exe")
		if err != nil || strings.TrimSuffix(exe, " (deleted)") != want {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + n + "/cwd"); err != nil || cwd != dir {
			continue
		}
		if cmd, err := os.ReadFile("/proc/" + n + "/cmdline"); err != nil || string(cmd) != wantCmd {
			continue
		}
		if env != "" && !hasEnv(pid, env) {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// hasEnv reports whether the environment pid started with holds the entry
// kv ("KEY=VALUE") exactly.
func hasEnv(pid int, kv string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for e := range strings.SplitSeq(string(b), "\x00") {
		if e == kv {
			return true
		}
	}
	return false
}

// LockDir takes an exclusive lock on dir (a lock file inside it), so that
// two Patrols never share a state directory. The lock lasts until the
// returned file is closed or the process exits.
func LockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: another Patrol uses this state directory", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}
