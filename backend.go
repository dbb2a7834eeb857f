package patrol

import (
	"context"
	"errors"
	"time"

	"github.com/patrolhq/patrol/api"
	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/reconcile"
	"github.com/patrolhq/patrol/schema"
)

// backend adapts Patrol to api.Backend.
type backend struct{ p *Patrol }

var _ api.BatchBackend = backend{}

// Status is the API's status: Patrol's, with each running app's usage
// (sampled as it is read; the loop and the fleet's status never pay for
// it).
func (b backend) Status(ctx context.Context) (*schema.Status, error) {
	st, err := b.p.Status(ctx)
	if err == nil {
		b.p.usage.decorate(st, b.p.layout(), time.Now())
	}
	return st, err
}
func (b backend) Request(ctx context.Context, req *schema.Request, via schema.Transport) (*schema.Response, error) {
	return b.p.Request(ctx, req, via)
}

// RequestBatch makes backend an api.BatchBackend: the UDP API applies the
// datagrams waiting together in one visit to the loop.
func (b backend) RequestBatch(ctx context.Context, reqs []*schema.Request, via schema.Transport) ([]*schema.Response, error) {
	return b.p.loop.RequestBatch(ctx, reqs, via)
}

func (b backend) Plan(ctx context.Context, config []byte) (*schema.Plan, []string, error) {
	plan, err := b.p.Plan(ctx, config)
	if err != nil {
		if problems := desired.Problems(err); config != nil && isConfigError(err) {
			return nil, problems, nil
		}
		return nil, nil, err
	}
	return plan, nil, nil
}

func (b backend) Events(ctx context.Context, pings bool) (<-chan schema.Event, error) {
	return b.p.loop.Events(ctx, pings), nil
}

func (b backend) LogFile(ctx context.Context, id, stream, secret string) (string, string, error) {
	return b.p.loop.LogFile(ctx, id, stream, secret)
}

func (b backend) Usage(ctx context.Context) (map[string][]api.UsageSample, error) {
	return b.p.usage.sample(ctx, b.p.Status, time.Now())
}

func (b backend) Reload(ctx context.Context) (string, []string, error) {
	rev, err := b.p.Reload()
	if err != nil {
		return "", desired.Problems(err), nil
	}
	return rev, nil, nil
}

// isConfigError reports whether err is a config's problems (as opposed to
// the loop not answering).
func isConfigError(err error) bool {
	return !errors.Is(err, reconcile.ErrStopped) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
