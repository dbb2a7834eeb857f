package patrol_test

import (
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// tokenCase is one request of TestTokenBothTransports: its fields (id and
// group are the transport's app), whether it needs the token, and what an
// accepted request changed in the entry's status.
type tokenCase struct {
	name   string
	req    map[string]any
	writes bool
	check  func(a *schema.Response) bool
}

// tokenCases is the one table both transports are tested against.
var tokenCases = []tokenCase{
	{"read", map[string]any{"history": true, "cas": 1}, false, nil},
	{"ping", map[string]any{"ping": true}, false, func(a *schema.Response) bool { return a.InstanceID != "" && a.LastSeen != "" }},
	{"disable", map[string]any{"toggle": 2}, true, func(a *schema.Response) bool {
		return a.Override != nil && a.Override.Disabled != nil && *a.Override.Disabled
	}},
	{"keyvalue", map[string]any{"keyvalue": map[string]any{"k": "v"}}, true, func(a *schema.Response) bool { return a.KeyValue["k"] == "v" }},
	{"keyvalue-replace", map[string]any{"keyvalue-replace": true}, true, func(a *schema.Response) bool { return len(a.KeyValue) == 0 }},
	{"clear", map[string]any{"clear": true}, true, func(a *schema.Response) bool { return a.Override == nil }},
	{"ttl", map[string]any{"toggle": 2, "ttl": 600}, true, func(a *schema.Response) bool {
		return a.Override != nil && a.Override.Expires != ""
	}},
	{"ping with toggle", map[string]any{"ping": true, "toggle": 1}, true, func(a *schema.Response) bool { return a.Override == nil }},
}

// TestTokenBothTransports: with http.token set, the same table of
// requests is sent over HTTP (token as a bearer header, or in the body)
// and over UDP (token in the datagram): without the token, or with a
// wrong one, a request that writes is refused (401, or an "Unauthorized"
// reply) and changes nothing; with it, it is applied. Pings and reads need
// no token on either transport.
func TestTokenBothTransports(t *testing.T) {
	const token = "t0ken-for-tests"
	d := startPatrol(t, config(map[string]any{
		"h": appCfg(t, map[string]any{"keepalive": 3}, "sleep"),
		"u": appCfg(t, map[string]any{"keepalive": 4}, "sleep"),
	}, map[string]any{"http": map[string]any{"token": token}}))
	uc, err := net.Dial("udp", d.UDPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()

	// send sends req over a transport with the token given as tok ("" for
	// none) and reports whether it was accepted; a refusal must say
	// Unauthorized.
	type transport struct {
		name, app string
		send      func(t *testing.T, req map[string]any, tok string) bool
	}
	postHTTP := func(t *testing.T, req map[string]any, auth string) bool {
		r, code := d.postAuth(t, req, auth)
		switch {
		case code == http.StatusOK:
			return true
		case code != http.StatusUnauthorized || !reflect.DeepEqual(r.Errors, []string{schema.ErrUnauthorized}):
			t.Fatalf("got %d %v, want 200 or 401 Unauthorized", code, r.Errors)
		}
		return false
	}
	transports := []transport{
		{"http header", "h", func(t *testing.T, req map[string]any, tok string) bool { return postHTTP(t, req, tok) }},
		{"http body", "h", func(t *testing.T, req map[string]any, tok string) bool {
			if tok != "" {
				req["token"] = tok
			}
			return postHTTP(t, req, "")
		}},
		{"udp", "u", func(t *testing.T, req map[string]any, tok string) bool {
			if tok != "" {
				req["token"] = tok
			}
			msg, _ := json.Marshal(req)
			if _, err := uc.Write(msg); err != nil {
				t.Fatal(err)
			}
			uc.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 4096)
			n, err := uc.Read(buf)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			var r schema.Response
			if err := json.Unmarshal(buf[:n], &r); err != nil {
				t.Fatalf("reply %q: %v", buf[:n], err)
			}
			switch {
			case len(r.Errors) == 0:
				return true
			case !reflect.DeepEqual(r.Errors, []string{schema.ErrUnauthorized}):
				t.Fatalf("got errors %v, want none or Unauthorized", r.Errors)
			}
			return false
		}},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			for _, c := range tokenCases {
				t.Run(c.name, func(t *testing.T) {
					req := func() map[string]any {
						r := maps.Clone(c.req)
						r["id"], r["group"] = tr.app, "app"
						return r
					}
					for _, tok := range []string{"", "wrong-token"} {
						before := d.app(t, tr.app)
						accepted := tr.send(t, req(), tok)
						if accepted == c.writes {
							t.Fatalf("token %q: accepted %v, want %v", tok, accepted, !c.writes)
						}
						if after := d.app(t, tr.app); c.writes && !sameWritable(before, after) {
							t.Errorf("token %q: a refused request changed the entry: %+v -> %+v", tok, before, after)
						}
					}
					if !tr.send(t, req(), token) {
						t.Fatal("refused with the right token")
					}
					if c.check != nil && !c.check(d.app(t, tr.app)) {
						t.Errorf("applied, but the status does not show it: %+v", d.app(t, tr.app))
					}
				})
			}
		})
	}
}

// sameWritable reports whether what a request could write (override,
// key/value) is the same in a and b.
func sameWritable(a, b *schema.Response) bool {
	return reflect.DeepEqual(a.Override, b.Override) && reflect.DeepEqual(a.KeyValue, b.KeyValue) &&
		a.ConfigDisabled == b.ConfigDisabled
}
