package patrol

import (
	"context"
	"os"
	"time"

	"github.com/patrolhq/patrol/fleet"
	"github.com/patrolhq/patrol/reconcile"
	"github.com/patrolhq/patrol/schema"
)

// FleetHost is one host in `patrol fleet status`.
type FleetHost = fleet.HostLine

// FleetStatus reads every host's desired and applied revision and its
// published status from the fleet's etcd.
func FleetStatus(ctx context.Context, o SourceOptions) ([]FleetHost, error) {
	cli, err := fleet.Connect(o)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	return fleet.FleetStatus(ctx, cli, o.Prefix)
}

// FleetApplyResult is what `patrol fleet apply` did, or would do.
type FleetApplyResult struct {
	// Problems are the bundle's config problems, "hosts/NAME.json: path:
	// message"; nothing was written when there are any.
	Problems []string
	// Revision is the etcd revision of the write (0 when nothing was
	// written).
	Revision int64
	// Plans are each host's plan: what its Patrol will do, from the config
	// it had in etcd (from nothing for a new host).
	Plans map[string]*schema.Plan
}

// FleetApply validates the bundle in dir (common.json and hosts/NAME.json)
// and, unless dryRun or any file is invalid, writes it to etcd in one
// transaction.
func FleetApply(ctx context.Context, o SourceOptions, dir string, dryRun bool) (*FleetApplyResult, error) {
	b, err := fleet.ReadBundle(dir)
	if err != nil {
		return nil, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	res := &FleetApplyResult{Problems: b.Validate(wd), Plans: map[string]*schema.Plan{}}
	if len(res.Problems) > 0 {
		return res, nil
	}
	cli, err := fleet.Connect(o)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	now := time.Now()
	for _, h := range b.HostNames() {
		before, err := (&fleet.Source{Client: cli, Prefix: o.Prefix, Host: h}).Read(ctx)
		if err != nil {
			return nil, err
		}
		after := fleet.Snapshot{Host: b.Hosts[h], Common: before.Common}
		if b.Common != nil {
			after.Common = b.Common
		}
		next, err := parseSnapshot(after, wd)
		if err != nil {
			return nil, err // validated above: cannot happen
		}
		if old, err := parseSnapshot(before, wd); err == nil {
			res.Plans[h] = reconcile.PlanTransition(old, next, now)
		} else {
			res.Plans[h] = reconcile.PlanEmpty(next, now)
		}
	}
	if dryRun {
		return res, nil
	}
	res.Revision, err = b.Write(ctx, cli, o.Prefix)
	return res, err
}

// PlanSource is the plan of fleet host o.Host if file (the bytes of a
// config.json) were written to its key: from the config it has in etcd,
// with everything of it running; with no file, what a new host would do
// with its config in etcd.
func PlanSource(ctx context.Context, o SourceOptions, file []byte) (*schema.Plan, error) {
	if err := fleet.CheckHost(o.Host); err != nil {
		return nil, err
	}
	cli, err := fleet.Connect(o)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	before, err := (&fleet.Source{Client: cli, Prefix: o.Prefix, Host: o.Host}).Read(ctx)
	if err != nil {
		return nil, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if file == nil {
		st, err := parseSnapshot(before, wd)
		if err != nil {
			return nil, err
		}
		return reconcile.PlanEmpty(st, now), nil
	}
	next, err := parseSnapshot(fleet.Snapshot{Host: file, Common: before.Common}, wd)
	if err != nil {
		return nil, err
	}
	if old, err := parseSnapshot(before, wd); err == nil {
		return reconcile.PlanTransition(old, next, now), nil
	}
	return reconcile.PlanEmpty(next, now), nil
}
