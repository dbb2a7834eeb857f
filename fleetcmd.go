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
