package desired

import (
	"slices"
	"strings"
	"testing"
)

func TestLayer(t *testing.T) {
	common := []byte(`{"tick-every": 30, "http": {"listen": "127.0.0.1:9000"},
		"apps": {"a": {"binary": "/bin/a"}, "b": {"binary": "/bin/b", "args": ["common"]}},
		"services": {"ssh": {"management": 3}}}`)
	host := []byte(`{"tick-every": 5, "apps": {"b": {"binary": "/bin/b2"}, "c": {"binary": "/bin/c", "depends-on": ["a"]}}}`)
	merged, err := Layer(common, host)
	if err != nil {
		t.Fatalf("%q", Problems(err))
	}
	st, err := Parse(merged, Options{Dir: "/srv"})
	if err != nil {
		t.Fatalf("%q\n%s", Problems(err), merged)
	}
	ids := func() []string {
		var out []string
		for _, a := range st.Apps() {
			out = append(out, a.ID)
		}
		return out
	}()
	if !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Errorf("apps %v", ids)
	}
	if b, _ := st.App("b"); b.Binary != "/bin/b2" || len(b.Args) != 0 {
		t.Errorf("b is not the host's whole entry: %+v", b)
	}
	if st.Settings().TickEvery.Seconds() != 5 || st.Settings().HTTPListen != "127.0.0.1:9000" {
		t.Errorf("settings %+v", st.Settings())
	}
	if _, ok := st.Service("ssh"); !ok {
		t.Error("common's service is missing")
	}
	// The same layers give the same bytes.
	again, _ := Layer(common, host)
	if string(again) != string(merged) {
		t.Error("Layer is not deterministic")
	}
	for _, tc := range []struct {
		name         string
		common, host []byte
		want         string
	}{
		{"only common", common, nil, ""},
		{"only host", nil, host, "apps.c.depends-on[0]: unknown app"},
		{"neither", nil, nil, "no config: neither the common nor the host's config exists"},
		{"host syntax", common, []byte(`{"apps": `), "host config: invalid JSON"},
		{"common not an object", []byte(`[]`), host, "common config must be a JSON object, got an array"},
		{"duplicate key", []byte(`{"tick-every": 1, "tick-every": 2}`), host, "in the common config: "},
		{"apps not an object", common, []byte(`{"apps": [1]}`), "apps: in the host config: must be an object of entries by id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Layer(tc.common, tc.host)
			if err == nil {
				_, err = Parse(b, Options{Dir: "/srv"})
			}
			got := strings.Join(Problems(err), "; ")
			if tc.want == "" && err != nil || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzLayer: no pair of documents makes Layer panic, and what it accepts
// is one JSON object.
func FuzzLayer(f *testing.F) {
	f.Add([]byte(`{"apps": {"a": {"binary": "/a"}}}`), []byte(`{"apps": {"a": {"binary": "/b"}}, "tick-every": 1}`))
	f.Add([]byte(`{}`), []byte(`null`))
	f.Add([]byte(`{"apps": null}`), []byte(`{"services": {"x": 1}}`))
	f.Fuzz(func(t *testing.T, c, h []byte) {
		b, err := Layer(c, h)
		if err != nil {
			return
		}
		if _, err := layerObject("merged", b); err != nil {
			t.Errorf("Layer made %s: %v", b, err)
		}
	})
}
