// Command patrol-bench measures a real `patrol run` against a minimal
// spawn-and-wait supervisor built into the same binary.
//
// Usage:
//
//	patrol-bench [--patrol PATH] [--json] [--quick] [--only NAME,...]
//
// Each benchmark starts `patrol run` on a generated config in a temporary
// directory (state and logs there too, HTTP and UDP on loopback) and then
// the baseline, the "minimal Go spawn+Wait loop" of issue 9, on the same
// config: the same binary re-executed as `patrol-bench baseline`, which
// starts every app with os/exec and restarts it from a per-app cmd.Wait
// goroutine. The apps are tiny real processes: /bin/sleep, and for
// keepalive 2 this binary re-executed as a forking daemon (`patrol-bench
// helper daemonize`). The benchmarks are crash (SIGKILL → new process),
// start (N apps until all run), idle (CPU, RSS, threads, goroutines and
// wakeups with N idle apps), status (GET /status/ latency), edit (a config
// edit until the changed app runs again, and how many others restarted)
// and ping (HTTP and UDP ping throughput and latency). Each measurement is
// printed as min/p50/p99 or a value, with the baseline, the ratio and the
// target of issue 9; --json prints the same data as JSON.
//
// Every process a run starts carries PATROL_BENCH=<token> in its
// environment; supervisors are stopped gracefully after each benchmark and
// whatever is left is killed, also on Ctrl-C.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/patrolhq/patrol/internal/proctool"
)

// reexecuted runs the roles the bench re-executes its own binary in (the
// baseline supervisor, the helper apps) when args name one, and exits.
func reexecuted(args []string) {
	if len(args) > 1 {
		switch args[1] {
		case "baseline":
			os.Exit(runBaseline(args[2:]))
		case "helper":
			os.Exit(runHelper(args[2:]))
		}
	}
}

func main() {
	reexecuted(os.Args)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	os.Exit(run(ctx, cancel, os.Args[1:], os.Stdout, os.Stderr))
}

// benchNames are the benchmarks --only can select.
var benchNames = []string{"crash", "start", "idle", "status", "edit", "ping", "probes", "usage"}

// options are the command line.
type options struct {
	patrol       string
	json         bool
	jsonFile     string
	quick        bool
	only         map[string]bool
	limits       bool
	sizes        []int
	editSize     int
	probeApps    int
	crashReps    int
	startReps    int
	editReps     int
	statusReqs   int
	idle         time.Duration
	settle       time.Duration
	pingDuration time.Duration
	workers      int
	keep         bool
	dir          string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("patrol-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.StringVar(&o.patrol, "patrol", "bin/patrol", "`PATH` of the patrol binary to measure")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of a table")
	fs.StringVar(&o.jsonFile, "json-file", "", "also write the JSON results to `PATH`")
	fs.BoolVar(&o.quick, "quick", false, "fewer repetitions, shorter windows, sizes 100 and 500 only")
	only := fs.String("only", "", "run only the benchmarks `NAMES` (comma-separated: "+strings.Join(benchNames, ", ")+")")
	sizes := fs.String("sizes", "", "`LIST` of app counts for start, idle and status (default 100,500,1000; --quick 100,500)")
	fs.IntVar(&o.editSize, "edit-size", 500, "`N` apps in the edit benchmark")
	fs.IntVar(&o.probeApps, "probe-apps", 0, "`N` apps with a 1 s TCP probe in the probes benchmark, and apps of the usage benchmark (default 1000; --quick 200)")
	fs.IntVar(&o.crashReps, "crash-reps", 0, "SIGKILLs per app and supervisor (default 200; --quick 10)")
	fs.IntVar(&o.startReps, "start-reps", 0, "starts per size and supervisor (default 5; --quick 3)")
	fs.IntVar(&o.editReps, "edit-reps", 0, "config edits per supervisor (default 50; --quick 5)")
	fs.IntVar(&o.statusReqs, "status-reqs", 1000, "GET /status/ requests per size and supervisor")
	fs.DurationVar(&o.idle, "idle", 0, "idle measurement window (default 30s; --quick 10s)")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "wait after a start before the idle window")
	fs.DurationVar(&o.pingDuration, "ping-duration", 0, "duration of each ping throughput run (default 5s; --quick 2s)")
	fs.IntVar(&o.workers, "workers", 8, "concurrent clients of the ping benchmarks")
	fs.BoolVar(&o.limits, "limits", false, "give every Patrol app cgroup limits (memory-max 256M, pids-max 64, cpu-max 100%): their cost per start")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs) for inspection")
	fs.StringVar(&o.dir, "dir", "", "`DIR` to make the run's temporary directory in (default: $TMPDIR or /tmp). Patrol's apps' log\n"+
		"files are created there and the baseline writes none, so its file system's cost of creating files\n"+
		"counts against Patrol (see BENCHMARKS.md: on ext4 without a journal, recent deletions make it slow)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: patrol-bench [--patrol PATH] [--json] [--quick] [--only NAME,...] [flags]")
		fmt.Fprintln(fs.Output(), "\nMeasures `patrol run` against a minimal built-in spawn+Wait supervisor (issue 9).")
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	pick := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	pick(&o.crashReps, 200, 10)
	pick(&o.startReps, 5, 3)
	pick(&o.editReps, 50, 5)
	pick(&o.probeApps, 1000, 200)
	if o.idle == 0 {
		o.idle = 30 * time.Second
		if o.quick {
			o.idle = 10 * time.Second
		}
	}
	if o.pingDuration == 0 {
		o.pingDuration = 5 * time.Second
		if o.quick {
			o.pingDuration = 2 * time.Second
		}
	}
	o.only = map[string]bool{}
	if *only == "" {
		for _, n := range benchNames {
			o.only[n] = true
		}
	} else {
		for n := range strings.SplitSeq(*only, ",") {
			n = strings.TrimSpace(n)
			if !slices.Contains(benchNames, n) {
				return nil, fmt.Errorf("--only: unknown benchmark %q (known: %s)", n, strings.Join(benchNames, ", "))
			}
			o.only[n] = true
		}
	}
	if *sizes == "" {
		*sizes = "100,500,1000"
		if o.quick {
			*sizes = "100,500"
		}
	}
	for f := range strings.SplitSeq(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--sizes: bad size %q", f)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.editSize < 1 || o.probeApps < 1 || o.crashReps < 1 || o.startReps < 1 || o.editReps < 1 || o.statusReqs < 1 || o.workers < 1 {
		return nil, errors.New("counts must be at least 1")
	}
	return o, nil
}

// Report is the --json output.
type Report struct {
	Machine  Machine  `json:"machine"`
	Command  string   `json:"command"`
	Quick    bool     `json:"quick"`
	Started  string   `json:"started"`
	Seconds  float64  `json:"seconds"`
	Results  []Result `json:"results"`
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Machine describes where the numbers were measured.
type Machine struct {
	CPU           string `json:"cpu"`
	Cores         int    `json:"cores"`
	Kernel        string `json:"kernel"`
	Go            string `json:"go"`
	PatrolVersion string `json:"patrol_version"`
	// LoadBefore and LoadAfter are /proc/loadavg's 1, 5 and 15 minute
	// averages when the run started and ended: other work on the machine
	// skews every number.
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
	// FileSystem is the type of the file system the run's directory (and
	// so Patrol's app logs) is on: "ext4", "tmpfs", ...
	FileSystem string `json:"file_system"`
}

// loadavg returns the 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func machine(patrolBin string) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if out, err := exec.Command(patrolBin, "version").Output(); err == nil {
		m.PatrolVersion = strings.TrimSpace(string(out))
	}
	return m
}

// fileSystem names the type of the file system dir is on.
func fileSystem(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch uint32(st.Type) {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4" // also ext2 and ext3: they share the magic
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("file system type %#x", uint32(st.Type))
}

// run is main without the process: it returns the exit code. cancel is
// called on SIGINT or SIGTERM.
func run(ctx context.Context, cancel context.CancelFunc, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "patrol-bench:", err)
		return 2
	}
	if fi, err := os.Stat(o.patrol); err != nil || fi.IsDir() {
		fmt.Fprintf(stderr, "patrol-bench: no patrol binary at %s: run `make build` first (or pass --patrol PATH)\n", o.patrol)
		return 2
	}
	if o.patrol, err = filepath.Abs(o.patrol); err != nil {
		fmt.Fprintln(stderr, "patrol-bench:", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "patrol-bench:", err)
		return 1
	}
	if err := proctool.BecomeSubreaper(); err != nil {
		fmt.Fprintln(stderr, "patrol-bench: become a child subreaper:", err)
		return 1
	}
	tmp, err := os.MkdirTemp(o.dir, "patrol-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "patrol-bench:", err)
		return 1
	}
	rep := &Report{Machine: machine(o.patrol), Command: strings.Join(append([]string{"patrol-bench"}, args...), " "),
		Quick: o.quick, Started: time.Now().Format(time.RFC3339)}
	rep.Machine.FileSystem = fileSystem(tmp)
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	e := &env{patrol: o.patrol, self: self, tmp: tmp, limits: o.limits, token: hex.EncodeToString(tok[:]), log: stderr,
		supers: map[int]*super{}}
	defer func() {
		e.stopAll()
		if o.keep {
			e.logf("kept %s", tmp)
		} else {
			os.RemoveAll(tmp)
		}
	}()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	stopSigs := make(chan struct{})
	defer close(stopSigs)
	go func() {
		select {
		case <-sigs:
		case <-stopSigs:
			return
		}
		e.logf("interrupted: stopping every process of the run (again to kill them at once)")
		cancel()
		select {
		case <-sigs:
			proctool.Sweep(e.marker(), nil)
			os.Exit(130)
		case <-stopSigs:
		}
	}()

	t0 := time.Now()
	b := &bencher{e: e, o: o, rep: rep}
	b.all(ctx)
	rep.Seconds = time.Since(t0).Seconds()
	rep.Machine.LoadAfter = loadavg()
	if ctx.Err() != nil {
		return 130
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		fmt.Fprintln(stderr, "patrol-bench:", err)
		return 1
	}
	js = append(js, '\n')
	if o.jsonFile != "" {
		if err := os.WriteFile(o.jsonFile, js, 0o644); err != nil {
			fmt.Fprintln(stderr, "patrol-bench:", err)
			return 1
		}
	}
	if o.json {
		if _, err := stdout.Write(js); err != nil {
			fmt.Fprintln(stderr, "patrol-bench:", err)
			return 1
		}
	} else {
		fmt.Fprintf(stdout, "patrol-bench: %s, %d cores, %s, %s; %s\nrun directory on %s; load average before %s, after %s\n\n",
			rep.Machine.CPU, rep.Machine.Cores, rep.Machine.Kernel, rep.Machine.Go, rep.Machine.PatrolVersion,
			rep.Machine.FileSystem, rep.Machine.LoadBefore, rep.Machine.LoadAfter)
		if err := writeTable(stdout, rep.Results); err != nil {
			fmt.Fprintln(stderr, "patrol-bench:", err)
			return 1
		}
		for _, w := range rep.Warnings {
			fmt.Fprintln(stdout, "warning:", w)
		}
		for _, er := range rep.Errors {
			fmt.Fprintln(stdout, "error:", er)
		}
		fmt.Fprintf(stdout, "\n(%.0f s)\n", rep.Seconds)
	}
	if len(rep.Errors) > 0 {
		return 1
	}
	return 0
}
