package api

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patrolhq/patrol/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./api -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test ./api -update if the change is intended)\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

// call is one recorded Backend.Request.
type call struct {
	Req schema.Request
	Via schema.Transport
}

// fakeBackend is the loop as the API sees it, with fixed data: app "web"
// (CAS 85368, key/value, one history entry), app "locked" with the secret
// "s3cret", and service "db". It records every request.
type fakeBackend struct {
	mu        sync.Mutex
	calls     []call
	statusErr error // returned by Status
	reqErr    error // returned by Request
	// answer, when set, replaces the default answers.
	answer func(*schema.Request) *schema.Response
	// block, when set, makes requests for id "slow" wait for it to close
	// (or for their context to end).
	block chan struct{}
	// plans and reloads record Plan and Reload calls.
	plans          []string
	reloads        int
	reloadProblems []string
	// events feeds Events' subscribers (nil: no events); subs counts the
	// subscriptions open and pings is the last one's pings flag.
	events    chan schema.Event
	eventsErr error
	subs      int
	pings     bool
	// logs holds app "web"'s log file per stream (none: "No Log"); logErr
	// is returned by LogFile.
	logs   map[string]string
	logErr error
	// batch makes startUDP serve it as a BatchBackend (batchFake);
	// sizes records the size of every batch.
	batch bool
	sizes []int
}

// batchFake is fakeBackend as a BatchBackend: RequestBatch answers each
// request as Request does and records the batch's size.
type batchFake struct{ *fakeBackend }

func (b batchFake) RequestBatch(ctx context.Context, reqs []*schema.Request, via schema.Transport) ([]*schema.Response, error) {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(reqs))
	b.mu.Unlock()
	resps := make([]*schema.Response, len(reqs))
	for i, req := range reqs {
		r, err := b.Request(ctx, req, via)
		if err != nil {
			return nil, err
		}
		resps[i] = r
	}
	return resps, nil
}

// batches returns how many batches RequestBatch was called with.
func (f *fakeBackend) batches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sizes)
}

const (
	fakeCAS     = 85368
	fakeStarted = "Sun, 22 Nov 2026 16:13:28 +0000"
	fakeSeen    = "Sun, 22 Nov 2026 16:13:31 +0000"
)

// fakePlan is the plan the fake returns for any valid config.
var fakePlan = &schema.Plan{
	Actions: []schema.PlanAction{
		{Group: schema.GroupApp, ID: "api", Action: schema.ActionRestart, Reason: schema.ReasonChanged,
			Changes: []schema.FieldChange{{Field: "args", Old: []byte(`["-p","80"]`), New: []byte(`["-p","8080"]`), Restart: true}}},
		{Group: schema.GroupApp, ID: "web", Action: schema.ActionStart, Reason: schema.ReasonAdded},
	},
	Summary: schema.PlanSummary{Start: 1, Restart: 1},
}

// Plan answers "{}" and nil with fakePlan, anything else with a problem.
func (f *fakeBackend) Plan(ctx context.Context, config []byte) (*schema.Plan, []string, error) {
	f.mu.Lock()
	f.plans = append(f.plans, string(config))
	f.mu.Unlock()
	if config != nil && string(config) != "{}" {
		return nil, []string{"apps.web.binary: required", `tick-evry: unknown key, did you mean "tick-every"?`}, nil
	}
	return fakePlan, nil, nil
}

// Events passes on what is sent to f.events until ctx ends, then closes
// the channel, as the loop's event bus does.
func (f *fakeBackend) Events(ctx context.Context, pings bool) (<-chan schema.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.eventsErr != nil {
		return nil, f.eventsErr
	}
	f.subs++
	f.pings = pings
	src := f.events
	ch := make(chan schema.Event)
	go func() {
		defer func() {
			f.mu.Lock()
			f.subs--
			f.mu.Unlock()
			close(ch)
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-src:
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}

// Subs returns the number of open event subscriptions.
func (f *fakeBackend) Subs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs
}

// setLog makes path app "web"'s log file for stream.
func (f *fakeBackend) setLog(stream, path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.logs == nil {
		f.logs = map[string]string{}
	}
	f.logs[stream] = path
}

// LogFile knows app "web" (f.logs) and app "locked" (secret "s3cret", no
// logs), as the loop answers.
// Usage answers two samples for web: 25% of a CPU over two seconds, 40
// then 48 MiB.
func (f *fakeBackend) Usage(ctx context.Context) (map[string][]UsageSample, error) {
	at := fakeNow.Add(-2 * time.Second)
	return map[string][]UsageSample{"web": {
		{At: at, CPU: time.Second, RSS: 40 << 20},
		{At: fakeNow, CPU: 1500 * time.Millisecond, RSS: 48 << 20},
	}}, nil
}

func (f *fakeBackend) LogFile(ctx context.Context, id, stream, secret string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.logErr != nil {
		return "", "", f.logErr
	}
	switch strings.ToLower(id) {
	case "web":
	case "locked":
		if secret != "s3cret" {
			return "", schema.ErrSecretInvalid, nil
		}
		return "", "No Log", nil
	default:
		return "", schema.ErrUnknownApp, nil
	}
	if stream != "stdout" && stream != "stderr" {
		return "", schema.ErrInvalidRequest, nil
	}
	if p := f.logs[stream]; p != "" {
		return p, "", nil
	}
	return "", "No Log", nil
}

// Reload succeeds unless reloadProblems is set.
func (f *fakeBackend) Reload(ctx context.Context) (string, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return "abc123def456", f.reloadProblems, nil
}

func (f *fakeBackend) Status(ctx context.Context) (*schema.Status, error) {
	if f.statusErr != nil {
		return nil, f.statusErr
	}
	web := webEntry(true)
	web.ID, web.Group, web.Shutdown = "", "", false
	web.State, web.Restarts = schema.StateRunning, 2
	yes := true
	return &schema.Status{
		InstanceID: "9c2d7d1e-3f7a-4c51-9a51-0c2b8a1f1e11",
		Apps: map[string]*schema.Response{
			"web": web,
			"locked": {Name: "Locked", Secret: true, CAS: 7, State: schema.StateDisabled, ConfigDisabled: false,
				Disabled: true, Override: &schema.Override{Disabled: &yes, Since: fakeStarted, Expires: fakeSeen}},
		},
		Services: map[string]*schema.Response{
			"db": {Name: "Database", Started: fakeStarted, CAS: 12, State: schema.StateRunning},
		},
		Started: fakeStarted,
		Config:  &schema.ConfigStatus{Path: "/etc/patrol/config.json", Revision: "1a2b3c4d", Loaded: fakeStarted},
	}, nil
}

// webEntry is app "web" as the loop would answer for it.
func webEntry(history bool) *schema.Response {
	r := &schema.Response{
		ID:         "web",
		InstanceID: "f4f67519-35c5-4529-8f63-b6cbb4d6791f",
		Group:      "app",
		Name:       "Web",
		PID:        14511,
		Started:    fakeStarted,
		LastSeen:   fakeSeen,
		RunOnce:    true,
		KeyValue:   map[string]any{"build": "abc", "n": 3},
		CAS:        fakeCAS,
	}
	if history {
		r.History = []schema.History{{
			InstanceID: "0b0c7e39-2f2d-4a43-b1a3-0c6f7f2d5c4e", PID: 14409,
			Started: "Sun, 22 Nov 2026 16:10:00 +0000", LastSeen: "Sun, 22 Nov 2026 16:13:00 +0000",
			Stopped: "Sun, 22 Nov 2026 16:13:27 +0000", ExitCode: 137, Reason: schema.ReasonSignal, ConfigRevision: "1a2b3c4d",
		}}
	}
	return r
}

func (f *fakeBackend) Request(ctx context.Context, req *schema.Request, via schema.Transport) (*schema.Response, error) {
	f.mu.Lock()
	f.calls = append(f.calls, call{*req, via})
	f.mu.Unlock()
	if req.ID == "slow" && f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.reqErr != nil {
		return nil, f.reqErr
	}
	if f.answer != nil {
		return f.answer(req), nil
	}
	errs := func(e string) *schema.Response { return &schema.Response{Errors: []string{e}} }
	g, ok := schema.ParseGroup(req.Group)
	if !ok {
		return errs(schema.ErrUnknownGroup), nil
	}
	id := strings.ToLower(req.ID)
	switch {
	case g == schema.GroupApp && (id == "web" || id == "slow"):
		r := webEntry(req.History)
		r.ID = id
		if req.CAS != 0 && req.CAS != fakeCAS {
			r.CASInvalid = true
		}
		return r, nil
	case g == schema.GroupApp && id == "locked":
		r := &schema.Response{ID: id, Group: "app", Name: "Locked", Secret: true, Disabled: true, CAS: 7}
		switch req.Secret {
		case "":
			r.CASInvalid = true
		case "s3cret":
		default:
			return errs(schema.ErrSecretInvalid), nil
		}
		return r, nil
	case g == schema.GroupService && id == "db":
		return &schema.Response{ID: id, Group: "service", Name: "Database", Started: fakeStarted, CAS: 12}, nil
	case g == schema.GroupApp:
		return errs(schema.ErrUnknownApp), nil
	default:
		return errs(schema.ErrUnknownService), nil
	}
}

// Calls returns the requests recorded so far.
func (f *fakeBackend) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}
