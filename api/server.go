package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// Backend is what the API needs from the supervisor. The root package
// implements it over the loop; api never imports reconcile or exec.
type Backend interface {
	// Status returns the status of every app and service.
	Status(ctx context.Context) (*schema.Status, error)
	// Request applies one API request inside the supervisor's loop (all
	// checks — unknown app/service/group, secrets, ping endpoint, pid
	// rules, CAS — happen there) and returns the entry's snapshot from
	// BEFORE the request, with ID and Group set. API errors come back as
	// Response.Errors (seed strings such as "Unknown App"); a non-nil error
	// means the supervisor could not answer at all (it is shutting down or
	// the context ended).
	Request(ctx context.Context, req *schema.Request, via schema.Transport) (*schema.Response, error)
	// Plan returns what applying config (the bytes of a config.json) would
	// do now, without applying anything; nil config means the current file
	// (what the next pass will do). An invalid config gives every problem,
	// one per line, and no plan.
	Plan(ctx context.Context, config []byte) (plan *schema.Plan, problems []string, err error)
	// Reload reads the config file now and applies it; an invalid file
	// gives every problem and changes nothing. It returns the revision in
	// force afterwards.
	Reload(ctx context.Context) (revision string, problems []string, err error)
	// Events returns the lifecycle events published from now on, until ctx
	// ends (then the channel is closed); pings asks for ping events too.
	Events(ctx context.Context, pings bool) (<-chan schema.Event, error)
	// LogFile returns the path of app id's newest log file for stream
	// ("stdout" or "stderr"), checking the app's secret like a change
	// (apiErr "Unknown App", "Secret Invalid", "No Log", "Invalid
	// Request"). The file keeps growing while the instance runs; a new
	// instance writes a new file.
	LogFile(ctx context.Context, id, stream, secret string) (path, apiErr string, err error)
	// Usage returns the recent usage samples of each running app, oldest
	// first, sampling now if the last sample is old enough; nil when
	// usage cannot be measured. It is called only while someone looks.
	Usage(ctx context.Context) (map[string][]UsageSample, error)
}

// UsageSample is what an app's processes used up to a moment: CPU time
// so far and resident memory then.
type UsageSample struct {
	At  time.Time
	CPU time.Duration
	RSS uint64
}

// Options configures a Server.
type Options struct {
	// Log receives the server's logs; nil discards them.
	Log *slog.Logger
	// Token returns the current http.token; "" means none. It is called on
	// every mutating request, so a config reload that changes the token
	// takes effect at once. Nil means no token.
	Token func() string
	// ProtectReads, when set and returning true, makes reads need the
	// token too (http.protect-reads); it is called on every read.
	ProtectReads func() bool
	// Metrics, when set, is served at /metrics (Prometheus).
	Metrics http.Handler
	// Observe, when set, is called after every request with its route
	// pattern and HTTP status (for metrics).
	Observe func(route string, code int)
}

// MaxBody is the largest request body the HTTP API reads, in bytes; a
// larger one gets 413 "Request Too Large".
const MaxBody = 1 << 20

// bodyTimeout is how long a client has to send a JSON route's request
// body.
const bodyTimeout = 30 * time.Second

// Server serves Patrol's HTTP routes.
type Server struct {
	backend Backend
	log     *slog.Logger
	token   func() string
	observe func(route string, code int)
	metrics http.Handler
	protect func() bool
	mux     *http.ServeMux

	// streams is cancelled when Serve shuts down: long-lived answers
	// (the event stream, a followed log) watch it and end, so that the
	// graceful shutdown does not wait for them.
	streams     context.Context
	stopStreams context.CancelFunc
	// heartbeat is how often an idle event stream gets a comment line;
	// followPoll how often a followed log is checked for growth; tests
	// shorten them.
	heartbeat  time.Duration
	followPoll time.Duration
	// openLog opens a log file for reading; tests count what is read.
	openLog func(path string) (logFile, error)
	// csrf is the GUI forms' token; flash keeps their results for the
	// pages they redirect to (guiform.go).
	csrf  string
	flash flashes
	// now is the GUI's clock (uptimes, flapping); tests fix it.
	now func() time.Time
}

// route is one entry of the route table: a pattern and its handler, built
// by handle (JSON routes) or redirect.
type route struct {
	pattern string
	handler http.Handler
}

// routes is the route table. The patterns are subtree patterns without
// methods, as the seed's mux had: "/status/x" is the status too, and each
// handler checks its own methods so that a wrong method gets the seed's
// JSON 405 rather than the mux's plain-text one. "/status" and "/api" are
// redirected to the slash form with 301, as the seed's mux did (ServeMux
// itself now answers 307). The web GUI's pages ("/" exactly, "/app/ID",
// "/service/ID", "/plan", the last also POST) answer GET and HEAD with
// HTML, errors included (?fragment=live: the page's live part); its forms
// post to "/gui/toggle" and its assets are under "/static/". Event streams
// and followed logs end when Serve shuts down.
func (s *Server) routes() []route {
	return []route{
		{"/status/", s.handle(s.status)},
		{"/status", redirect("/status/")},
		{"/api/", s.handle(s.api)},
		{"/api", redirect("/api/")},
		{"/api/plan", s.handle(s.plan)},
		{"/api/reload", s.handle(s.reload)},
		{"/api/events", http.HandlerFunc(s.events)},
		{"/api/logs", http.HandlerFunc(s.logs)},
		{"/healthz", s.handle(s.healthz)},
		// The web GUI (gui.go): pages, their data and their assets.
		{"/{$}", s.page("dashboard", s.dashboardPage, false)},
		{"/app/{id}", s.page("entry", s.entryPage, false)},
		{"/service/{id}", s.page("entry", s.entryPage, false)},
		{"/plan", s.page("plan", s.planPage, true)},
		{"/gui/toggle", http.HandlerFunc(s.guiToggle)},
		{"/static/", http.HandlerFunc(serveStatic)},
	}
}

// redirect answers 301 to path, keeping the query.
func redirect(path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := &url.URL{Path: path, RawQuery: r.URL.RawQuery}
		http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
	})
}

// NewServer returns a server for b.
func NewServer(b Backend, opts Options) *Server {
	s := &Server{
		backend: b, log: opts.Log, token: opts.Token, mux: http.NewServeMux(),
		observe: opts.Observe, metrics: opts.Metrics, protect: opts.ProtectReads,
		heartbeat: heartbeatEvery, followPoll: followPollEvery, openLog: openLogFile, csrf: newCSRF(), now: time.Now,
	}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.token == nil {
		s.token = func() string { return "" }
	}
	if s.protect == nil {
		s.protect = func() bool { return false }
	}
	routes := s.routes()
	if s.metrics != nil {
		routes = append(routes, route{"/metrics", s.metrics})
	}
	for _, rt := range routes {
		h := rt.handler
		if readRoutes[rt.pattern] {
			h = s.protectRead(h)
		}
		if s.observe != nil {
			h = observed(rt.pattern, h, s.observe)
		}
		s.mux.Handle(rt.pattern, h)
	}
	return s
}

// observed wraps h to report each request's route and status.
func observed(pattern string, h http.Handler, observe func(string, int)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		observe(pattern, sw.code)
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code    int
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.code, w.written = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (flushes and
// deadlines of event streams and followed logs).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Handler returns the route table as an http.Handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves HTTP on ln until ctx is done, then shuts down gracefully:
// requests in flight get two seconds to finish before their connections
// are closed. Long-lived answers (event streams, followed logs) end at
// once when the shutdown begins.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	srv.RegisterOnShutdown(s.stopStreams)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Error is an API error that the API layer itself finds (a bad method,
// query or body, a missing token): the HTTP status and the client-facing
// error string, one of schema's Err* strings such as "Invalid Request",
// with the underlying cause for logs.
type Error struct {
	Status int    // the HTTP status, such as 400
	Msg    string // the string sent in "errors"
	Err    error  // the cause, or nil
}

// Error returns the message and its cause, for logs.
func (e *Error) Error() string {
	if e.Err != nil {
		return "api: " + e.Msg + ": " + e.Err.Error()
	}
	return "api: " + e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// newError returns an *Error with HTTP status code and message msg; cause
// may be nil.
func newError(code int, msg string, cause error) *Error {
	return &Error{Status: code, Msg: msg, Err: cause}
}

// responseErrors is the error of a backend answer that carries seed error
// strings (Response.Errors): 400 with exactly those strings.
type responseErrors []string

func (e responseErrors) Error() string { return fmt.Sprintf("api: %q", []string(e)) }

// errBackend marks a backend that could not answer at all.
var errBackend = errors.New("backend did not answer")

// plainText is a route's answer written as text/plain instead of JSON.
type plainText string

// handle turns a JSON route handler, which returns the value to write with
// status 200 or an error, into an http.Handler: values are written as the
// seed's tab-indented JSON (plainText as text),
// errors by writeError. Every request body is limited to MaxBody bytes
// here, whatever the route.
func (s *Server) handle(fn func(r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server has no ReadTimeout, which would also cut off
		// long-lived answers (event streams); a JSON route's body must
		// arrive within bodyTimeout instead. Recorders in tests do not
		// support deadlines, hence the ignored error.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTimeout))
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		v, err := fn(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if t, ok := v.(plainText); ok {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			io.WriteString(w, string(t))
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// writeError is the one place that turns an error into a status and the
// {"errors": [...]} body. Seed error strings from the backend are 400; an
// *Error carries its own status; anything else means the supervisor could
// not answer, 503 "Patrol Is Shutting Down".
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, msgs := http.StatusServiceUnavailable, []string{schema.ErrShuttingDown}
	if re, ok := errors.AsType[responseErrors](err); ok {
		code, msgs = http.StatusBadRequest, re
	} else if ae, ok := errors.AsType[*Error](err); ok {
		code, msgs = ae.Status, []string{ae.Msg}
	}
	switch {
	case code == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="patrol"`)
		s.log.Warn("api request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	case code == http.StatusForbidden:
		s.log.Warn("api request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
	case code >= 500:
		s.log.Warn("api request failed", "path", r.URL.Path, "err", err)
	default:
		s.log.Debug("api request rejected", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, code, schema.ErrorResponse{Errors: msgs})
}

// writeJSON writes v as the seed wrote HTTP JSON: tab-indented with a
// trailing newline.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var (
		body []byte
		err  error
	)
	// The status and the entries, the bulk of the API's traffic, have an
	// encoder of their own (same bytes, several times faster).
	switch v := v.(type) {
	case *schema.Status:
		body, err = schema.AppendStatusJSON(nil, v)
	case *schema.Response:
		body, err = schema.AppendResponseJSON(nil, v)
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "\t")
		err = enc.Encode(v)
		body = buf.Bytes()
	}
	if err != nil {
		// Only a programming error gets here: every value is a schema type.
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	w.Write(body)
}

// status is GET /status/: any method, the query ignored, no secret check
// (seed §11.7).
func (s *Server) status(r *http.Request) (any, error) {
	st, err := s.backend.Status(r.Context())
	if err != nil {
		return nil, fmt.Errorf("status: %w: %w", errBackend, err)
	}
	return st, nil
}

// healthz is GET /healthz: ok when the loop answers a status request.
func (s *Server) healthz(r *http.Request) (any, error) {
	if _, err := s.backend.Status(r.Context()); err != nil {
		return nil, fmt.Errorf("healthz: %w: %w", errBackend, err)
	}
	return map[string]string{"status": "ok"}, nil
}

// api is GET and POST /api/ (seed §11.5): the method, the request itself
// (query or body) with the token and the origin of a mutating request,
// then one call into the loop.
func (s *Server) api(r *http.Request) (any, error) {
	var (
		req *schema.Request
		err error
	)
	switch r.Method {
	case http.MethodGet:
		// ParseQuery keeps the well-formed pairs of a malformed query, so
		// the token is checked before the query is refused.
		vals, perr := url.ParseQuery(r.URL.RawQuery)
		if mutatingQuery(vals) {
			if err := s.authorize(r); err != nil {
				return nil, err
			}
		}
		if perr != nil {
			return nil, newError(http.StatusBadRequest, schema.ErrInvalidRequest, fmt.Errorf("parse query: %w", perr))
		}
		req, err = ParseQuery(vals)
	case http.MethodPost:
		// The body is read before the token is checked: whether the
		// request needs it depends on what it asks (see NeedsToken).
		body, rerr := readBody(r)
		if rerr != nil {
			if err := s.authorizePost(r, nil); err != nil {
				return nil, err
			}
			return nil, rerr
		}
		req, err = DecodeRequest(body)
		if aerr := s.authorizePost(r, req); aerr != nil {
			return nil, aerr
		}
	default:
		return nil, newError(http.StatusMethodNotAllowed, schema.ErrInvalidMethod, fmt.Errorf("method %s", r.Method))
	}
	if err != nil {
		return nil, err
	}
	resp, err := s.backend.Request(r.Context(), req, schema.TransportHTTP)
	if err != nil {
		return nil, fmt.Errorf("request: %w: %w", errBackend, err)
	}
	if resp == nil {
		return nil, fmt.Errorf("request: %w: nil response", errBackend)
	}
	if len(resp.Errors) > 0 {
		return nil, responseErrors(resp.Errors)
	}
	return resp, nil
}

// readBody reads a request body, turning the size cap into 413.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, newError(http.StatusRequestEntityTooLarge, schema.ErrRequestEntityTooLarge, err)
		}
		return nil, newError(http.StatusBadRequest, schema.ErrInvalidBody, fmt.Errorf("read body: %w", err))
	}
	return body, nil
}

// plan is GET /api/plan (what the next pass will do for the current file)
// and POST /api/plan with a config as the body (what applying it would
// do). Nothing is applied either way, so it needs no token; an invalid
// config is 400 with every problem. With ?format=text the plan is the
// CLI's text (schema.Plan.Text), for the web GUI; errors stay JSON.
func (s *Server) plan(r *http.Request) (any, error) {
	var config []byte
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		body, err := readBody(r)
		if err != nil {
			return nil, err
		}
		config = body
		if config == nil {
			config = []byte{}
		}
	default:
		return nil, newError(http.StatusMethodNotAllowed, schema.ErrInvalidMethod, fmt.Errorf("method %s", r.Method))
	}
	p, problems, err := s.backend.Plan(r.Context(), config)
	if err != nil {
		return nil, fmt.Errorf("plan: %w: %w", errBackend, err)
	}
	if len(problems) > 0 {
		return nil, responseErrors(problems)
	}
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
	case "text":
		if p == nil {
			p = &schema.Plan{}
		}
		return plainText(p.Text()), nil
	default:
		return nil, newError(http.StatusBadRequest, schema.ErrInvalidRequest, fmt.Errorf("plan: format %q", f))
	}
	return p, nil
}

// ReloadResponse is the body of a successful POST /api/reload.
type ReloadResponse struct {
	Revision string `json:"revision"`
}

// reload is POST /api/reload: read the config file now. It changes what
// runs, so it needs the token like any mutating request.
func (s *Server) reload(r *http.Request) (any, error) {
	if r.Method != http.MethodPost {
		return nil, newError(http.StatusMethodNotAllowed, schema.ErrInvalidMethod, fmt.Errorf("method %s", r.Method))
	}
	if err := s.authorize(r); err != nil {
		return nil, err
	}
	rev, problems, err := s.backend.Reload(r.Context())
	if err != nil {
		return nil, fmt.Errorf("reload: %w: %w", errBackend, err)
	}
	if len(problems) > 0 {
		return nil, responseErrors(problems)
	}
	return ReloadResponse{Revision: rev}, nil
}

// readRoutes are the routes that show state: with http.protect-reads they
// need the token. The GUI's pages and assets are not among them (they show
// nothing by themselves), nor /healthz.
var readRoutes = map[string]bool{
	"/status/": true, "/api/": true, "/api/plan": true, "/api/events": true,
	"/api/logs": true, "/metrics": true,
}

// protectRead makes h need the token when reads are protected. The event
// stream may carry it as ?access_token= instead, since browsers cannot set
// headers on an EventSource.
func (s *Server) protectRead(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := s.token()
		if want != "" && s.protect() {
			auth := r.Header.Get("Authorization")
			if t := r.URL.Query().Get("access_token"); auth == "" && t != "" && r.URL.Path == "/api/events" {
				auth = "Bearer " + t
			}
			if !validBearer(auth, want) {
				s.writeError(w, r, newError(http.StatusUnauthorized, schema.ErrUnauthorized, errors.New("reads need the token (http.protect-reads)")))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
