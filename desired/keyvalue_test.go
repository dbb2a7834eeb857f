package desired

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/patrolhq/patrol/schema"
)

// nested returns a value nested n arrays deep around 1 (n = 0: the number).
func nested(n int) any {
	var v any = 1.0
	for range n {
		v = []any{v}
	}
	return v
}

// kvJSON decodes a key/value object as the API does.
func kvJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var kv map[string]any
	if err := json.Unmarshal([]byte(s), &kv); err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestKeyValueProblem(t *testing.T) {
	l := KeyValueLimits{MaxDepth: 3, MaxBytes: 40, MaxKeys: 2}
	for _, c := range []struct {
		name string
		kv   map[string]any
		want string
	}{
		{"empty", nil, ""},
		{"flat", map[string]any{"a": 1.0, "b": "x"}, ""},
		{"at max-depth", map[string]any{"a": nested(2)}, ""},
		{"object at max-depth", kvJSON(t, `{"a": {"b": {"c": 1}}}`), ""},
		{"empty arrays count", kvJSON(t, `{"a": [[[]]]}`), schema.ErrKeyValueTooDeep},
		{"one over max-depth", map[string]any{"a": nested(3)}, schema.ErrKeyValueTooDeep},
		{"9000 deep", map[string]any{"k": nested(9000)}, schema.ErrKeyValueTooDeep},
		{"too many keys", map[string]any{"a": 1.0, "b": 2.0, "c": 3.0}, schema.ErrKeyValueTooManyKeys},
		{"at max-bytes", map[string]any{"k": strings.Repeat("x", 40-len(`{"k":""}`))}, ""},
		{"one byte over", map[string]any{"k": strings.Repeat("x", 41-len(`{"k":""}`))}, schema.ErrKeyValueTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, detail := l.Problem(c.kv)
			if got != c.want {
				t.Errorf("got %q (%s), want %q", got, detail, c.want)
			}
			if (got == "") != (detail == "") {
				t.Errorf("error %q with detail %q", got, detail)
			}
		})
	}
	if got, _ := (KeyValueLimits{}).Problem(map[string]any{"k": nested(500)}); got != "" {
		t.Errorf("zero limits: got %q, want no limit", got)
	}
}

func TestKeyValueTrim(t *testing.T) {
	l := KeyValueLimits{MaxDepth: 3, MaxBytes: 40, MaxKeys: 3}
	for _, c := range []struct {
		name        string
		kv          map[string]any
		want        map[string]any
		wantDropped []string
	}{
		{"within", map[string]any{"a": 1.0}, map[string]any{"a": 1.0}, nil},
		{"deep key dropped", map[string]any{"a": 1.0, "deep": nested(9000), "z": nested(2)},
			map[string]any{"a": 1.0, "z": nested(2)}, []string{"deep"}},
		{"keys over max-keys dropped in order", map[string]any{"d": 4.0, "c": 3.0, "b": 2.0, "a": 1.0},
			map[string]any{"a": 1.0, "b": 2.0, "c": 3.0}, []string{"d"}},
		// {"a":"xxxxxxxxxx","b":"xxxxxxxxxx"} is 33 bytes; "c" would make it 48.
		{"bytes", map[string]any{"a": "xxxxxxxxxx", "b": "xxxxxxxxxx", "c": "xxxxxxxxxx"},
			map[string]any{"a": "xxxxxxxxxx", "b": "xxxxxxxxxx"}, []string{"c"}},
		{"a big key skipped, smaller ones kept", map[string]any{"a": strings.Repeat("x", 50), "b": 1.0},
			map[string]any{"b": 1.0}, []string{"a"}},
		{"all dropped", map[string]any{"a": nested(4)}, nil, []string{"a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, dropped := l.Trim(c.kv)
			if !reflect.DeepEqual(got, c.want) || !slices.Equal(dropped, c.wantDropped) {
				t.Errorf("got %v dropping %q, want %v dropping %q", got, dropped, c.want, c.wantDropped)
			}
			if p, detail := l.Problem(got); p != "" {
				t.Errorf("trimmed data breaks a limit: %s", detail)
			}
		})
	}
}

// FuzzKeyValueLimits: whatever JSON object comes in, Problem does not
// panic, Trim's result is within the limits and a subset of its input, and
// data Problem accepts is returned by Trim as it is.
func FuzzKeyValueLimits(f *testing.F) {
	f.Add(`{"a": 1}`, 3, 40, 2)
	f.Add(`{"k": [[[[[[[[[[[[1]]]]]]]]]]]]}`, 5, 1000, 10)
	f.Add(`{"a": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "b": {"c": [1, 2, {"d": null}]}, "e": true}`, 2, 64, 2)
	f.Fuzz(func(t *testing.T, doc string, depth, size, keys int) {
		var kv map[string]any
		if json.Unmarshal([]byte(doc), &kv) != nil {
			return
		}
		l := KeyValueLimits{MaxDepth: depth % 70, MaxBytes: size % 2000, MaxKeys: keys % 300}
		ok, _ := l.Problem(kv)
		got, dropped := l.Trim(kv)
		if p, detail := l.Problem(got); p != "" {
			t.Fatalf("Trim(%s) = %v breaks a limit: %s", doc, got, detail)
		}
		if ok == "" && (len(dropped) > 0 || !reflect.DeepEqual(got, kv)) {
			t.Fatalf("Trim changed data within the limits: %v -> %v", kv, got)
		}
		for k, v := range got {
			if !reflect.DeepEqual(kv[k], v) {
				t.Fatalf("Trim changed key %q", k)
			}
		}
		if len(got)+len(dropped) != len(kv) && ok != "" {
			t.Fatalf("kept %d and dropped %d of %d keys", len(got), len(dropped), len(kv))
		}
	})
}
