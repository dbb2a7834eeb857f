package patrol

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/patrolhq/patrol/fleet"
	"github.com/patrolhq/patrol/reconcile"
	"github.com/patrolhq/patrol/schema"
	clientv3 "go.etcd.io/etcd/client/v3"
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

// FleetApplyOptions change how FleetApply writes.
type FleetApplyOptions struct {
	// DryRun validates and plans, and writes nothing.
	DryRun bool
	// MaxUnavailable > 0 rolls the change out: the changed hosts' keys are
	// written that many at a time, and each batch must converge (its hosts
	// report the batch's revision applied, every entry running and ready,
	// no config error) within Timeout before the next is written. A change
	// of common.json reaches every host at once, so it is refused then.
	MaxUnavailable int
	Timeout        time.Duration
	// Settle is how long a batch must stay converged to count (default
	// 2 s).
	Settle time.Duration
	// Progress, when set, is told what the rollout does.
	Progress func(string)
}

// FleetApply validates the bundle in dir (common.json and hosts/NAME.json)
// and, unless a file is invalid (or o.DryRun), writes it to etcd: in one
// transaction, or in batches with MaxUnavailable.
func FleetApply(ctx context.Context, o SourceOptions, dir string, ao FleetApplyOptions) (*FleetApplyResult, error) {
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
	var changed []string
	commonChanged := false
	for _, h := range b.HostNames() {
		before, err := (&fleet.Source{Client: cli, Prefix: o.Prefix, Host: h}).Read(ctx)
		if err != nil {
			return nil, err
		}
		if string(before.Host) != string(b.Hosts[h]) || before.Host == nil {
			changed = append(changed, h)
		}
		if b.Common != nil && string(before.Common) != string(b.Common) {
			commonChanged = true
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
	if ao.MaxUnavailable > 0 && commonChanged {
		return nil, errors.New("common.json changes every host at once: apply it without --max-unavailable, or make the change in hosts/*.json")
	}
	if ao.DryRun {
		return res, nil
	}
	if ao.MaxUnavailable <= 0 {
		res.Revision, err = b.Write(ctx, cli, o.Prefix)
		return res, err
	}
	if ao.Progress != nil {
		for _, h := range b.HostNames() {
			ao.Progress("host " + h + ":\n" + res.Plans[h].Text())
		}
	}
	res.Revision, err = rollout(ctx, cli, o.Prefix, b, changed, ao)
	return res, err
}

// rollout writes the changed hosts in batches of ao.MaxUnavailable,
// waiting for each batch to converge.
func rollout(ctx context.Context, cli *clientv3.Client, prefix string, b *fleet.Bundle, changed []string, ao FleetApplyOptions) (int64, error) {
	say := func(f string, a ...any) {
		if ao.Progress != nil {
			ao.Progress(fmt.Sprintf(f, a...))
		}
	}
	timeout := cmp.Or(ao.Timeout, 5*time.Minute)
	// A batch counts as converged once it stayed so this long: an app that
	// crashes a second after its start must not pass.
	settle := cmp.Or(ao.Settle, 2*time.Second)
	n := ao.MaxUnavailable
	batches := (len(changed) + n - 1) / n
	if len(changed) == 0 {
		say("no host's config changed: nothing to roll out")
	}
	var rev int64
	for i := 0; i < len(changed); i += n {
		batch := changed[i:min(i+n, len(changed))]
		var err error
		if rev, err = b.WriteHosts(ctx, cli, prefix, batch); err != nil {
			return 0, err
		}
		say("batch %d/%d: %s written at revision %d", i/n+1, batches, strings.Join(batch, ", "), rev)
		start := time.Now()
		var settled time.Time // since when the batch looks converged
		var lastWaiting []string
		for {
			hosts, err := fleet.FleetStatus(ctx, cli, prefix)
			if err != nil {
				return rev, err
			}
			var waiting []string
			for _, h := range hosts {
				if !slices.Contains(batch, h.Host) {
					continue
				}
				switch {
				case !h.Up:
					waiting = append(waiting, h.Host+": down (no status)")
				case h.AppliedRevision < rev:
					waiting = append(waiting, fmt.Sprintf("%s: applied revision %d, not %d", h.Host, h.AppliedRevision, rev))
				case h.ConfigError != "":
					waiting = append(waiting, h.Host+": config error: "+h.ConfigError)
				case !h.Converged:
					waiting = append(waiting, fmt.Sprintf("%s: %d failing, %d unready", h.Host, h.Failing, h.Unready))
				}
			}
			if len(waiting) > 0 {
				settled, lastWaiting = time.Time{}, waiting
			} else if settled.IsZero() {
				settled = time.Now()
			}
			if !settled.IsZero() && time.Since(settled) >= settle {
				say("batch %d/%d converged in %s", i/n+1, batches, time.Since(start).Round(time.Millisecond))
				break
			}
			if time.Since(start) > timeout {
				if len(waiting) == 0 {
					// Converged just now, not for long enough: say what it
					// was doing before.
					waiting = append(slices.Clone(lastWaiting), fmt.Sprintf("%s: converged for %s only, of the %s required",
						strings.Join(batch, ", "), time.Since(settled).Round(time.Millisecond), settle))
				}
				return rev, fmt.Errorf("batch %d/%d (%s) did not converge within %s: %s; %d host(s) not written: %s",
					i/n+1, batches, strings.Join(batch, ", "), timeout, strings.Join(waiting, "; "),
					len(changed)-i-len(batch), strings.Join(changed[i+len(batch):], ", "))
			}
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return rev, ctx.Err()
			}
		}
	}
	return rev, nil
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
