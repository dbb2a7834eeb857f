package patrol_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// deepJSON is a key/value object whose key "k" nests n arrays deep.
func deepJSON(n int) string {
	return `{"k":` + strings.Repeat("[", n) + "1" + strings.Repeat("]", n) + `}`
}

// TestKeyValueLimits: the review's request (one 18 KB POST nesting 9000
// levels deep) and its smaller UDP twin are refused with the seed-style
// error, nothing is stored, and writes that would grow an entry past
// max-bytes or max-keys are refused whole, over HTTP (400) and UDP (an
// error reply).
func TestKeyValueLimits(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"web": appCfg(t, map[string]any{"keyvalue": map[string]any{"seed": "v"}}, "sleep"),
		"u":   appCfg(t, map[string]any{"keepalive": 4}, "sleep"),
	}, map[string]any{"keyvalue-limits": map[string]any{"max-bytes": 100, "max-keys": 3}}))
	uc, err := net.Dial("udp", d.UDPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	postRaw := func(body string) (int, schema.Response) {
		resp, err := http.Post("http://"+d.HTTPAddr()+"/api/", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r schema.Response
		json.NewDecoder(resp.Body).Decode(&r)
		return resp.StatusCode, r
	}
	udp := func(msg string) schema.Response {
		if _, err := uc.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		uc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		n, err := uc.Read(buf)
		if err != nil {
			t.Fatalf("no reply to %.60s...: %v", msg, err)
		}
		var r schema.Response
		if err := json.Unmarshal(buf[:n], &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	kvOf := func(id string) map[string]any { return d.app(t, id).KeyValue }
	for _, c := range []struct {
		name, kv, want string
	}{
		{"9000 levels deep", deepJSON(9000), schema.ErrKeyValueTooDeep},
		{"11 levels deep", deepJSON(10), schema.ErrKeyValueTooDeep},
		{"four keys", `{"a":1,"b":2,"c":3,"d":4}`, schema.ErrKeyValueTooManyKeys},
		{"over 100 bytes", `{"big":"` + strings.Repeat("x", 100) + `"}`, schema.ErrKeyValueTooLarge},
	} {
		t.Run(c.name+" over http", func(t *testing.T) {
			before := kvOf("web")
			code, r := postRaw(`{"id":"web","group":"app","keyvalue":` + c.kv + `}`)
			if code != http.StatusBadRequest || len(r.Errors) != 1 || r.Errors[0] != c.want {
				t.Fatalf("got %d %v, want 400 %q", code, r.Errors, c.want)
			}
			if after := kvOf("web"); !jsonEqual(before, after) {
				t.Errorf("key/value changed: %v -> %v", before, after)
			}
		})
		if len(c.kv) > schema.MaxUDPRequest-100 {
			continue
		}
		t.Run(c.name+" over udp", func(t *testing.T) {
			before := kvOf("u")
			r := udp(`{"id":"u","group":"app","keyvalue":` + c.kv + `}`)
			if len(r.Errors) != 1 || r.Errors[0] != c.want || r.ID != "u" || r.Group != "app" {
				t.Fatalf("got %+v, want the error %q", r, c.want)
			}
			if after := kvOf("u"); !jsonEqual(before, after) {
				t.Errorf("key/value changed: %v -> %v", before, after)
			}
		})
	}
	t.Run("the UDP datagram at 1000 levels", func(t *testing.T) {
		r := udp(`{"id":"u","group":"app","keyvalue":` + deepJSON(1000) + `}`)
		if len(r.Errors) != 1 || r.Errors[0] != schema.ErrKeyValueTooDeep {
			t.Fatalf("got %+v", r)
		}
	})
	t.Run("merges up to the limits, then refused whole", func(t *testing.T) {
		if code, r := postRaw(`{"id":"web","group":"app","keyvalue":{"a":1,"b":"` + strings.Repeat("x", 40) + `"}}`); code != 200 {
			t.Fatalf("got %d %v", code, r.Errors)
		}
		// A fourth key, and a toggle in the same request: neither is applied.
		code, r := postRaw(`{"id":"web","group":"app","toggle":2,"keyvalue":{"c":1}}`)
		if code != 400 || r.Errors[0] != schema.ErrKeyValueTooManyKeys {
			t.Fatalf("got %d %v", code, r.Errors)
		}
		if a := d.app(t, "web"); a.Override != nil || len(a.KeyValue) != 3 {
			t.Errorf("a refused request changed the entry: override %+v, keyvalue %v", a.Override, a.KeyValue)
		}
		// Growing a value past max-bytes.
		if code, r := postRaw(`{"id":"web","group":"app","keyvalue":{"a":"` + strings.Repeat("y", 50) + `"}}`); code != 400 || r.Errors[0] != schema.ErrKeyValueTooLarge {
			t.Fatalf("got %d %v", code, r.Errors)
		}
		// Replacing is checked as the result: fine.
		if code, r := postRaw(`{"id":"web","group":"app","keyvalue-replace":true,"keyvalue":{"z":1}}`); code != 200 {
			t.Fatalf("got %d %v", code, r.Errors)
		}
		if kv := kvOf("web"); len(kv) != 1 || kv["z"] == nil {
			t.Errorf("keyvalue after replace: %v", kv)
		}
	})
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestOversizedKeyValueFromAnOlderVersion: a state directory written by a
// Patrol without limits holds the review's 9000-level value in an app's
// key/value data and in its history; this Patrol starts on it, trims both
// with a log line, and serves a small status.
func TestOversizedKeyValueFromAnOlderVersion(t *testing.T) {
	stateDir := t.TempDir()
	var deep map[string]any
	dec := json.NewDecoder(strings.NewReader(deepJSON(9000)))
	dec.UseNumber()
	if err := dec.Decode(&deep); err != nil {
		t.Fatal(err)
	}
	deep["note"] = "kept"
	s, _, err := observed.OpenStore(stateDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := desired.Key{Group: schema.GroupApp, ID: "web"}
	s.Put(observed.SetMeta(k, 5, deep, nil, 1, "", ""),
		observed.AppendHistory(k, observed.Record{InstanceID: "3f1c0a52-0000-4000-8000-000000000001", PID: 1,
			Started: time.Now().Add(-time.Hour).UTC().Round(0), Stopped: time.Now().Add(-time.Minute).UTC().Round(0),
			Reason: schema.ReasonCrashed, KeyValue: deep}, 100))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs := &testhelper.Buffer{}
	d := startPatrolWith(t, config(map[string]any{"web": appCfg(t, nil, "sleep")}, nil),
		patrol.Options{StateDir: stateDir, Log: slog.New(slog.NewTextHandler(logs, nil))})
	a, _ := d.waitRunning(t, "web", 0, 5*time.Second)
	if len(a.KeyValue) != 1 || a.KeyValue["note"] != "kept" {
		t.Errorf("keyvalue: %v, want only note", a.KeyValue)
	}
	if len(a.History) != 1 || len(a.History[0].KeyValue) != 1 {
		t.Errorf("history: %+v", a.History)
	}
	resp, err := http.Get("http://" + d.HTTPAddr() + "/status/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(body) > 8<<10 {
		t.Errorf("/status/ is %d bytes", len(body))
	}
	if !strings.Contains(logs.String(), "keyvalue-limits trimmed") {
		t.Errorf("no log line about the trimmed data")
	}
}
