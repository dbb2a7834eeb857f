// Command patrol-chaos attacks a real `patrol run` and checks what it
// leaves: the outside review of issue 14, repeatable.
//
// Usage:
//
//	patrol-chaos [--patrol PATH] [--rounds N] [--cycles N] [--conns N] [--short] [--json] [--seed N]
//
// It runs four parts, each on its own Patrol in a temporary directory (HTTP
// and UDP on loopback port 0), and prints a table:
//
//   - kill -9 rounds: 20 long-running apps, 5 crash-loopers and 2 forking
//     daemons under churn (restart toggles through the API). At a random
//     moment Patrol is killed with SIGKILL, right after a /status/ read, and
//     started again on the same config and state. After each round: exactly
//     one live process per app (at most one for a crash-looper), the pid
//     status shows is that process, no zombie child of Patrol, and every
//     history entry the last status showed is still there; the long-running
//     apps and daemons are counted as adopted (same pid) or restarted. At
//     the end a graceful shutdown (SIGTERM) must leave no process behind.
//   - leak soak: an app that exits at once, restarted at once (reset-after
//     0), for thousands of cycles; Patrol's descriptors, threads,
//     goroutines, RSS and PSS are sampled and must stay flat, and its log
//     files within log-retention.max-instances.
//   - connections: idle TCP connections held open and slow-header clients
//     while /status/ latency is measured; the slow clients must be cut off
//     by the server's header timeout.
//   - malformed and oversized requests over HTTP and UDP: each must get its
//     expected refusal (or silence over UDP), and no app may be disturbed.
//
// Every process a run starts carries PATROL_CHAOS=<token> in its
// environment; whatever is left at the end (or on Ctrl-C) is killed. The
// command exits 1 when a check fails.
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
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/patrolhq/patrol/internal/proctool"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "helper" {
		os.Exit(runHelper(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command line.
type options struct {
	patrol string
	rounds int
	cycles int
	conns  int
	short  bool
	json   bool
	seed   uint64
	dir    string
	keep   bool
	only   map[string]bool
}

// partNames are the parts --only can select, in the order they run.
var partNames = []string{"rounds", "soak", "connections", "requests"}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("patrol-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.StringVar(&o.patrol, "patrol", "bin/patrol", "`PATH` of the patrol binary to attack")
	fs.IntVar(&o.rounds, "rounds", 0, "kill -9 rounds (default 10; --short 3)")
	fs.IntVar(&o.cycles, "cycles", 0, "crash cycles of the leak soak after its warm-up (default 20000; --short 1000)")
	fs.IntVar(&o.conns, "conns", 0, "idle connections held open (default 200; --short 50)")
	fs.BoolVar(&o.short, "short", false, "a short run (the one `make test` runs)")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed (default: random, printed for a rerun)")
	fs.StringVar(&o.dir, "dir", "", "`DIR` for the run's temporary directory (default $TMPDIR)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, state, logs)")
	only := fs.String("only", "", "run only the parts `NAMES` (comma-separated: "+strings.Join(partNames, ", ")+")")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	pick := func(v *int, full, short int) {
		if *v == 0 {
			*v = full
			if o.short {
				*v = short
			}
		}
	}
	pick(&o.rounds, 10, 3)
	pick(&o.cycles, 20000, 1000)
	pick(&o.conns, 200, 50)
	if o.rounds < 1 || o.cycles < 1 || o.conns < 1 {
		return nil, errors.New("counts must be at least 1")
	}
	o.only = map[string]bool{}
	for _, n := range partNames {
		o.only[n] = *only == ""
	}
	if *only != "" {
		for n := range strings.SplitSeq(*only, ",") {
			if !slices.Contains(partNames, n) {
				return nil, fmt.Errorf("--only: unknown part %q (known: %s)", n, strings.Join(partNames, ", "))
			}
			o.only[n] = true
		}
	}
	if o.seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		for _, c := range b {
			o.seed = o.seed<<8 | uint64(c)
		}
	}
	return o, nil
}

// Check is one line of the report.
type Check struct {
	Name   string             `json:"name"`
	OK     bool               `json:"ok"`
	Detail string             `json:"detail"`
	Values map[string]float64 `json:"values,omitempty"`
}

// Report is the whole run.
type Report struct {
	Patrol  string  `json:"patrol"`
	Seed    uint64  `json:"seed"`
	Short   bool    `json:"short"`
	Started string  `json:"started"`
	Seconds float64 `json:"seconds"`
	Checks  []Check `json:"checks"`
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "patrol-chaos:", err)
		return 2
	}
	if fi, err := os.Stat(o.patrol); err != nil || fi.IsDir() {
		fmt.Fprintf(stderr, "patrol-chaos: no patrol binary at %s: run `make build` first (or pass --patrol PATH)\n", o.patrol)
		return 2
	}
	o.patrol, _ = filepath.Abs(o.patrol)
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "patrol-chaos:", err)
		return 1
	}
	if err := proctool.BecomeSubreaper(); err != nil {
		fmt.Fprintln(stderr, "patrol-chaos: become a child subreaper:", err)
		return 1
	}
	tmp, err := os.MkdirTemp(o.dir, "patrol-chaos-")
	if err != nil {
		fmt.Fprintln(stderr, "patrol-chaos:", err)
		return 1
	}
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	h := &harness{patrol: o.patrol, self: self, tmp: tmp, token: hex.EncodeToString(tok[:]), log: stderr,
		rng: mrand.New(mrand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15)), waited: map[int]bool{}}
	stopReaper := h.startReaper()
	defer func() {
		stopReaper()
		if left := h.sweep(); left > 0 {
			h.logf("killed %d leftover processes", left)
		}
		if o.keep {
			h.logf("kept %s", tmp)
		} else {
			os.RemoveAll(tmp)
		}
	}()
	h.logf("seed %d (rerun with --seed %d)", o.seed, o.seed)

	rep := &Report{Patrol: o.patrol, Seed: o.seed, Short: o.short, Started: time.Now().Format(time.RFC3339)}
	t0 := time.Now()
	parts := []func(context.Context, *options) []Check{h.killRounds, h.soak, h.connections, h.malformed}
	for i, part := range parts {
		if ctx.Err() != nil {
			break
		}
		if !o.only[partNames[i]] {
			continue
		}
		rep.Checks = append(rep.Checks, part(ctx, o)...)
		h.sweep()
	}
	rep.Seconds = time.Since(t0).Seconds()
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "patrol-chaos: interrupted")
		return 130
	}
	failed := 0
	for _, c := range rep.Checks {
		if !c.OK {
			failed++
		}
	}
	if o.json {
		b, _ := json.MarshalIndent(rep, "", "  ")
		stdout.Write(append(b, '\n'))
	} else {
		writeTable(stdout, rep)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// writeTable prints the report as a table.
func writeTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "patrol-chaos: %s, seed %d%s, %.0f s\n\n", rep.Patrol, rep.Seed, map[bool]string{true: ", short"}[rep.Short], rep.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "check\tresult\tdetail")
	for _, c := range rep.Checks {
		res := "ok"
		if !c.OK {
			res = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, res, strings.ReplaceAll(c.Detail, "\n", "; "))
	}
	tw.Flush()
}
