package reconcile_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patrolhq/patrol/reconcile"
	"github.com/patrolhq/patrol/schema"
)

// apiConfig is the original Patrol's API test setup: an HTTP keepalive app
// "http" with history 5, a secret app, a UDP app, a keepalive 1 app and a
// service "ssh".
const apiConfig = `{
	"history": 5, "ping-timeout": 30,
	"apps": {
		"http": {"binary": "/x", "keepalive": 3, "keyvalue": {"a": "b"}},
		"udp": {"binary": "/x", "keepalive": 4},
		"plain": {"binary": "/x", "disabled": true},
		"secret": {"binary": "/x", "keepalive": 3, "secret": "abc"}
	},
	"services": {
		"ssh": {"management": 1, "secret": "abc"},
		"cron": {"management": 1}
	}
}`

// call sends one request through the loop, as the API would.
func call(t *testing.T, l *reconcile.Loop, req schema.Request, via schema.Transport) *schema.Response {
	t.Helper()
	r, err := l.Request(t.Context(), &req, via)
	if err != nil {
		t.Fatalf("request %+v: %v", req, err)
	}
	return r
}

func errorsOf(r *schema.Response) []string { return r.Errors }

// TestRequestErrors: the original's error strings, in its order of checks.
func TestRequestErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		l, stop := runLoop(t, apiConfig, f)
		defer stop()
		http, udp := schema.TransportHTTP, schema.TransportUDP
		for _, c := range []struct {
			name string
			req  schema.Request
			via  schema.Transport
			want string
		}{
			{"no group", schema.Request{ID: "http"}, http, "Unknown Group"},
			{"odd group", schema.Request{ID: "http", Group: "?"}, http, "Unknown Group"},
			{"no id", schema.Request{Group: "app"}, http, "Unknown App"},
			{"plural group, unknown id", schema.Request{Group: "apps", ID: "nope"}, http, "Unknown App"},
			{"unknown service", schema.Request{Group: "service", ID: "nope"}, http, "Unknown Service"},
			{"services do not ping", schema.Request{Group: "services", ID: "ssh", Ping: true}, http, "Services don't support Ping"},
			{"nor with capitals (the original let this through)", schema.Request{Group: "Service", ID: "ssh", Ping: true}, http, "Services don't support Ping"},
			{"wrong secret", schema.Request{Group: "app", ID: "secret", Secret: "ABC"}, http, "Secret Invalid"},
			{"wrong service secret", schema.Request{Group: "service", ID: "ssh", Secret: "x"}, http, "Secret Invalid"},
			{"keepalive 1 does not ping", schema.Request{Group: "app", ID: "plain", Ping: true}, http, "Ping Not Supported"},
			{"HTTP app pinged over UDP", schema.Request{Group: "app", ID: "http", Ping: true}, udp, "Invalid Ping Endpoint"},
			{"UDP app pinged over HTTP", schema.Request{Group: "app", ID: "udp", Ping: true}, http, "Invalid Ping Endpoint"},
			{"pid without ping", schema.Request{Group: "app", ID: "http", PID: 5}, http, "PID Requires Ping"},
			{"pid for keepalive 1", schema.Request{Group: "app", ID: "plain", PID: 5}, http, "PID Not Supported"},
			{"toggle out of range", schema.Request{Group: "app", ID: "http", Toggle: 9}, http, "Invalid Toggle"},
			{"a service scaled", schema.Request{Group: "service", ID: "cron", Replicas: 2}, http, "Invalid Replicas: only an app has replicas"},
			{"an app without replicas scaled", schema.Request{Group: "app", ID: "plain", Replicas: 2}, http,
				`Invalid Replicas: plain has no "replicas" in the config (add "replicas": 1 to scale it)`},
		} {
			if got := errorsOf(call(t, l, c.req, c.via)); !slices.Equal(got, []string{c.want}) {
				t.Errorf("%s: errors %q, want [%q]", c.name, got, c.want)
			}
		}
		if r, _ := l.Request(t.Context(), nil, http); !slices.Equal(r.Errors, []string{"Request NIL"}) {
			t.Errorf("nil request: %q", r.Errors)
		}
		// A library call may ping over any endpoint.
		if r := call(t, l, schema.Request{Group: "app", ID: "udp", Ping: true}, schema.TransportLibrary); len(r.Errors) != 0 {
			t.Errorf("library ping: %q", r.Errors)
		}
	})
}

// TestRequestPassesAfter: a ping that only refreshes a running instance, a
// refused request and a read are served without a reconcile pass after
// them; a ping that adopts, a toggle and a key/value write get one. Then a
// refreshed instance whose pings stop still times out.
func TestRequestPassesAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.exitOnSignal = true
		f.watchable = map[int]bool{4001: true}
		var passes atomic.Int64
		l := reconcile.New(reconcile.Options{Exec: f, Log: slog.New(slog.DiscardHandler),
			OnPass: func(time.Duration) { passes.Add(1) }}, state(t, apiConfig))
		f.loop = l
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		// after sends req and reports how many passes followed it.
		after := func(req schema.Request) int64 {
			t.Helper()
			synctest.Wait()
			before := passes.Load()
			call(t, l, req, schema.TransportHTTP)
			synctest.Wait()
			return passes.Load() - before
		}
		ping := schema.Request{Group: "app", ID: "http", Ping: true, PID: 4001}
		if n := after(ping); n == 0 {
			t.Error("no pass after the ping that adopted the app")
		}
		for range 10 {
			if n := after(ping); n != 0 {
				t.Fatalf("%d passes after a refreshing ping", n)
			}
		}
		if n := after(schema.Request{Group: "app", ID: "nope", Ping: true}); n != 0 {
			t.Errorf("%d passes after a refused request", n)
		}
		if n := after(schema.Request{Group: "app", ID: "secret"}); n != 0 {
			t.Errorf("%d passes after a read-only request", n)
		}
		synctest.Wait()
		before := passes.Load()
		if _, err := l.Status(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := passes.Load() - before; n != 0 {
			t.Errorf("%d passes after a status read", n)
		}
		if n := after(schema.Request{Group: "app", ID: "http", KeyValue: map[string]any{"x": 1.0}}); n == 0 {
			t.Error("no pass after a key/value write")
		}
		if n := after(schema.Request{Group: "app", ID: "plain", Toggle: schema.ToggleEnable}); n == 0 {
			t.Error("no pass after a toggle")
		}
		if n := after(schema.Request{Group: "service", ID: "cron"}); n != 0 {
			t.Errorf("%d passes after a service read", n)
		}
		// A batch is light only when all its requests are; each gets its own
		// answer, in order.
		batch := func(reqs ...schema.Request) ([]*schema.Response, int64) {
			t.Helper()
			synctest.Wait()
			before := passes.Load()
			ptrs := make([]*schema.Request, len(reqs))
			for i := range reqs {
				ptrs[i] = &reqs[i]
			}
			resps, err := l.RequestBatch(t.Context(), ptrs, schema.TransportHTTP)
			if err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			return resps, passes.Load() - before
		}
		resps, n := batch(ping, schema.Request{Group: "app", ID: "nope"}, ping)
		if n != 0 {
			t.Errorf("%d passes after a batch of refreshing pings and a refused request", n)
		}
		if len(resps) != 3 || resps[0].ID != "http" || len(resps[1].Errors) == 0 || resps[2].ID != "http" || len(resps[2].Errors) > 0 {
			for i, r := range resps {
				t.Errorf("batch answer %d: %+v", i, *r)
			}
		}
		if _, n := batch(ping, schema.Request{Group: "app", ID: "http", KeyValue: map[string]any{"y": 2.0}}, ping); n == 0 {
			t.Error("no pass after a batch with a key/value write")
		}
		if n := after(schema.Request{Group: "service", ID: "cron", CAS: 1, Toggle: schema.ToggleDisable}); n != 0 {
			t.Errorf("%d passes after a service change refused for its CAS", n)
		}
		if n := after(schema.Request{Group: "service", ID: "cron", Toggle: schema.ToggleDisable}); n == 0 {
			t.Error("no pass after a service toggle")
		}
		// Refreshing pings for 20 s, then silence: the instance is closed
		// ping-timeout (30 s) after the last one, not after the first.
		for range 20 {
			time.Sleep(time.Second)
			after(ping)
		}
		time.Sleep(29 * time.Second)
		synctest.Wait()
		r := call(t, l, schema.Request{Group: "app", ID: "http"}, schema.TransportHTTP)
		if r.PID != 4001 || r.State != schema.StateRunning {
			t.Fatalf("closed before its ping-timeout: %+v", r)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		r = call(t, l, schema.Request{Group: "app", ID: "http", History: true}, schema.TransportHTTP)
		if len(r.History) != 1 || r.History[0].Reason != schema.ReasonPingTimeout {
			t.Errorf("after ping-timeout: %+v", r)
		}
	})
}

// TestRequestPingsAndSnapshots: responses show the state before the
// request; a ping learns the pid and adopts an app started outside Patrol;
// a ping with another pid closes the old instance into history.
func TestRequestPingsAndSnapshots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.exitOnSignal = true
		f.watchable = map[int]bool{4001: true, 4002: true}
		l, stop := runLoop(t, apiConfig, f)
		defer stop()
		app := func(extra schema.Request) schema.Request {
			extra.Group, extra.ID = "app", "http"
			return extra
		}
		r := call(t, l, app(schema.Request{}), schema.TransportHTTP)
		if r.PID != 0 || r.Started != "" || r.LastSeen != "" || r.ID != "http" || r.Group != "app" {
			t.Fatalf("fresh app: %+v", r)
		}
		r = call(t, l, app(schema.Request{Ping: true, PID: 4001}), schema.TransportHTTP)
		if r.PID != 0 || r.Started != "" {
			t.Errorf("a ping's response must be the state before it: %+v", r)
		}
		time.Sleep(time.Second)
		r = call(t, l, app(schema.Request{}), schema.TransportHTTP)
		if r.PID != 4001 || r.Started == "" || r.State != schema.StateRunning {
			t.Fatalf("after the ping: %+v", r)
		}
		first := r.InstanceID
		// The same pid again: the same instance, last seen later.
		call(t, l, app(schema.Request{Ping: true, PID: 4001}), schema.TransportHTTP)
		r = call(t, l, app(schema.Request{History: true}), schema.TransportHTTP)
		if r.InstanceID != first || r.LastSeen == r.Started || len(r.History) != 0 {
			t.Errorf("same pid: %+v", r)
		}
		// Another pid: the old instance is closed into history.
		time.Sleep(time.Second)
		call(t, l, app(schema.Request{Ping: true, PID: 4002}), schema.TransportHTTP)
		r = call(t, l, app(schema.Request{History: true}), schema.TransportHTTP)
		if r.PID != 4002 || r.InstanceID == first || len(r.History) != 1 {
			t.Fatalf("new pid: %+v", r)
		}
		if h := r.History[0]; h.PID != 4001 || h.InstanceID != first || h.Reason != schema.ReasonPIDChanged || h.Stopped == "" {
			t.Errorf("history of the old instance: %+v", h)
		}
		// History is sent only when asked for.
		if r := call(t, l, app(schema.Request{}), schema.TransportHTTP); r.History != nil {
			t.Errorf("history without asking: %+v", r.History)
		}
		// No ping for ping-timeout: the instance is closed (nothing Patrol may
		// signal: the pid came from a ping and pid-verify is off).
		time.Sleep(31 * time.Second)
		synctest.Wait()
		r = call(t, l, app(schema.Request{History: true}), schema.TransportHTTP)
		if len(r.History) != 2 || r.History[1].Reason != schema.ReasonPingTimeout {
			t.Errorf("after ping-timeout: %+v", r)
		}
		// Patrol then starts it itself, after the backoff of a failed
		// instance (1 s).
		time.Sleep(time.Second)
		synctest.Wait()
		if r := call(t, l, app(schema.Request{}), schema.TransportHTTP); r.State != schema.StateRunning || r.PID != 101 {
			t.Errorf("not restarted after ping-timeout: %+v", r)
		}
	})
}

// TestRequestCAS: reads don't change the CAS; a change adds one; a stale
// CAS applies nothing (but a ping still counts); responses carry the CAS
// from before the request.
func TestRequestCAS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		l, stop := runLoop(t, apiConfig, f)
		defer stop()
		req := func(r schema.Request) *schema.Response {
			r.Group, r.ID = "app", "http"
			return call(t, l, r, schema.TransportHTTP)
		}
		c := req(schema.Request{}).CAS
		if c == 0 {
			t.Fatal("CAS is 0")
		}
		for range 3 {
			if got := req(schema.Request{}).CAS; got != c {
				t.Fatalf("a read changed the CAS: %d -> %d", c, got)
			}
		}
		time.Sleep(time.Millisecond)
		if got := req(schema.Request{Ping: true}).CAS; got != c {
			t.Fatalf("ping response CAS %d, want the old %d", got, c)
		}
		if got := req(schema.Request{}).CAS; got != c+1 {
			t.Fatalf("after a ping: CAS %d, want %d", got, c+1)
		}
		c++
		// A valid CAS with a key/value write: applied, +1.
		if r := req(schema.Request{CAS: c, KeyValue: map[string]any{"x": "1"}}); r.CASInvalid {
			t.Fatalf("valid CAS refused: %+v", r)
		}
		c++
		// A stale CAS: nothing applied, no change.
		r := req(schema.Request{CAS: c - 1, KeyValue: map[string]any{"e": "f"}, Toggle: schema.ToggleDisable})
		if !r.CASInvalid || r.CAS != c {
			t.Errorf("stale CAS: %+v, want cas-invalid and CAS %d", r, c)
		}
		r = req(schema.Request{})
		if r.CAS != c || r.Disabled || len(r.KeyValue) != 2 {
			t.Errorf("a stale CAS changed something: %+v", r)
		}
		// A stale CAS still counts the ping.
		time.Sleep(time.Millisecond)
		req(schema.Request{CAS: 1, Ping: true})
		if got := req(schema.Request{}).CAS; got != c+1 {
			t.Errorf("ping with a stale CAS: CAS %d, want %d", got, c+1)
		}
	})
}

// TestRequestSecrets: without the secret a request is a read-only answer
// with cas-invalid; with it, it is applied. Apps and services alike.
func TestRequestSecrets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		l, stop := runLoop(t, apiConfig, f)
		defer stop()
		for _, e := range []struct{ group, id string }{{"app", "secret"}, {"service", "ssh"}} {
			req := func(r schema.Request) *schema.Response {
				r.Group, r.ID = e.group, e.id
				return call(t, l, r, schema.TransportHTTP)
			}
			// The service's start and status commands land first: each
			// change of its state counts in its CAS too.
			synctest.Wait()
			c := req(schema.Request{}).CAS
			r := req(schema.Request{KeyValue: map[string]any{"k": "v"}, Toggle: schema.ToggleDisable})
			if !r.CASInvalid || r.CAS != c || !r.Secret {
				t.Errorf("%s without secret: %+v", e.id, r)
			}
			if r := req(schema.Request{}); len(r.KeyValue) != 0 || r.Disabled || r.CAS != c {
				t.Errorf("%s: applied without the secret: %+v", e.id, r)
			}
			if r := req(schema.Request{Secret: "abc", KeyValue: map[string]any{"k": "v"}}); r.CASInvalid || len(r.Errors) > 0 || r.CAS != c {
				t.Errorf("%s with the secret: %+v", e.id, r)
			}
			if r := req(schema.Request{Secret: "abc"}); r.CAS != c+1 || r.KeyValue["k"] != "v" {
				t.Errorf("%s after the write (cas before %d): %+v", e.id, c, r)
			}
		}
	})
}

// TestRequestKeyValue: merge, replace and empty replace, each response
// showing the data from before (seed scenario 10).
func TestRequestKeyValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		l, stop := runLoop(t, apiConfig, f)
		defer stop()
		for _, group := range []string{"app", "service"} {
			id := map[string]string{"app": "http", "service": "cron"}[group]
			kv := func(r schema.Request) string {
				r.Group, r.ID = group, id
				b, _ := json.Marshal(call(t, l, r, schema.TransportHTTP).KeyValue)
				return string(b)
			}
			start := kv(schema.Request{KeyValueReplace: true})
			if group == "app" && start != `{"a":"b"}` {
				t.Errorf("app starts with the file's keyvalue: %s", start)
			}
			steps := []struct {
				req  schema.Request
				want string // the response: the data before this request
			}{
				{schema.Request{KeyValue: map[string]any{"c": 1}}, `null`},
				{schema.Request{KeyValue: map[string]any{"d": "e"}, KeyValueReplace: true}, `{"c":1}`},
				{schema.Request{KeyValue: map[string]any{"f": "g"}}, `{"d":"e"}`},
				{schema.Request{KeyValue: map[string]any{"h": "i"}, KeyValueReplace: true}, `{"d":"e","f":"g"}`},
				{schema.Request{KeyValueReplace: true}, `{"h":"i"}`},
				{schema.Request{}, `null`},
			}
			for i, s := range steps {
				if got := kv(s.req); got != s.want {
					t.Errorf("%s step %d: response keyvalue %s, want %s", group, i, got, s.want)
				}
			}
		}
	})
}

// TestRequestToggles: toggles through the API write overrides, with a TTL
// and clear.
func TestRequestToggles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.exitOnSignal = true
		l, stop := runLoop(t, apiConfig, f)
		defer stop()
		req := func(r schema.Request) *schema.Response {
			r.Group, r.ID = "app", "plain"
			return call(t, l, r, schema.TransportHTTP)
		}
		if r := req(schema.Request{Toggle: schema.ToggleEnable, TTL: 10}); !r.Disabled {
			t.Fatalf("plain starts disabled: %+v", r)
		}
		synctest.Wait()
		r := req(schema.Request{})
		if r.Disabled || r.Override == nil || r.Override.Disabled == nil || *r.Override.Disabled || r.Override.Expires == "" || !r.ConfigDisabled {
			t.Fatalf("after enable with ttl: %+v", r)
		}
		if r.State != schema.StateRunning {
			t.Errorf("enabled app not started: %s", r.State)
		}
		// The override expires: disabled again, and stopped.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if r := req(schema.Request{}); !r.Disabled || r.Override != nil {
			t.Errorf("after the ttl: %+v", r)
		}
		// clear removes an override.
		req(schema.Request{Toggle: schema.ToggleEnable})
		if r := req(schema.Request{Clear: true}); r.Override == nil {
			t.Errorf("no override before clear: %+v", r)
		}
		if r := req(schema.Request{}); r.Override != nil || !r.Disabled {
			t.Errorf("after clear: %+v", r)
		}
	})
}
