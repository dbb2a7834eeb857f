// Package fleet is the etcd wiring of Patrol's fleet (issue 16): a host's
// desired state read from and watched in etcd, as a second source of the
// same config documents a file holds (desired.Layer merges a host's config
// over the fleet's common one; desired.Parse validates the result like a
// file). Each host reads and watches only its own key and the common key,
// by key, never a prefix shared by all hosts: a change for one host wakes
// no other.
//
// Status: the source (read, layering, watch with resumption and a full
// re-read after compaction) is built and tested against a real 3-member
// cluster; `patrol run --source etcd://...`, the status board with leases,
// `patrol fleet ...` and rollouts are not wired yet.
package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/patrolhq/patrol/desired"
)

// HostKey is the key of host's config under prefix:
// PREFIX/hosts/NAME/config.json.
func HostKey(prefix, host string) string { return path.Join("/", prefix, "hosts", host, "config.json") }

// CommonKey is the key of the config every host's is layered on:
// PREFIX/common/config.json.
func CommonKey(prefix string) string { return path.Join("/", prefix, "common", "config.json") }

// Snapshot is a host's two keys as read at one store revision.
type Snapshot struct {
	// Host and Common are the keys' values, nil when a key is absent.
	Host, Common []byte
	// Revision is the store revision the snapshot is current at.
	Revision int64
}

// Config is the snapshot's config document: the host's over common's
// (desired.Layer).
func (s Snapshot) Config() ([]byte, error) { return desired.Layer(s.Common, s.Host) }

// Same reports whether two snapshots hold the same values.
func (s Snapshot) Same(o Snapshot) bool {
	return bytes.Equal(s.Host, o.Host) && bytes.Equal(s.Common, o.Common) &&
		(s.Host == nil) == (o.Host == nil) && (s.Common == nil) == (o.Common == nil)
}

// Source reads and watches one host's keys.
type Source struct {
	Client *clientv3.Client
	Prefix string
	Host   string
	// RetryMin and RetryMax bound the backoff between attempts after a
	// failed read (defaults 100 ms and 10 s).
	RetryMin, RetryMax time.Duration
}

func (s *Source) hostKey() string   { return HostKey(s.Prefix, s.Host) }
func (s *Source) commonKey() string { return CommonKey(s.Prefix) }

// Read reads both keys in one transaction, so at one revision, by key.
func (s *Source) Read(ctx context.Context) (Snapshot, error) {
	resp, err := s.Client.Txn(ctx).Then(clientv3.OpGet(s.hostKey()), clientv3.OpGet(s.commonKey())).Commit()
	if err != nil {
		return Snapshot{}, fmt.Errorf("read %s and %s: %w", s.hostKey(), s.commonKey(), err)
	}
	snap := Snapshot{Revision: resp.Header.Revision}
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			continue
		}
		v := kvs[0].Value
		if v == nil {
			v = []byte{}
		}
		if i == 0 {
			snap.Host = v
		} else {
			snap.Common = v
		}
	}
	return snap, nil
}

// Watch sends a snapshot on out whenever the host's key or the common key
// changes after from.Revision, in revision order, until ctx ends. The
// watches resume where they were after a lost connection (the client
// re-establishes them from the next revision); when etcd has compacted
// away a revision they still need, Watch reads both keys again and sends
// the result if it differs: never a silent gap.
func (s *Source) Watch(ctx context.Context, from Snapshot, out chan<- Snapshot) error {
	cur := from
	retry := s.RetryMin
	if retry <= 0 {
		retry = 100 * time.Millisecond
	}
	for ctx.Err() == nil {
		next, err := s.watch(ctx, cur, out)
		cur = next
		if ctx.Err() != nil {
			break
		}
		if !errors.Is(err, errCompacted) && err != nil {
			// Anything else: wait a little, then read again.
			select {
			case <-time.After(retry):
			case <-ctx.Done():
				return ctx.Err()
			}
			retry = min(2*retry, max(s.RetryMax, time.Second))
		}
		snap, err := s.Read(ctx)
		if err != nil {
			continue
		}
		retry = s.RetryMin
		if !snap.Same(cur) {
			if !send(ctx, out, snap) {
				break
			}
		}
		cur = snap
	}
	return ctx.Err()
}

var errCompacted = errors.New("watched revision compacted")

// watch follows both keys from cur until a watch fails or ctx ends, and
// returns the last snapshot sent.
func (s *Source) watch(ctx context.Context, cur Snapshot, out chan<- Snapshot) (Snapshot, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	hw := s.Client.Watch(wctx, s.hostKey(), clientv3.WithRev(cur.Revision+1))
	cw := s.Client.Watch(wctx, s.commonKey(), clientv3.WithRev(cur.Revision+1))
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case resp, ok = <-hw:
		case resp, ok = <-cw:
		case <-ctx.Done():
			return cur, ctx.Err()
		}
		if !ok {
			return cur, errors.New("watch closed")
		}
		if resp.CompactRevision != 0 {
			return cur, errCompacted
		}
		if err := resp.Err(); err != nil {
			return cur, err
		}
		if len(resp.Events) == 0 {
			continue // progress notification
		}
		for _, ev := range resp.Events {
			var v []byte
			if ev.Type == clientv3.EventTypePut {
				v = ev.Kv.Value
				if v == nil {
					v = []byte{}
				}
			}
			switch string(ev.Kv.Key) {
			case s.hostKey():
				cur.Host = v
			case s.commonKey():
				cur.Common = v
			}
			cur.Revision = max(cur.Revision, ev.Kv.ModRevision)
		}
		if !send(ctx, out, cur) {
			return cur, ctx.Err()
		}
	}
}

func send(ctx context.Context, out chan<- Snapshot, s Snapshot) bool {
	select {
	case out <- s:
		return true
	case <-ctx.Done():
		return false
	}
}
