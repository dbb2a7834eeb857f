package patrol_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// post sends one API request to the daemon over HTTP.
func (d *daemon) post(t *testing.T, req map[string]any) (*schema.Response, int) {
	t.Helper()
	return d.postAuth(t, req, "")
}

// postAuth is post with a bearer token ("" for none).
func (d *daemon) postAuth(t *testing.T, req map[string]any, token string) (*schema.Response, int) {
	t.Helper()
	body, _ := json.Marshal(req)
	hr, err := http.NewRequest("POST", "http://"+d.HTTPAddr()+"/api/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r schema.Response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return &r, resp.StatusCode
}

// TestPingTimeoutStopsHungApp: a keepalive 3 app that stops pinging (it
// hangs: SIGSTOP) is closed after ping-timeout and its process stopped
// before a new one starts: never two copies.
func TestPingTimeoutStopsHungApp(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pinger.pid")
	d := startPatrol(t, config(map[string]any{
		"pinger": appCfg(t, map[string]any{"keepalive": 3, "stop-timeout": 0.3,
			"backoff": map[string]any{"initial": 0.05}}, "ping-http", "50ms", pidFile),
	}, map[string]any{"ping-timeout": 1, "json-timestamp": "RFC3339Nano"}))
	// Patrol starts it after the start-up grace (2 x ping-timeout).
	first, _ := d.waitRunning(t, "pinger", 0, 10*time.Second)
	if pid := readPID(t, pidFile, 5*time.Second); uint32(pid) != first.PID {
		t.Fatalf("status pid %d, the pinger is %d", first.PID, pid)
	}
	waitFor(t, "a ping", 5*time.Second, func() bool { return d.app(t, "pinger").LastSeen != first.Started })
	if err := syscall.Kill(int(first.PID), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Until the new instance runs, never a new pid while the old lives.
	var second *schema.Response
	waitFor(t, "a new instance", 10*time.Second, func() bool {
		a := d.app(t, "pinger")
		if a.PID != 0 && a.PID != first.PID {
			if alive(int(first.PID)) {
				t.Fatalf("two copies: the hung pid %d is alive while %d runs", first.PID, a.PID)
			}
			second = a
			return true
		}
		return false
	})
	h := d.app(t, "pinger").History
	if len(h) != 1 || h[0].Reason != schema.ReasonPingTimeout || h[0].PID != first.PID || h[0].ExitCode != 137 {
		t.Errorf("history: %+v", h)
	}
	if second.State != schema.StateRunning {
		t.Errorf("new instance: %+v", second)
	}
}

// TestAdoptByPing: an app started outside Patrol that pings in during the
// start-up grace is adopted; Patrol starts no second copy.
func TestAdoptByPing(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"ext": appCfg(t, map[string]any{"keepalive": 4, "pid-verify": true}, "ping-udp", "50ms"),
	}, map[string]any{"ping-timeout": 5}))
	p, err := os.StartProcess(self(t), []string{self(t), testhelper.Arg, "ping-udp", "50ms"}, &os.ProcAttr{
		Env:   []string{"PATROL_ID=ext", fmt.Sprintf(`PATROL_UDP=["%s"]`, d.UDPAddr())},
		Files: []*os.File{nil, os.Stdout, os.Stderr},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	a, _ := d.waitRunning(t, "ext", 0, 5*time.Second)
	if int(a.PID) != p.Pid {
		t.Fatalf("adopted pid %d, the pinger is %d", a.PID, p.Pid)
	}
	// Pings keep it alive; last seen moves.
	seen := a.LastSeen
	waitFor(t, "lastseen to move", 5*time.Second, func() bool { return d.app(t, "ext").LastSeen != seen })
	if a := d.app(t, "ext"); a.Restarts != 0 || a.InstanceID == "" {
		t.Errorf("after pings: %+v", a)
	}
	// Disable: Patrol stops the adopted process (pid-verify vouched for it).
	if r, code := d.post(t, map[string]any{"id": "ext", "group": "app", "toggle": 2}); code != 200 || len(r.Errors) > 0 {
		t.Fatalf("disable: %d %+v", code, r)
	}
	waitFor(t, "the adopted process stopped", 5*time.Second, func() bool {
		return d.app(t, "ext").State == schema.StateDisabled
	})
	// The pinger is the test's child, and the test process hosts Patrol:
	// Patrol's reaper collected its exit status.
	if alive(p.Pid) {
		t.Errorf("adopted process %d still alive", p.Pid)
	}
	if h := d.app(t, "ext").History; len(h) != 1 || int(h[0].PID) != p.Pid || h[0].ExitCode != 143 || h[0].Reason != schema.ReasonStoppedByAPI {
		t.Errorf("history: %+v", h)
	}
}

// TestCASRace: of 50 concurrent requests with the same valid CAS, exactly
// one is applied.
func TestCASRace(t *testing.T) {
	d := startPatrol(t, config(map[string]any{"web": appCfg(t, nil, "sleep")}, nil))
	d.waitRunning(t, "web", 0, 5*time.Second)
	r, _ := d.post(t, map[string]any{"id": "web", "group": "app"})
	cas := r.CAS
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []int
	)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"id": "web", "group": "app", "cas": cas, "keyvalue": map[string]any{"winner": i}})
			resp, err := http.Post("http://"+d.HTTPAddr()+"/api/", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var r schema.Response
			json.NewDecoder(resp.Body).Decode(&r)
			if resp.StatusCode != 200 {
				t.Errorf("status %d: %+v", resp.StatusCode, r)
			}
			if !r.CASInvalid {
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d requests applied, want exactly 1: %v", len(winners), winners)
	}
	r, _ = d.post(t, map[string]any{"id": "web", "group": "app"})
	if got, _ := r.KeyValue["winner"].(float64); int(got) != winners[0] || r.CAS != cas+1 {
		t.Errorf("after the race: keyvalue %v, cas %d (want winner %d, cas %d)", r.KeyValue, r.CAS, winners[0], cas+1)
	}
}

// TestUDPAPI: the UDP API answers a valid request with a compact reply
// without history, keyvalue or errors, and stays silent on errors.
func TestUDPAPI(t *testing.T) {
	d := startPatrol(t, config(map[string]any{"web": appCfg(t, map[string]any{"keyvalue": map[string]any{"k": "v"}}, "sleep")}, nil))
	d.waitRunning(t, "web", 0, 5*time.Second)
	c, err := net.Dial("udp", d.UDPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func(req string) (string, bool) {
		c.Write([]byte(req))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			return "", false
		}
		return string(buf[:n]), true
	}
	reply, ok := ask(`{"id":"web","group":"app","history":true}`)
	if !ok {
		t.Fatal("no reply")
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(reply), &r); err != nil {
		t.Fatalf("reply %q: %v", reply, err)
	}
	for _, k := range []string{"history", "keyvalue", "errors"} {
		if _, ok := r[k]; ok {
			t.Errorf("UDP reply has %q: %s", k, reply)
		}
	}
	if r["id"] != "web" || r["pid"] == nil || bytes.ContainsAny([]byte(reply), "\n\t") {
		t.Errorf("reply: %s", reply)
	}
	for _, bad := range []string{`{"id":"nope","group":"app"}`, `not json`, `{"id":"web","group":"app","ping":true}`} {
		if reply, ok := ask(bad); ok {
			t.Errorf("%s: got a reply %s; want silence", bad, reply)
		}
	}
}

// TestPingGraceShown: during the start-up grace a keepalive 3 app is
// "waiting", saying until when it waits for running instances to ping in,
// then it starts.
func TestPingGraceShown(t *testing.T) {
	d := startPatrol(t, config(map[string]any{
		"pinger": appCfg(t, map[string]any{"keepalive": 3}, "ping-http", "50ms", filepath.Join(t.TempDir(), "pinger.pid")),
	}, map[string]any{"ping-timeout": 1}))
	if a := d.app(t, "pinger"); a.State != schema.StateWaiting || !strings.Contains(a.Reason, "waiting for running instances to ping in, until ") {
		t.Errorf("during the grace: %s %q", a.State, a.Reason)
	}
	d.waitRunning(t, "pinger", 0, 10*time.Second)
}
