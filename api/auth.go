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
// carries toggle, clear or ttl, whatever their values (so "toggle=0" and
// "toggle=abc" need the token too, and an unauthorised caller learns
// nothing about what the server would make of them).
func mutatingQuery(v url.Values) bool {
	return v.Has("toggle") || v.Has("clear") || v.Has("ttl")
}

// authorize checks a mutating request (every POST /api/ and a GET /api/
// that mutates): the bearer token when http.token is set (401), then that
// a browser sent it from Patrol's own origin (403).
func (s *Server) authorize(r *http.Request) error {
	if want := s.token(); want != "" && !validBearer(r.Header.Get("Authorization"), want) {
		return newError(http.StatusUnauthorized, schema.ErrUnauthorized, errors.New("missing or wrong bearer token"))
	}
	if err := checkOrigin(r); err != nil {
		return newError(http.StatusForbidden, schema.ErrForbiddenCrossOrigin, err)
	}
	return nil
}

// validBearer reports whether an Authorization header carries the bearer
// token want. Both tokens are hashed before the constant-time comparison so
// that not even the token's length leaks through timing.
func validBearer(header, want string) bool {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	exp := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(got[:], exp[:]) == 1
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
