package schema

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
)

var samples = []string{"", "web", "2026-11-22T12:00:00Z", "a\"b", `back\slash`, "<script>&</script>",
	"tab\there", "nl\n", "\x00\x01\x1f", "é ü 日本", "\u2028\u2029", "bad \xff utf8", "\x7f", "emoji 🙂"}

func randString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return ""
	}
	s := samples[r.IntN(len(samples))]
	if r.IntN(2) == 0 {
		s += samples[r.IntN(len(samples))]
	}
	return s
}

func randKV(r *rand.Rand) map[string]any {
	switch r.IntN(3) {
	case 0:
		return nil
	case 1:
		return map[string]any{}
	}
	kv := map[string]any{}
	for range r.IntN(4) + 1 {
		switch r.IntN(4) {
		case 0:
			kv[randString(r)] = randString(r)
		case 1:
			kv[randString(r)] = r.Float64() * 1000
		case 2:
			kv[randString(r)] = []any{true, nil, json.Number("12")}
		default:
			kv[randString(r)] = map[string]any{"nested": randString(r)}
		}
	}
	return kv
}

func randHistory(r *rand.Rand) History {
	return History{InstanceID: randString(r), PID: uint32(r.IntN(3) * r.IntN(1<<31)), Started: randString(r),
		LastSeen: randString(r), Stopped: randString(r), Disabled: r.IntN(2) == 0, Restart: r.IntN(2) == 0,
		RunOnce: r.IntN(2) == 0, Shutdown: r.IntN(2) == 0, ExitCode: r.IntN(3) * (r.IntN(512) - 256),
		KeyValue: randKV(r), Reason: Reason(randString(r)), ConfigRevision: randString(r),
		Duration: Seconds(float64(r.IntN(3)) * r.Float64() * 100)}
}

func randResponse(r *rand.Rand) *Response {
	resp := &Response{ID: randString(r), InstanceID: randString(r), Group: randString(r), Name: randString(r),
		PID: uint32(r.IntN(2) * r.IntN(1<<31)), Started: randString(r), LastSeen: randString(r),
		Disabled: r.IntN(2) == 0, Restart: r.IntN(2) == 0, RunOnce: r.IntN(2) == 0, Shutdown: r.IntN(2) == 0,
		KeyValue: randKV(r), Secret: r.IntN(2) == 0, CAS: uint64(r.IntN(2)) * r.Uint64(), CASInvalid: r.IntN(2) == 0,
		State: State(randString(r)), ConfigDisabled: r.IntN(2) == 0, BackoffUntil: randString(r),
		Reason: randString(r), Restarts: r.IntN(2) * (r.IntN(100) - 10),
		Schedule: randString(r), NextRun: randString(r), Skipped: r.IntN(2) * r.IntN(100),
		Replicas: r.IntN(2) * r.IntN(5)}
	for range r.IntN(3) {
		resp.Runs = append(resp.Runs, Run{InstanceID: randString(r), PID: uint32(r.IntN(1 << 20)), Started: randString(r)})
	}
	if n := r.IntN(4); n > 0 {
		for range n - 1 {
			resp.History = append(resp.History, randHistory(r))
		}
		if n == 1 {
			resp.History = []History{}
		}
	}
	for range r.IntN(3) {
		resp.Errors = append(resp.Errors, randString(r))
	}
	if r.IntN(2) == 0 {
		t, f := true, false
		resp.Override = &Override{Since: randString(r), Expires: randString(r)}
		if r.IntN(2) == 0 {
			resp.Override.Disabled = &t
		}
		if r.IntN(2) == 0 {
			resp.Override.RunOnce = &f
		}
		resp.Override.Replicas = r.IntN(2) * r.IntN(10)
	}
	if r.IntN(2) == 0 {
		resp.Health = Health(randString(r))
		ready := r.IntN(2) == 0
		resp.Ready = &ready
		resp.ReadySince, resp.StatusText, resp.WatchdogUntil = randString(r), randString(r), randString(r)
		resp.HealthFailure, resp.HealthFailureAt, resp.Limits = randString(r), randString(r), randString(r)
		if r.IntN(2) == 0 {
			resp.Probes = map[string]*ProbeStatus{"liveness": {OK: true, Last: r.IntN(2) == 0, Message: randString(r), At: randString(r), Failures: r.IntN(3)},
				"readiness": {Successes: r.IntN(3)}}
		}
	}
	return resp
}

// indented is what a json.Encoder with SetIndent("", "\t") makes of v:
// the reference the hand-written encoder must match byte for byte.
func indented(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestStatusJSON: AppendResponseJSON and AppendStatusJSON make exactly what
// encoding/json makes of the struct tags, indented as the HTTP API sends
// it.
func TestStatusJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		resp := randResponse(r)
		got, err := AppendResponseJSON(nil, resp)
		if err != nil {
			t.Fatal(err)
		}
		if want := indented(t, resp); !bytes.Equal(got, want) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
		got, err = AppendResponseCompactJSON(nil, resp)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := json.Marshal(resp); !bytes.Equal(got, want) {
			t.Fatalf("case %d, compact:\n got %s\nwant %s", i, got, want)
		}
	}
	for i := range 200 {
		st := &Status{InstanceID: randString(r), Started: randString(r), Shutdown: r.IntN(2) == 0}
		if r.IntN(2) == 0 {
			st.Config = &ConfigStatus{Path: randString(r), Revision: randString(r), Error: randString(r)}
		}
		for _, m := range []*map[string]*Response{&st.Apps, &st.Services} {
			switch r.IntN(3) {
			case 0:
			case 1:
				*m = map[string]*Response{}
			default:
				*m = map[string]*Response{}
				for range r.IntN(20) + 1 {
					var resp *Response
					if r.IntN(10) > 0 {
						resp = randResponse(r)
					}
					(*m)[randString(r)+string(rune('a'+r.IntN(26)))] = resp
				}
			}
		}
		got, err := AppendStatusJSON(nil, st)
		if err != nil {
			t.Fatal(err)
		}
		if want := indented(t, st); !bytes.Equal(got, want) {
			t.Fatalf("status %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// FuzzJSONString: appendString encodes any string as encoding/json does.
func FuzzJSONString(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	})
}

// BenchmarkStatusJSON encodes the status of 1,000 apps with a history
// entry each, by hand and through encoding/json.
func BenchmarkStatusJSON(b *testing.B) {
	st := &Status{Apps: map[string]*Response{}}
	h := History{InstanceID: "7184703a-5570-44ac-9d29-8445b54b9ab0", PID: 4141, Started: "2026-11-22T11:00:00Z",
		LastSeen: "2026-11-22T11:59:00Z", Stopped: "2026-11-22T11:59:00Z", ExitCode: 1, Reason: "exited"}
	for i := range 1000 {
		st.Apps["app-"+strconv.Itoa(i)] = &Response{ID: "app-" + strconv.Itoa(i), InstanceID: "8f8f9140-796e-4a80-8f86-82f522ba66bb",
			Group: "app", Name: "app", PID: 4242, Started: "2026-11-22T12:00:00Z", LastSeen: "2026-11-22T12:00:00Z",
			CAS: 1 << 40, State: StateRunning, History: []History{h}}
	}
	b.Run("hand-written", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = AppendStatusJSON(buf[:0], st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			indented(b, st)
		}
	})
}

// TestRandomCoversFields: the random responses of TestStatusJSON set every
// field of Response and History at least once (Usage aside: it has a test
// of its own), so that a field added to them but not to the hand-written
// encoder fails TestStatusJSON.
func TestRandomCoversFields(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	mark := func(v reflect.Value) {
		for i := range v.NumField() {
			if !v.Field(i).IsZero() {
				seen[v.Type().Name()+"."+v.Type().Field(i).Name] = true
			}
		}
	}
	for range 2000 {
		resp := randResponse(r)
		mark(reflect.ValueOf(*resp))
		for _, h := range resp.History {
			mark(reflect.ValueOf(h))
		}
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[Response](), reflect.TypeFor[History]()} {
		for i := range typ.NumField() {
			if name := typ.Name() + "." + typ.Field(i).Name; !seen[name] && name != "Response.Usage" {
				t.Errorf("%s is never set by randResponse", name)
			}
		}
	}
}
