// Command demoapp is a small program that Patrol supervises in its example
// configurations. It supports all four of Patrol's keepalive modes, so each
// example config can show one of them with a real process.
//
// Patrol starts the program with PATROL_ID (the lower-case app id),
// PATROL_KEEPALIVE (1, 2, 3 or 4), and, depending on the app config,
// PATROL_PID (the absolute path of the pid file) and PATROL_HTTP and
// PATROL_UDP (JSON arrays of host:port addresses of Patrol's keepalive
// listeners). The -mode flag overrides PATROL_KEEPALIVE, and mode 1 is used
// when neither is given.
//
// In every mode the program prints a tick line to stdout every -interval, and
// every fifth tick it also prints a line to stderr. Mode 1 (PID_PATROL) does
// nothing else: it stays in the foreground and Patrol watches its pid. Mode 2
// (PID_APP) behaves like a classic forking daemon: the launcher re-executes
// itself in a new session, the daemon writes its own pid to PATROL_PID, and the
// launcher exits 0 once the pid file names the daemon. Mode 3 (HTTP) posts a
// JSON ping to the first PATROL_HTTP address every -interval, and mode 4 (UDP)
// sends the same JSON as one datagram to the first PATROL_UDP address and
// prints any reply. The program talks to no address other than those.
//
// SIGTERM and SIGINT stop the program with exit code 0, unless
// -ignore-sigterm is set, in which case SIGTERM is ignored so that Patrol's
// escalation to SIGKILL can be demonstrated. SIGUSR1 makes it exit with code
// 10 and SIGUSR2 with code 12, which follows the convention of the original
// Patrol's test app. SIGHUP prints a line and is otherwise ignored. The
// -crash-after flag makes the program exit with -exit-code after the given
// time, to demonstrate restarts.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Keepalive modes, numbered as in PATROL_KEEPALIVE.
const (
	modePIDPatrol = 1
	modePIDApp    = 2
	modeHTTP      = 3
	modeUDP       = 4
)

// daemonEnv marks the re-executed daemon child in mode 2.
const daemonEnv = "DEMOAPP_DAEMON"

// config is everything the program needs, gathered from flags and the
// environment.
type config struct {
	id            string
	mode          int
	interval      time.Duration
	crashAfter    time.Duration
	exitCode      int
	secret        string
	ignoreSIGTERM bool
	pidPath       string
	httpAddrs     []string
	udpAddrs      []string
	// listen, readyAfter, unhealthyAfter and notify are the health
	// demonstration (health.go).
	listen         string
	readyAfter     time.Duration
	unhealthyAfter time.Duration
	notify         bool
	notifySocket   string
	watchdog       time.Duration
}

// prefix is the start of the tick and keepalive lines, "demoapp <id>".
func (c config) prefix() string {
	if c.id == "" {
		return "demoapp"
	}
	return "demoapp " + c.id
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demoapp: %v\n", err)
		os.Exit(2)
	}
	if cfg.mode == modePIDApp && os.Getenv(daemonEnv) != "1" {
		os.Exit(launch(cfg))
	}
	os.Exit(run(cfg))
}

// parseConfig reads the flags in args and the PATROL_* and DEMOAPP_*
// environment variables through getenv.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("demoapp", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.DurationVar(&cfg.interval, "interval", 2*time.Second, "time between tick lines and keepalive pings")
	fs.DurationVar(&cfg.crashAfter, "crash-after", 0, "exit with -exit-code after this time (0 means never)")
	fs.IntVar(&cfg.exitCode, "exit-code", 1, "exit code used by -crash-after")
	mode := fs.Int("mode", 0, "keepalive mode 1-4 (overrides PATROL_KEEPALIVE; default 1)")
	fs.StringVar(&cfg.secret, "secret", "", "secret sent with keepalive pings (default $DEMOAPP_SECRET)")
	fs.BoolVar(&cfg.ignoreSIGTERM, "ignore-sigterm", false, "ignore SIGTERM, to demonstrate escalation to SIGKILL")
	fs.StringVar(&cfg.listen, "listen", "", "serve GET /health on this address (HOST:PORT) once ready")
	fs.DurationVar(&cfg.readyAfter, "ready-after", 0, "wait this long before listening and sending READY=1")
	fs.DurationVar(&cfg.unhealthyAfter, "unhealthy-after", 0, "answer /health with 500 after this time (0 means never)")
	fs.BoolVar(&cfg.notify, "notify", false, "send READY=1 and STATUS= to $NOTIFY_SOCKET once ready, and WATCHDOG=1 when $WATCHDOG_USEC is set")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.interval <= 0 {
		return config{}, fmt.Errorf("-interval must be positive, got %v", cfg.interval)
	}
	if cfg.crashAfter < 0 {
		return config{}, fmt.Errorf("-crash-after must not be negative, got %v", cfg.crashAfter)
	}

	cfg.mode = *mode
	if cfg.mode == 0 {
		cfg.mode = modePIDPatrol
		if s := getenv("PATROL_KEEPALIVE"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return config{}, fmt.Errorf("PATROL_KEEPALIVE=%q is not a number", s)
			}
			cfg.mode = n
		}
	}
	if cfg.mode < modePIDPatrol || cfg.mode > modeUDP {
		return config{}, fmt.Errorf("keepalive mode must be 1, 2, 3 or 4, got %d", cfg.mode)
	}

	if cfg.readyAfter < 0 || cfg.unhealthyAfter < 0 {
		return config{}, fmt.Errorf("-ready-after and -unhealthy-after must not be negative")
	}
	cfg.notifySocket = getenv("NOTIFY_SOCKET")
	if cfg.notify && cfg.notifySocket == "" {
		return config{}, errors.New("-notify needs NOTIFY_SOCKET (give the app \"ready\": \"notify\" or a \"watchdog\")")
	}
	if s := getenv("WATCHDOG_USEC"); s != "" && cfg.notify {
		us, err := strconv.ParseInt(s, 10, 64)
		if err != nil || us <= 0 {
			return config{}, fmt.Errorf("WATCHDOG_USEC=%q is not a positive number", s)
		}
		cfg.watchdog = time.Duration(us) * time.Microsecond
	}
	cfg.id = getenv("PATROL_ID")
	cfg.pidPath = getenv("PATROL_PID")
	if cfg.secret == "" {
		cfg.secret = getenv("DEMOAPP_SECRET")
	}
	// Only the address list of the selected mode must be present and valid.
	var err error
	if cfg.httpAddrs, err = parseAddrs("PATROL_HTTP", getenv, cfg.mode == modeHTTP); err != nil {
		return config{}, err
	}
	if cfg.udpAddrs, err = parseAddrs("PATROL_UDP", getenv, cfg.mode == modeUDP); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// parseAddrs decodes the JSON array of addresses in the environment variable
// name. When required is false, a missing or malformed value yields nil.
func parseAddrs(name string, getenv func(string) string, required bool) ([]string, error) {
	s := getenv(name)
	var addrs []string
	if s != "" {
		if err := json.Unmarshal([]byte(s), &addrs); err != nil && required {
			return nil, fmt.Errorf("%s=%q is not a JSON array of host:port strings: %v", name, s, err)
		}
	}
	if required && len(addrs) == 0 {
		return nil, fmt.Errorf("keepalive mode needs at least one address in %s", name)
	}
	return addrs, nil
}

// run is the main loop shared by all modes: it prints ticks, runs the
// keepalive of the mode and handles signals. It returns the exit code.
func run(cfg config) int {
	// Catch signals before anything else, and in mode 2 before the pid file
	// exists, so that a stop request is never handled by the default action.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)

	if cfg.mode == modePIDApp {
		if cfg.pidPath == "" {
			fmt.Fprintln(os.Stderr, "demoapp: PATROL_PID is not set; keepalive mode 2 needs a pid file")
			return 1
		}
		if err := writePIDFile(cfg.pidPath, os.Getpid()); err != nil {
			fmt.Fprintf(os.Stderr, "demoapp: %v\n", err)
			return 1
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	if cfg.listen != "" || cfg.notify {
		wg.Go(func() { health(ctx, cfg) })
	}
	switch cfg.mode {
	case modeHTTP:
		wg.Go(func() { httpKeepalive(ctx, cfg) })
	case modeUDP:
		wg.Go(func() { udpKeepalive(ctx, cfg) })
	}

	fmt.Printf("%s: started pid %d keepalive mode %d interval %v\n", cfg.prefix(), os.Getpid(), cfg.mode, cfg.interval)

	ticker := time.NewTicker(cfg.interval)
	defer ticker.Stop()
	var crash <-chan time.Time
	if cfg.crashAfter > 0 {
		t := time.NewTimer(cfg.crashAfter)
		defer t.Stop()
		crash = t.C
	}

	for tick := 1; ; {
		select {
		case now := <-ticker.C:
			fmt.Printf("%s: tick %d at %s\n", cfg.prefix(), tick, now.Format(time.RFC3339))
			if tick%5 == 0 {
				fmt.Fprintf(os.Stderr, "%s: tick %d on stderr\n", cfg.prefix(), tick)
			}
			tick++
		case <-crash:
			fmt.Fprintf(os.Stderr, "demoapp: crashing on purpose with code %d\n", cfg.exitCode)
			return cfg.exitCode
		case sig := <-sigs:
			switch sig {
			case syscall.SIGTERM, syscall.SIGINT:
				if sig == syscall.SIGTERM && cfg.ignoreSIGTERM {
					fmt.Fprintln(os.Stderr, "demoapp: ignoring SIGTERM (-ignore-sigterm)")
					continue
				}
				fmt.Printf("demoapp: stopping (%s)\n", signalName(sig))
				if cfg.mode == modePIDApp {
					removePIDFile(cfg.pidPath, os.Getpid())
				}
				return 0
			case syscall.SIGUSR1:
				fmt.Fprintln(os.Stderr, "demoapp: exiting with code 10 (SIGUSR1)")
				return 10
			case syscall.SIGUSR2:
				fmt.Fprintln(os.Stderr, "demoapp: exiting with code 12 (SIGUSR2)")
				return 12
			case syscall.SIGHUP:
				fmt.Println("demoapp: got SIGHUP, nothing to reload; continuing")
			}
		}
	}
}

// signalName returns the conventional upper-case name of sig.
func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	}
	return strings.ToUpper(sig.String())
}
