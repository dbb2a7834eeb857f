// Command embed shows Patrol used as a Go library: a config built in code,
// hooks that print lifecycle events, a BeforeStart veto, and an app whose
// output goes to a custom writer instead of log files. Run it with
// `go run ./examples/embed` (Ctrl-C stops it and its apps).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/schema"
)

func main() {
	duration := flag.Duration("duration", 0, "stop after this long (0: run until interrupted)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

// prefixWriter writes each line of an app's output with a prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
}

func run(ctx context.Context, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "patrol-embed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	one := schema.Seconds(1)
	cfg := &schema.Config{
		TickEvery: 5,
		HTTP:      &schema.HTTP{Listen: "127.0.0.1:0"},
		UDP:       &schema.UDP{Listen: "127.0.0.1:0"},
		Apps: map[string]*schema.App{
			// A shell-free "app": the date printed every second.
			"clock": {Binary: "/bin/sh", Args: []string{"-c", "while true; do date +%T; sleep 1; done"}, StopTimeout: &one},
			// It exits after two seconds; Patrol restarts it with backoff.
			"flaky": {Binary: "/bin/sh", Args: []string{"-c", "sleep 2; exit 3"}, Backoff: &schema.Backoff{Initial: &one}},
		},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}
	p, err := patrol.New(patrol.Options{
		Config:    cfg,
		ConfigDir: tmp, // state lives in tmp/.patrol
		Log:       log,
		Hooks: patrol.Hooks{
			Started: func(e patrol.Entry, pid int, id string) { say("hook: %s %s started, pid %d", e.Group, e.ID, pid) },
			Exited: func(e patrol.Entry, h schema.History) {
				say("hook: %s %s exited, code %d (%s)", e.Group, e.ID, h.ExitCode, h.Reason)
			},
			Backoff: func(e patrol.Entry, msg string) { say("hook: %s %s backs off: %s", e.Group, e.ID, msg) },
			BeforeStart: func(ctx context.Context, e patrol.Entry) error {
				say("hook: may %s start? yes", e.ID)
				return nil
			},
		},
		App: func(id string) patrol.AppOptions {
			if id == "clock" {
				return patrol.AppOptions{Stdout: &prefixWriter{w: out, prefix: "      clock says: "}}
			}
			return patrol.AppOptions{}
		},
	})
	if err != nil {
		return fmt.Errorf("%s", strings.Join(patrol.Problems(err), "; "))
	}
	go func() {
		<-p.Ready()
		say("patrol listening on http://%s (status at /status/, GUI at /)", p.HTTPAddr())
	}()
	return p.Run(ctx)
}
