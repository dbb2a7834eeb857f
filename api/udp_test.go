package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// startUDP runs ServeUDP for f on a loopback socket and returns its
// address and a function that stops it and reports what ServeUDP returned.
// Cleanup stops it too.
func startUDP(t *testing.T, f *fakeBackend) (addr string, stop func() error) {
	t.Helper()
	return startUDPWith(t, f, UDPOptions{})
}

// startUDPWith is startUDP with options.
func startUDPWith(t *testing.T, f *fakeBackend, opts UDPOptions) (addr string, stop func() error) {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var b Backend = f
	if f.batch {
		b = batchFake{f}
	}
	go func() { done <- ServeUDPWith(ctx, conn, b, opts) }()
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(5 * time.Second):
				result = errors.New("ServeUDP did not return within 5s of cancel")
			}
			conn.Close()
		})
		return result
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return conn.LocalAddr().String(), stop
}

// udpClient is a connected UDP socket to the server.
func udpClient(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends msg and returns the reply, or nil when none comes within
// wait.
func exchange(t *testing.T, c *net.UDPConn, msg []byte, wait time.Duration) []byte {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// noReply is how long a test waits to be sure that no reply comes: the
// fake answers in microseconds.
const noReply = 200 * time.Millisecond

// bothUDP runs test with a plain Backend (a reader per datagram) and with
// a BatchBackend (readers that take every datagram waiting).
func bothUDP(t *testing.T, test func(t *testing.T, batch bool)) {
	t.Run("per datagram", func(t *testing.T) { test(t, false) })
	t.Run("batches", func(t *testing.T) { test(t, true) })
}

func TestUDPGolden(t *testing.T) { bothUDP(t, testUDPGolden) }

func testUDPGolden(t *testing.T, batch bool) {
	f := &fakeBackend{batch: batch}
	addr, _ := startUDP(t, f)
	for _, c := range []struct{ name, req string }{
		{"udp-web", `{"group":"app","id":"web","ping":true,"pid":14511,"history":true,"keyvalue":{"a":1}}`},
		{"udp-locked-readonly", `{"group":"app","id":"locked"}`},
		{"udp-service", `{"group":"service","id":"db"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			reply := exchange(t, udpClient(t, addr), []byte(c.req), 5*time.Second)
			if reply == nil {
				t.Fatal("no reply")
			}
			golden(t, c.name+".golden", reply)
			var m map[string]any
			if err := json.Unmarshal(reply, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"history", "keyvalue", "errors"} {
				if _, ok := m[k]; ok {
					t.Errorf("reply has %q", k)
				}
			}
			if strings.ContainsAny(string(reply), "\n\t") {
				t.Errorf("reply is not compact: %q", reply)
			}
		})
	}
	calls := f.Calls()
	if len(calls) != 3 || calls[0].Via != schema.TransportUDP || !calls[0].Req.Ping || calls[0].Req.PID != 14511 {
		t.Errorf("calls: %+v", calls)
	}
}

func TestUDPNoReply(t *testing.T) { bothUDP(t, testUDPNoReply) }

func testUDPNoReply(t *testing.T, batch bool) {
	f := &fakeBackend{batch: batch}
	addr, _ := startUDP(t, f)
	big := `{"group":"app","id":"web"}`
	big += strings.Repeat(" ", schema.MaxUDPRequest+1-len(big))
	for _, c := range []struct {
		name, msg string
		called    bool
	}{
		{"invalid json", `{"group":`, false},
		{"empty", ``, false},
		{"toggle 256", `{"group":"app","id":"web","toggle":256}`, false},
		{"2049 bytes", big, false},
		{"unknown app", `{"group":"app","id":"nope"}`, true},
		{"secret invalid", `{"group":"app","id":"locked","secret":"wrong"}`, true},
		{"unknown group", `null`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(f.Calls())
			if reply := exchange(t, udpClient(t, addr), []byte(c.msg), noReply); reply != nil {
				t.Errorf("got reply %s, want none", reply)
			}
			if called := len(f.Calls()) > before; called != c.called {
				t.Errorf("backend called: got %v, want %v", called, c.called)
			}
		})
	}
	t.Run("2048 bytes is fine", func(t *testing.T) {
		msg := big[:schema.MaxUDPRequest]
		if reply := exchange(t, udpClient(t, addr), []byte(msg), 5*time.Second); reply == nil {
			t.Error("no reply to a 2048-byte request")
		}
	})
	t.Run("backend error", func(t *testing.T) {
		f := &fakeBackend{reqErr: errors.New("shutting down"), batch: batch}
		addr, _ := startUDP(t, f)
		if reply := exchange(t, udpClient(t, addr), []byte(`{"group":"app","id":"web"}`), noReply); reply != nil {
			t.Errorf("got reply %s, want none", reply)
		}
	})
}

// TestUDPConcurrent: many senders at once all get their own answer.
func TestUDPConcurrent(t *testing.T) { bothUDP(t, testUDPConcurrent) }

func testUDPConcurrent(t *testing.T, batch bool) {
	f := &fakeBackend{batch: batch, answer: func(r *schema.Request) *schema.Response {
		return &schema.Response{ID: r.ID, Group: "app", CAS: 1}
	}}
	addr, _ := startUDP(t, f)
	const senders = 100
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for i := range senders {
		c := udpClient(t, addr)
		wg.Go(func() {
			id := fmt.Sprintf("app-%d", i)
			msg := fmt.Appendf(nil, `{"group":"app","id":%q}`, id)
			buf := make([]byte, 4096)
			// UDP may drop under load; a client retries, and so does this
			// one, within an overall deadline.
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				c.SetReadDeadline(time.Now().Add(time.Second))
				n, err := c.Read(buf)
				if errors.Is(err, os.ErrDeadlineExceeded) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				if want := fmt.Sprintf(`{"id":%q,"group":"app","cas":1}`, id); string(buf[:n]) != want {
					errs <- fmt.Errorf("sender %d: got %s, want %s", i, buf[:n], want)
				}
				return
			}
			errs <- fmt.Errorf("sender %d: no answer", i)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if batch && f.batches() == 0 {
		t.Error("RequestBatch was never called")
	}
}

// TestUDPSlowRequest: a request the loop is slow to answer does not hold
// up the others, and cancelling ServeUDP ends it.
func TestUDPSlowRequest(t *testing.T) {
	f := &fakeBackend{block: make(chan struct{})}
	addr, stop := startUDP(t, f)
	slow := udpClient(t, addr)
	if _, err := slow.Write([]byte(`{"group":"app","id":"slow"}`)); err != nil {
		t.Fatal(err)
	}
	if reply := exchange(t, udpClient(t, addr), []byte(`{"group":"app","id":"web"}`), 5*time.Second); reply == nil {
		t.Fatal("no reply while another request is in the loop")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(f.Calls()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("slow request never reached the backend")
		}
		time.Sleep(time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestUDPBatchSlowRequest: with a BatchBackend, a request the loop is
// slow to answer holds its batch until ServeUDP is cancelled, which ends
// it.
func TestUDPBatchSlowRequest(t *testing.T) {
	f := &fakeBackend{block: make(chan struct{}), batch: true}
	addr, stop := startUDP(t, f)
	if _, err := udpClient(t, addr).Write([]byte(`{"group":"app","id":"slow"}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(f.Calls()) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("slow request never reached the backend")
		}
		time.Sleep(time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestUDPStops(t *testing.T) { bothUDP(t, testUDPStops) }

func testUDPStops(t *testing.T, batch bool) {
	var b Backend = &fakeBackend{}
	if batch {
		b = batchFake{&fakeBackend{}}
	}
	_, stop := startUDP(t, &fakeBackend{batch: batch})
	if err := stop(); err != nil {
		t.Fatalf("ServeUDP: got %v, want nil", err)
	}
	// Cancelled before it started: it returns at once too.
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := ServeUDP(ctx, conn, b, nil); err != nil {
		t.Errorf("ServeUDP: got %v, want nil", err)
	}
	// A closed conn is an error, not a hang.
	conn2, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn2.Close()
	if err := ServeUDP(t.Context(), conn2, b, nil); err == nil {
		t.Error("ServeUDP on a closed conn: got nil, want an error")
	}
}

// TestUDPToken: with a token, a datagram that writes must carry it in its
// "token" field; without it the request never reaches the backend and is
// answered "Unauthorized". Pings and reads need none. (The root package's
// TestTokenBothTransports runs the same table over HTTP and UDP against a
// real Patrol.)
func TestUDPToken(t *testing.T) { bothUDP(t, testUDPToken) }

func testUDPToken(t *testing.T, batch bool) {
	f := &fakeBackend{batch: batch}
	var token atomic.Value
	token.Store("s3cr3t-token")
	addr, _ := startUDPWith(t, f, UDPOptions{Token: func() string { return token.Load().(string) }})
	for _, c := range []struct {
		name, msg string
		refused   bool
	}{
		{"toggle missing", `{"group":"app","id":"web","toggle":2}`, true},
		{"toggle wrong", `{"group":"app","id":"web","toggle":2,"token":"nope"}`, true},
		{"toggle prefix", `{"group":"app","id":"web","toggle":2,"token":"s3cr3t"}`, true},
		{"toggle right", `{"group":"app","id":"web","toggle":2,"token":"s3cr3t-token"}`, false},
		{"toggle key case", `{"group":"app","id":"web","toggle":2,"TOKEN":"s3cr3t-token"}`, false},
		{"keyvalue missing", `{"group":"app","id":"web","keyvalue":{"a":1}}`, true},
		{"keyvalue-replace missing", `{"group":"app","id":"web","keyvalue-replace":true}`, true},
		{"clear missing", `{"group":"app","id":"web","clear":true}`, true},
		{"ttl missing", `{"group":"app","id":"web","ttl":5}`, true},
		{"ping with toggle missing", `{"group":"app","id":"web","ping":true,"toggle":3}`, true},
		{"ping open", `{"group":"app","id":"web","ping":true,"pid":14511}`, false},
		{"ping wrong token ignored", `{"group":"app","id":"web","ping":true,"token":"nope"}`, false},
		{"read open", `{"group":"app","id":"web","cas":7}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(f.Calls())
			reply := exchange(t, udpClient(t, addr), []byte(c.msg), 5*time.Second)
			if reply == nil {
				t.Fatal("no reply")
			}
			var m schema.Response
			if err := json.Unmarshal(reply, &m); err != nil {
				t.Fatal(err)
			}
			called := len(f.Calls()) > before
			if c.refused {
				if want := `{"id":"web","group":"app","errors":["Unauthorized"]}`; string(reply) != want {
					t.Errorf("got %s, want %s", reply, want)
				}
				if called {
					t.Error("the backend was called")
				}
				return
			}
			if len(m.Errors) > 0 || !called {
				t.Errorf("got %s (backend called: %v), want an answer from the backend", reply, called)
			}
			if strings.Contains(string(reply), "s3cr3t") {
				t.Errorf("the reply echoes the token: %s", reply)
			}
		})
	}
	t.Run("token removed", func(t *testing.T) {
		token.Store("")
		reply := exchange(t, udpClient(t, addr), []byte(`{"group":"app","id":"web","toggle":2}`), 5*time.Second)
		if reply == nil || strings.Contains(string(reply), "errors") {
			t.Errorf("got %s, want an answer", reply)
		}
	})
}

// TestUDPErrorReplies: of the backend's errors, the seed's stay silent and
// the key/value limits are answered.
func TestUDPErrorReplies(t *testing.T) { bothUDP(t, testUDPErrorReplies) }

func testUDPErrorReplies(t *testing.T, batch bool) {
	var errs atomic.Value
	f := &fakeBackend{batch: batch, answer: func(r *schema.Request) *schema.Response {
		return &schema.Response{Errors: errs.Load().([]string)}
	}}
	addr, _ := startUDP(t, f)
	for _, c := range []struct {
		errs  []string
		reply string
	}{
		{[]string{schema.ErrUnknownApp}, ""},
		{[]string{schema.ErrSecretInvalid}, ""},
		{[]string{schema.ErrKeyValueTooDeep}, `{"id":"Web","group":"app","errors":["KeyValue Too Deep"]}`},
		{[]string{schema.ErrKeyValueTooLarge}, `{"id":"Web","group":"app","errors":["KeyValue Too Large"]}`},
		{[]string{schema.ErrKeyValueTooManyKeys}, `{"id":"Web","group":"app","errors":["KeyValue Too Many Keys"]}`},
	} {
		t.Run(c.errs[0], func(t *testing.T) {
			errs.Store(c.errs)
			wait := 5 * time.Second
			if c.reply == "" {
				wait = noReply
			}
			reply := exchange(t, udpClient(t, addr), []byte(`{"group":"app","id":"Web","keyvalue":{"a":1}}`), wait)
			if string(reply) != c.reply {
				t.Errorf("got %q, want %q", reply, c.reply)
			}
		})
	}
}

func TestUDPReply(t *testing.T) {
	r := webEntry(true)
	r.Errors = []string{"x"}
	yes := true
	r.Health, r.Ready, r.ReadySince, r.StatusText = schema.HealthReady, &yes, "Sun, 22 Nov 2026 16:13:29 +0000", "serving"
	r.Probes = map[string]*schema.ProbeStatus{"liveness": {OK: true, Last: true, Message: "HTTP 200"}}
	r.HealthFailure, r.HealthFailureAt, r.WatchdogUntil = "liveness probe: HTTP 500", "x", "y"
	b, err := UDPReply(r)
	if err != nil {
		t.Fatal(err)
	}
	if r.History == nil || r.KeyValue == nil || r.Errors == nil || r.Probes == nil {
		t.Error("UDPReply changed its argument")
	}
	want := `{"id":"web","instance-id":"f4f67519-35c5-4529-8f63-b6cbb4d6791f","group":"app","name":"Web","pid":14511,` +
		`"started":"Sun, 22 Nov 2026 16:13:28 +0000","lastseen":"Sun, 22 Nov 2026 16:13:31 +0000","run-once":true,"cas":85368,"health":"ready","ready":true}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
}
