package schema_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/schema"
)

func TestApplyDefaults(t *testing.T) {
	c := &schema.Config{Apps: map[string]*schema.App{"web": {Binary: "/x"}}, Services: map[string]*schema.Service{"s": {}}}
	schema.ApplyDefaults(c)
	a := c.Apps["web"]
	checks := []struct {
		name      string
		got, want any
	}{
		{"tick-every", c.TickEvery, schema.DefaultTickEvery},
		{"history", c.History, schema.DefaultHistory},
		{"ping-timeout", c.PingTimeout, schema.DefaultPingTimeout},
		{"json-timestamp", schema.TimestampLayout(c.JSONTimestamp), time.RFC1123Z},
		{"http.listen", c.HTTP.Listen, schema.DefaultHTTPListen},
		{"udp.listen", c.UDP.Listen, schema.DefaultUDPListen},
		{"initd-directory", c.InitdDirectory, "/etc/init.d"},
		{"log-retention.days", *c.LogRetention.Days, 14},
		{"log-retention.max-total-mb", *c.LogRetention.MaxTotalMB, 1024},
		{"hooks.timeout", *c.Hooks.Timeout, schema.Seconds(30)},
		{"keepalive", a.Keepalive, schema.KeepalivePIDPatrol},
		{"stop-signal", a.StopSignal, "SIGTERM"},
		{"stop-timeout", *a.StopTimeout, schema.Seconds(10)},
		{"restart-policy", a.RestartPolicy, schema.RestartAlways},
		{"start-timeout", *a.StartTimeout, schema.Seconds(10)},
		{"backoff.initial", *a.Backoff.Initial, schema.Seconds(1)},
		{"backoff.max", *a.Backoff.Max, schema.Seconds(60)},
		{"backoff.reset-after", *a.Backoff.ResetAfter, schema.Seconds(60)},
		{"app hooks.timeout", *a.Hooks.Timeout, schema.Seconds(30)},
		{"service hooks.timeout", *c.Services["s"].Hooks.Timeout, schema.Seconds(30)},
		{"binary untouched", a.Binary, "/x"},
		{"name has no static default", a.Name, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestApplyDefaultsKeepsValues(t *testing.T) {
	zero := schema.Seconds(0)
	c := &schema.Config{
		TickEvery: 5,
		HTTP:      &schema.HTTP{Listen: "127.0.0.1:0"},
		Apps: map[string]*schema.App{"web": {
			Keepalive:   schema.KeepaliveUDP,
			StopTimeout: &zero,
			Backoff:     &schema.Backoff{Initial: schema.Seconds(2).Ptr()},
		}},
	}
	schema.ApplyDefaults(c)
	a := c.Apps["web"]
	if c.TickEvery != 5 || c.HTTP.Listen != "127.0.0.1:0" || a.Keepalive != schema.KeepaliveUDP {
		t.Errorf("set values overwritten: %d %q %v", c.TickEvery, c.HTTP.Listen, a.Keepalive)
	}
	if *a.StopTimeout != 0 {
		t.Errorf("explicit stop-timeout 0 overwritten with %v", *a.StopTimeout)
	}
	if *a.Backoff.Initial != 2 || *a.Backoff.Max != 60 {
		t.Errorf("backoff: got %v %v, want 2 60", *a.Backoff.Initial, *a.Backoff.Max)
	}
}

func TestEnums(t *testing.T) {
	names := map[string]string{
		schema.KeepalivePIDPatrol.String(): "PID_PATROL",
		schema.KeepalivePIDApp.String():    "PID_APP",
		schema.KeepaliveHTTP.String():      "HTTP",
		schema.KeepaliveUDP.String():       "UDP",
		schema.Keepalive(9).String():       "Keepalive(9)",
		schema.ManagementSystemd.String():  "SYSTEMD",
		schema.Toggle(6).String():          "ENABLE_RUNONCE_ENABLE",
		schema.Toggle(8).String():          "Toggle(8)",
	}
	for got, want := range names {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	for v := range 9 {
		if got, want := schema.Toggle(v).Valid(), v >= 1 && v <= 7; got != want {
			t.Errorf("Toggle(%d).Valid() = %v, want %v", v, got, want)
		}
		if got, want := schema.Keepalive(v).Valid(), v >= 1 && v <= 4; got != want {
			t.Errorf("Keepalive(%d).Valid() = %v, want %v", v, got, want)
		}
	}
	if !schema.KeepaliveHTTP.Pinged() || schema.KeepalivePIDApp.Pinged() {
		t.Error("Pinged: wrong")
	}
	for in, want := range map[string]schema.Group{"app": schema.GroupApp, "APPS": schema.GroupApp, "Service": schema.GroupService, "services": schema.GroupService, "x": ""} {
		if got, _ := schema.ParseGroup(in); got != want {
			t.Errorf("ParseGroup(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]schema.Toggle{"enable": 1, "disable": 2, "restart": 3, "runonce-enable": 4, "RUNONCE-DISABLE": 5, "clear": 0} {
		if got, _ := schema.ParseToggleWord(in); got != want {
			t.Errorf("ParseToggleWord(%q) = %v, want %v", in, got, want)
		}
	}
	for in, want := range map[string]string{"SIGTERM": "SIGTERM", "USR1": "SIGUSR1", "KILL": "SIGKILL", "sigterm": "", "SIGSTOP": "", "": ""} {
		if got, _ := schema.CanonicalSignal(in); got != want {
			t.Errorf("CanonicalSignal(%q) = %q, want %q", in, got, want)
		}
	}
	if got := schema.TimestampLayout("RFC3339"); got != time.RFC3339 {
		t.Errorf("TimestampLayout(RFC3339) = %q", got)
	}
	if got := schema.TimestampLayout("2006"); got != "2006" {
		t.Errorf("TimestampLayout(2006) = %q", got)
	}
}

// TestStatusJSON checks the seed's wire names, including the singular
// "service" key and omitted empty fields.
func TestStatusJSON(t *testing.T) {
	st := schema.Status{
		InstanceID: "i",
		Apps:       map[string]*schema.Response{"web": {Name: "Web", PID: 7, CAS: 3}},
		Services:   map[string]*schema.Response{"ssh": {Name: "SSH", Secret: true}},
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"instance-id":"i","apps":{"web":{"name":"Web","pid":7,"cas":3}},"service":{"ssh":{"name":"SSH","secret":true}}}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
	var req schema.Request
	if err := json.Unmarshal([]byte(`{"id":"web","group":"app","ping":true,"pid":10732,"toggle":3,"keyvalue-replace":true,"cas":5,"ttl":1.5}`), &req); err != nil {
		t.Fatal(err)
	}
	if req.ID != "web" || !req.Ping || req.PID != 10732 || req.Toggle != schema.ToggleRestart || !req.KeyValueReplace || req.CAS != 5 || req.TTL != 1.5 {
		t.Errorf("request: got %+v", req)
	}
	h, _ := json.Marshal(schema.History{PID: 1, ExitCode: 137, Reason: schema.ReasonSignal})
	if !strings.Contains(string(h), `"exit-code":137`) || !strings.Contains(string(h), `"reason":"signal"`) {
		t.Errorf("history: %s", h)
	}
}
