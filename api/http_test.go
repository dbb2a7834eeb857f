package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patrolhq/patrol/schema"
)

const jsonType = "application/json; charset=utf-8"

// do sends one request to h and returns the recorded response. hdr holds
// header name/value pairs.
func do(t *testing.T, h http.Handler, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// wantErrors checks that w is an error response with exactly the errors
// key holding msgs.
func wantErrors(t *testing.T, w *httptest.ResponseRecorder, code int, msgs ...string) {
	t.Helper()
	if w.Code != code {
		t.Errorf("status: got %d, want %d (body %s)", w.Code, code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != jsonType {
		t.Errorf("Content-Type: got %q, want %q", ct, jsonType)
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	want := map[string]any{"errors": toAny(msgs)}
	if !reflect.DeepEqual(body, want) {
		t.Errorf("body: got %v, want %v", body, want)
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func newTestServer(f *fakeBackend, token string) http.Handler {
	s := NewServer(f, Options{Token: func() string { return token }})
	s.now = func() time.Time { return fakeNow }
	s.csrf = testCSRF
	return s.Handler()
}

// fakeNow is the GUI's clock in tests (an hour after fakeStarted), and
// testCSRF its forms' token.
var fakeNow = time.Date(2026, 11, 22, 17, 13, 28, 0, time.UTC)

const testCSRF = "test-csrf"

func TestGoldenHTTP(t *testing.T) {
	for _, c := range []struct {
		name, method, target, body string
		code                       int
	}{
		{"status", "GET", "/status/", "", 200},
		{"healthz", "GET", "/healthz", "", 200},
		{"api-get-web", "GET", "/api/?group=app&id=web", "", 200},
		{"api-get-web-history", "GET", "/api/?group=apps&id=WEB&history", "", 200},
		{"api-get-locked-readonly", "GET", "/api/?group=app&id=locked&toggle=1", "", 200},
		{"api-get-service", "GET", "/api/?group=service&id=db", "", 200},
		{"api-get-unknown-app", "GET", "/api/?group=app&id=nope", "", 400},
		{"api-get-unknown-group", "GET", "/api/", "", 400},
		{"api-get-invalid-toggle", "GET", "/api/?group=app&id=web&toggle=abc", "", 400},
		{"api-post-web", "POST", "/api/", `{"group":"app","id":"web","toggle":2,"cas":85368}`, 200},
		{"api-post-web-history", "POST", "/api/", `{"group":"app","id":"web","history":true}`, 200},
		{"api-post-cas-invalid", "POST", "/api/", `{"group":"app","id":"web","toggle":2,"cas":1}`, 200},
		{"api-post-secret-invalid", "POST", "/api/", `{"group":"app","id":"locked","secret":"wrong"}`, 400},
		{"api-post-invalid-json", "POST", "/api/", `{"group":`, 400},
		{"api-method", "PUT", "/api/", "", 405},
		{"api-too-large", "POST", "/api/", `{"id":"` + strings.Repeat("x", MaxBody) + `"}`, 413},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := do(t, newTestServer(&fakeBackend{}, ""), c.method, c.target, c.body)
			if w.Code != c.code {
				t.Errorf("status: got %d, want %d", w.Code, c.code)
			}
			if ct := w.Header().Get("Content-Type"); ct != jsonType {
				t.Errorf("Content-Type: got %q, want %q", ct, jsonType)
			}
			golden(t, c.name+".golden", fmt.Appendf(nil, "%d %s\n\n%s", w.Code, w.Header().Get("Content-Type"), w.Body))
		})
	}
}

// TestStatusAnyMethod: /status/ and anything under it answer the status
// for any method, whatever the query, with no secret or token check.
func TestStatusAnyMethod(t *testing.T) {
	h := newTestServer(&fakeBackend{}, "tok")
	want := do(t, h, "GET", "/status/", "").Body.String()
	for _, c := range []struct{ method, target string }{
		{"POST", "/status/"}, {"PUT", "/status/x"}, {"DELETE", "/status/?id=web&toggle=2"}, {"GET", "/status/a/b?secret=x"},
	} {
		w := do(t, h, c.method, c.target, "")
		if w.Code != 200 || w.Body.String() != want {
			t.Errorf("%s %s: got %d %s", c.method, c.target, w.Code, w.Body)
		}
	}
}

func TestRedirects(t *testing.T) {
	h := newTestServer(&fakeBackend{}, "")
	for _, c := range []struct{ target, location string }{
		{"/status", "/status/"},
		{"/api", "/api/"},
		{"/api?group=app&id=web", "/api/?group=app&id=web"},
	} {
		w := do(t, h, "GET", c.target, "")
		if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != c.location {
			t.Errorf("%s: got %d Location %q, want 301 %q", c.target, w.Code, w.Header().Get("Location"), c.location)
		}
	}
}

func TestMethods(t *testing.T) {
	f := &fakeBackend{}
	h := newTestServer(f, "")
	for _, m := range []string{"PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "FOO"} {
		wantErrors(t, do(t, h, m, "/api/?group=app&id=web", `{"group":"app","id":"web"}`), http.StatusMethodNotAllowed, schema.ErrInvalidMethod)
	}
	if w := do(t, h, "HEAD", "/api/", ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("HEAD: got %d, want 405", w.Code)
	}
	if n := len(f.Calls()); n != 0 {
		t.Errorf("backend called %d times for refused methods", n)
	}
}

// TestBackendCalls: the API passes the request to the loop exactly as
// given, once, over HTTP; GET and POST are the same request.
func TestBackendCalls(t *testing.T) {
	for _, c := range []struct {
		name, method, target, body string
		want                       schema.Request
	}{
		{"get", "GET", "/api/?group=App&id=Web&toggle=3&history=false&secret=s&cas=9&ttl=1m30s&clear=&ping=true&pid=5&keyvalue=x&unknown=1", "",
			schema.Request{ID: "Web", Group: "App", Toggle: 3, History: true, Secret: "s", CAS: 9, TTL: 90, Clear: true}},
		{"post", "POST", "/api/?group=service&id=db", `{"group":"App","id":"Web","ping":true,"pid":77,"toggle":3,"history":true,"keyvalue":{"a":1},"keyvalue-replace":true,"secret":"s","cas":9,"ttl":1.5,"clear":true,"unknown":[1]}`,
			schema.Request{ID: "Web", Group: "App", Ping: true, PID: 77, Toggle: 3, History: true, KeyValue: map[string]any{"a": 1.0},
				KeyValueReplace: true, Secret: "s", CAS: 9, TTL: 1.5, Clear: true}},
		{"post-case-insensitive-keys", "POST", "/api/", `{"GROUP":"app","Id":"web"}`, schema.Request{ID: "web", Group: "app"}},
		{"post-null", "POST", "/api/", `null`, schema.Request{}},
		{"get-empty", "GET", "/api/", "", schema.Request{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeBackend{}
			do(t, newTestServer(f, ""), c.method, c.target, c.body)
			calls := f.Calls()
			if len(calls) != 1 {
				t.Fatalf("got %d calls, want 1", len(calls))
			}
			if want := (call{c.want, schema.TransportHTTP}); !reflect.DeepEqual(calls[0], want) {
				t.Errorf("got %+v, want %+v", calls[0], want)
			}
		})
	}
}

// TestSeedErrors: every error string the loop answers with is a 400 whose
// body holds only the errors, whatever else the response carried.
func TestSeedErrors(t *testing.T) {
	for _, e := range []string{
		schema.ErrRequestNil, schema.ErrUnknownApp, schema.ErrUnknownService, schema.ErrUnknownGroup,
		schema.ErrSecretInvalid, schema.ErrPingNotSupported, schema.ErrInvalidPingEndpoint,
		schema.ErrPIDNotSupported, schema.ErrPIDRequiresPing, schema.ErrServicesDontSupport,
	} {
		f := &fakeBackend{answer: func(*schema.Request) *schema.Response {
			r := webEntry(true)
			r.Errors = []string{e}
			return r
		}}
		h := newTestServer(f, "")
		wantErrors(t, do(t, h, "GET", "/api/?group=app&id=web", ""), 400, e)
		wantErrors(t, do(t, h, "POST", "/api/", `{"group":"app","id":"web","ping":true}`), 400, e)
	}
	f := &fakeBackend{answer: func(*schema.Request) *schema.Response {
		return &schema.Response{Errors: []string{schema.ErrUnknownApp, schema.ErrSecretInvalid}}
	}}
	wantErrors(t, do(t, newTestServer(f, ""), "GET", "/api/", ""), 400, schema.ErrUnknownApp, schema.ErrSecretInvalid)
}

// errReader fails every read.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestInvalidPost(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"empty", "", schema.ErrInvalidRequest},
		{"not json", "hello", schema.ErrInvalidRequest},
		{"truncated", `{"id":"web"`, schema.ErrInvalidRequest},
		{"trailing data", `{"id":"web"} {}`, schema.ErrInvalidRequest},
		{"trailing garbage", `{"id":"web"}x`, schema.ErrInvalidRequest},
		{"two values", `null null`, schema.ErrInvalidRequest},
		{"array", `[]`, schema.ErrInvalidRequest},
		{"string", `"web"`, schema.ErrInvalidRequest},
		{"toggle 256", `{"group":"app","id":"web","toggle":256}`, schema.ErrInvalidRequest},
		{"toggle -1", `{"group":"app","id":"web","toggle":-1}`, schema.ErrInvalidRequest},
		{"toggle 1.5", `{"group":"app","id":"web","toggle":1.5}`, schema.ErrInvalidRequest},
		{"toggle string", `{"group":"app","id":"web","toggle":"2"}`, schema.ErrInvalidRequest},
		{"pid negative", `{"group":"app","id":"web","ping":true,"pid":-1}`, schema.ErrInvalidRequest},
		{"pid 2^32", `{"group":"app","id":"web","ping":true,"pid":4294967296}`, schema.ErrInvalidRequest},
		{"cas negative", `{"group":"app","id":"web","cas":-1}`, schema.ErrInvalidRequest},
		{"id number", `{"group":"app","id":5}`, schema.ErrInvalidRequest},
		{"keyvalue array", `{"group":"app","id":"web","keyvalue":[1]}`, schema.ErrInvalidRequest},
		{"ttl negative", `{"group":"app","id":"web","toggle":2,"ttl":-1}`, schema.ErrInvalidTTL},
		{"ttl huge", `{"group":"app","id":"web","toggle":2,"ttl":1e300}`, schema.ErrInvalidTTL},
		{"ttl string", `{"group":"app","id":"web","toggle":2,"ttl":"30s"}`, schema.ErrInvalidRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeBackend{}
			wantErrors(t, do(t, newTestServer(f, ""), "POST", "/api/", c.body), 400, c.want)
			if n := len(f.Calls()); n != 0 {
				t.Errorf("backend called %d times", n)
			}
		})
	}
	t.Run("null", func(t *testing.T) {
		wantErrors(t, do(t, newTestServer(&fakeBackend{}, ""), "POST", "/api/", "null"), 400, schema.ErrUnknownGroup)
	})
	t.Run("body error", func(t *testing.T) {
		r := httptest.NewRequest("POST", "/api/", errReader{})
		w := httptest.NewRecorder()
		newTestServer(&fakeBackend{}, "").ServeHTTP(w, r)
		wantErrors(t, w, 400, schema.ErrInvalidBody)
	})
}

func TestBodyLimit(t *testing.T) {
	// Exactly MaxBody bytes is accepted; one more is refused.
	prefix := `{"group":"app","id":"web"}`
	fits := prefix + strings.Repeat(" ", MaxBody-len(prefix))
	if w := do(t, newTestServer(&fakeBackend{}, ""), "POST", "/api/", fits); w.Code != 200 {
		t.Errorf("body of MaxBody bytes: got %d %s", w.Code, w.Body)
	}
	f := &fakeBackend{}
	wantErrors(t, do(t, newTestServer(f, ""), "POST", "/api/", fits+" "), http.StatusRequestEntityTooLarge, schema.ErrRequestEntityTooLarge)
	if n := len(f.Calls()); n != 0 {
		t.Errorf("backend called %d times", n)
	}
}

func TestInvalidGet(t *testing.T) {
	for _, c := range []struct{ query, want string }{
		{"group=app&id=web&toggle=abc", schema.ErrInvalidToggle},
		{"group=app&id=web&toggle=9", schema.ErrInvalidToggle},
		{"group=app&id=web&cas=abc", schema.ErrInvalidCAS},
		{"group=app&id=web&ttl=abc", schema.ErrInvalidTTL},
		{"group=app&id=%zz", schema.ErrInvalidRequest},
		{"group=app&id=web;x", schema.ErrInvalidRequest},
		{"group=app&id=" + strings.Repeat("a", maxQueryValue+1), schema.ErrInvalidRequest},
	} {
		f := &fakeBackend{}
		wantErrors(t, do(t, newTestServer(f, ""), "GET", "/api/?"+c.query, ""), 400, c.want)
		if n := len(f.Calls()); n != 0 {
			t.Errorf("%s: backend called %d times", c.query, n)
		}
	}
}

func TestBackendFailure(t *testing.T) {
	f := &fakeBackend{statusErr: errors.New("loop stopped"), reqErr: errors.New("loop stopped")}
	h := newTestServer(f, "")
	for _, c := range []struct{ method, target, body string }{
		{"GET", "/status/", ""},
		{"GET", "/healthz", ""},
		{"GET", "/api/?group=app&id=web", ""},
		{"POST", "/api/", `{"group":"app","id":"web"}`},
	} {
		wantErrors(t, do(t, h, c.method, c.target, c.body), http.StatusServiceUnavailable, schema.ErrShuttingDown)
	}
	nilResp := &fakeBackend{answer: func(*schema.Request) *schema.Response { return nil }}
	wantErrors(t, do(t, newTestServer(nilResp, ""), "GET", "/api/", ""), http.StatusServiceUnavailable, schema.ErrShuttingDown)
}

func TestToken(t *testing.T) {
	var token atomic.Value
	token.Store("s3cr3t-token")
	f := &fakeBackend{}
	h := NewServer(f, Options{Token: func() string { return token.Load().(string) }}).Handler()
	post := `{"group":"app","id":"web","toggle":2}`
	for _, c := range []struct {
		name, method, target, body, auth string
		code                             int
	}{
		{"post missing", "POST", "/api/", post, "", 401},
		{"post wrong", "POST", "/api/", post, "Bearer nope", 401},
		{"post prefix", "POST", "/api/", post, "Bearer s3cr3t", 401},
		{"post longer", "POST", "/api/", post, "Bearer s3cr3t-token2", 401},
		{"post basic", "POST", "/api/", post, "Basic s3cr3t-token", 401},
		{"post bare", "POST", "/api/", post, "s3cr3t-token", 401},
		{"post right", "POST", "/api/", post, "Bearer s3cr3t-token", 200},
		{"post scheme case", "POST", "/api/", post, "bearer s3cr3t-token", 200},
		{"post read open", "POST", "/api/", `{"group":"app","id":"web","history":true,"cas":5}`, "", 200},
		{"post ping open", "POST", "/api/", `{"group":"app","id":"web","ping":true,"pid":42}`, "", 200},
		{"post ping wrong token ignored", "POST", "/api/", `{"group":"app","id":"web","ping":true}`, "Bearer nope", 200},
		{"post keyvalue missing", "POST", "/api/", `{"group":"app","id":"web","keyvalue":{"a":1}}`, "", 401},
		{"post empty keyvalue missing", "POST", "/api/", `{"group":"app","id":"web","keyvalue":{}}`, "", 401},
		{"post keyvalue-replace missing", "POST", "/api/", `{"group":"app","id":"web","keyvalue-replace":true}`, "", 401},
		{"post clear missing", "POST", "/api/", `{"group":"app","id":"web","clear":true}`, "", 401},
		{"post ttl missing", "POST", "/api/", `{"group":"app","id":"web","ttl":3}`, "", 401},
		{"post ping with toggle missing", "POST", "/api/", `{"group":"app","id":"web","ping":true,"toggle":3}`, "", 401},
		{"post body token", "POST", "/api/", `{"group":"app","id":"web","toggle":2,"token":"s3cr3t-token"}`, "", 200},
		{"post body token wrong", "POST", "/api/", `{"group":"app","id":"web","toggle":2,"token":"s3cr3t"}`, "", 401},
		{"post body token wrong, header right", "POST", "/api/", `{"group":"app","id":"web","toggle":2,"token":"x"}`, "Bearer s3cr3t-token", 200},
		{"post malformed body missing", "POST", "/api/", `{"group":`, "", 401},
		{"post not an object missing", "POST", "/api/", `[1]`, "", 401},
		{"get toggle missing", "GET", "/api/?group=app&id=web&toggle=2", "", "", 401},
		{"get toggle wrong", "GET", "/api/?group=app&id=web&toggle=2", "", "Bearer nope", 401},
		{"get toggle right", "GET", "/api/?group=app&id=web&toggle=2", "", "Bearer s3cr3t-token", 200},
		{"get toggle=0 missing", "GET", "/api/?group=app&id=web&toggle=0", "", "", 401},
		{"get bad toggle missing", "GET", "/api/?group=app&id=web&toggle=abc", "", "", 401},
		{"get clear missing", "GET", "/api/?group=app&id=web&clear", "", "", 401},
		{"get ttl missing", "GET", "/api/?group=app&id=web&ttl=30", "", "", 401},
		{"get read open", "GET", "/api/?group=app&id=web&history", "", "", 200},
		{"get read wrong token ignored", "GET", "/api/?group=app&id=web", "", "Bearer nope", 200},
		{"status open", "GET", "/status/", "", "", 200},
		{"healthz open", "GET", "/healthz", "", "", 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(f.Calls())
			w := do(t, h, c.method, c.target, c.body, "Authorization", c.auth)
			if c.code == 401 {
				wantErrors(t, w, 401, schema.ErrUnauthorized)
				if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate: got %q, want Bearer", got)
				}
				if n := len(f.Calls()) - before; n != 0 {
					t.Errorf("backend called %d times", n)
				}
				return
			}
			if w.Code != c.code {
				t.Errorf("got %d %s, want %d", w.Code, w.Body, c.code)
			}
		})
	}
	t.Run("reload changes the token", func(t *testing.T) {
		token.Store("new-token")
		wantErrors(t, do(t, h, "POST", "/api/", post, "Authorization", "Bearer s3cr3t-token"), 401, schema.ErrUnauthorized)
		if w := do(t, h, "POST", "/api/", post, "Authorization", "Bearer new-token"); w.Code != 200 {
			t.Errorf("new token: got %d %s", w.Code, w.Body)
		}
		token.Store("")
		if w := do(t, h, "POST", "/api/", post); w.Code != 200 {
			t.Errorf("token removed: got %d %s", w.Code, w.Body)
		}
	})
	t.Run("no Token func", func(t *testing.T) {
		h := NewServer(&fakeBackend{}, Options{}).Handler()
		if w := do(t, h, "POST", "/api/", post); w.Code != 200 {
			t.Errorf("got %d %s", w.Code, w.Body)
		}
	})
}

func TestOrigin(t *testing.T) {
	post := `{"group":"app","id":"web","toggle":2}`
	for _, c := range []struct {
		name, method, target, body string
		hdr                        []string
		code                       int
	}{
		{"post same origin", "POST", "/api/", post, []string{"Origin", "http://example.com"}, 200},
		{"post same origin default port", "POST", "/api/", post, []string{"Origin", "http://example.com:80"}, 200},
		{"post same origin case", "POST", "/api/", post, []string{"Origin", "http://EXAMPLE.com"}, 200},
		{"post other host", "POST", "/api/", post, []string{"Origin", "http://evil.example"}, 403},
		{"post other port", "POST", "/api/", post, []string{"Origin", "http://example.com:8080"}, 403},
		{"post https origin", "POST", "/api/", post, []string{"Origin", "https://example.com"}, 403},
		{"post null origin", "POST", "/api/", post, []string{"Origin", "null"}, 403},
		{"post no origin", "POST", "/api/", post, nil, 200},
		{"post sec-fetch same-origin", "POST", "/api/", post, []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://example.com"}, 200},
		{"post sec-fetch none", "POST", "/api/", post, []string{"Sec-Fetch-Site", "none"}, 200},
		{"post sec-fetch cross-site", "POST", "/api/", post, []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"post sec-fetch same-site", "POST", "/api/", post, []string{"Sec-Fetch-Site", "same-site", "Origin", "http://example.com:9999"}, 403},
		{"get toggle other origin", "GET", "/api/?group=app&id=web&toggle=2", "", []string{"Origin", "http://evil.example"}, 403},
		{"get toggle cross-site navigation", "GET", "/api/?group=app&id=web&toggle=2", "", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"get read other origin", "GET", "/api/?group=app&id=web", "", []string{"Origin", "http://evil.example"}, 200},
		{"status other origin", "POST", "/status/", "", []string{"Origin", "http://evil.example"}, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeBackend{}
			// httptest.NewRequest's Host is example.com.
			w := do(t, newTestServer(f, ""), c.method, c.target, c.body, c.hdr...)
			if c.code == 403 {
				wantErrors(t, w, 403, schema.ErrForbiddenCrossOrigin)
				if n := len(f.Calls()); n != 0 {
					t.Errorf("backend called %d times", n)
				}
				return
			}
			if w.Code != c.code {
				t.Errorf("got %d %s, want %d", w.Code, w.Body, c.code)
			}
		})
	}
	t.Run("token checked first", func(t *testing.T) {
		w := do(t, newTestServer(&fakeBackend{}, "tok"), "POST", "/api/", post, "Origin", "http://evil.example")
		wantErrors(t, w, 401, schema.ErrUnauthorized)
	})
}

func TestParseQuery(t *testing.T) {
	many := make([]string, maxQueryParams+1)
	for i := range many {
		many[i] = fmt.Sprintf("p%d=1", i)
	}
	repeated := strings.Repeat("id=a&", maxQueryParams+1)
	for _, c := range []struct {
		name, query string
		want        *schema.Request
		err         string
	}{
		{"empty", "", &schema.Request{}, ""},
		{"ids", "id=Web&group=App&secret=s%20x", &schema.Request{ID: "Web", Group: "App", Secret: "s x"}, ""},
		{"toggle 0", "toggle=0", &schema.Request{}, ""},
		{"toggle 7", "toggle=7", &schema.Request{Toggle: 7}, ""},
		{"toggle 007", "toggle=007", &schema.Request{Toggle: 7}, ""},
		{"toggle abc", "toggle=abc", nil, schema.ErrInvalidToggle},
		{"toggle 8", "toggle=8", nil, schema.ErrInvalidToggle},
		{"toggle 9", "toggle=9", nil, schema.ErrInvalidToggle},
		{"toggle 259", "toggle=259", nil, schema.ErrInvalidToggle},
		{"toggle -1", "toggle=-1", nil, schema.ErrInvalidToggle},
		{"toggle +1", "toggle=%2B1", nil, schema.ErrInvalidToggle},
		{"toggle empty", "toggle=", nil, schema.ErrInvalidToggle},
		{"toggle no value", "toggle", nil, schema.ErrInvalidToggle},
		{"cas", "cas=18446744073709551615", &schema.Request{CAS: 18446744073709551615}, ""},
		{"cas 0", "cas=0", &schema.Request{}, ""},
		{"cas abc", "cas=abc", nil, schema.ErrInvalidCAS},
		{"cas -1", "cas=-1", nil, schema.ErrInvalidCAS},
		{"cas overflow", "cas=18446744073709551616", nil, schema.ErrInvalidCAS},
		{"ttl 30", "ttl=30", &schema.Request{TTL: 30}, ""},
		{"ttl 0.5", "ttl=0.5", &schema.Request{TTL: 0.5}, ""},
		{"ttl 30s", "ttl=30s", &schema.Request{TTL: 30}, ""},
		{"ttl 1h", "ttl=1h", &schema.Request{TTL: 3600}, ""},
		{"ttl 0", "ttl=0", &schema.Request{}, ""},
		{"ttl -1", "ttl=-1", nil, schema.ErrInvalidTTL},
		{"ttl -1s", "ttl=-1s", nil, schema.ErrInvalidTTL},
		{"ttl abc", "ttl=abc", nil, schema.ErrInvalidTTL},
		{"ttl NaN", "ttl=NaN", nil, schema.ErrInvalidTTL},
		{"ttl Inf", "ttl=Inf", nil, schema.ErrInvalidTTL},
		{"ttl 1e300", "ttl=1e300", nil, schema.ErrInvalidTTL},
		{"ttl empty", "ttl=", nil, schema.ErrInvalidTTL},
		{"history present", "history", &schema.Request{History: true}, ""},
		{"history false", "history=false", &schema.Request{History: true}, ""},
		{"history 0", "history=0", &schema.Request{History: true}, ""},
		{"clear", "clear", &schema.Request{Clear: true}, ""},
		{"clear 1", "clear=1", &schema.Request{Clear: true}, ""},
		{"get cannot ping", "ping=true&pid=5&keyvalue=%7B%7D&keyvalue-replace=true", &schema.Request{}, ""},
		{"repeated", "id=a&id=b&toggle=2&toggle=abc", &schema.Request{ID: "a", Toggle: 2}, ""},
		{"value 1024", "secret=" + strings.Repeat("s", maxQueryValue), &schema.Request{Secret: strings.Repeat("s", maxQueryValue)}, ""},
		{"value 1025", "secret=" + strings.Repeat("s", maxQueryValue+1), nil, schema.ErrInvalidRequest},
		{"repeated value 1025", "id=a&id=" + strings.Repeat("s", maxQueryValue+1), nil, schema.ErrInvalidRequest},
		{"name 1025", strings.Repeat("n", maxQueryValue+1) + "=1", nil, schema.ErrInvalidRequest},
		{"32 params", strings.Join(many[:maxQueryParams], "&"), &schema.Request{}, ""},
		{"33 params", strings.Join(many, "&"), nil, schema.ErrInvalidRequest},
		{"33 repeated", repeated, nil, schema.ErrInvalidRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := urlValues(c.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseQuery(v)
			if c.err != "" {
				ae, ok := errors.AsType[*Error](err)
				if !ok || ae.Msg != c.err || ae.Status != 400 || got != nil {
					t.Errorf("got %+v, %v; want error %q", got, err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestDecodeRequest(t *testing.T) {
	got, err := DecodeRequest([]byte(` {"id":"web","group":"app","toggle":255,"x":{"y":[1,2]}} ` + "\n"))
	if want := (&schema.Request{ID: "web", Group: "app", Toggle: 255}); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	got, err = DecodeRequest([]byte("null"))
	if err != nil || !reflect.DeepEqual(got, &schema.Request{}) {
		t.Errorf("null: got %+v, %v", got, err)
	}
	for _, bad := range []string{"", " ", "{", `{"toggle":256}`, `{"toggle":-1}`, `{} {}`, `{}}`, "\xff"} {
		got, err := DecodeRequest([]byte(bad))
		if ae, ok := errors.AsType[*Error](err); !ok || ae.Msg != schema.ErrInvalidRequest || got != nil {
			t.Errorf("%q: got %+v, %v; want Invalid Request", bad, got, err)
		}
	}
	// The error says what went wrong for the logs, in the house style.
	if _, err := DecodeRequest([]byte("{")); !strings.HasPrefix(err.Error(), "api: Invalid Request: decode request: ") {
		t.Errorf("error text: %q", err)
	}
}

// TestServe: a real listener serves the routes until the context ends,
// then Serve returns nil.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- NewServer(&fakeBackend{}, Options{}).Serve(ctx, ln) }()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/api/?group=app&id=web")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id": "web"`) {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: got %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := client.Get("http://" + ln.Addr().String() + "/status/"); err == nil {
		t.Error("server still answers after Serve returned")
	}
}

func urlValues(q string) (url.Values, error) { return url.ParseQuery(q) }

// TestPlanAndReload: /api/plan plans without applying (no token needed),
// an invalid config is 400 with every problem; /api/reload needs the
// token and POST.
func TestPlanAndReload(t *testing.T) {
	f := &fakeBackend{}
	token := "t0k"
	h := NewServer(f, Options{Token: func() string { return token }}).Handler()
	do := func(method, path, body, auth string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	code, body := do("GET", "/api/plan", "", "")
	if code != 200 || !strings.Contains(body, `"action": "restart"`) || !strings.Contains(body, `"start": 1`) {
		t.Errorf("GET /api/plan: %d %s", code, body)
	}
	code, body = do("POST", "/api/plan", "{}", "")
	if code != 200 {
		t.Errorf("POST /api/plan: %d %s", code, body)
	}
	code, body = do("POST", "/api/plan", `{"tick-evry": 1}`, "")
	if code != 400 || !strings.Contains(body, "apps.web.binary: required") || !strings.Contains(body, "tick-evry: unknown key") {
		t.Errorf("POST /api/plan with an invalid config: %d %s", code, body)
	}
	if code, _ := do("PUT", "/api/plan", "", ""); code != 405 {
		t.Errorf("PUT /api/plan: %d", code)
	}
	if len(f.plans) != 3 || f.plans[0] != "" || f.plans[1] != "{}" {
		t.Errorf("plans: %q", f.plans)
	}
	if code, _ := do("POST", "/api/reload", "", ""); code != 401 {
		t.Errorf("reload without the token: %d", code)
	}
	if code, _ := do("GET", "/api/reload", "", token); code != 405 {
		t.Errorf("GET /api/reload: %d", code)
	}
	code, body = do("POST", "/api/reload", "", token)
	if code != 200 || !strings.Contains(body, `"revision": "abc123def456"`) || f.reloads != 1 {
		t.Errorf("reload: %d %s (%d reloads)", code, body, f.reloads)
	}
	f.reloadProblems = []string{"invalid JSON: unexpected end of file"}
	if code, body := do("POST", "/api/reload", "", token); code != 400 || !strings.Contains(body, "unexpected end of file") {
		t.Errorf("reload of a broken file: %d %s", code, body)
	}
}

// TestProtectReads: with protect-reads, reads need the token too (the
// event stream may carry it as access_token); pages and /healthz stay
// open.
func TestProtectReads(t *testing.T) {
	protect := true
	h := NewServer(&fakeBackend{}, Options{Token: func() string { return "tok" }, ProtectReads: func() bool { return protect }}).Handler()
	get := func(path, auth string) int {
		req := httptest.NewRequest("GET", path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for _, path := range []string{"/status/", "/api/?group=app&id=web", "/api/plan", "/?fragment=live", "/app/web?fragment=live", "/api/logs?id=web&stream=stdout"} {
		if code := get(path, ""); code != 401 {
			t.Errorf("%s without the token: %d, want 401", path, code)
		}
		if code := get(path, "Bearer tok"); code == 401 {
			t.Errorf("%s with the token: 401", path)
		}
	}
	for _, path := range []string{"/", "/healthz", "/static/patrol.css"} {
		if code := get(path, ""); code == 401 {
			t.Errorf("%s needs the token; it should not", path)
		}
	}
	protect = false
	if code := get("/status/", ""); code != 200 {
		t.Errorf("reads without protect-reads: %d", code)
	}
}
