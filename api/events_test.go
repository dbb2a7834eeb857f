package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// streamClient opens a long-lived GET on srv and returns the response and
// a line reader; the request ends with the test.
func streamClient(t *testing.T, base, path string) (*http.Response, *bufio.Reader, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		tr.CloseIdleConnections()
	})
	return resp, bufio.NewReader(resp.Body), cancel
}

// readFrame reads one server-sent event frame (up to a blank line).
func readFrame(t *testing.T, rd *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("read frame: %v (so far %q)", err, b.String())
		}
		if line == "\n" {
			return b.String()
		}
		b.WriteString(line)
	}
}

func intp(n int) *int { return &n }

// TestEvents: the stream's headers and framing (retry, then one "id:" and
// one "data:" line of JSON per event), the group/id filter (Patrol's own
// events pass it), and the pings flag.
func TestEvents(t *testing.T) {
	f := &fakeBackend{events: make(chan schema.Event)}
	srv := httptest.NewServer(NewServer(f, Options{}).Handler())
	t.Cleanup(srv.Close)
	resp, rd, _ := streamClient(t, srv.URL, "/api/events?group=app&id=WEB&pings=1")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if got := readFrame(t, rd); got != "retry: 2000\n: patrol events\n" {
		t.Errorf("first frame: %q", got)
	}
	if f.Subs() != 1 || !f.pings {
		t.Errorf("subscriptions %d, pings %v", f.Subs(), f.pings)
	}
	send := []schema.Event{
		{Seq: 1, Event: schema.EventStarted, Group: schema.GroupApp, ID: "web", PID: 42, InstanceID: "i1"},
		{Seq: 2, Event: schema.EventState, Group: schema.GroupService, ID: "web", State: schema.StateRunning}, // another group
		{Seq: 3, Event: schema.EventExited, Group: schema.GroupApp, ID: "db", ExitCode: intp(3)},              // another id
		{Seq: 4, Event: schema.EventConfigLoaded, ConfigRevision: "abc"},                                      // Patrol's own
		{Seq: 5, Event: schema.EventExited, Group: schema.GroupApp, ID: "web", ExitCode: intp(0), Reason: schema.ReasonExited},
	}
	for _, ev := range send {
		f.events <- ev
	}
	for _, want := range []int{0, 3, 4} {
		data, _ := json.Marshal(send[want])
		if got, want := readFrame(t, rd), "id: "+itoa(send[want].Seq)+"\ndata: "+string(data)+"\n"; got != want {
			t.Errorf("frame: got %q, want %q", got, want)
		}
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// TestEventsBatch: a burst of events arrives complete and in order.
func TestEventsBatch(t *testing.T) {
	f := &fakeBackend{events: make(chan schema.Event)}
	srv := httptest.NewServer(NewServer(f, Options{}).Handler())
	t.Cleanup(srv.Close)
	_, rd, _ := streamClient(t, srv.URL, "/api/events")
	readFrame(t, rd)
	const n = 3000 // more than one batch
	go func() {
		for i := 1; i <= n; i++ {
			f.events <- schema.Event{Seq: uint64(i), Event: schema.EventState, Group: schema.GroupApp, ID: "a", State: schema.StateRunning}
		}
	}()
	for i := 1; i <= n; i++ {
		fr := readFrame(t, rd)
		if !strings.HasPrefix(fr, "id: "+itoa(uint64(i))+"\ndata: {") {
			t.Fatalf("frame %d: %q", i, fr)
		}
	}
}

// TestEventsEnd: the handler ends (and drops its subscription) when the
// client goes away.
func TestEventsEnd(t *testing.T) {
	f := &fakeBackend{}
	srv := httptest.NewServer(NewServer(f, Options{}).Handler())
	t.Cleanup(srv.Close)
	_, rd, cancel := streamClient(t, srv.URL, "/api/events")
	readFrame(t, rd)
	if f.Subs() != 1 {
		t.Fatalf("subscriptions: %d", f.Subs())
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for f.Subs() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription outlived the client")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEventsHeartbeat: an idle stream gets a comment line.
func TestEventsHeartbeat(t *testing.T) {
	s := NewServer(&fakeBackend{}, Options{})
	s.heartbeat = 20 * time.Millisecond
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	_, rd, _ := streamClient(t, srv.URL, "/api/events")
	readFrame(t, rd)
	if got := readFrame(t, rd); got != ": heartbeat\n" {
		t.Errorf("got %q, want a heartbeat", got)
	}
}

func TestEventsErrors(t *testing.T) {
	h := newTestServer(&fakeBackend{}, "")
	wantErrors(t, do(t, h, "GET", "/api/events?group=nope", ""), 400, schema.ErrUnknownGroup)
	wantErrors(t, do(t, h, "POST", "/api/events", ""), 405, schema.ErrInvalidMethod)
	h = newTestServer(&fakeBackend{eventsErr: errors.New("stopped")}, "")
	wantErrors(t, do(t, h, "GET", "/api/events", ""), 503, schema.ErrShuttingDown)
}

// TestStreamsEndOnShutdown: an event stream and a followed log end as soon
// as Serve shuts down, long before its two-second grace period.
func TestStreamsEndOnShutdown(t *testing.T) {
	f := &fakeBackend{}
	f.setLog("stdout", writeTemp(t, "line\n"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- NewServer(f, Options{}).Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	_, events, _ := streamClient(t, base, "/api/events")
	readFrame(t, events)
	_, logs, _ := streamClient(t, base, "/api/logs?id=web&follow=1")
	if line, err := logs.ReadString('\n'); err != nil || line != "line\n" {
		t.Fatalf("log: %q, %v", line, err)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("shutdown took %v: the streams held it", d)
	}
	for name, rd := range map[string]*bufio.Reader{"events": events, "logs": logs} {
		if _, err := io.ReadAll(rd); err != nil {
			t.Errorf("%s: the stream did not end cleanly: %v", name, err)
		}
	}
}
