package desired_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/patrolhq/patrol/desired"
)

// FuzzLoad feeds arbitrary bytes to the loader: it must never panic, must
// return either a state or errors, and must be deterministic.
func FuzzLoad(f *testing.F) {
	paths, _ := filepath.Glob("../examples/*.json")
	paths = append(paths, "testdata/seed-readme.json")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"apps": {"web": null}}`, `{"apps": {"": {}}}`,
		`{"tick-every": 1e400}`, `{"apps": {"a": {"binary": "/x", "depends-on": ["a"]}}}`,
		`{"apps": {"a": {"binary": "/x", "backoff": {"initial": -1, "max": "x"}}}}`,
		`{"services": {"s": {"ignore-exit-codes": [0, 0, 256, -1, 1.5]}}}`,
		`{"x": [[[[[[[[[[[[]]]]]]]]]]]]}`, `{"a":1,"a":2}`, `{} {}`, "{\"\xff\": 1}",
		`{"apps": {"a": {"binary": "/x", "depends-on": [{"app": "b", "condition": "ready", "restart": true}, 7, null]}, "b": {"binary": "/x"}}}`,
		`{"apps": {"a": {"binary": "/x", "readiness": {"http": {"url": "http://[::1]:80/x", "status": [500, 100]}, "period": 0.1, "timeout": 9}}}}`,
		`{"apps": {"a": {"binary": "/x", "liveness": {"exec": {"command": []}, "tcp": {"port": 0}}, "ready": "notify", "watchdog": -1}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := desired.Parse(data, opts)
		if (st == nil) == (err == nil) {
			t.Fatalf("got state %v and error %v: want exactly one", st != nil, err)
		}
		if err != nil {
			problems := desired.Problems(err)
			if len(problems) == 0 {
				t.Fatal("error without problems")
			}
			for _, p := range problems {
				if p == "" {
					t.Fatal("empty problem line")
				}
			}
			return
		}
		again, err := desired.Parse(data, opts)
		if err != nil || again.Revision() != st.Revision() {
			t.Fatalf("second parse: revision %s vs %s, error %v", again.Revision(), st.Revision(), err)
		}
	})
}
