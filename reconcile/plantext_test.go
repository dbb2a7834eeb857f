package reconcile_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/reconcile"
	"github.com/patrolhq/patrol/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./reconcile -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./reconcile -update if intended)\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

// TestPlanOutput renders the plan of DESIGN §10's example as text and JSON:
// one app added, one restarted for its args, one updated in place, one
// removed, one held stopped by an override.
func TestPlanOutput(t *testing.T) {
	running0 := state(t, `{"apps": {
		"api": {"binary": "/bin/api", "args": ["-p", "80"]},
		"worker": {"binary": "/bin/worker", "name": "Worker", "secret": "old"},
		"old": {"binary": "/bin/old"},
		"db": {"binary": "/bin/db"}
	}}`)
	next := state(t, `{"apps": {
		"api": {"binary": "/bin/api", "args": ["-p", "8080"]},
		"worker": {"binary": "/bin/worker", "name": "Worker 2", "secret": "new"},
		"web": {"binary": "/bin/web"},
		"db": {"binary": "/bin/db"}
	}}`)
	o := snap(running(app(running0, "api"), 10), running(app(running0, "worker"), 11), running(app(running0, "old"), 12), &observed.App{ID: "db"})
	yes := true
	eff := next.WithOverrides(map[desired.Key]*desired.Override{
		{Group: schema.GroupApp, ID: "db"}: {Disabled: &yes, Fingerprint: app(next, "db").Fingerprint()},
	})
	plan := reconcile.ToPlan(reconcile.Plan(eff, o, t0))
	golden(t, "plan.txt", []byte(plan.Text()))
	js, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.json", append(js, '\n'))
	if !plan.Changes() {
		t.Error("Changes() is false")
	}
	// The same input, the same bytes.
	if again := reconcile.ToPlan(reconcile.Plan(eff, o, t0)); again.Text() != plan.Text() {
		t.Error("the plan is not deterministic")
	}
	// Nothing to do: "No changes."
	same := reconcile.ToPlan(reconcile.Plan(running0, snap(running(app(running0, "api"), 10), running(app(running0, "worker"), 11), running(app(running0, "old"), 12), running(app(running0, "db"), 13)), t0))
	if same.Text() != "No changes.\n" || same.Changes() {
		t.Errorf("identical config: %q", same.Text())
	}
}

// TestPlanOutputWaits renders a stack's first plan (what waits for what)
// and a later one where a probe-only change is an update in place, as text
// and JSON.
func TestPlanOutputWaits(t *testing.T) {
	stack := `{"apps": {
		"db": {"binary": "/bin/db", "readiness": {"tcp": {"port": 5432}, "period": 1}},
		"api": {"binary": "/bin/api", "depends-on": [{"app": "db", "condition": "ready"}],
			"liveness": {"http": {"port": 8080, "path": "/health"}, "period": 5}},
		"worker": {"binary": "/bin/worker", "depends-on": ["api", {"app": "migrate", "condition": "completed-successfully"}]},
		"migrate": {"binary": "/bin/migrate", "restart-policy": "never"}
	}}`
	st := state(t, stack)
	plan := reconcile.ToPlan(reconcile.Plan(st, snap(), t0))
	// A probe-only edit while everything runs: api is updated in place.
	edited := state(t, strings.Replace(stack, `"period": 5`, `"period": 2, "failure-threshold": 5`, 1))
	o := snap(running(app(st, "db"), 10), running(app(st, "api"), 11), running(app(st, "worker"), 12),
		&observed.App{ID: "migrate", LastEnd: &observed.End{Reason: schema.ReasonExited, BySelf: true, Fingerprint: app(st, "migrate").Fingerprint(), Exit: &observed.Exit{}}})
	o.Apps["db"].Instance.Health.Ready = true
	update := reconcile.ToPlan(reconcile.Plan(edited, o, t0))
	var text bytes.Buffer
	text.WriteString(plan.Text())
	text.WriteString("\n")
	text.WriteString(update.Text())
	golden(t, "plan-waits.txt", text.Bytes())
	js, err := json.MarshalIndent([]*schema.Plan{plan, update}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "plan-waits.json", append(js, '\n'))
	if plan.Summary.Wait != 2 || plan.Summary.Start != 2 || update.Summary.Update != 1 || update.Summary.Restart != 0 {
		t.Errorf("summaries %+v and %+v", plan.Summary, update.Summary)
	}
}
