package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// clientArgs are the flags of every command that talks to a running
// Patrol: --server and --token, defaulting to $PATROL_SERVER and
// $PATROL_TOKEN (resolved when used, so that --help never prints a token).
type clientArgs struct {
	server, token string
}

func clientFlags(fs *flag.FlagSet) *clientArgs {
	c := &clientArgs{}
	fs.StringVar(&c.server, "server", "", "Patrol `URL` or host:port (default $PATROL_SERVER, else http://127.0.0.1:8421)")
	fs.StringVar(&c.token, "token", "", "the API's bearer `TOKEN` (default $PATROL_TOKEN)")
	return c
}

// serverURL is the server to talk to, and whether it was chosen (by the
// flag or $PATROL_SERVER) rather than the default.
func (c *clientArgs) serverURL() (string, bool) {
	if c.server != "" {
		return c.server, true
	}
	if s := os.Getenv("PATROL_SERVER"); s != "" {
		return s, true
	}
	return "http://127.0.0.1:8421", false
}

func (c *clientArgs) bearer() string {
	if c.token != "" {
		return c.token
	}
	return os.Getenv("PATROL_TOKEN")
}

// client connects to the server.
func (c *clientArgs) client() (*client, error) {
	s, _ := c.serverURL()
	return newClient(s)
}

// logsArgs are the flags of `patrol logs`.
type logsArgs struct {
	conn   *clientArgs
	follow bool
	stderr bool
	tail   int
	since  time.Duration
	secret string
}

// logs is `patrol logs APP`: the app's current log (its last --tail
// lines), and with -f everything it writes from then on, across restarts
// (a new instance writes a new file; the server follows it and says so
// with a "--- new instance: PATH ---" line), until interrupted.
func logs(ctx context.Context, o io3, a logsArgs, args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(o.stderr, "patrol logs: want one app id (usage: patrol logs [flags] APP), got %q\n", args)
		return exitUsage
	}
	if a.tail < 0 || a.tail > 10000 {
		fmt.Fprintf(o.stderr, "patrol logs: --tail must be between 0 and 10000, got %d\n", a.tail)
		return exitUsage
	}
	c, err := a.conn.client()
	if err != nil {
		fmt.Fprintf(o.stderr, "patrol logs: %v\n", err)
		return exitUsage
	}
	defer c.close()
	q := url.Values{"id": {args[0]}, "tail": {strconv.Itoa(a.tail)}, "stream": {"stdout"}}
	if a.stderr {
		q.Set("stream", "stderr")
	}
	if a.follow {
		q.Set("follow", "1")
	}
	if a.secret != "" {
		q.Set("secret", a.secret)
	}
	if a.since > 0 {
		q.Set("since", a.since.String())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/logs?"+q.Encode(), nil)
	if err != nil {
		fmt.Fprintf(o.stderr, "patrol logs: %v\n", err)
		return exitFail
	}
	if t := a.conn.bearer(); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	// No overall timeout: a followed log lasts until it is interrupted.
	resp, err := (&http.Client{Transport: c.tr}).Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		fmt.Fprintf(o.stderr, "patrol logs: cannot reach Patrol at %s: %v (is it running? give its address with --server or PATROL_SERVER)\n", c.base, err)
		return exitFail
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		msg := strings.Join(apiErrors(resp.StatusCode, body), "; ")
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
			msg += " (give the API token with --token or PATROL_TOKEN)"
		case strings.Contains(msg, "Secret Invalid"):
			msg += " (the app has a secret: give it with --secret)"
		case strings.Contains(msg, "Unknown App"):
			msg += " (see the ids with `patrol status`)"
		}
		fmt.Fprintf(o.stderr, "patrol logs: %s: %s\n", args[0], msg)
		return exitFail
	}
	if _, err := io.Copy(o.stdout, resp.Body); err != nil && ctx.Err() == nil {
		fmt.Fprintf(o.stderr, "patrol logs: %v\n", err)
		return exitFail
	}
	return exitOK
}
