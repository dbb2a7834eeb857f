package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/etcdtest"
)

// TestBoard: the status key is written under a lease, coalesced, removed
// at once by a clean stop, and by the lease's expiry when the host dies.
func TestBoard(t *testing.T) {
	c := etcdtest.Start(t, 3)
	reader := client(t, c)
	get := func(key string) (string, int64) {
		resp, err := reader.Get(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return "", 0
		}
		return string(resp.Kvs[0].Value), resp.Kvs[0].Lease
	}
	waitFor := func(what string, timeout time.Duration, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > timeout {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}

	// A clean stop revokes the lease: the key goes at once.
	b := &Board{Client: client(t, c), Key: StatusKey("fleet", "a"), TTL: 2 * time.Second}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	for i := range 20 {
		b.Publish([]byte{byte('0' + i%10)}) // a burst: few writes
	}
	waitFor("the last value", 5*time.Second, func() bool { v, _ := get(b.Key); return v == "9" })
	if _, lease := get(b.Key); lease == 0 {
		t.Error("the status key has no lease")
	}
	resp, _ := reader.Get(t.Context(), b.Key)
	if v := resp.Kvs[0].Version; v > 3 {
		t.Errorf("a burst of 20 publishes made %d writes", v)
	}
	cancel()
	<-done
	if v, _ := get(b.Key); v != "" {
		t.Errorf("after a clean stop the key holds %q", v)
	}

	// A host that dies: its client is gone, the key goes after the TTL.
	dying, err := Connect(Options{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	b2 := &Board{Client: dying, Key: StatusKey("fleet", "b"), TTL: 2 * time.Second}
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	done2 := make(chan struct{})
	go func() { b2.Run(ctx2); close(done2) }()
	b2.Publish([]byte("up"))
	waitFor("b's status", 5*time.Second, func() bool { v, _ := get(b2.Key); return v == "up" })
	dying.Close() // no more keepalives, no revoke
	took := waitFor("b's status to expire", 10*time.Second, func() bool { v, _ := get(b2.Key); return v == "" })
	t.Logf("gone %v after the host died (TTL 2 s)", took)
	cancel2()
	<-done2
}
