package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// ttlFlag is --ttl: a Go duration or a number of seconds.
type ttlFlag struct{ secs float64 }

func (f *ttlFlag) String() string {
	if f == nil || f.secs == 0 {
		return ""
	}
	return (time.Duration(f.secs * float64(time.Second))).String()
}

func (f *ttlFlag) Set(s string) error {
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil {
		d, derr := time.ParseDuration(s)
		if derr != nil {
			return errors.New("want a duration such as 30s or 2h, or a number of seconds")
		}
		secs = d.Seconds()
	}
	if math.IsNaN(secs) || secs < 0 || secs >= time.Duration(math.MaxInt64).Seconds() {
		return errors.New("must not be negative")
	}
	f.secs = secs
	return nil
}

// toggleArgs are the flags of `patrol toggle`.
type toggleArgs struct {
	conn    *clientArgs
	secret  string
	cas     uint64
	ttl     ttlFlag
	verbose bool
}

// toggle is `patrol toggle app|service ID ACTION`. It reads the entry
// first: a restart of a disabled entry is refused (restart is once only;
// the API's toggle 3 would enable the entry for good), and afterwards it
// says when the toggle wrote no override because the config file already
// has the entry so (a --ttl then has nothing to expire).
func toggle(ctx context.Context, o io3, t toggleArgs, args []string) int {
	const actions = "enable, disable, restart, runonce-enable, runonce-disable or clear"
	if len(args) != 3 {
		fmt.Fprintf(o.stderr, "patrol toggle: want app|service ID ACTION (ACTION is %s), got %q\n", actions, args)
		return exitUsage
	}
	group, ok := schema.ParseGroup(args[0])
	if !ok {
		fmt.Fprintf(o.stderr, "patrol toggle: the group must be app or service, got %q\n", args[0])
		return exitUsage
	}
	id, action := args[1], strings.ToLower(args[2])
	req := schema.Request{ID: id, Group: string(group), Secret: t.secret, CAS: t.cas, TTL: schema.Seconds(t.ttl.secs)}
	if action == "clear" {
		if t.ttl.secs != 0 {
			fmt.Fprintln(o.stderr, "patrol toggle: --ttl applies to the override a toggle writes; clear removes it")
			return exitUsage
		}
		req.Clear = true
	} else if req.Toggle, ok = schema.ParseToggleWord(action); !ok {
		fmt.Fprintf(o.stderr, "patrol toggle: unknown action %q: want %s\n", args[2], actions)
		return exitUsage
	}
	token := t.conn.bearer()
	c, err := t.conn.client()
	if err != nil {
		fmt.Fprintf(o.stderr, "patrol toggle: %v\n", err)
		return exitUsage
	}
	defer c.close()
	entry := string(group) + " " + strings.ToLower(id) // ids are case-insensitive; Patrol shows them lower-cased
	read := func() (*schema.Response, int) { return apiRead(ctx, o, "toggle", c, token, group, id, entry) }
	before, code := read()
	if before == nil {
		return code
	}
	if req.Toggle == schema.ToggleRestart && before.State == schema.StateDisabled {
		fmt.Fprintf(o.stderr, "patrol toggle: %s is disabled: restart is once only and would enable it for good; use enable (with --ttl for a while)\n", entry)
		return exitFail
	}
	resp, code := apiWrite(ctx, o, "toggle", c, token, entry, &req)
	if resp == nil {
		return code
	}
	done := action + " applied"
	if req.Clear {
		done = "override cleared"
	}
	if req.Toggle == schema.ToggleDisable || req.Toggle == schema.ToggleEnable {
		if after, _ := read(); after != nil && after.Override == nil {
			done = action + ": nothing to override, the config file already has it " + map[bool]string{true: "disabled", false: "enabled"}[after.ConfigDisabled]
			if t.ttl.secs != 0 {
				done += " (--ttl has no override to expire)"
			}
		}
	}
	fmt.Fprintf(o.stdout, "%s: %s (before: %s)\n", entry, done, stateBefore(resp))
	if t.verbose {
		fmt.Fprintf(o.stdout, "next change: --cas %d, unless the entry changed since\n", resp.CAS+1)
	}
	return exitOK
}

// apiRead reads an entry by GET /api/ and returns Patrol's answer, or nil
// and the exit code after saying why there is none.
func apiRead(ctx context.Context, o io3, cmd string, c *client, token string, group schema.Group, id, entry string) (*schema.Response, int) {
	q := url.Values{"id": {id}, "group": {string(group)}}
	return apiCall(ctx, o, cmd, c, token, entry, http.MethodGet, "/api/?"+q.Encode(), nil)
}

// apiCall sends one API request and decodes the answer, or says why there
// is none and returns nil and the exit code.
func apiCall(ctx context.Context, o io3, cmd string, c *client, token, entry, method, path string, body []byte) (*schema.Response, int) {
	code, answer, err := c.do(ctx, method, path, body, token)
	if err != nil {
		fmt.Fprintf(o.stderr, "patrol %s: %v (is Patrol running? give its address with --server or PATROL_SERVER)\n", cmd, err)
		return nil, exitFail
	}
	if code != http.StatusOK {
		fmt.Fprintf(o.stderr, "patrol %s: %s: %s\n", cmd, entry, failure(code, answer))
		return nil, exitFail
	}
	var r schema.Response
	if err := json.Unmarshal(answer, &r); err != nil {
		fmt.Fprintf(o.stderr, "patrol %s: %s: the answer is not an API response: %v\n", cmd, entry, err)
		return nil, exitFail
	}
	return &r, exitOK
}

// apiWrite sends req by POST /api/ and returns Patrol's answer, or nil and
// the exit code after saying why there is none or why it was not applied
// (a stale CAS, a secret needed).
func apiWrite(ctx context.Context, o io3, cmd string, c *client, token, entry string, req *schema.Request) (*schema.Response, int) {
	body, err := json.Marshal(req)
	if err != nil {
		fmt.Fprintf(o.stderr, "patrol %s: encode request: %v\n", cmd, err)
		return nil, exitFail
	}
	resp, code := apiCall(ctx, o, cmd, c, token, entry, http.MethodPost, "/api/", body)
	if resp == nil {
		return nil, code
	}
	if len(resp.Errors) > 0 {
		fmt.Fprintf(o.stderr, "patrol %s: %s: %s\n", cmd, entry, strings.Join(resp.Errors, "; "))
		return nil, exitFail
	}
	if resp.CASInvalid {
		fmt.Fprintf(o.stderr, "patrol %s: %s: NOT applied: %s\n", cmd, entry, casWhy(resp, req.CAS, req.Secret))
		return nil, exitFail
	}
	return resp, exitOK
}

// casWhy says why a write answered cas-invalid.
func casWhy(resp *schema.Response, cas uint64, secret string) string {
	switch {
	case cas != 0 && cas != resp.CAS:
		return fmt.Sprintf("the CAS was stale (given %d, the entry's is now %d)", cas, resp.CAS)
	case resp.Secret && secret == "":
		return "the entry has a secret; give it with --secret"
	}
	return fmt.Sprintf("the CAS was stale or a secret is needed (the entry's CAS is %d)", resp.CAS)
}

// stateBefore describes the entry as the response shows it, before the
// change.
func stateBefore(r *schema.Response) string {
	s := string(r.State)
	if s == "" {
		switch {
		case r.Disabled:
			s = string(schema.StateDisabled)
		case r.PID > 0 || r.InstanceID != "":
			s = string(schema.StateRunning)
		default:
			s = string(schema.StateStopped)
		}
	}
	if r.PID > 0 {
		s += fmt.Sprintf(", pid %d", r.PID)
	}
	if r.RunOnce {
		s += ", run-once"
	}
	return s
}
