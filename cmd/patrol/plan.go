package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/schema"
)

// Exit codes of `patrol plan --detailed-exitcode` (the terraform
// convention).
const exitChanges = 2

// planArgs are the flags of `patrol plan`.
type planArgs struct {
	conn                      *clientArgs
	asJSON, detailed, require bool
	source                    *sourceArgs
	host                      string
}

// planCmd is `patrol plan PATH`: what applying PATH would do to the running
// daemon (POST /api/plan), or, when no daemon answers, to an empty Patrol
// (unless --require-server, or --detailed-exitcode with a server chosen by
// --server or $PATROL_SERVER: then no answer is an error). With
// --detailed-exitcode every error exits 1, usage errors included, so that
// 2 always means "changes" (terraform's rule).
func planCmd(ctx context.Context, o io3, args []string, a planArgs) int {
	usage := exitUsage
	if a.detailed {
		usage = exitFail
	}
	if a.source.url != "" || a.source.config != "" {
		return planSource(ctx, o, args, a.source, a.host, a.asJSON, a.detailed, usage)
	}
	if len(args) != 1 {
		fmt.Fprintln(o.stderr, "patrol plan: want exactly one config file (usage: patrol plan PATH)")
		return usage
	}
	path := args[0]
	// Validate locally first: the same loader as the daemon, so a broken
	// file is reported the same way whether a daemon runs or not.
	if _, err := patrol.LoadConfig(path); err != nil {
		for _, line := range patrol.Problems(err) {
			fmt.Fprintf(o.stderr, "%s: %s\n", path, line)
		}
		return exitFail
	}
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(o.stderr, "patrol plan: %v\n", err)
		return exitFail
	}
	c, err := a.conn.client()
	if err != nil {
		fmt.Fprintf(o.stderr, "patrol plan: %v\n", err)
		return usage
	}
	defer c.close()
	_, chosen := a.conn.serverURL()
	var plan *schema.Plan
	code, body, err := c.do(ctx, http.MethodPost, "/api/plan", data, a.conn.bearer())
	var unreachable *unreachableError
	switch {
	case errors.As(err, &unreachable) && (a.require || a.detailed && chosen):
		fmt.Fprintf(o.stderr, "patrol plan: %v (start Patrol, or drop --require-server to plan against an empty one)\n", err)
		return exitFail
	case errors.As(err, &unreachable):
		fmt.Fprintf(o.stderr, "patrol plan: %v; planning against an empty Patrol (nothing running; --require-server makes this an error)\n", err)
		if plan, err = patrol.PlanFile(path); err != nil {
			for _, line := range patrol.Problems(err) {
				fmt.Fprintf(o.stderr, "%s: %s\n", path, line)
			}
			return exitFail
		}
	case err != nil:
		fmt.Fprintf(o.stderr, "patrol plan: %v\n", err)
		return exitFail
	case code != http.StatusOK:
		fmt.Fprintf(o.stderr, "%s: %s\n", path, failure(code, body))
		return exitFail
	default:
		plan = &schema.Plan{}
		if err := json.Unmarshal(body, plan); err != nil {
			fmt.Fprintf(o.stderr, "patrol plan: unexpected answer: %v\n", err)
			return exitFail
		}
	}
	return printPlan(o, plan, a.asJSON, a.detailed)
}

// planSource is `patrol plan --source URL --host NAME [FILE]`: what host
// NAME would do if FILE were written to its key (with no FILE: what a new
// host would do with its config in etcd).
func planSource(ctx context.Context, o io3, args []string, source *sourceArgs, host string, asJSON, detailed bool, usage int) int {
	if len(args) > 1 {
		fmt.Fprintln(o.stderr, "patrol plan: at most one config file with --source (usage: patrol plan --source URL --host NAME [PATH])")
		return usage
	}
	src, err := source.options()
	if err != nil {
		fmt.Fprintf(o.stderr, "patrol plan: %v\n", err)
		return usage
	}
	if host != "" {
		src.Host = host
	}
	var file []byte
	name := "etcd"
	if len(args) == 1 {
		name = args[0]
		if file, err = os.ReadFile(args[0]); err != nil {
			fmt.Fprintf(o.stderr, "patrol plan: %v\n", err)
			return exitFail
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	plan, err := patrol.PlanSource(ctx, *src, file)
	if err != nil {
		for _, line := range patrol.Problems(err) {
			fmt.Fprintf(o.stderr, "%s: %s\n", name, line)
		}
		return exitFail
	}
	return printPlan(o, plan, asJSON, detailed)
}

// printPlan prints a plan as text or JSON; with detailed, changes exit 2.
func printPlan(o io3, plan *schema.Plan, asJSON, detailed bool) int {
	if asJSON {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.Encode(plan)
		o.stdout.Write(buf.Bytes())
	} else {
		fmt.Fprint(o.stdout, plan.Text())
	}
	if detailed && plan.Changes() {
		return exitChanges
	}
	return exitOK
}
