package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/patrolhq/patrol/schema"
)

// FuzzUDPRequest: DecodeRequest never panics and returns either a request
// or an *Error with one of the decoder's strings; a request it accepts
// encodes back to JSON.
func FuzzUDPRequest(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `"x"`, `1`, `{"group":"app","id":"web","ping":true,"pid":42}`,
		`{"group":"app","id":"web","toggle":2,"cas":85368,"ttl":30,"secret":"s"}`,
		`{"group":"service","id":"db","keyvalue":{"a":{"b":[1,2,null]}},"keyvalue-replace":true}`,
		`{"toggle":256}`, `{"toggle":-1}`, `{"ttl":-1}`, `{"ttl":1e400}`, `{"pid":4294967296}`,
		`{"id":"a"} {}`, `{"id":"\ud800"}`, "{\"id\":\"\xff\"}", `{"ID":"x","GROUP":"y","Clear":true}`,
		strings.Repeat("[", 3000), `{"keyvalue":` + strings.Repeat(`{"a":`, 500) + `1` + strings.Repeat("}", 500) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRequest(data)
		if (req == nil) == (err == nil) {
			t.Fatalf("got request %+v and error %v; want exactly one", req, err)
		}
		if err != nil {
			ae, ok := errors.AsType[*Error](err)
			if !ok || ae.Status != http.StatusBadRequest || (ae.Msg != schema.ErrInvalidRequest && ae.Msg != schema.ErrInvalidTTL) {
				t.Fatalf("unexpected error %#v", err)
			}
			return
		}
		if req.TTL < 0 {
			t.Fatalf("negative ttl %v accepted", req.TTL)
		}
		if _, err := json.Marshal(req); err != nil {
			t.Fatalf("accepted request does not encode: %v", err)
		}
	})
}

// FuzzAPIQuery: ParseQuery never panics on any query, and the whole
// handler answers any GET query or POST body, with or without a token,
// with one of the API's statuses and a JSON body.
func FuzzAPIQuery(f *testing.F) {
	for _, s := range []string{
		``, `group=app&id=web`, `group=app&id=web&toggle=2&cas=85368&ttl=30s&secret=s&history&clear`,
		`toggle=abc`, `toggle=9`, `toggle=259`, `cas=abc`, `ttl=-1`, `ttl=NaN`, `id=%zz`, `a;b`, `id=a&id=b`,
		`group=app&id=locked&secret=wrong`, `=&&=`, `%`, strings.Repeat("p=1&", 40), "id=" + strings.Repeat("x", 2000),
		`{"group":"app","id":"web"}`,
	} {
		f.Add(s)
	}
	tokenSrv := NewServer(&fakeBackend{}, Options{Token: func() string { return "tok" }}).Handler()
	openSrv := NewServer(&fakeBackend{}, Options{}).Handler()
	allowed := map[int]bool{200: true, 400: true, 401: true, 403: true, 405: true, 413: true}
	f.Fuzz(func(t *testing.T, raw string) {
		v, _ := url.ParseQuery(raw)
		req, err := ParseQuery(v)
		if (req == nil) == (err == nil) {
			t.Fatalf("got request %+v and error %v; want exactly one", req, err)
		}
		if req != nil && (req.Toggle > schema.ToggleEnableRunOnceDisable || req.TTL < 0) {
			t.Fatalf("out-of-range request accepted: %+v", req)
		}
		for _, h := range []http.Handler{tokenSrv, openSrv} {
			for _, method := range []string{"GET", "POST"} {
				r := httptest.NewRequest(method, "/api/", strings.NewReader(raw))
				r.URL.RawQuery = raw
				if method == "GET" && strings.Contains(raw, "Origin") {
					r.Header.Set("Origin", "http://"+raw)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if !allowed[w.Code] {
					t.Fatalf("%s %q: status %d", method, raw, w.Code)
				}
				if !json.Valid(w.Body.Bytes()) {
					t.Fatalf("%s %q: body is not JSON: %q", method, raw, w.Body)
				}
			}
		}
	})
}

// BenchmarkDecodeRequest decodes a typical ping datagram (the UDP hot
// path).
func BenchmarkDecodeRequest(b *testing.B) {
	data := []byte(`{"id":"web","group":"app","ping":true,"pid":10732}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRequest(data); err != nil {
			b.Fatal(err)
		}
	}
}
