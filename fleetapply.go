package patrol

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/fleet"
	"github.com/patrolhq/patrol/reconcile"
	"github.com/patrolhq/patrol/schema"
)

// FleetApplyResult is what `patrol fleet apply` did, or would do.
type FleetApplyResult struct {
	// Problems are the configs' problems, "hosts/NAME.json: path:
	// message" (or "etcd hosts/NAME: ..." for a host in etcd but not in
	// the directory, whose config a common.json would change); nothing
	// was written when there are any.
	Problems []string
	// Revision is the etcd revision of the (last) write; 0 when nothing
	// was written.
	Revision int64
	// Plans are the plans of the directory's hosts and of every other host
	// whose config changes: what each one's Patrol will do, from the config
	// it had in etcd (from nothing for a new host).
	Plans map[string]*schema.Plan
	// Skipped are the changed hosts a rollout did not wait for: their
	// Patrol was down (no status key), so they take the new config when
	// it starts.
	Skipped []string
}

// FleetApplyOptions change how FleetApply writes.
type FleetApplyOptions struct {
	// DryRun validates and plans, and writes nothing.
	DryRun bool
	// MaxUnavailable > 0 rolls the change out: the changed hosts are
	// changed that many at a time, and each batch must converge (its
	// hosts report the batch's revision applied, every entry running and
	// ready, no config error) within Timeout before the next is written.
	// A change of common.json is rolled out too: each batch's host keys get
	// a staged config (desired.Stage) that gives them the new common on
	// the old one, and the last write puts common.json and the hosts' own
	// configs in place, which changes nothing more on any host.
	MaxUnavailable int
	Timeout        time.Duration
	// Settle is how long a batch must stay converged to count (default
	// 2 s).
	Settle time.Duration
	// Progress, when set, is told what the rollout does.
	Progress func(string)
}

// FleetApply validates the bundle in dir (common.json and hosts/NAME.json)
// and, unless a config is invalid (or o.DryRun), writes it to etcd: in one
// transaction, or rolled out with MaxUnavailable. Hosts in etcd that the
// directory does not name keep their own keys; a common.json change
// reaches them too, so they are validated, planned and rolled out with the
// others.
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
	cur, err := fleet.ReadCurrent(ctx, cli, o.Prefix)
	if err != nil {
		return nil, err
	}
	ap := planApply(cur, b, wd, time.Now())
	res.Problems, res.Plans = ap.problems, ap.plans
	if len(res.Problems) > 0 || ao.DryRun {
		return res, nil
	}
	if ao.MaxUnavailable <= 0 {
		res.Revision, err = fleet.Write(ctx, cli, o.Prefix, b.Common, b.Hosts)
		return res, err
	}
	if ao.Progress != nil {
		for _, h := range ap.changed {
			ao.Progress("host " + h + ":\n" + res.Plans[h].Text())
		}
	}
	r := &rollout{cli: cli, prefix: o.Prefix, opts: ao, cur: cur, bundle: b}
	res.Revision, res.Skipped, err = r.run(ctx, ap.changed)
	return res, err
}

// applyPlan is what writing a bundle does to each host.
type applyPlan struct {
	problems []string
	plans    map[string]*schema.Plan
	changed  []string // the hosts whose layered config changes, sorted
}

// planApply layers each affected host's config before and after the
// bundle is written, validates the after of hosts not in the bundle (the
// bundle's own were validated), and plans each change.
func planApply(cur *fleet.Current, b *fleet.Bundle, wd string, now time.Time) applyPlan {
	ap := applyPlan{plans: map[string]*schema.Plan{}}
	hosts := b.HostNames()
	newCommon := cur.Common
	if b.Common != nil {
		newCommon = b.Common
		for h := range cur.Hosts {
			hosts = append(hosts, h)
		}
		for h := range cur.Up {
			hosts = append(hosts, h)
		}
		slices.Sort(hosts)
		hosts = slices.Compact(hosts)
	}
	for _, h := range hosts {
		before := fleet.Snapshot{Host: cur.Hosts[h], Common: cur.Common}
		after := fleet.Snapshot{Host: cur.Hosts[h], Common: newCommon}
		if hb, ok := b.Hosts[h]; ok {
			after.Host = hb
		}
		oldDoc, oldErr := before.Config()
		newDoc, err := after.Config()
		same := err == nil && oldErr == nil && bytes.Equal(oldDoc, newDoc)
		if _, inBundle := b.Hosts[h]; same && !inBundle {
			continue
		}
		next, err := parseSnapshot(after, wd)
		if err != nil {
			// Only a host outside the bundle can get here.
			for _, p := range desired.Problems(err) {
				ap.problems = append(ap.problems, "etcd hosts/"+h+" (not in the directory), with the new common.json: "+p)
			}
			continue
		}
		if !same {
			ap.changed = append(ap.changed, h)
		}
		if old, err := parseSnapshot(before, wd); err == nil {
			ap.plans[h] = reconcile.PlanTransition(old, next, now)
		} else {
			ap.plans[h] = reconcile.PlanEmpty(next, now)
		}
	}
	return ap
}

// rollout changes the changed hosts in batches, waiting for each batch to
// converge, then writes the bundle as it is.
type rollout struct {
	cli    *clientv3.Client
	prefix string
	opts   FleetApplyOptions
	cur    *fleet.Current
	bundle *fleet.Bundle
}

func (r *rollout) say(f string, a ...any) {
	if r.opts.Progress != nil {
		r.opts.Progress(fmt.Sprintf(f, a...))
	}
}

// run rolls the change out and returns the last revision written and the
// hosts skipped because their Patrol was down.
func (r *rollout) run(ctx context.Context, changed []string) (int64, []string, error) {
	var live, skipped []string
	for _, h := range changed {
		if r.cur.Up[h] {
			live = append(live, h)
		} else {
			skipped = append(skipped, h)
		}
	}
	if len(skipped) > 0 {
		r.say("not waiting for %s: no Patrol runs there (no status key); it takes the new config when it starts", strings.Join(skipped, ", "))
	}
	if len(changed) == 0 {
		r.say("no host's config changes: nothing to roll out")
	}
	commonChanged := r.bundle.Common != nil && !bytes.Equal(r.bundle.Common, r.cur.Common)
	// now is what each host key holds, to write at the end only what
	// still differs from the bundle.
	now := map[string][]byte{}
	for h, v := range r.cur.Hosts {
		now[h] = v
	}
	n := r.opts.MaxUnavailable
	batches := (len(live) + n - 1) / n
	var rev int64
	for i := 0; i < len(live); i += n {
		batch := live[i:min(i+n, len(live))]
		keys := map[string][]byte{}
		for _, h := range batch {
			keys[h] = r.final(h)
			if commonChanged {
				staged, err := desired.Stage(r.cur.Common, r.bundle.Common, r.final(h))
				if err != nil {
					return rev, skipped, err // the configs layered above: cannot happen
				}
				keys[h] = staged
			}
		}
		var err error
		if rev, err = fleet.Write(ctx, r.cli, r.prefix, nil, keys); err != nil {
			return rev, skipped, err
		}
		for h, v := range keys {
			now[h] = v
		}
		label := fmt.Sprintf("batch %d/%d (%s)", i/n+1, batches, strings.Join(batch, ", "))
		r.say("%s written at revision %d", label, rev)
		if err := r.wait(ctx, label, batch, rev); err != nil {
			rest := append(slices.Clone(live[i+len(batch):]), skipped...)
			return rev, skipped, fmt.Errorf("%w; not written: %s", err, cmp.Or(strings.Join(rest, ", "), "none"))
		}
	}
	// The bundle as it is: common, and every host key that differs.
	last := map[string][]byte{}
	for _, h := range append(r.bundle.HostNames(), changed...) {
		if v := r.final(h); !bytes.Equal(v, now[h]) || (v == nil) != (now[h] == nil) {
			last[h] = v
		}
	}
	var common []byte
	if commonChanged {
		common = r.bundle.Common
	}
	if common == nil && len(last) == 0 {
		return rev, skipped, nil
	}
	var err error
	if rev, err = fleet.Write(ctx, r.cli, r.prefix, common, last); err != nil {
		return rev, skipped, err
	}
	r.say("the directory as it is written at revision %d", rev)
	if commonChanged && len(live) > 0 {
		// It changes nothing on the rolled hosts; wait until they say so.
		return rev, skipped, r.wait(ctx, "the last write", live, rev)
	}
	return rev, skipped, nil
}

// final is host h's key once the bundle is written: the bundle's, else
// what etcd has (nil: no key).
func (r *rollout) final(h string) []byte {
	if v, ok := r.bundle.Hosts[h]; ok {
		return v
	}
	return r.cur.Hosts[h]
}

// wait waits until every host of batch reports revision rev (or later)
// applied, converged, for the settle time in a row; or says why not.
func (r *rollout) wait(ctx context.Context, label string, batch []string, rev int64) error {
	timeout := cmp.Or(r.opts.Timeout, 5*time.Minute)
	// A batch counts as converged once it stayed so this long: an app that
	// crashes a second after its start must not pass.
	settle := cmp.Or(r.opts.Settle, 2*time.Second)
	start := time.Now()
	var settled time.Time // since when the batch looks converged
	var lastWaiting []string
	for {
		hosts, err := fleet.FleetStatus(ctx, r.cli, r.prefix)
		if err != nil {
			return err
		}
		waiting := waitingFor(hosts, batch, rev)
		if len(waiting) > 0 {
			settled, lastWaiting = time.Time{}, waiting
		} else if settled.IsZero() {
			settled = time.Now()
		}
		if !settled.IsZero() && time.Since(settled) >= settle {
			r.say("%s converged in %s", label, time.Since(start).Round(time.Millisecond))
			return nil
		}
		if time.Since(start) > timeout {
			if len(waiting) == 0 {
				// Converged just now, not for long enough: say what it
				// was doing before.
				waiting = append(slices.Clone(lastWaiting), fmt.Sprintf("converged for %s only, of the %s required",
					time.Since(settled).Round(time.Millisecond), settle))
			}
			return fmt.Errorf("%s did not converge within %s: %s", label, timeout, strings.Join(waiting, "; "))
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitingFor says what each host of batch is doing that is not converged
// at revision rev.
func waitingFor(hosts []fleet.HostLine, batch []string, rev int64) []string {
	var waiting []string
	seen := map[string]bool{}
	for _, h := range hosts {
		if !slices.Contains(batch, h.Host) {
			continue
		}
		seen[h.Host] = true
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
	for _, h := range batch {
		if !seen[h] {
			waiting = append(waiting, h+": down (no status)")
		}
	}
	return waiting
}
