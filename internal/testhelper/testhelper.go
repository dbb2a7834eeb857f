// Package testhelper is test support shared by Patrol's test binaries: the
// helper commands a test binary runs as when Patrol starts it as an app
// ("patrol-helper CMD ARGS..."), and checks for processes and leaks. Only
// tests import it.
package testhelper

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Arg is the first argument that makes a test binary run as a helper.
const Arg = "patrol-helper"

// Dispatch runs the helper command in os.Args and exits if the binary was
// started as a helper; otherwise it returns. Call it first in TestMain.
func Dispatch() {
	if len(os.Args) > 2 && os.Args[1] == Arg {
		// syscall.Exit, not os.Exit: a race-instrumented binary sleeps a
		// second in os.Exit, which would slow every helper's exit.
		syscall.Exit(Run(os.Args[2], os.Args[3:]))
	}
}

// Run runs one helper command and returns its exit code:
//
//	sleep [PIDFILE]           write the pid, then sleep forever
//	exit N                    exit with code N
//	exit-after DURATION N     sleep, then exit with code N
//	ignore-sigterm [PIDFILE]  ignore SIGTERM, write the pid, sleep forever
//	print-env FILE            write the environment, one per line; sleep
//	spawn-grandchild PIDFILE  start "sleep PIDFILE.grandchild" in our process
//	                          group, write our pid, sleep forever
//	daemonize [ARGS...]       start "daemon ARGS..." in a new session and exit
//	                          once it wrote its pid to $PATROL_PID
//	daemon                    write the pid to $PATROL_PID, sleep forever
//	write-pidfile TEXT        write TEXT to $PATROL_PID, sleep forever
//	write-env FILE            write the environment, one per line; exit 0
//	echo-all ARGS...          write "args: ARGS" and fd 3's content to stdout,
//	                          "env: $EXTRA" to stderr, then stdin to stdout;
//	                          sleep forever
//	ping-http INTERVAL [PIDFILE] ping $PATROL_HTTP's /api/ as $PATROL_ID,
//	                          with our pid, every INTERVAL; write our pid
//	ping-udp INTERVAL [PIDFILE]  the same over $PATROL_UDP
//
// and the health helpers of runHealth.
func Run(cmd string, args []string) int {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch cmd {
	case "sleep":
		if f := arg(0); f != "" {
			WritePID(f, os.Getpid())
		}
		select {}
	case "exit":
		n, _ := strconv.Atoi(arg(0))
		return n
	case "exit-after":
		d, _ := time.ParseDuration(arg(0))
		n, _ := strconv.Atoi(arg(1))
		time.Sleep(d)
		return n
	case "ignore-sigterm":
		signal.Ignore(syscall.SIGTERM)
		if f := arg(0); f != "" {
			WritePID(f, os.Getpid())
		}
		select {}
	case "print-env":
		os.WriteFile(arg(0), []byte(strings.Join(os.Environ(), "\n")), 0o644)
		select {}
	case "spawn-grandchild":
		self, _ := os.Executable()
		p, err := os.StartProcess(self, []string{self, Arg, "sleep", arg(0) + ".grandchild"},
			&os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}})
		if err != nil {
			return 3
		}
		p.Release()
		WritePID(arg(0), os.Getpid())
		select {}
	case "setsid-child":
		// A child that leaves the process group (setsid) and keeps
		// running; its pid goes to arg(0); the parent stays.
		self, _ := os.Executable()
		p, err := os.StartProcess(self, []string{self, Arg, "sleep"},
			&os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}, Sys: &syscall.SysProcAttr{Setsid: true}})
		if err != nil {
			return 3
		}
		WritePID(arg(0), p.Pid)
		p.Release()
		select {}
	case "daemonize":
		self, _ := os.Executable()
		p, err := os.StartProcess(self, append([]string{self, Arg, "daemon"}, args...),
			&os.ProcAttr{Env: os.Environ(), Files: []*os.File{nil, os.Stdout, os.Stderr}, Sys: &syscall.SysProcAttr{Setsid: true}})
		if err != nil {
			return 3
		}
		pidFile := os.Getenv("PATROL_PID")
		for range 2500 {
			if b, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(p.Pid) {
				p.Release()
				return 0
			}
			time.Sleep(2 * time.Millisecond)
		}
		return 4
	case "daemon":
		WritePID(os.Getenv("PATROL_PID"), os.Getpid())
		select {}
	case "ping-http", "ping-udp":
		every, _ := time.ParseDuration(arg(0))
		if f := arg(1); f != "" {
			WritePID(f, os.Getpid())
		}
		return pingLoop(cmd == "ping-udp", every)
	case "write-env":
		os.WriteFile(arg(0), []byte(strings.Join(os.Environ(), "\n")), 0o644)
		return 0
	case "echo-all":
		fmt.Printf("args: %s\n", strings.Join(args, " "))
		if f := os.NewFile(3, "fd3"); f != nil {
			b, _ := io.ReadAll(f)
			fmt.Printf("fd3: %s\n", b)
		}
		fmt.Fprintf(os.Stderr, "env: %s\n", os.Getenv("EXTRA"))
		io.Copy(os.Stdout, os.Stdin)
		select {}
	case "write-pidfile":
		os.WriteFile(os.Getenv("PATROL_PID"), []byte(arg(0)), 0o644)
		select {}
	}
	if code, ok := runHealth(cmd, args); ok {
		return code
	}
	fmt.Fprintln(os.Stderr, "unknown helper", cmd)
	return 2
}

// pingLoop pings Patrol every interval until it is killed.
func pingLoop(udp bool, every time.Duration) int {
	env := "PATROL_HTTP"
	if udp {
		env = "PATROL_UDP"
	}
	var addrs []string
	if err := json.Unmarshal([]byte(os.Getenv(env)), &addrs); err != nil || len(addrs) == 0 {
		fmt.Fprintln(os.Stderr, "no addresses in", env)
		return 2
	}
	body, _ := json.Marshal(map[string]any{"id": os.Getenv("PATROL_ID"), "group": "app", "ping": true, "pid": os.Getpid()})
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if udp {
			if c, err := net.Dial("udp", addrs[0]); err == nil {
				c.Write(body)
				c.Close()
			}
		} else if resp, err := client.Post("http://"+addrs[0]+"/api/", "application/json", bytes.NewReader(body)); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		time.Sleep(every)
	}
}

// WritePID writes pid to path atomically.
func WritePID(path string, pid int) {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o644); err == nil {
		os.Rename(tmp, path)
	}
}

// ReadPID reads a pid file written by WritePID; 0 if there is none yet.
func ReadPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	state, _, ok := stat(strconv.Itoa(pid))
	return ok && state != "Z"
}

// stat returns the state and parent pid of a /proc entry.
func stat(pid string) (state, ppid string, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", "", false
	}
	return f[0], f[1], true
}

// StartTime returns a process's start time in clock ticks since boot
// (field 22 of /proc/PID/stat), or 0.
func StartTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// Parent returns the parent pid of pid, or 0.
func Parent(pid int) int {
	_, ppid, _ := stat(strconv.Itoa(pid))
	n, _ := strconv.Atoi(ppid)
	return n
}

// Children lists the processes whose parent is this process, zombies
// included, as "pid state comm".
func Children() []string {
	me := strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if state, ppid, ok := stat(e.Name()); ok && ppid == me {
			comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
			out = append(out, e.Name()+" "+state+" "+strings.TrimSpace(string(comm)))
		}
	}
	return out
}

// SetSubreaper makes this process the reaper of orphaned descendants, so
// that a test sees (and can reap or report) whatever its daemon leaves.
func SetSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return e
	}
	return nil
}

// ReapOrphans reaps exited orphans the test process inherited as a
// subreaper, and returns how many it reaped.
func ReapOrphans() int {
	n := 0
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err != nil || pid <= 0 {
			return n
		}
		n++
	}
}

// CountFDs returns the number of open file descriptors of this process.
func CountFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

// LeakCheck reports what tests left behind: child processes (zombies
// included), file descriptors beyond fdsBefore (plus slack), and goroutines
// beyond maxGoroutines. It polls for up to five seconds, since cleanup runs
// in the background. It returns the problems, empty when there are none.
func LeakCheck(fdsBefore, maxGoroutines int) []string {
	RemoveEmptyCgroups()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var problems []string
		if kids := Children(); len(kids) > 0 {
			problems = append(problems, fmt.Sprintf("child processes left: %v", kids))
		}
		if n := CountFDs(); n > fdsBefore+2 {
			problems = append(problems, fmt.Sprintf("file descriptors: %d before the tests, %d after", fdsBefore, n))
		}
		if n := runtime.NumGoroutine(); n > maxGoroutines {
			buf := make([]byte, 1<<16)
			problems = append(problems, fmt.Sprintf("%d goroutines left:\n%s", n, buf[:runtime.Stack(buf, true)]))
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			return problems
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ImageResident returns how many KiB of pid's read-only mappings ("r-xp"
// and "r--p") of its own executable are resident, and how large they are
// (from /proc/PID/smaps).
func ImageResident(pid int) (resident, size int, err error) {
	var exe syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/exe", pid), &exe); err != nil {
		return 0, 0, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, 0, err
	}
	ino := strconv.FormatUint(exe.Ino, 10)
	in := false
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = f[4] == ino && (f[1] == "r-xp" || f[1] == "r--p")
			continue
		}
		if !in || len(f) < 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "Size:":
			size += n
		case "Rss:":
			resident += n
		}
	}
	return resident, size, nil
}

// RunWithPatrol builds cmd/patrol (from the package directory dir, such
// as "../patrol") into a temp directory, sets *bin to it, runs the tests
// and removes it; it returns the tests' exit code (1 if the build fails).
// For the TestMain of commands that drive a real `patrol run`.
func RunWithPatrol(m interface{ Run() int }, dir string, bin *string) int {
	tmp, err := os.MkdirTemp("", "patrol-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	*bin = filepath.Join(tmp, "patrol")
	if out, err := exec.Command("go", "build", "-o", *bin, dir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", dir, err, out)
		return 1
	}
	code := m.Run()
	RemoveEmptyCgroups()
	return code
}

// RemoveEmptyCgroups removes what Patrols killed with SIGKILL left in the
// cgroup hierarchies (v2, and v1 where limits were): empty instance cgroups under "patrol-*" and those
// directories once empty (a Patrol that runs recreates its own). The
// tests call it when they end.
func RemoveEmptyCgroups() {
	var roots []string
	for _, pattern := range []string{"unified/patrol-*", "patrol-*", "*/patrol-*", "*/*/patrol-*", "*/*/*/patrol-*"} {
		m, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", pattern))
		roots = append(roots, m...)
	}
	for _, root := range roots {
		leaves, _ := os.ReadDir(root)
		for _, l := range leaves {
			if l.IsDir() {
				os.Remove(filepath.Join(root, l.Name())) // fails while populated
			}
		}
		os.Remove(root)
	}
}

// CgroupFile finds, in a process's /proc/PID/cgroup (b), the file v2name
// of its Patrol cgroup v2 leaf when that has it (the controller ctl is on
// v2), else the file v1name of its Patrol cgroup v1 directory for ctl; ""
// when it is in no Patrol cgroup for ctl.
func CgroupFile(b []byte, ctl, v2name, v1name string) string {
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 || !strings.Contains(f[2], "/patrol-") {
			continue
		}
		if f[0] == "0" {
			for _, m := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
				if p := filepath.Join(m, f[2], v2name); exists(p) {
					return p
				}
			}
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == ctl {
				return filepath.Join("/sys/fs/cgroup", f[1], f[2], v1name)
			}
		}
	}
	return ""
}

// WaitCgroupFile is CgroupFile for process pid, waiting up to wait for it
// to be in the cgroup (on cgroup v1 the launcher joins the directories
// after the start, before it execs the app).
func WaitCgroupFile(pid int, ctl, v2name, v1name string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		if err != nil {
			return "", err
		}
		if p := CgroupFile(b, ctl, v2name, v1name); p != "" {
			return p, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("process %d is in no cgroup of Patrol's for %s:\n%s", pid, ctl, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// Buffer is a bytes.Buffer safe for a writing goroutine and a reading
// test.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
