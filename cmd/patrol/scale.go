package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/patrolhq/patrol/schema"
)

// scaleArgs are the flags of `patrol scale`.
type scaleArgs struct {
	conn   *clientArgs
	secret string
	cas    uint64
	ttl    ttlFlag
}

// scale is `patrol scale APP N`: a scale override of an app with
// "replicas" (POST /api/ with "replicas"), which lasts until --ttl runs
// out, the app's entry in the file changes, or `patrol toggle app APP
// clear`. N equal to the file's count removes the scale.
func scale(ctx context.Context, o io3, a scaleArgs, args []string) int {
	if len(args) != 2 {
		fmt.Fprintf(o.stderr, "patrol scale: want APP N, got %q\n", args)
		return exitUsage
	}
	id := args[0]
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 1 {
		fmt.Fprintf(o.stderr, "patrol scale: N must be a number of replicas from 1, got %q\n", args[1])
		return exitUsage
	}
	c, err := a.conn.client()
	if err != nil {
		fmt.Fprintf(o.stderr, "patrol scale: %v\n", err)
		return exitUsage
	}
	defer c.close()
	token := a.conn.bearer()
	entry := "app " + strings.ToLower(id)
	req := schema.Request{ID: id, Group: string(schema.GroupApp), Replicas: n, Secret: a.secret, CAS: a.cas, TTL: schema.Seconds(a.ttl.secs)}
	resp, code := apiWrite(ctx, o, "scale", c, token, entry, &req)
	if resp == nil {
		return code
	}
	before := "the file's count"
	if ov := resp.Override; ov != nil && ov.Replicas > 0 {
		before = fmt.Sprintf("%d by a scale", ov.Replicas)
	}
	done := fmt.Sprintf("scaled to %d replicas", n)
	if after, _ := apiRead(ctx, o, "scale", c, token, schema.GroupApp, id, entry); after != nil {
		switch ov := after.Override; {
		case ov == nil || ov.Replicas == 0:
			done += ", the config file's count: no scale override left"
		case ov.Expires != "":
			done += " until " + ov.Expires
		}
	}
	fmt.Fprintf(o.stdout, "%s: %s (before: %s)\n", entry, done, before)
	return exitOK
}
