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

// TestScaled: a scale adds replicas made as the file's are and removes the
// highest; the replicas the file has keep their fingerprints (so that
// their overrides and backoffs still apply); counts the app cannot take
// are refused by ScaleProblem and left out by Scaled.
func TestScaled(t *testing.T) {
	st, err := desired.Parse([]byte(`{"apps": {"web": {"binary": "/bin/web", "replicas": 2, "args": ["--port", "80{replica}"],
		"pid-path": "run/{replica}.pid"}, "plain": {"binary": "/bin/true"}, "web-3": {"binary": "/bin/true"},
		"fixed": {"binary": "/bin/true", "replicas": 1, "pid-path": "fixed.pid"}}}`), desired.Options{Dir: "/cfg"})
	if err != nil {
		t.Fatal(desired.Problems(err))
	}
	if n, ok := st.Replicas("web"); n != 2 || !ok {
		t.Errorf("Replicas(web) = %d, %v", n, ok)
	}
	for _, c := range []struct {
		id   string
		n    int
		want string
	}{
		{"web", 3, ""},
		{"web", 4, `replica 3 would be "web-3", which is another app`},
		{"web", 0, "replicas must be from 1 to 1000, got 0"},
		{"plain", 2, `plain has no "replicas" in the config (add "replicas": 1 to scale it)`},
		{"web-1", 2, "web-1 is replica 1 of web: scale web"},
		{"fixed", 2, "its pid-path must contain {replica} for more than one replica"},
		{"fixed", 1, ""},
	} {
		if got := st.ScaleProblem(c.id, c.n); got != c.want {
			t.Errorf("ScaleProblem(%s, %d) = %q, want %q", c.id, c.n, got, c.want)
		}
	}
	three := st.Scaled(map[string]int{"web": 3, "fixed": 2})
	w2, ok := three.App("web-2")
	if !ok || w2.Replicas != 3 || w2.Replica != 2 || !slices.Equal(w2.Args, []string{"--port", "802"}) || w2.PIDPath != "/cfg/run/2.pid" {
		t.Fatalf("web-2 after scaling to 3: %+v", w2)
	}
	for _, id := range []string{"web", "web-1"} {
		a, _ := st.App(id)
		b, _ := three.App(id)
		if a.Fingerprint() != b.Fingerprint() || b.Replicas != 3 {
			t.Errorf("%s: fingerprint %s -> %s, replicas %d", id, a.Fingerprint(), b.Fingerprint(), b.Replicas)
		}
	}
	if _, ok := three.App("fixed-1"); ok {
		t.Error("fixed scaled to 2 although its pid-path is shared")
	}
	one := st.Scaled(map[string]int{"web": 1})
	if _, ok := one.App("web-1"); ok || len(one.Apps()) != 4 {
		t.Errorf("scaled to 1: %d apps", len(one.Apps()))
	}
	if st.Scaled(map[string]int{"web": 2}) != st {
		t.Error("scaling to the file's count made a new state")
	}
}
