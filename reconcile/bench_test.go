package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/reconcile"
	"github.com/patrolhq/patrol/schema"
)

// bigConfig is a config of n apps.
func bigConfig(n int) string {
	apps := make([]string, n)
	for i := range apps {
		apps[i] = fmt.Sprintf(`"app-%d": {"binary": "/usr/bin/app", "args": ["-n", "%d"], "env": ["A=B"], "keepalive": %d, "pid-path": "app-%d.pid"}`, i, i, 1+i%2, i)
	}
	return `{"apps": {` + strings.Join(apps, ",") + `}}`
}

// BenchmarkPlan1000 plans 1,000 running apps with nothing to do (the
// steady state every pass sees).
func BenchmarkPlan1000(b *testing.B) {
	st, err := desired.Parse([]byte(bigConfig(1000)), desired.Options{Dir: "/cfg"})
	if err != nil {
		b.Fatal(err)
	}
	o := observed.NewSnapshot()
	for i, a := range st.Apps() {
		o.Apps[a.ID] = &observed.App{ID: a.ID, Instance: &observed.Instance{ID: a.ID, App: a, PID: 1000 + i, PGID: 1000 + i, Started: t0}}
	}
	b.ReportAllocs()
	for b.Loop() {
		if acts := reconcile.Plan(st, o, t0); len(acts) != 0 {
			b.Fatalf("%d actions", len(acts))
		}
	}
}

// BenchmarkPlanJSON renders a plan of 1,000 starts as JSON and text.
func BenchmarkPlanJSON(b *testing.B) {
	st, err := desired.Parse([]byte(bigConfig(1000)), desired.Options{Dir: "/cfg"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		p := reconcile.ToPlan(reconcile.Plan(st, observed.NewSnapshot(), t0))
		if _, err := json.Marshal(p); err != nil {
			b.Fatal(err)
		}
		_ = p.Text()
	}
}

// BenchmarkPing sends UDP pings through a running loop (the loop's share
// of a ping: the hand-off, the request, the commit and the pass after it)
// with 1 and 1,000 other apps configured. The pinged app is adopted by its
// first ping, as a keepalive 4 app is.
func BenchmarkPing(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			apps := []string{`"pinged": {"binary": "/usr/bin/app", "keepalive": 4}`}
			for i := range n {
				apps = append(apps, fmt.Sprintf(`"app-%d": {"binary": "/usr/bin/app"}`, i))
			}
			cfg := `{"ping-timeout": 180, "udp": {"listen": "127.0.0.1:0"}, "apps": {` + strings.Join(apps, ",") + `}}`
			st, err := desired.Parse([]byte(cfg), desired.Options{Dir: "/cfg"})
			if err != nil {
				b.Fatal(desired.Problems(err))
			}
			f := newFake()
			f.watchable = map[int]bool{4242: true}
			f.exitOnSignal = true
			l := reconcile.New(reconcile.Options{Exec: f, Log: slog.New(slog.DiscardHandler)}, st)
			f.loop = l
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- l.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					b.Error(err)
				}
			}()
			req := &schema.Request{ID: "pinged", Group: "app", Ping: true, PID: 4242}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := l.Request(ctx, req, schema.TransportUDP)
				if err != nil || len(resp.Errors) > 0 {
					b.Fatal(err, resp.Errors)
				}
			}
		})
	}
}
