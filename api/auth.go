package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/patrolhq/patrol/schema"
)

// mutatingQuery reports whether a GET /api/ query may change state: it
// carries toggle, clear, ttl or replicas, whatever their values (so "toggle=0" and
// "toggle=abc" need the token too, and an unauthorised caller learns
// nothing about what the server would make of them).
func mutatingQuery(v url.Values) bool {
	return v.Has("toggle") || v.Has("clear") || v.Has("ttl") || v.Has("replicas")
}

// NeedsToken reports whether a request needs http.token when one is set,
// whichever transport brought it: it writes more than an app's liveness (a
// toggle, clear, ttl, replicas, or a key/value write, merged or replaced). Reads (id,
// group, history, secret and cas alone) and pings, with or without a pid,
// need no token: an app that pings is not given the token, and a ping only
// refreshes or adopts an instance under the pid rules (DESIGN §5.1). A
// request with cas is a CAS write only through what it writes, so the rule
// covers it.
func NeedsToken(req *schema.Request) bool {
	return req.Toggle != 0 || req.Clear || req.TTL != 0 || req.Replicas != 0 || req.KeyValue != nil || req.KeyValueReplace
}

// authorize checks a mutating HTTP request that is not a /api/ request
// (POST /api/reload) or a GET /api/ that mutates: the bearer token when
// http.token is set (401), then that a browser sent it from Patrol's own
// origin (403).
func (s *Server) authorize(r *http.Request) error {
	if want := s.token(); want != "" && !validBearer(r.Header.Get("Authorization"), want) {
		return newError(http.StatusUnauthorized, schema.ErrUnauthorized, errors.New("missing or wrong bearer token"))
	}
	return s.sameOrigin(r)
}

// authorizePost checks a POST /api/ whose body decoded to req (nil when it
// did not decode): with http.token set, a request NeedsToken says needs it,
// and a body that is not a request, must carry the token, as a bearer
// header or as the request's "token" field (401; an unauthorised client
// learns nothing of how its body would be read). Every POST must then come
// from Patrol's own origin when a browser sends it (403).
func (s *Server) authorizePost(r *http.Request, req *schema.Request) error {
	if want := s.token(); want != "" && (req == nil || NeedsToken(req)) {
		ok := validBearer(r.Header.Get("Authorization"), want)
		if !ok && req != nil && req.Token != "" {
			ok = validToken(req.Token, want)
		}
		if !ok {
			return newError(http.StatusUnauthorized, schema.ErrUnauthorized, errors.New("missing or wrong token"))
		}
	}
	return s.sameOrigin(r)
}

// sameOrigin is checkOrigin as an API error (403).
func (s *Server) sameOrigin(r *http.Request) error {
	if err := checkOrigin(r); err != nil {
		return newError(http.StatusForbidden, schema.ErrForbiddenCrossOrigin, err)
	}
	return nil
}

// validBearer reports whether an Authorization header carries the bearer
// token want.
func validBearer(header, want string) bool {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return validToken(strings.TrimSpace(tok), want)
}

// validToken reports whether got is the token want. Both are hashed before
// the constant-time comparison so that not even the token's length leaks
// through timing.
func validToken(got, want string) bool {
	g := sha256.Sum256([]byte(got))
	w := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// checkOrigin refuses a cross-origin browser request, the defence against
// cross-site request forgery that the web GUI relies on. It follows
// http.CrossOriginProtection, which cannot be used as it is because it
// exempts GET and Patrol's GET /api/ can toggle (seed §11.4):
// Sec-Fetch-Site, which browsers send even on GET navigations that carry
// no Origin (an <img src> to /api/?toggle=2), decides first, and only
// "same-origin" and "none" (a typed URL or a bookmark) pass. Without it, an
// Origin header must name the request's own host. Requests with neither
// header (curl, scripts, pinging apps) do not come from a browser and pass.
func checkOrigin(r *http.Request) error {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "":
	case "same-origin", "none":
		return nil
	default:
		return fmt.Errorf("check origin: Sec-Fetch-Site is %q", site)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return fmt.Errorf("check origin: Origin %q is not a URL with a host", origin)
	}
	reqPort := "80"
	if r.TLS != nil {
		reqPort = "443"
	}
	originPort := "80"
	if strings.EqualFold(u.Scheme, "https") {
		originPort = "443"
	}
	if hostPort(u.Host, originPort) != hostPort(r.Host, reqPort) {
		return fmt.Errorf("check origin: Origin %q is not host %q", origin, r.Host)
	}
	return nil
}

// hostPort normalises a Host header or URL host for comparison: lower
// case, with the scheme's default port when none is given.
func hostPort(h, defPort string) string {
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defPort
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}
