package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/patrolhq/patrol/schema"
)

const (
	// heartbeatEvery is how often an idle event stream gets a comment, so
	// that proxies and browsers keep it open and a dead client is noticed.
	heartbeatEvery = 15 * time.Second
	// batchWindow is how long the event stream collects events after the
	// first one before it writes them in one go: a reconcile pass that
	// changes 500 entries reaches the browser as one write, not 500.
	batchWindow = 50 * time.Millisecond
	// maxBatch bounds the events of one write.
	maxBatch = 1024
	// retryMillis is the reconnection delay the stream asks browsers for.
	retryMillis = 2000
)

// streamContext returns the context of a long-lived answer: it ends when
// the client goes away or the server shuts down.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.streams, cancel)
	return ctx, func() { stop(); cancel() }
}

// eventFilter selects the events of one stream: entry events of one group
// and/or id. Patrol's own events (config, patrol-*, dropped) carry neither
// and always pass, so that a filtered client still learns that it must
// reload.
type eventFilter struct {
	group schema.Group
	id    string
}

func (f eventFilter) match(ev *schema.Event) bool {
	if ev.Group == "" && ev.ID == "" {
		return true
	}
	if f.group != "" && ev.Group != f.group {
		return false
	}
	return f.id == "" || strings.EqualFold(ev.ID, f.id)
}

// events is GET /api/events: the lifecycle events (schema.Event) as
// server-sent events, one JSON event per "data:" line with its seq as the
// "id:", from the moment of the request on. ?group= and ?id= filter entry
// events; ?pings=1 includes pings. A comment line goes out every 15
// seconds when nothing happens. Events that arrive together are written
// together (batchWindow). The stream has no replay: a client that
// reconnects (or gets a "dropped" event) reloads the status.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.writeError(w, r, newError(http.StatusMethodNotAllowed, schema.ErrInvalidMethod, fmt.Errorf("method %s", r.Method)))
		return
	}
	q := r.URL.Query()
	var f eventFilter
	if g := q.Get("group"); g != "" {
		grp, ok := schema.ParseGroup(g)
		if !ok {
			s.writeError(w, r, newError(http.StatusBadRequest, schema.ErrUnknownGroup, fmt.Errorf("events: group %q", g)))
			return
		}
		f.group = grp
	}
	f.id = q.Get("id")
	pings := truthy(q.Get("pings"))

	ctx, cancel := s.streamContext(r)
	defer cancel()
	ch, err := s.backend.Events(ctx, pings)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("events: %w: %w", errBackend, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	fmt.Fprintf(w, "retry: %d\n: patrol events\n\n", retryMillis)
	if rc.Flush() != nil {
		return
	}

	beat := time.NewTicker(s.heartbeat)
	defer beat.Stop()
	var buf bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			buf.WriteString(": heartbeat\n\n")
		case ev, ok := <-ch:
			if !ok {
				return
			}
			n := appendEvent(&buf, &ev, f)
			open := collect(ctx, ch, &buf, f, n)
			if !open {
				w.Write(buf.Bytes())
				rc.Flush()
				return
			}
		}
		if buf.Len() == 0 {
			continue
		}
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		if err != nil || rc.Flush() != nil {
			return
		}
		beat.Reset(s.heartbeat)
	}
}

// collect adds to buf the events that arrive within batchWindow (up to
// maxBatch, counting n already taken) and reports whether ch is still
// open.
func collect(ctx context.Context, ch <-chan schema.Event, buf *bytes.Buffer, f eventFilter, n int) bool {
	window := time.NewTimer(batchWindow)
	defer window.Stop()
	for n < maxBatch {
		select {
		case ev, ok := <-ch:
			if !ok {
				return false
			}
			n += appendEvent(buf, &ev, f)
		case <-window.C:
			return true
		case <-ctx.Done():
			return true
		}
	}
	return true
}

// appendEvent writes ev as one server-sent event if it passes f, and
// returns how many events it wrote (0 or 1). JSON has no raw newlines, so
// one "data:" line always holds the whole event.
func appendEvent(buf *bytes.Buffer, ev *schema.Event, f eventFilter) int {
	if !f.match(ev) {
		return 0
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return 0 // every field is a plain value: cannot happen
	}
	fmt.Fprintf(buf, "id: %d\ndata: %s\n\n", ev.Seq, data)
	return 1
}

// truthy reads a boolean query flag: "1", "true", "yes" and "on" (any
// case) are true.
func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}
