package patrol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/fleet"
	"github.com/patrolhq/patrol/schema"
)

// SourceOptions configure the fleet's etcd as the config's source
// (`patrol run --source etcd://HOST:PORT/PREFIX --host NAME`).
type SourceOptions = fleet.Options

// ParseSourceURL reads etcd://HOST:PORT[,HOST:PORT...]/PREFIX (etcds://
// for TLS) into endpoints and a prefix.
func ParseSourceURL(s string) (endpoints []string, prefix string, err error) {
	return fleet.ParseURL(s)
}

// sourceFile is where the last good config read from etcd is kept in the
// state directory, so that a Patrol restarted while etcd is away still
// supervises.
const sourceFile = "source.json"

// savedSource is sourceFile's content.
type savedSource struct {
	Revision int64   `json:"revision"`
	Host     *string `json:"host"`
	Common   *string `json:"common"`
}

// etcdSource is a Patrol's etcd source: the host's key layered on the
// common one, watched; the host's status published under a lease.
type etcdSource struct {
	p     *Patrol
	opts  fleet.Options
	cli   *clientv3.Client
	src   *fleet.Source
	board *fleet.Board
	saved string // path of sourceFile
	// read is signalled when a snapshot was read: the status shows its
	// revision even when the config did not change (no event says so).
	read chan struct{}

	mu        sync.Mutex
	applied   fleet.Snapshot // the snapshot of the config in force
	seen      fleet.Snapshot // the newest snapshot read
	connected bool
	since     time.Time // when connected last changed
}

// loadSource connects to etcd and reads the host's config (in 5 s at
// most); when etcd cannot be read, or holds an invalid config, the last
// good one saved in the state directory serves, if any.
func loadSource(o fleet.Options, dir, stateDir string) (*etcdSource, *desired.State, error) {
	if err := fleet.CheckHost(o.Host); err != nil {
		return nil, nil, err
	}
	cli, err := fleet.Connect(o)
	if err != nil {
		return nil, nil, err
	}
	s := &etcdSource{read: make(chan struct{}, 1), opts: o, cli: cli, src: &fleet.Source{Client: cli, Prefix: o.Prefix, Host: o.Host},
		board: &fleet.Board{Client: cli, Key: fleet.StatusKey(o.Prefix, o.Host), TTL: o.StatusTTL},
		saved: filepath.Join(stateDir, sourceFile), since: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, readErr := s.src.Read(ctx)
	var st *desired.State
	if readErr == nil {
		s.connected, s.seen = true, snap
		if st, err = parseSnapshot(snap, dir); err == nil {
			s.applied = snap
			return s, st, nil
		}
		readErr = err
	}
	saved, err := s.load()
	if err != nil {
		cli.Close()
		return nil, nil, fmt.Errorf("%w (and no last good config in %s: %v)", readErr, s.saved, err)
	}
	if st, err = parseSnapshot(saved, dir); err != nil {
		cli.Close()
		return nil, nil, fmt.Errorf("%w (and the last good config in %s: %v)", readErr, s.saved, err)
	}
	s.applied = saved
	return s, st, nil
}

// parseSnapshot runs a snapshot's config through the load pipeline.
func parseSnapshot(snap fleet.Snapshot, dir string) (*desired.State, error) {
	data, err := snap.Config()
	if err != nil {
		return nil, err
	}
	return desired.Parse(data, desired.Options{Dir: dir})
}

func (s *etcdSource) load() (fleet.Snapshot, error) {
	b, err := os.ReadFile(s.saved)
	if err != nil {
		return fleet.Snapshot{}, err
	}
	var v savedSource
	if err := json.Unmarshal(b, &v); err != nil {
		return fleet.Snapshot{}, err
	}
	snap := fleet.Snapshot{Revision: v.Revision}
	if v.Host != nil {
		snap.Host = []byte(*v.Host)
	}
	if v.Common != nil {
		snap.Common = []byte(*v.Common)
	}
	return snap, nil
}

// save keeps snap as the last good config (temp file, fsync, rename).
func (s *etcdSource) save(snap fleet.Snapshot) error {
	v := savedSource{Revision: snap.Revision}
	if snap.Host != nil {
		h := string(snap.Host)
		v.Host = &h
	}
	if snap.Common != nil {
		c := string(snap.Common)
		v.Common = &c
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := s.saved + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	err = errors.Join(err, f.Sync(), f.Close())
	if err != nil {
		return err
	}
	return os.Rename(tmp, s.saved)
}

// run watches the source, applies what it reads, watches the connection
// and publishes the host's status, until ctx ends.
func (s *etcdSource) run(ctx context.Context) {
	p := s.p
	if err := s.save(s.applied); err != nil && s.applied.Revision > 0 {
		p.log.Warn("cannot save the config read from etcd", "path", s.saved, "err", err)
	}
	var wg sync.WaitGroup
	snaps := make(chan fleet.Snapshot, 1)
	s.mu.Lock()
	from := s.seen
	if from.Revision == 0 {
		from = s.applied // etcd was away at the start: resume from the saved revision
	}
	s.mu.Unlock()
	if from.Revision > 0 && !from.Same(s.applied) {
		// The newest read was invalid: report it now that the loop runs.
		s.apply(from)
	}
	wg.Go(func() { s.src.Watch(ctx, from, snaps) })
	wg.Go(func() {
		for {
			select {
			case snap := <-snaps:
				s.observe(nil) // the watch delivered: etcd answers
				s.apply(snap)
			case <-ctx.Done():
				return
			}
		}
	})
	wg.Go(func() { s.monitor(ctx) })
	wg.Go(func() { s.board.Run(ctx) })
	wg.Go(func() { s.publish(ctx) })
	wg.Wait()
	s.cli.Close()
}

// apply validates a snapshot and hands it to the loop, or reports why not
// (the last good config stays).
func (s *etcdSource) apply(snap fleet.Snapshot) (*desired.State, error) {
	p := s.p
	s.mu.Lock()
	s.seen = snap
	s.mu.Unlock()
	defer func() {
		select {
		case s.read <- struct{}{}:
		default:
		}
	}()
	st, err := parseSnapshot(snap, p.configDir())
	if err != nil {
		p.log.Error("config in etcd is invalid; keeping the running config", "key", fleet.HostKey(s.opts.Prefix, s.opts.Host), "revision", snap.Revision, "err", err)
		p.loop.ConfigFailed(strings.Join(desired.Problems(err), "; "))
		p.metrics.reloads.WithLabelValues("failed").Inc()
		return nil, err
	}
	p.metrics.reloads.WithLabelValues("ok").Inc()
	p.mu.Lock()
	p.current = st
	p.mu.Unlock()
	s.mu.Lock()
	s.applied = snap
	s.mu.Unlock()
	p.loop.SetConfig(st)
	p.log.Info("config read from etcd", "revision", snap.Revision, "config-revision", st.Revision())
	if err := s.save(snap); err != nil {
		p.log.Warn("cannot save the config read from etcd", "path", s.saved, "err", err)
	}
	return st, nil
}

// reload reads the source again (SIGHUP, POST /api/reload).
func (s *etcdSource) reload() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, err := s.src.Read(ctx)
	if err != nil {
		return "", err
	}
	st, err := s.apply(snap)
	if err != nil {
		return "", err
	}
	return st.Revision(), nil
}

// monitor checks every 2 s that etcd answers (a linearizable read: a
// member cut off from its quorum does not count), and logs the changes.
func (s *etcdSource) monitor(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := s.cli.Get(cctx, fleet.HostKey(s.opts.Prefix, s.opts.Host), clientv3.WithCountOnly())
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.observe(err)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// observe records whether etcd answered (err nil) and logs and announces
// a change.
func (s *etcdSource) observe(err error) {
	up := err == nil
	s.mu.Lock()
	changed := up != s.connected
	if changed {
		s.connected, s.since = up, time.Now()
	}
	s.mu.Unlock()
	switch {
	case changed && up:
		s.p.log.Info("etcd answers again", "endpoints", s.opts.Endpoints)
		s.p.loop.Announce(schema.Event{Event: schema.EventSource, Message: "connected"})
	case changed:
		s.p.log.Warn("etcd does not answer; supervising on the last good config", "endpoints", s.opts.Endpoints, "err", err)
		s.p.loop.Announce(schema.Event{Event: schema.EventSource, Message: "disconnected: " + err.Error()})
	}
}

// publish writes the host's status to the board whenever something
// changed: at once after a quiet time, then at most every 250 ms while
// changes go on (the board spaces its writes too).
func (s *etcdSource) publish(ctx context.Context) {
	events := s.p.loop.Events(ctx, false)
	var last time.Time
	for {
		if wait := time.Until(last.Add(250 * time.Millisecond)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		}
		for drained := false; !drained; { // what came meanwhile is in this status
			select {
			case <-events:
			case <-s.read:
			default:
				drained = true
			}
		}
		last = time.Now()
		st, err := s.p.Status(ctx)
		if err != nil {
			return
		}
		if b, err := json.Marshal(s.hostStatus(st)); err == nil {
			s.board.Publish(b)
		}
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-s.read:
		case <-ctx.Done():
			return
		}
	}
}

// hostStatus is the compact status published for the fleet.
func (s *etcdSource) hostStatus(st *schema.Status) fleet.HostStatus {
	s.mu.Lock()
	rev := s.applied.Revision
	s.mu.Unlock()
	hs := fleet.HostStatus{Host: s.opts.Host, Revision: rev, Updated: time.Now().UTC().Format(time.RFC3339Nano)}
	if st.Config != nil {
		hs.ConfigRevision, hs.ConfigError = st.Config.Revision, st.Config.Error
	}
	entries := func(in map[string]*schema.Response) map[string]fleet.EntryStatus {
		if len(in) == 0 {
			return nil
		}
		out := make(map[string]fleet.EntryStatus, len(in))
		for id, e := range in {
			es := fleet.EntryStatus{State: string(e.State), PID: e.PID, Restarts: e.Restarts, Ready: e.Ready}
			if e.State != schema.StateRunning {
				es.Error = e.Reason
			}
			out[id] = es
		}
		return out
	}
	hs.Apps, hs.Services = entries(st.Apps), entries(st.Services)
	return hs
}

// decorate adds the source to a status's config block.
func (s *etcdSource) decorate(c *schema.ConfigStatus, layout string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Path = fleet.HostKey(s.opts.Prefix, s.opts.Host)
	c.Source = &schema.SourceStatus{Kind: "etcd", Endpoints: s.opts.Endpoints, Key: c.Path,
		Common: fleet.CommonKey(s.opts.Prefix), Revision: s.applied.Revision, Connected: s.connected}
	if !s.connected {
		c.Source.DisconnectedSince = s.since.Format(layout)
	}
}
