package desired_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/schema"
)

// compileSchema compiles the embedded config.schema.json.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.JSONSchema))
	if err != nil {
		t.Fatalf("config.schema.json is not JSON: %v", err)
	}
	const url = "https://github.com/patrolhq/patrol/schema/config.schema.json"
	c := jsonschema.NewCompiler()
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compile config.schema.json: %v", err)
	}
	return sch
}

func schemaAccepts(t *testing.T, sch *jsonschema.Schema, data []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

func TestExamplesMatchJSONSchema(t *testing.T) {
	sch := compileSchema(t)
	paths, _ := filepath.Glob("../examples/*.json")
	paths = append(paths, "testdata/seed-readme.json")
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := schemaAccepts(t, sch, data); err != nil {
				t.Errorf("JSON Schema rejects it: %v", err)
			}
			if _, err := desired.Parse(data, desired.Options{Dir: "/cfg"}); err != nil {
				t.Errorf("loader rejects it: %q", desired.Problems(err))
			}
		})
	}
}

// TestJSONSchemaNoStricterThanLoader checks every rule-table config the
// loader accepts against the JSON Schema: an editor must never flag a
// config Patrol would run.
func TestJSONSchemaNoStricterThanLoader(t *testing.T) {
	sch := compileSchema(t)
	all := slices.Concat(decodeCases, idCases, appCases, dependsOnCases, serviceCases, topLevelCases)
	accepted := 0
	for _, tc := range all {
		if tc.want != nil {
			continue
		}
		accepted++
		if err := schemaAccepts(t, sch, []byte(tc.cfg)); err != nil {
			t.Errorf("%s: the loader accepts it but the JSON Schema does not: %v", tc.name, err)
		}
	}
	if accepted < 50 {
		t.Errorf("only %d valid cases checked", accepted)
	}
}

// TestJSONSchemaRejects checks that the schema carries the rules it can
// express: unknown keys, types, ranges, enums, ids, patterns.
func TestJSONSchemaRejects(t *testing.T) {
	sch := compileSchema(t)
	for _, cfg := range []string{
		`{"tick-evry": 5}`,
		`{"apps": {"web": {"binnary": "/x"}}}`,
		`{"apps": {"web": {}}}`,
		`{"apps": {"web_1": {"binary": "/x"}}}`,
		`{"apps": {"web": {"binary": "/x", "keepalive": 5}}}`,
		`{"apps": {"web": {"binary": "/x", "args": "-v"}}}`,
		`{"apps": {"web": {"binary": "/x", "stop-signal": "SIGFOO"}}}`,
		`{"apps": {"web": {"binary": "/x", "restart-policy": "sometimes"}}}`,
		`{"apps": {"web": {"binary": "/x", "depends-on": ["a_b"]}}}`,
		`{"apps": {"web": {"binary": "/x", "env": ["AB"]}}}`,
		`{"apps": {"web": {"binary": "/x", "hooks": {"on-exit": []}}}}`,
		`{"tick-every": 600}`,
		`{"history": 4}`,
		`{"ping-timeout": 181}`,
		`{"http": {"listen": "nope"}}`,
		`{"http": {"token": "a b"}}`,
		`{"services": {"s": {"management": 4}}}`,
		`{"services": {"s": {"management": 1, "service": "../sh"}}}`,
		`{"services": {"s": {"management": 1, "ignore-exit-codes-stop": [0]}}}`,
		`{"services": {"s": {"management": 1, "ignore-exit-codes": [3, 3]}}}`,
		`{"log-retention": {"days": -1}}`,
		`{"keyvalue-limits": {"max-depth": 65}}`,
		`{"keyvalue-limits": {"max-bytes": 1}}`,
	} {
		if err := schemaAccepts(t, sch, []byte(cfg)); err == nil {
			t.Errorf("JSON Schema accepts %s", cfg)
		}
		if _, err := desired.Parse([]byte(cfg), opts); err == nil {
			t.Errorf("loader accepts %s", cfg)
		}
	}
}

// TestJSONSchemaDescribesEveryKey: every property has a description.
func TestJSONSchemaDescribesEveryKey(t *testing.T) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.JSONSchema))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	n := 0
	walk = func(path string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if props, ok := m["properties"].(map[string]any); ok {
			for k, p := range props {
				n++
				pm, _ := p.(map[string]any)
				if d, _ := pm["description"].(string); strings.TrimSpace(d) == "" {
					t.Errorf("%s.%s has no description", path, k)
				}
			}
		}
		for k, c := range m {
			walk(path+"/"+k, c)
		}
	}
	walk("#", doc)
	if n < 60 {
		t.Errorf("only %d properties found", n)
	}
}
