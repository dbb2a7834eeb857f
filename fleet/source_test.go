package fleet

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/patrolhq/patrol/internal/etcdtest"
)

// client connects to a cluster's members.
func client(t *testing.T, c *etcdtest.Cluster) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func put(t *testing.T, cli *clientv3.Client, key, value string) int64 {
	t.Helper()
	resp, err := cli.Put(t.Context(), key, value)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// next waits for the next snapshot.
func next(t *testing.T, ch <-chan Snapshot) Snapshot {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot")
	}
	return Snapshot{}
}

// TestSource reads and watches one host's keys in a real 3-member cluster:
// reads by key at one revision, layering, watch events for the host's key
// and common only, deletes, and a full re-read when the revision the
// watch needs was compacted.
func TestSource(t *testing.T) {
	c := etcdtest.Start(t, 3)
	cli := client(t, c)
	src := &Source{Client: cli, Prefix: "fleet", Host: "web-1"}
	if HostKey("fleet", "web-1") != "/fleet/hosts/web-1/config.json" || CommonKey("fleet") != "/fleet/common/config.json" {
		t.Fatalf("keys %s %s", HostKey("fleet", "web-1"), CommonKey("fleet"))
	}
	ctx := t.Context()

	empty, err := src.Read(ctx)
	if err != nil || empty.Host != nil || empty.Common != nil || empty.Revision == 0 {
		t.Fatalf("empty read: %+v %v", empty, err)
	}
	if _, err := empty.Config(); err == nil {
		t.Error("a host with no keys has a config")
	}
	put(t, cli, CommonKey("fleet"), `{"apps": {"a": {"binary": "/bin/a"}}}`)
	put(t, cli, HostKey("fleet", "web-1"), `{"apps": {"b": {"binary": "/bin/b"}}}`)
	first, err := src.Read(ctx)
	if err != nil || string(first.Host) != `{"apps": {"b": {"binary": "/bin/b"}}}` || first.Common == nil {
		t.Fatalf("read: %+v %v", first, err)
	}
	cfg, err := first.Config()
	if err != nil || string(cfg) != `{"apps":{"a":{"binary": "/bin/a"},"b":{"binary": "/bin/b"}}}` {
		t.Fatalf("config %s %v", cfg, err)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan Snapshot, 16)
	done := make(chan error, 1)
	go func() { done <- src.Watch(wctx, first, ch) }()

	rev := put(t, cli, HostKey("fleet", "web-1"), `{"apps": {"b": {"binary": "/bin/b2"}}}`)
	if s := next(t, ch); string(s.Host) != `{"apps": {"b": {"binary": "/bin/b2"}}}` || s.Revision != rev {
		t.Errorf("after a host put: %+v (revision %d)", s, rev)
	}
	// Another host's key and an unrelated key wake nothing.
	put(t, cli, HostKey("fleet", "web-2"), `{}`)
	put(t, cli, "/fleet/hosts/web-1/other", `{}`)
	rev = put(t, cli, CommonKey("fleet"), `{"tick-every": 5}`)
	if s := next(t, ch); string(s.Common) != `{"tick-every": 5}` || s.Revision != rev {
		t.Errorf("after a common put: %+v (revision %d)", s, rev)
	}
	if _, err := cli.Delete(ctx, HostKey("fleet", "web-1")); err != nil {
		t.Fatal(err)
	}
	if s := next(t, ch); s.Host != nil || s.Common == nil {
		t.Errorf("after the host's key was deleted: %+v", s)
	}
	cancel()
	<-done

	// A watch from a compacted revision: read again, nothing missed.
	old := first
	put(t, cli, HostKey("fleet", "web-1"), `{"apps": {"c": {"binary": "/bin/c"}}}`)
	last := put(t, cli, "/elsewhere", "x")
	if _, err := cli.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	wctx2, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	go func() { done <- src.Watch(wctx2, old, ch) }()
	s := next(t, ch)
	if string(s.Host) != `{"apps": {"c": {"binary": "/bin/c"}}}` || string(s.Common) != `{"tick-every": 5}` || s.Revision < last {
		t.Errorf("after compaction: %+v (compacted at %d)", s, last)
	}
	// And it goes on watching from there.
	put(t, cli, CommonKey("fleet"), `{"tick-every": 6}`)
	if s := next(t, ch); string(s.Common) != `{"tick-every": 6}` {
		t.Errorf("after compaction and a put: %+v", s)
	}
	cancel2()
	<-done
}
