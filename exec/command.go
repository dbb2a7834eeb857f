package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// DefaultMaxOutput is how much of a command's output RunCommand keeps when
// Command.MaxOutput is 0.
const DefaultMaxOutput = 8 << 10

// outputGrace is how long RunCommand keeps reading a command's output after
// the command exited, for a descendant that still holds the pipe open (a
// daemon an init script started without redirecting its output).
const outputGrace = 100 * time.Millisecond

// commandTag is the tag of the processes RunCommand starts. Their exits go
// to RunCommand, never to notify.
const commandTag = "command"

// ServiceArgv returns the argv of a service command (DESIGN §6): verb is the
// action's verb ("start", "status", ..., or its override).
//
//   - schema.ManagementService: [<service found in PATH>, service, verb]
//   - schema.ManagementInitd: [<initdDir>/<service>, verb]
//   - schema.ManagementSystemd: [<systemctl found in PATH>, verb, service]
//
// The PATH lookup (os/exec.LookPath) uses Patrol's PATH at the time of the
// call and yields an absolute path. The init script must exist. A service
// name that is empty, contains "/" or is "." or ".." is refused.
func ServiceArgv(m schema.Management, initdDir, service, verb string) ([]string, error) {
	if service == "" || service == "." || service == ".." || strings.ContainsRune(service, '/') {
		return nil, fmt.Errorf("invalid service name %q", service)
	}
	if verb == "" {
		return nil, fmt.Errorf("service %q: empty verb", service)
	}
	switch m {
	case schema.ManagementService:
		p, err := lookPath("service")
		if err != nil {
			return nil, err
		}
		return []string{p, service, verb}, nil
	case schema.ManagementInitd:
		script := filepath.Join(initdDir, service)
		if !filepath.IsAbs(script) {
			return nil, fmt.Errorf("init script %s: not an absolute path", script)
		}
		fi, err := os.Stat(script)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("init script %s: no such file", script)
			}
			return nil, fmt.Errorf("init script %s: %w", script, pathErr(err))
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("init script %s is a directory", script)
		}
		return []string{script, verb}, nil
	case schema.ManagementSystemd:
		p, err := lookPath("systemctl")
		if err != nil {
			return nil, err
		}
		return []string{p, verb, service}, nil
	default:
		return nil, fmt.Errorf("service %q: unknown management method %d", service, int(m))
	}
}

// lookPath finds name in PATH and returns its absolute path.
func lookPath(name string) (string, error) {
	p, err := osexec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("service command %q not found in PATH", name)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("service command %q: %w", name, err)
	}
	return abs, nil
}

// Command is a short-lived command to run to its end, such as a service's
// status command.
type Command struct {
	// Argv is the command; Argv[0] is the absolute path of the executable.
	Argv []string
	// Env is the whole environment; nil is Patrol's (os.Environ()), which
	// service commands need for PATH and the like.
	Env []string
	// Dir is the working directory; "" is "/".
	Dir string
	// Timeout, when positive, is how long the command may run before its
	// process group is killed with SIGKILL.
	Timeout time.Duration
	// MaxOutput is how many bytes of output are kept, the last ones;
	// 0 (or less) is DefaultMaxOutput.
	MaxOutput int
}

// CommandResult is how a command ended.
type CommandResult struct {
	// Code is the exit code; 128+N for death by signal N; -1 when the
	// command could not run (or, with Err set, its status is unknown).
	Code int
	// Signal is the signal that killed the command, 0 if none did.
	Signal int
	// Output is the last MaxOutput bytes of the combined standard output and
	// error, interleaved as written.
	Output []byte
	// TimedOut is set when the command was killed because it ran longer
	// than Command.Timeout.
	TimedOut bool
	// Err is set when the command could not be started, timed out (it wraps
	// context.DeadlineExceeded) or was killed because ctx was done (it wraps
	// ctx's error). Its message names the command. An exit code other than 0
	// is not an error: success is the caller's decision.
	Err error
	// Started is when the command was started (or could not be); Ended when
	// it ended (or could not start).
	Started, Ended time.Time
}

// RunCommand runs c to its end and reports how it ended. It blocks; callers
// run it on a goroutine of their own. Run must be running (the exit comes
// from the reaper).
//
// The command runs in its own process group through Start (Spec.Done
// receives its exit) with stdin the null device and its standard output and
// error on one pipe, which is read concurrently into a ring buffer keeping
// the last c.MaxOutput bytes. When c.Timeout passes or ctx is done, the
// process group is killed with SIGKILL and RunCommand still waits for the
// command's exit. After the exit it stops reading the pipe at EOF or at the
// latest after a short grace (100 ms), even if a descendant still holds the
// pipe open; such a descendant is left running (it may be the service an
// init script started). Nothing RunCommand starts on the Patrol side (no
// goroutine, no descriptor) outlives the call.
func (r *Runner) RunCommand(ctx context.Context, c Command) CommandResult {
	res := CommandResult{Code: -1, Started: time.Now()}
	if err := r.runCommand(ctx, c, &res); err != nil {
		res.Err = fmt.Errorf("command %s: %w", argvString(c.Argv), err)
	}
	if res.Ended.IsZero() {
		res.Ended = time.Now()
	}
	return res
}

// runCommand is RunCommand without the error subject.
func (r *Runner) runCommand(ctx context.Context, c Command, res *CommandResult) error {
	if len(c.Argv) == 0 {
		return errors.New("empty argv")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not started: %w", context.Cause(ctx))
	}
	env := c.Env
	if env == nil {
		env = os.Environ()
	}
	dir := c.Dir
	if dir == "" {
		dir = "/"
	}
	maxOutput := c.MaxOutput
	if maxOutput <= 0 {
		maxOutput = DefaultMaxOutput
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("output pipe: %w", err)
	}
	// os.Pipe makes the read end non-blocking on the runtime poller, so a
	// read deadline can end a read that a descendant keeps waiting.
	defer pr.Close()
	done := make(chan observed.Exit, 1)
	l, err := r.start(Spec{
		Path:   c.Argv[0],
		Args:   c.Argv[1:],
		Dir:    dir,
		Env:    env,
		Stdout: pw,
		Stderr: pw,
		Tag:    commandTag,
		Done:   done,
	})
	// Only the command (and what it starts) keeps the write end open, so
	// the read end sees EOF once they all closed it.
	pw.Close()
	if err != nil {
		return err
	}
	res.Started = l.Started

	out := &tailBuffer{max: maxOutput}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		out.readFrom(pr)
	}()

	var timeout <-chan time.Time
	if c.Timeout > 0 {
		t := time.NewTimer(c.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	var ex observed.Exit
	var runErr error
	select {
	case ex = <-done:
	case <-timeout:
		res.TimedOut = true
		runErr = fmt.Errorf("timed out after %v: %w", c.Timeout, context.DeadlineExceeded)
	case <-ctx.Done():
		runErr = fmt.Errorf("killed: %w", context.Cause(ctx))
	}
	if runErr != nil {
		select {
		case ex = <-done:
			// It ended just as it ran out of time: it was not killed.
			res.TimedOut, runErr = false, nil
		default:
			if err := SignalGroup(l.PGID, "SIGKILL"); err != nil && !errors.Is(err, ErrNoProcess) {
				runErr = errors.Join(runErr, err)
			}
			ex = <-done
		}
	}
	res.Code, res.Signal, res.Ended = ex.Code, ex.Signal, ex.Ended

	// The command is gone; its descendants may still hold the pipe.
	if err := pr.SetReadDeadline(time.Now().Add(outputGrace)); err != nil {
		// Not pollable (cannot happen for os.Pipe): closing ends the read.
		pr.Close()
	}
	<-readDone
	res.Output = out.bytes()
	return runErr
}

// argvString renders argv for messages, quoting the arguments that need it.
func argvString(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.ContainsFunc(a, func(r rune) bool {
			return r <= ' ' || r == '"' || r == '\'' || r == '\\' || r > '~'
		}) {
			a = strconv.Quote(a)
		}
		b.WriteString(a)
	}
	return b.String()
}

// tailBuffer keeps the last max bytes written to it, in a ring.
type tailBuffer struct {
	max int
	buf []byte // grows up to max bytes, then is a ring
	off int    // once len(buf) == max, the index of the oldest byte
}

// readFrom reads src into b until an error (EOF, a deadline, a close).
func (b *tailBuffer) readFrom(src io.Reader) {
	chunk := make([]byte, 32<<10)
	for {
		n, err := src.Read(chunk)
		b.write(chunk[:n])
		if err != nil {
			return
		}
	}
}

// write appends p, dropping the oldest bytes beyond max.
func (b *tailBuffer) write(p []byte) {
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		b.off = 0
		return
	}
	if room := b.max - len(b.buf); room > 0 {
		n := min(room, len(p))
		b.buf = append(b.buf, p[:n]...)
		p = p[n:]
	}
	for len(p) > 0 {
		n := copy(b.buf[b.off:], p)
		p = p[n:]
		b.off = (b.off + n) % b.max
	}
}

// bytes returns a copy of the kept bytes, oldest first.
func (b *tailBuffer) bytes() []byte {
	out := make([]byte, 0, len(b.buf))
	out = append(out, b.buf[b.off:]...)
	return append(out, b.buf[:b.off]...)
}

// LookPath finds a command name in Patrol's PATH (a hook's command) and
// returns its absolute path.
func LookPath(name string) (string, error) {
	p, err := osexec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("command %q not found in PATH", name)
	}
	return filepath.Abs(p)
}
