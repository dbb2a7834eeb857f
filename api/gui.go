package api

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// The web GUI (DESIGN §11): pages rendered in full on the server
// (html/template; views in guiview.go, guientry.go, guisvg.go), whose forms
// work without JavaScript (guiform.go); the embedded scripts then follow
// /api/events and swap in the page's live part, rendered by the same
// template. There is no build step and no external asset; every script is
// a file under /static/, so the Content-Security-Policy allows no inline
// script or style.

//go:embed gui/*.html
var pageFS embed.FS

//go:embed gui/static
var staticFS embed.FS

// contentSecurityPolicy is sent with every GUI page and asset: everything
// from Patrol itself, nothing inline, no framing. img-src allows data:
// for the empty favicon.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// pages holds one template per page, each the layout plus the page. They
// are parsed on first use, not at start: parsing them took about 2 ms of
// every Patrol's start, before its first app could start.
var pages = sync.OnceValue(func() map[string]*template.Template {
	layout := template.Must(template.New("").Funcs(guiFuncs).ParseFS(pageFS, "gui/layout.html"))
	out := map[string]*template.Template{}
	for _, name := range []string{"dashboard", "entry", "plan", "error"} {
		out[name] = template.Must(template.Must(layout.Clone()).ParseFS(pageFS, "gui/"+name+".html"))
	}
	return out
})

// pageData is what a page template sees.
type pageData struct {
	Title string
	// Page names the page's script (/static/Page.js) and the current
	// navigation link.
	Page string
	// Entry is set on entry pages.
	Entry *entryView
	// Dash is set on the dashboard.
	Dash *dashView
	// Plan is set on the plan page.
	Plan *planView
	// Now is when the page was rendered (ISO).
	Now string
	// CSRF is the forms' token; Flash the result of the form just posted.
	CSRF  string
	Flash *guiResult
	// Locked is set when reads need the token (http.protect-reads) and the
	// request has none: the page shows no data, its script fetches it with
	// the token.
	Locked bool
	// Token is set when this Patrol has an http.token: the entry page's
	// form then has a token field (for use without JavaScript).
	Token bool
	// Status and Message are set on error pages.
	Status  int
	Message string
}

// securityHeaders are set on every GUI page and asset.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

// page turns a page handler, which fills the page to render or returns an
// error, into an http.Handler: GET and HEAD (and POST where post is set),
// security headers, errors as an HTML error page with the API's status
// codes. With ?fragment=live only the page's live part is rendered (the
// template "live"), for the page's script to swap in.
func (s *Server) page(name string, fn func(r *http.Request, d *pageData) error, post bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !(post && r.Method == http.MethodPost) {
			w.Header().Set("Allow", map[bool]string{true: "GET, HEAD, POST", false: "GET, HEAD"}[post])
			s.renderError(w, r, newError(http.StatusMethodNotAllowed, schema.ErrInvalidMethod, fmt.Errorf("method %s", r.Method)))
			return
		}
		fragment := r.URL.Query().Get("fragment") == "live"
		now := s.now()
		d := &pageData{Page: name, CSRF: s.csrf, Token: s.token() != "", Now: now.Local().Format(isoLayout)}
		if want := s.token(); want != "" && s.protect() && !validBearer(r.Header.Get("Authorization"), want) {
			if fragment {
				s.writeError(w, r, newError(http.StatusUnauthorized, schema.ErrUnauthorized, errors.New("reads need the token (http.protect-reads)")))
				return
			}
			d.Locked = true
		}
		if id := r.URL.Query().Get("flash"); id != "" {
			if res, ok := s.flash.get(id, now); ok {
				d.Flash = &res
			}
		}
		if err := fn(r, d); err != nil {
			s.renderError(w, r, err)
			return
		}
		if d.Title == "" {
			d.Title = strings.ToUpper(name[:1]) + name[1:]
		}
		tmpl := "layout"
		if fragment {
			tmpl = "live"
		}
		s.renderTemplate(w, http.StatusOK, name, tmpl, d)
	})
}

// render executes a page into a buffer first, so that a template error
// is a clean 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, code int, name string, data *pageData) {
	s.renderTemplate(w, code, name, "layout", data)
}

// renderTemplate executes one template of a page.
func (s *Server) renderTemplate(w http.ResponseWriter, code int, name, tmpl string, data *pageData) {
	var buf bytes.Buffer
	if err := pages()[name].ExecuteTemplate(&buf, tmpl, data); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "render page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// renderError shows err as an HTML page with the status writeError would
// give it.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := http.StatusServiceUnavailable, schema.ErrShuttingDown
	if re, ok := errors.AsType[responseErrors](err); ok {
		code, msg = http.StatusBadRequest, strings.Join(re, "; ")
	} else if ae, ok := errors.AsType[*Error](err); ok {
		code, msg = ae.Status, ae.Msg
	}
	if code >= 500 {
		s.log.Warn("gui page failed", "path", r.URL.Path, "err", err)
	}
	s.render(w, code, "error", &pageData{Title: http.StatusText(code), Page: "error", Status: code, Message: msg})
}

// dashboardPage is /: every app and service, sorted and filtered by the
// query (sort, state, q).
func (s *Server) dashboardPage(r *http.Request, d *pageData) error {
	d.Title = "Dashboard"
	if d.Locked {
		return nil
	}
	st, err := s.backend.Status(r.Context())
	if err != nil {
		return fmt.Errorf("dashboard: %w: %w", errBackend, err)
	}
	usage, _ := s.backend.Usage(r.Context()) // none when it cannot be measured
	d.Dash = makeDashboard(st, parseDashQuery(r.URL.Query()), s.now(), usage)
	return nil
}

// entryPage is /app/ID and /service/ID, with the entry's history; an
// unknown entry is a 404 page.
func (s *Server) entryPage(r *http.Request, d *pageData) error {
	group := strings.Trim(path.Dir(r.URL.Path), "/")
	if d.Locked {
		// The entry's data needs the token: the page's frame, whose script
		// fetches the rest with it.
		id := strings.ToLower(r.PathValue("id"))
		d.Entry, d.Title = &entryView{Group: group, ID: id, Name: id, Locked: true}, id
		return nil
	}
	req := &schema.Request{ID: r.PathValue("id"), Group: group, History: true}
	resp, err := s.backend.Request(r.Context(), req, schema.TransportHTTP)
	if err != nil {
		return fmt.Errorf("entry page: %w: %w", errBackend, err)
	}
	if resp == nil {
		return fmt.Errorf("entry page: %w: nil response", errBackend)
	}
	if len(resp.Errors) > 0 {
		return newError(http.StatusNotFound, strings.Join(resp.Errors, "; "), fmt.Errorf("entry page %s", r.URL.Path))
	}
	id := cmp.Or(resp.ID, strings.ToLower(req.ID))
	var samples []UsageSample
	if group == string(schema.GroupApp) {
		if usage, err := s.backend.Usage(r.Context()); err == nil {
			samples = usage[id]
		}
	}
	d.Entry = makeEntry(group, id, resp, s.now(), samples)
	d.Title = d.Entry.Name
	return nil
}

// planView is the plan page: the pending plan, and a previewed config.
type planView struct {
	Current   string
	Problems  []string // of the current file
	Config    string   // the config previewed
	Preview   string   // its plan
	Errors    []string // its problems
	Previewed bool
}

// planPage is /plan: the pending plan; a POST previews a config (form
// field "config"), changing nothing.
func (s *Server) planPage(r *http.Request, d *pageData) error {
	v := &planView{}
	d.Plan, d.Title = v, "Plan"
	if d.Locked {
		return nil
	}
	if r.Method == http.MethodPost {
		if err := s.sameOrigin(r); err != nil {
			return err
		}
		r.Body = http.MaxBytesReader(nil, r.Body, MaxBody)
		if err := r.ParseForm(); err != nil {
			return newError(http.StatusRequestEntityTooLarge, schema.ErrInvalidBody, err)
		}
		if !validToken(r.PostFormValue("csrf"), s.csrf) {
			return newError(http.StatusForbidden, "the page is stale (Patrol restarted?): reload it and try again", errors.New("plan form: wrong CSRF token"))
		}
		v.Config, v.Previewed = r.PostFormValue("config"), true
		p, problems, err := s.backend.Plan(r.Context(), []byte(v.Config))
		if err != nil {
			return fmt.Errorf("plan: %w: %w", errBackend, err)
		}
		if len(problems) > 0 {
			v.Errors = problems
		} else if p != nil {
			v.Preview = p.Text()
		}
	}
	p, problems, err := s.backend.Plan(r.Context(), nil)
	if err != nil {
		return fmt.Errorf("plan: %w: %w", errBackend, err)
	}
	v.Problems = problems
	if p != nil {
		v.Current = p.Text()
	}
	// The pending plan is for the config in force: say when the file
	// does not load.
	if st, err := s.backend.Status(r.Context()); err == nil && st.Config != nil && st.Config.Error != "" {
		v.Problems = append(v.Problems, strings.Split(st.Config.Error, "; ")...)
	}
	return nil
}

// static is one embedded asset.
type static struct {
	body  []byte
	ctype string
	etag  string
}

// statics are the embedded assets by URL path, with content-hash ETags:
// browsers revalidate (no-cache) and get 304 until Patrol is upgraded.
// They are read on first use, and their types come from their extensions
// here, not from the mime package, whose first use reads the system's
// whole mime table (about 700 KB of heap kept for the process's life).
var statics = sync.OnceValue(func() map[string]static {
	out := map[string]static{}
	err := fs.WalkDir(staticFS, "gui/static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		var ctype string
		switch path.Ext(p) {
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".css":
			ctype = "text/css; charset=utf-8"
		default:
			return fmt.Errorf("static asset %s: no content type for its extension", p)
		}
		out["/static/"+strings.TrimPrefix(p, "gui/static/")] = static{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return out
})

// serveStatic serves the embedded assets under /static/.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	a, ok := statics()[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
