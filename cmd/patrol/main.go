// Command patrol is Patrol's command line: run the supervisor, validate and
// plan configs, and query or toggle a running daemon. It is wiring only;
// the work is done by the root package patrol.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"time"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/schema"
)

func main() {
	patrol.Launcher() // does not return when this process is an app's launcher
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // invalid config, failed command
	exitUsage = 2 // bad command line
)

// command is one subcommand.
type command struct {
	name    string
	args    string // positional arguments, for the usage line
	summary string
	flags   func(*flag.FlagSet) func(args []string) int
}

type io3 struct {
	stdout, stderr io.Writer
}

func commands(ctx context.Context, o io3) []command {
	return []command{
		{"run", "", "supervise the apps and services of a config", func(fs *flag.FlagSet) func([]string) int {
			var opts patrol.Options
			fs.StringVar(&opts.ConfigPath, "config", "config.json", "config file `PATH`")
			fs.StringVar(&opts.HTTPAddr, "http", "", "HTTP listen `ADDR` (overrides http.listen)")
			fs.StringVar(&opts.UDPAddr, "udp", "", "UDP listen `ADDR` (overrides udp.listen)")
			fs.StringVar(&opts.StateDir, "state-dir", "", "state `DIR` (default .patrol/ beside the config)")
			format := fs.String("log-format", "text", "log `FORMAT`: text or json")
			source := sourceFlags(fs, "read the config from etcd instead of --config: ")
			fs.StringVar(&source.opts.Host, "host", "", "this host's `NAME` in the fleet (with --source): its config is PREFIX/hosts/NAME/config.json")
			fs.DurationVar(&source.opts.StatusTTL, "status-ttl", 10*time.Second, "how long (`DURATION`) this host's status stays in etcd after it died (with --source)")
			return func(args []string) int {
				if len(args) > 0 {
					fmt.Fprintf(o.stderr, "patrol run: unexpected arguments %q (the config is given with --config)\n", args)
					return exitUsage
				}
				if source.url != "" || source.config != "" {
					src, err := source.options()
					if err != nil {
						fmt.Fprintf(o.stderr, "patrol run: %v\n", err)
						return exitUsage
					}
					opts.Source = src
				}
				return runDaemon(ctx, o, opts, *format)
			}
		}},
		{"validate", "PATH...", "check config files; exit 0 if all are valid, 1 if not", func(fs *flag.FlagSet) func([]string) int {
			strict := fs.Bool("strict", false, "treat warnings (an app's binary missing or not executable, its user or group unknown here) as errors")
			return func(args []string) int { return validate(o, args, *strict) }
		}},
		{"plan", "PATH", "show what applying a config would do, without doing it", func(fs *flag.FlagSet) func([]string) int {
			conn := clientFlags(fs)
			asJSON := fs.Bool("json", false, "print the plan as JSON")
			detailed := fs.Bool("detailed-exitcode", false, "exit 0 for no changes, 2 for changes, 1 for errors (usage and connection errors too)")
			require := fs.Bool("require-server", false, "fail (exit 1) when no Patrol answers, instead of planning against an empty one")
			source := sourceFlags(fs, "plan for a fleet host: what it would do if PATH were written to its key in ")
			host := fs.String("host", "", "the fleet host's `NAME` (with --source)")
			return func(args []string) int {
				return planCmd(ctx, o, args, planArgs{conn: conn, asJSON: *asJSON, detailed: *detailed, require: *require, source: source, host: *host})
			}
		}},
		{"status", "[ID]", "show the state of a running Patrol, or of one app or service with its history; exit 3 while the config file has an error", func(fs *flag.FlagSet) func([]string) int {
			conn := clientFlags(fs)
			asJSON := fs.Bool("json", false, "print the raw status JSON")
			return func(args []string) int {
				if len(args) > 1 {
					fmt.Fprintf(o.stderr, "patrol status: want at most one app or service id, got %q\n", args)
					return exitUsage
				}
				return status(ctx, o, conn, *asJSON, args)
			}
		}},
		{"toggle", "app|service ID ACTION", "enable|disable|restart|runonce-enable|runonce-disable|clear an entry", func(fs *flag.FlagSet) func([]string) int {
			var t toggleArgs
			t.conn = clientFlags(fs)
			fs.StringVar(&t.secret, "secret", "", "the entry's `SECRET`")
			fs.Uint64Var(&t.cas, "cas", 0, "only apply if the entry's CAS counter is `N`")
			fs.Var(&t.ttl, "ttl", "make the override expire after `DURATION` (30s, 2h, or a number of seconds)")
			fs.BoolVar(&t.verbose, "v", false, "also print the CAS counter for the next change")
			return func(args []string) int { return toggle(ctx, o, t, args) }
		}},
		{"scale", "APP N", "run N replicas of an app with \"replicas\" until --ttl ends or the file changes", func(fs *flag.FlagSet) func([]string) int {
			a := scaleArgs{conn: clientFlags(fs)}
			fs.StringVar(&a.secret, "secret", "", "the app's `SECRET`")
			fs.Uint64Var(&a.cas, "cas", 0, "only apply if the app's CAS counter is `N`")
			fs.Var(&a.ttl, "ttl", "make the scale expire after `DURATION` (30s, 2h, or a number of seconds)")
			return func(args []string) int { return scale(ctx, o, a, args) }
		}},
		{"logs", "APP", "print an app's log; with -f follow it across restarts", func(fs *flag.FlagSet) func([]string) int {
			a := logsArgs{conn: clientFlags(fs)}
			fs.BoolVar(&a.follow, "f", false, "follow: keep printing what the app writes, across restarts, until interrupted")
			fs.BoolVar(&a.follow, "follow", false, "the same as -f")
			fs.BoolVar(&a.stderr, "stderr", false, "the app's stderr instead of its stdout")
			fs.IntVar(&a.tail, "tail", 200, "start with the last `N` lines (0-10000)")
			fs.StringVar(&a.secret, "secret", "", "the app's `SECRET`, if it has one")
			fs.DurationVar(&a.since, "since", 0, "instead of the last lines, everything the instances started within `DURATION` wrote (10m, 2h), oldest first")
			return func(args []string) int { return logs(ctx, o, a, args) }
		}},
		{"completion", "bash|zsh|fish", "print a shell completion script (source <(patrol completion bash))", func(fs *flag.FlagSet) func([]string) int {
			return func(args []string) int { return completion(o, args) }
		}},
		{"fleet", "status | apply DIR", "the fleet in etcd: every host's revisions and status, or write a directory of configs", func(fs *flag.FlagSet) func([]string) int {
			source := sourceFlags(fs, "the fleet's etcd: ")
			asJSON := fs.Bool("json", false, "print JSON")
			var ao patrol.FleetApplyOptions
			fs.BoolVar(&ao.DryRun, "dry-run", false, "apply: validate and print the plans, write nothing")
			fs.IntVar(&ao.MaxUnavailable, "max-unavailable", 0, "apply: roll out `N` hosts at a time, each batch converged before the next")
			fs.DurationVar(&ao.Timeout, "timeout", 5*time.Minute, "apply --max-unavailable: how long (`DURATION`) a batch may take to converge")
			return func(args []string) int { return fleetCmd(ctx, o, fs, source, args, asJSON, &ao) }
		}},
		{"schema", "", "print the JSON Schema of config.json", func(fs *flag.FlagSet) func([]string) int {
			return func(args []string) int {
				if len(args) > 0 {
					fmt.Fprintln(o.stderr, "patrol schema: takes no arguments")
					return exitUsage
				}
				o.stdout.Write(schema.JSONSchema)
				return exitOK
			}
		}},
		{"version", "", "print Patrol's version", func(fs *flag.FlagSet) func([]string) int {
			return func(args []string) int {
				fmt.Fprintf(o.stdout, "patrol %s (%s, %s/%s)\n", patrol.Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
				return exitOK
			}
		}},
	}
}

// runDaemon is `patrol run`: SIGTERM or SIGINT starts a graceful shutdown
// and a second one forces it; SIGHUP reloads the config.
func runDaemon(ctx context.Context, o io3, opts patrol.Options, format string) int {
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(o.stderr, nil)
	case "json":
		h = slog.NewJSONHandler(o.stderr, nil)
	default:
		fmt.Fprintf(o.stderr, "patrol run: --log-format must be text or json, got %q\n", format)
		return exitUsage
	}
	opts.Log = slog.New(h)
	opts.SettleMemory = true
	p, err := patrol.New(opts)
	if err != nil {
		for _, line := range patrol.Problems(err) {
			fmt.Fprintf(o.stderr, "%s: %s\n", opts.ConfigPath, line)
		}
		if errors.Is(err, fs.ErrNotExist) && opts.Source == nil {
			fmt.Fprintf(o.stderr, "patrol run: no config at %s: give one with --config PATH (examples/config.json is a start; patrol schema prints its JSON Schema)\n", opts.ConfigPath)
		}
		return exitFail
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, append(patrol.ShutdownSignals, patrol.ReloadSignal)...)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		shutdown := false
		for s := range sigs {
			switch {
			case s == patrol.ReloadSignal:
				opts.Log.Info("reloading config", "signal", s.String())
				_, _ = p.Reload()
			case !shutdown:
				shutdown = true
				opts.Log.Info("graceful shutdown; send the signal again to kill every app now", "signal", s.String())
				cancel()
			default:
				opts.Log.Warn("second shutdown signal: killing every app", "signal", s.String())
				p.Kill()
			}
		}
	}()
	if err := p.Run(ctx); err != nil {
		opts.Log.Error("patrol stopped", "err", err)
		return exitFail
	}
	return exitOK
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := io3{stdout, stderr}
	cmds := commands(ctx, o)
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args = []string{"version"}
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 && args[0] == "help" {
			args = []string{args[1], "--help"}
		} else {
			usage(o.stdout, cmds)
			if len(args) == 0 {
				return exitUsage
			}
			return exitOK
		}
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		fs := flag.NewFlagSet("patrol "+c.name, flag.ContinueOnError)
		fs.SetOutput(o.stderr)
		action := c.flags(fs)
		fs.Usage = func() {
			w := fs.Output()
			fmt.Fprintf(w, "usage: patrol %s", c.name)
			hasFlags := false
			fs.VisitAll(func(*flag.Flag) { hasFlags = true })
			if hasFlags {
				fmt.Fprint(w, " [flags]")
			}
			if c.args != "" {
				fmt.Fprint(w, " "+c.args)
			}
			fmt.Fprintf(w, "\n\n%s\n", c.summary)
			if hasFlags {
				fmt.Fprintln(w, "\nflags:")
				printFlags(w, fs)
			}
		}
		if wantsHelp(args[1:]) {
			fs.SetOutput(o.stdout)
			fs.Usage()
			return exitOK
		}
		pos, err := parseInterspersed(fs, args[1:])
		if err != nil {
			return exitUsage // the flag package printed the problem and the usage
		}
		return action(pos)
	}
	fmt.Fprintf(o.stderr, "patrol: unknown command %q\n\n", args[0])
	usage(o.stderr, cmds)
	return exitUsage
}

// printFlags lists a command's flags as --name PLACEHOLDER, the form the
// README and the completions use (the flag package accepts one dash or
// two), with their defaults.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		dashes := "--"
		if len(f.Name) == 1 {
			dashes = "-"
		}
		placeholder, usage := flag.UnquoteUsage(f)
		line := "  " + dashes + f.Name
		if placeholder != "" {
			line += " " + placeholder
		}
		if def := f.DefValue; def != "" && def != "0" && def != "false" && def != "0s" {
			usage += fmt.Sprintf(" (default %s)", def)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, usage)
	})
}

// wantsHelp reports whether args ask for help before any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments ("patrol plan config.json --json"); "--" ends flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first positional argument or after "--".
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func usage(w io.Writer, cmds []command) {
	fmt.Fprintln(w, "usage: patrol COMMAND [flags] [args]")
	fmt.Fprintln(w, "\nPatrol supervises apps and services from a watched config.json.")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'patrol help COMMAND' (or 'patrol COMMAND --help') for a command's flags;")
	fmt.Fprintln(w, "'patrol --version' for the version. The client commands (status, plan, toggle,")
	fmt.Fprintln(w, "scale, logs) read $PATROL_SERVER and $PATROL_TOKEN.")
}

// validate checks each file with the loader `patrol run` uses and prints
// one "PATH: json.path: problem" line per problem, and a warning line for
// what is valid but will fail on this host now (an app's binary that is
// not there or not executable: it may be installed later, so it is an
// error only with --strict).
func validate(o io3, paths []string, strict bool) int {
	if len(paths) == 0 {
		fmt.Fprintln(o.stderr, "patrol validate: no config files given (usage: patrol validate PATH...)")
		return exitUsage
	}
	code := exitOK
	for _, p := range paths {
		st, err := patrol.LoadConfig(p)
		if err != nil {
			for _, line := range patrol.Problems(err) {
				fmt.Fprintf(o.stderr, "%s: %s\n", p, line)
			}
			code = exitFail
			continue
		}
		warnings := 0
		warn := func(path, msg string) {
			warnings++
			level := "warning"
			if strict {
				level, code = "error", exitFail
			}
			fmt.Fprintf(o.stderr, "%s: %s: %s: %s\n", p, path, level, msg)
		}
		for _, a := range st.Apps() {
			why := ""
			switch fi, err := os.Stat(a.Binary); {
			case err != nil:
				why = "does not exist here"
			case fi.IsDir():
				why = "is a directory"
			case fi.Mode()&0o111 == 0:
				why = "is not executable"
			}
			if why != "" {
				warn("apps."+a.ID+".binary", a.Binary+" "+why+" (the app will fail to start until it is there)")
			}
			if why := patrol.IdentityProblem(a); why != "" {
				warn("apps."+a.ID+".user", why+" (the app will fail to start on a host like this one)")
			}
		}
		limits := patrol.LimitsProblems(st)
		for _, path := range slices.Sorted(maps.Keys(limits)) {
			warn(path, "limits: not enforced on a host like this one ("+limits[path]+")")
		}
		if strict && warnings > 0 {
			continue
		}
		fmt.Fprintf(o.stdout, "%s: valid (%s, %s; revision %s)\n", p,
			count(len(st.Apps()), "app"), count(len(st.Services()), "service"), st.Revision())
	}
	return code
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
