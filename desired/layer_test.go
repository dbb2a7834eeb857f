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
		{"null in common", []byte(`{"apps": {"a": null}}`), host, "apps.a: in the common config: null takes an entry of common away in a host's config"},
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

// TestLayerNull: null in a host's config takes common's entry or key
// away from that host.
func TestLayerNull(t *testing.T) {
	common := []byte(`{"tick-every": 30, "apps": {"a": {"binary": "/bin/a"}, "b": {"binary": "/bin/b"}}}`)
	got, err := Layer(common, []byte(`{"tick-every": null, "apps": {"a": null, "c": {"binary": "/bin/c"}}, "services": null}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"apps":{"b":{"binary": "/bin/b"},"c":{"binary": "/bin/c"}}}`; string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Every common entry taken away: no "apps" at all.
	if got, _ := Layer(common, []byte(`{"apps": {"a": null, "b": null}}`)); string(got) != `{"tick-every":30}` {
		t.Errorf("got %s", got)
	}
}

// TestStage: a staged host config on the old common gives what the host's
// config gives on the new one: changed, added and dropped common entries
// and keys, the host's own entries and nulls.
func TestStage(t *testing.T) {
	oldCommon := []byte(`{"tick-every": 30, "http": {"listen": "127.0.0.1:1"}, "apps": {"keep": {"binary": "/k"}, "change": {"binary": "/c1"}, "drop": {"binary": "/d"}}}`)
	newCommon := []byte(`{"tick-every": 10, "apps": {"keep": {"binary": "/k"}, "change": {"binary": "/c2"}, "add": {"binary": "/a"}}, "services": {"s": {"management": 3}}}`)
	host := []byte(`{"tick-every": 5, "apps": {"own": {"binary": "/o"}, "add": null}}`)
	staged, err := Stage(oldCommon, newCommon, host)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"apps":{"add":null,"change":{"binary": "/c2"},"drop":null,"keep":{"binary": "/k"},"own":{"binary": "/o"}},"http":null,"services":{"s":{"management": 3}},"tick-every":5}`
	if string(staged) != want {
		t.Errorf("staged\n got %s\nwant %s", staged, want)
	}
	a, err := Layer(oldCommon, staged)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Layer(newCommon, host)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("staged on the old common:\n%s\nhost on the new common:\n%s", a, b)
	}
}

// FuzzStage: whenever a host's config layers on the new common, the
// staged config layers on the old common to the same bytes.
func FuzzStage(f *testing.F) {
	f.Add([]byte(`{"tick-every": 1, "apps": {"a": {}, "b": {}}}`), []byte(`{"apps": {"a": {"x": 1}, "c": {}}, "http": {}}`), []byte(`{"apps": {"b": null, "h": {}}}`))
	f.Add([]byte(`{"apps": null, "http": null}`), []byte(`{"apps": {}}`), []byte(`{}`))
	f.Add([]byte(`{}`), []byte(`{"services": {"s": 1}}`), []byte(`{"services": null, "tick-every": null}`))
	f.Fuzz(func(t *testing.T, oldCommon, newCommon, host []byte) {
		want, err := Layer(newCommon, host)
		if err != nil {
			return
		}
		if _, err := layerObject("common", oldCommon); err != nil {
			return
		}
		staged, err := Stage(oldCommon, newCommon, host)
		if err != nil {
			// Only an invalid old common may stop it.
			if _, lerr := Layer(oldCommon, []byte(`{}`)); lerr == nil {
				t.Fatalf("Stage failed on layers Layer accepts: %v", err)
			}
			return
		}
		got, err := Layer(oldCommon, staged)
		if err != nil {
			t.Fatalf("the staged config %s does not layer: %v", staged, err)
		}
		if string(got) != string(want) {
			t.Errorf("staged on the old common:\n%s\nhost on the new common:\n%s", got, want)
		}
	})
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
