package reconcile_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/reconcile"
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
