package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// cannedStatus is a status as the daemon sends it, with every kind of row:
// a running app with restarts, a disabled app with an expiring override, an
// app in backoff, a stopped app with a start time in an unknown layout, and
// a running service with an RFC 3339 start time.
const cannedStatus = `{
	"instance-id": "9c2d7d1e-3f7a-4c51-9a51-0c2b8a1f1e11",
	"apps": {
		"web": {"name": "Web", "pid": 14511, "started": "Sun, 22 Nov 2026 10:55:00 +0000", "state": "running", "restarts": 2, "cas": 85368,
			"health": "ready", "ready": true, "status": "serving 12 clients",
			"history": [{"exit-code": 137, "reason": "signal", "stopped": "Sun, 22 Nov 2026 10:55:00 +0000"}],
			"usage": {"cpu-seconds": 12.5, "cpu-percent": 2.5, "memory-bytes": 47185920}},
		"api": {"state": "waiting", "reason": "waiting for web to be ready (it is starting)"},
		"locked": {"name": "Locked", "disabled": true, "secret": true, "state": "disabled",
			"override": {"disabled": true, "since": "Sun, 22 Nov 2026 11:00:00 +0000", "expires": "Sun, 22 Nov 2026 12:30:00 +0000"}},
		"crashy": {"state": "backoff", "reason": "crashed", "backoff-until": "Sun, 22 Nov 2026 12:00:30 +0000", "restarts": 7,
			"override": {"run-once": true}, "history": [{"exit-code": 3, "reason": "crashed", "stopped": "Sun, 22 Nov 2026 11:59:00 +0000"}]},
		"odd": {"state": "running", "pid": 7, "started": "yesterday-ish"},
		"nightly": {"state": "scheduled", "reason": "last run failed; next run at Sun, 22 Nov 2026 12:00:35 +0000", "schedule": "@every 5m",
			"next-run": "Sun, 22 Nov 2026 12:00:35 +0000", "skipped": 2, "restarts": 4,
			"history": [{"exit-code": 2, "reason": "failed", "stopped": "Sun, 22 Nov 2026 11:58:00 +0000"}]},
		"pool": {"state": "running", "pid": 8, "override": {"replicas": 4, "expires": "Sun, 22 Nov 2026 12:01:00 +0000"}}
	},
	"service": {
		"db": {"name": "Database", "started": "2026-11-20T09:00:00.5Z", "state": "running"}
	},
	"started": "Sun, 22 Nov 2026 09:00:00 +0000",
	"config": {"path": "/etc/patrol/config.json", "revision": "1a2b3c4d", "loaded": "Sun, 22 Nov 2026 09:00:00 +0000",
		"error": "apps.web.binary: required", "error-since": "Sun, 22 Nov 2026 11:59:00 +0000"}
}
`

// fakeDaemon is an HTTP server that answers every request with code and
// body (GET /api/ with get, when set) and records what it was sent: the
// last change (POST), or the last request when there was none.
type fakeDaemon struct {
	*httptest.Server
	get    string
	posted bool
	mu     sync.Mutex
	method string
	path   string
	auth   string
	ctype  string
	body   string
}

func newFakeDaemon(t *testing.T, code int, body string) *fakeDaemon {
	t.Helper()
	d := &fakeDaemon{}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		if !d.posted || r.Method != http.MethodGet {
			d.method, d.path, d.auth, d.ctype, d.body = r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)
			d.posted = r.Method == http.MethodPost
		}
		get := d.get
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if get != "" && r.Method == http.MethodGet && r.URL.Path == "/api/" {
			io.WriteString(w, get)
			return
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	t.Cleanup(d.Close)
	return d
}

// sent returns what the daemon was sent last.
func (d *fakeDaemon) sent() (method, path, auth, ctype, body string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.method, d.path, d.auth, d.ctype, d.body
}

// setClock fixes the CLI's clock for one test.
func setClock(t *testing.T, now time.Time) {
	old := clock
	clock = func() time.Time { return now }
	t.Cleanup(func() { clock = old })
}

// isoLocal formats an RFC1123Z time as the CLI shows full times: ISO
// 8601, local time.
func isoLocal(t *testing.T, s string) string {
	tm, err := time.Parse(time.RFC1123Z, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.Local().Format("2006-01-02T15:04:05-07:00")
}

func TestStatusTable(t *testing.T) {
	setClock(t, time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	d := newFakeDaemon(t, 200, cannedStatus)
	code, out, errOut := cli(t, "status", "--server", d.URL)
	if code != exitConfigError || errOut != "" {
		t.Fatalf("exit %d (want 3: the config has an error), stderr %q", code, errOut)
	}
	want := `config revision 1a2b3c4d (/etc/patrol/config.json)
config error since ` + isoLocal(t, "Sun, 22 Nov 2026 11:59:00 +0000") + `: apps.web.binary: required (the last good config stays in force)
GROUP    ID       STATE      HEALTH  PID    UPTIME  CPU/MEM     RESTARTS  LAST EXIT              OVERRIDE                   REASON
app      api      waiting    -       -      -       -           0         -                      -                          waiting for web to be ready (it is starting)
app      crashy   backoff    -       -      -       -           7         3 (crashed) 1m0s ago   run-once                   crashed (restart in 30s)
app      locked   disabled   -       -      -       -           0         -                      disabled, ends in 30m0s    -
app      nightly  scheduled  -       -      -       -           4         2 (failed) 2m0s ago    -                          last run failed; next run in 35s
app      odd      running    -       7      -       -           0         -                      -                          -
app      pool     running    -       8      -       -           0         -                      scaled to 4, ends in 1m0s  -
app      web      running    ready   14511  1h5m    2.5% 45MiB  2         137 (signal) 1h5m ago  -                          status: serving 12 clients
service  db       running    -       -      2d2h    -           0         -                      -                          -
`
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	if method, path, _, _, _ := d.sent(); method != "GET" || path != "/status/" {
		t.Errorf("sent %s %s, want GET /status/", method, path)
	}
}

func TestStatusJSON(t *testing.T) {
	d := newFakeDaemon(t, 200, cannedStatus)
	code, out, _ := cli(t, "status", "--json", "--server", d.URL+"/")
	if code != exitConfigError || out != cannedStatus {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

func TestStatusEmptyAndShutdown(t *testing.T) {
	d := newFakeDaemon(t, 200, `{"shutdown": true}`)
	code, out, _ := cli(t, "status", "--server", d.URL)
	if want := "Patrol is shutting down\nno apps or services\n"; code != 0 || out != want {
		t.Errorf("exit %d, got %q, want %q", code, out, want)
	}
}

// TestServerForms: --server takes a URL, with or without a trailing
// slash, or a bare host:port.
func TestServerForms(t *testing.T) {
	d := newFakeDaemon(t, 200, `{}`)
	for _, s := range []string{d.URL, d.URL + "/", strings.TrimPrefix(d.URL, "http://")} {
		if code, _, errOut := cli(t, "status", "--server", s); code != 0 {
			t.Errorf("--server %s: exit %d, stderr %q", s, code, errOut)
		}
		if _, path, _, _, _ := d.sent(); path != "/status/" {
			t.Errorf("--server %s: path %q", s, path)
		}
	}
	for _, s := range []string{"ftp://x", "http://", "::"} {
		if code, _, errOut := cli(t, "status", "--server", s); code != 2 || !strings.Contains(errOut, "invalid --server") {
			t.Errorf("--server %s: exit %d, stderr %q", s, code, errOut)
		}
	}
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUnreachable(t *testing.T) {
	addr := closedAddr(t)
	for _, args := range [][]string{
		{"status", "--server", addr},
		{"status", "--json", "--server", "http://" + addr},
		{"toggle", "app", "web", "disable", "--server", addr},
	} {
		code, out, errOut := cli(t, args...)
		if code != 1 || out != "" || !strings.Contains(errOut, "cannot reach Patrol at http://"+addr+": ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

func TestStatusDaemonError(t *testing.T) {
	d := newFakeDaemon(t, 503, `{"errors":["Patrol Is Shutting Down"]}`)
	code, _, errOut := cli(t, "status", "--server", d.URL)
	if code != 1 || errOut != "patrol status: "+d.URL+": Patrol Is Shutting Down\n" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	d = newFakeDaemon(t, 404, "404 page not found\n")
	code, _, errOut = cli(t, "status", "--server", d.URL)
	if code != 1 || !strings.Contains(errOut, "unexpected answer: HTTP 404 404 page not found") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

const webAnswer = `{"id":"web","group":"app","name":"Web","pid":14511,"started":"Sun, 22 Nov 2026 10:55:00 +0000","cas":85368}`

func TestToggle(t *testing.T) {
	overridden := `{"id":"web","group":"app","name":"Web","pid":14511,"cas":85369,"override":{"disabled":true}}`
	for _, c := range []struct {
		name     string
		args     []string
		env      string // PATROL_TOKEN
		answer   string
		get      string // the entry read before and after ("": answer)
		wantBody string
		wantAuth string
		wantOut  string
	}{
		{"disable with everything", []string{"app", "web", "disable", "--cas", "85368", "--secret", "s", "--ttl", "30s", "--token", "T", "-v"}, "env",
			webAnswer, overridden, `{"id":"web","group":"app","toggle":2,"secret":"s","cas":85368,"ttl":30}`, "Bearer T",
			"app web: disable applied (before: running, pid 14511)\nnext change: --cas 85369, unless the entry changed since\n"},
		{"disable what the file disables", []string{"app", "stubborn", "disable", "--ttl", "30s"}, "",
			`{"id":"stubborn","group":"app","state":"disabled","disabled":true,"config-disabled":true,"cas":3}`, "", `{"id":"stubborn","group":"app","toggle":2,"ttl":30}`, "",
			"app stubborn: disable: nothing to override, the config file already has it disabled (--ttl has no override to expire) (before: disabled)\n"},
		{"clear with env token", []string{"service", "db", "clear"}, "envtok",
			`{"id":"db","group":"service","cas":12}`, "", `{"id":"db","group":"service","clear":true}`, "Bearer envtok",
			"service db: override cleared (before: stopped)\n"},
		{"apps alias, seconds ttl, flags first", []string{"--ttl", "90", "apps", "Web", "RunOnce-Enable"}, "",
			`{"id":"web","group":"app","disabled":true,"cas":1}`, "", `{"id":"Web","group":"app","toggle":4,"ttl":90}`, "",
			"app web: runonce-enable applied (before: disabled)\n"},
		{"restart state from status", []string{"app", "web", "restart"}, "",
			`{"id":"web","group":"app","state":"backoff","cas":5}`, "", `{"id":"web","group":"app","toggle":3}`, "",
			"app web: restart applied (before: backoff)\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PATROL_TOKEN", c.env)
			d := newFakeDaemon(t, 200, c.answer)
			d.get = c.get
			code, out, errOut := cli(t, append([]string{"toggle", "--server", d.URL}, c.args...)...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if out != c.wantOut {
				t.Errorf("stdout: got %q, want %q", out, c.wantOut)
			}
			method, path, auth, ctype, body := d.sent()
			if method != "POST" || path != "/api/" || ctype != "application/json" {
				t.Errorf("sent %s %s (%s), want POST /api/ as JSON", method, path, ctype)
			}
			if body != c.wantBody {
				t.Errorf("body: got %s, want %s", body, c.wantBody)
			}
			if auth != c.wantAuth {
				t.Errorf("Authorization: got %q, want %q", auth, c.wantAuth)
			}
		})
	}
}

func TestToggleRefused(t *testing.T) {
	for _, c := range []struct {
		name   string
		args   []string
		code   int
		answer string
		want   string // stderr
	}{
		{"unknown app", []string{"app", "nope", "enable"}, 400, `{"errors":["Unknown App"]}`,
			"patrol toggle: app nope: Unknown App\n"},
		{"two errors", []string{"app", "web", "enable"}, 400, `{"errors":["Unknown App","Secret Invalid"]}`,
			"patrol toggle: app web: Unknown App; Secret Invalid\n"},
		{"unauthorized", []string{"app", "web", "enable"}, 401, `{"errors":["Unauthorized"]}`,
			"patrol toggle: app web: Unauthorized (give the API token with --token or PATROL_TOKEN)\n"},
		{"stale cas", []string{"app", "web", "disable", "--cas", "85368"}, 200, `{"id":"web","group":"app","cas":85370,"cas-invalid":true}`,
			"patrol toggle: app web: NOT applied: the CAS was stale (given 85368, the entry's is now 85370)\n"},
		{"secret needed", []string{"app", "locked", "enable"}, 200, `{"id":"locked","group":"app","secret":true,"cas":7,"cas-invalid":true}`,
			"patrol toggle: app locked: NOT applied: the entry has a secret; give it with --secret\n"},
		{"cas-invalid otherwise", []string{"app", "web", "enable", "--cas", "7", "--secret", "s"}, 200, `{"cas":7,"cas-invalid":true}`,
			"patrol toggle: app web: NOT applied: the CAS was stale or a secret is needed (the entry's CAS is 7)\n"},
		{"restart a disabled app", []string{"app", "web", "restart"}, 200, `{"id":"web","group":"app","state":"disabled","cas":3}`,
			"patrol toggle: app web is disabled: restart is once only and would enable it for good; use enable (with --ttl for a while)\n"},
		{"not json", []string{"app", "web", "enable"}, 200, `<html>`,
			"patrol toggle: app web: the answer is not an API response: invalid character '<' looking for beginning of value\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newFakeDaemon(t, c.code, c.answer)
			code, out, errOut := cli(t, append([]string{"toggle", "--server", d.URL}, c.args...)...)
			if code != 1 || out != "" || errOut != c.want {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1, stderr %q", code, out, errOut, c.want)
			}
		})
	}
}

func TestToggleUsage(t *testing.T) {
	d := newFakeDaemon(t, 200, webAnswer)
	for _, c := range []struct {
		args []string
		in   string
	}{
		{[]string{"app", "web"}, "want app|service ID ACTION"},
		{[]string{"app", "web", "enable", "extra"}, "want app|service ID ACTION"},
		{[]string{"group", "web", "enable"}, `the group must be app or service, got "group"`},
		{[]string{"app", "web", "explode"}, `unknown action "explode"`},
		{[]string{"app", "web", "clear", "--ttl", "30s"}, "--ttl applies to the override a toggle writes"},
		{[]string{"app", "web", "disable", "--ttl", "-5s"}, "must not be negative"},
		{[]string{"app", "web", "disable", "--ttl", "soon"}, "want a duration such as 30s"},
		{[]string{"app", "web", "disable", "--cas", "-1"}, "invalid value"},
	} {
		code, _, errOut := cli(t, append([]string{"toggle", "--server", d.URL}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.in) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 with %q", c.args, code, errOut, c.in)
		}
	}
	if method, _, _, _, _ := d.sent(); method != "" {
		t.Errorf("a usage error sent a %s request", method)
	}
	code, out, _ := cli(t, "toggle", "--help")
	if code != 0 || !strings.Contains(out, "-ttl DURATION") || !strings.Contains(out, "-token") {
		t.Errorf("help: exit %d, %q", code, out)
	}
}

// TestToggleJSONShape: the request body decodes as the API's request, so
// the CLI and the server agree on the keys.
func TestToggleJSONShape(t *testing.T) {
	d := newFakeDaemon(t, 200, webAnswer)
	cli(t, "toggle", "--server", d.URL, "app", "web", "runonce-disable", "--ttl", "1m30s")
	_, _, _, _, body := d.sent()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	if m["toggle"] != 5.0 || m["ttl"] != 90.0 || len(m) != 4 {
		t.Errorf("body %s", body)
	}
}
