package desired_test

import (
	"slices"
	"testing"

	"github.com/patrolhq/patrol/desired"
)

func TestReplicaRules(t *testing.T) { runRuleCases(t, replicaCases) }

var replicaCases = []ruleCase{
	{"replicas", app(`"replicas": 3, "rolling": false, "pid-path": "run/web-{replica}.pid", "log-directory": "logs/web/{replica}"`), nil},
	{"zero", app(`"replicas": 0`), nil},
	{"too many", app(`"replicas": 1001`), []string{`apps.web.replicas: must be between 1 and 1000, got 1001`}},
	{"not a number", app(`"replicas": "3"`), []string{`apps.web.replicas: must be an integer, got a string "3"`}},
	{"shared pid file", app(`"replicas": 2, "pid-path": "web.pid"`), []string{`apps.web.pid-path: with replicas, must contain {replica} (each replica has its own pid file)`}},
	{"shared log directory", app(`"replicas": 2, "log-directory": "logs/web"`), []string{`apps.web.log-directory: with replicas, must contain {replica} (each replica has its own log files)`}},
	{"id taken", `{"apps": {"web": {"binary": "/bin/true", "replicas": 3}, "Web-2": {"binary": "/bin/true"}}}`,
		[]string{`apps.web.replicas: replica 2 would be "web-2", which is apps.Web-2`}},
}

// TestReplicasExpanded: replica 0 keeps the id, the others are ID-i, each
// with "{replica}" replaced and its own log directory; scaling changes no
// restart key of the replicas that stay.
func TestReplicasExpanded(t *testing.T) {
	st, err := desired.Parse([]byte(`{"apps": {"web": {"binary": "/bin/web", "replicas": 3, "args": ["--port", "80{replica}"],
		"env": ["SLOT={replica}"], "pid-path": "run/{replica}.pid"}}}`), desired.Options{Dir: "/cfg"})
	if err != nil {
		t.Fatal(desired.Problems(err))
	}
	var ids []string
	for _, a := range st.Apps() {
		ids = append(ids, a.ID)
	}
	if !slices.Equal(ids, []string{"web", "web-1", "web-2"}) {
		t.Fatalf("entries %q", ids)
	}
	w2, _ := st.App("web-2")
	if w2.ReplicaOf != "web" || w2.Replica != 2 || w2.Replicas != 3 || !w2.Rolling || w2.Name != "web-2" ||
		!slices.Equal(w2.Args, []string{"--port", "802"}) || !slices.Equal(w2.Env, []string{"SLOT=2"}) ||
		w2.PIDPath != "/cfg/run/2.pid" || w2.LogDirectory != "/cfg/logs/web-2" {
		t.Errorf("web-2: %+v", w2)
	}
	w0, _ := st.App("web")
	if w0.Replica != 0 || !slices.Equal(w0.Args, []string{"--port", "800"}) || w0.LogDirectory != "/cfg/logs/web" {
		t.Errorf("web: %+v", w0)
	}
	five, err := desired.Parse([]byte(`{"apps": {"web": {"binary": "/bin/web", "replicas": 5, "args": ["--port", "80{replica}"],
		"env": ["SLOT={replica}"], "pid-path": "run/{replica}.pid"}}}`), desired.Options{Dir: "/cfg"})
	if err != nil {
		t.Fatal(desired.Problems(err))
	}
	w0b, _ := five.App("web")
	if changes := desired.DiffApps(w0, w0b); desired.NeedsRestart(changes) || len(changes) != 1 || changes[0].Field != "replicas" {
		t.Errorf("3 -> 5, replica 0's changes: %+v", changes)
	}
	plain, _ := desired.Parse([]byte(`{"apps": {"web": {"binary": "/bin/web", "args": ["{replica}"]}}}`), desired.Options{Dir: "/cfg"})
	if p, _ := plain.App("web"); p.ReplicaOf != "" || p.Args[0] != "{replica}" {
		t.Errorf("without replicas: %+v", p)
	}
}
