package fleet

import (
	"context"
	"path"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// StatusKey is where host publishes its status: PREFIX/status/NAME.
func StatusKey(prefix, host string) string { return path.Join("/", prefix, "status", host) }

// HostStatus is what a host publishes under its status key.
type HostStatus struct {
	Host string `json:"host"`
	// Revision is the etcd revision of the config the host applied, and
	// ConfigRevision that config's own revision (as in /status/).
	Revision       int64  `json:"revision"`
	ConfigRevision string `json:"config-revision"`
	// ConfigError is why the newest config in etcd is not applied.
	ConfigError string `json:"config-error,omitempty"`
	// Updated is when the host wrote this (RFC 3339).
	Updated  string                 `json:"updated"`
	Apps     map[string]EntryStatus `json:"apps,omitempty"`
	Services map[string]EntryStatus `json:"services,omitempty"`
}

// EntryStatus is one app's or service's line in a host's status.
type EntryStatus struct {
	State    string `json:"state"`
	PID      uint32 `json:"pid,omitempty"`
	Restarts int    `json:"restarts,omitempty"`
	Ready    *bool  `json:"ready,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Board keeps a host's status key current, attached to a lease that the
// board keeps alive: when the host dies, its key disappears when the lease
// runs out (TTL); a clean stop revokes it at once.
type Board struct {
	Client *clientv3.Client
	Key    string
	// TTL is the lease's time to live (default 10 s).
	TTL time.Duration
	// MinInterval spaces out writes (default 250 ms): a burst of changes
	// is one write.
	MinInterval time.Duration

	mu     sync.Mutex
	latest []byte
	wake   chan struct{}
}

// Publish hands the board the host's newest status; only the latest is
// written, at most one write per MinInterval.
func (b *Board) Publish(v []byte) {
	b.mu.Lock()
	b.latest = v
	if b.wake == nil {
		b.wake = make(chan struct{}, 1)
	}
	w := b.wake
	b.mu.Unlock()
	select {
	case w <- struct{}{}:
	default:
	}
}

// Run writes what is published until ctx ends, then revokes the lease.
// Errors (etcd unreachable, the lease lost meanwhile) are retried: the
// key is written again under a new lease once etcd answers.
func (b *Board) Run(ctx context.Context) {
	b.mu.Lock()
	if b.wake == nil {
		b.wake = make(chan struct{}, 1)
	}
	wake := b.wake
	b.mu.Unlock()
	ttl := b.TTL
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	every := b.MinInterval
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	var (
		lease   clientv3.LeaseID
		alive   <-chan *clientv3.LeaseKeepAliveResponse
		stopKA  context.CancelFunc = func() {}
		written []byte
		retry   <-chan time.Time
	)
	defer func() {
		stopKA()
		if lease != 0 {
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			b.Client.Revoke(rctx, lease)
			cancel()
		}
	}()
	write := func() bool {
		b.mu.Lock()
		v := b.latest
		b.mu.Unlock()
		if v == nil || (lease != 0 && string(v) == string(written)) {
			return true
		}
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if lease == 0 {
			g, err := b.Client.Grant(octx, int64((ttl+time.Second-1)/time.Second))
			if err != nil {
				return false
			}
			kctx, kcancel := context.WithCancel(ctx)
			ka, err := b.Client.KeepAlive(kctx, g.ID)
			if err != nil {
				kcancel()
				return false
			}
			lease, alive, stopKA = g.ID, ka, kcancel
		}
		if _, err := b.Client.Put(octx, b.Key, string(v), clientv3.WithLease(lease)); err != nil {
			return false
		}
		written = v
		return true
	}
	last := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-alive:
			if ok {
				continue
			}
			// The keepalive ended: the lease expired (etcd was away
			// longer than TTL) or was revoked. Write again under a new one.
			stopKA()
			lease, alive, written = 0, nil, nil
			if !write() {
				retry = time.After(time.Second)
			}
			continue
		case <-wake:
		case <-retry:
			retry = nil
		}
		if wait := time.Until(last.Add(every)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		}
		last = time.Now()
		if !write() {
			retry = time.After(time.Second)
		}
	}
}
