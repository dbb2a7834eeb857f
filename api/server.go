package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// Backend is what the API needs from the supervisor. The root package
// implements it over the loop; api never imports reconcile or exec.
type Backend interface {
	Status(ctx context.Context) (*schema.Status, error)
}

// Server serves Patrol's HTTP routes.
type Server struct {
	backend Backend
	log     *slog.Logger
	mux     *http.ServeMux
}

// NewServer returns a server for backend.
func NewServer(b Backend, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{backend: b, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("/status/", s.handle(s.status))
	s.mux.HandleFunc("/healthz", s.handle(s.healthz))
	return s
}

// Handler returns the route table.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves HTTP on ln until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// httpError is an error with an HTTP status and the API's error strings.
type httpError struct {
	code   int
	errors []string
}

func (e *httpError) Error() string { return e.errors[0] }

// handle turns a handler that returns a value or an error into an
// http.HandlerFunc: values are written as the seed's tab-indented JSON,
// errors as {"errors": [...]} with their status.
func (s *Server) handle(fn func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r)
		code := http.StatusOK
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) {
				s.log.Error("api request failed", "path", r.URL.Path, "err", err)
				he = &httpError{code: http.StatusServiceUnavailable, errors: []string{err.Error()}}
			}
			code, v = he.code, schema.ErrorResponse{Errors: he.errors}
		}
		writeJSON(w, code, v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (s *Server) status(r *http.Request) (any, error) {
	return s.backend.Status(r.Context())
}

func (s *Server) healthz(r *http.Request) (any, error) {
	if _, err := s.backend.Status(r.Context()); err != nil {
		return nil, &httpError{code: http.StatusServiceUnavailable, errors: []string{err.Error()}}
	}
	return map[string]string{"status": "ok"}, nil
}
