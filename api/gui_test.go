package api

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/patrolhq/patrol/schema"
)

// TestGUIPages renders every page with the fake backend (golden files) and
// checks the security headers of pages and assets.
func TestGUIPages(t *testing.T) {
	h := newTestServer(&fakeBackend{}, "")
	for _, c := range []struct {
		name, target string
		contains     []string
		lacks        []string
	}{
		{"gui-dashboard", "/", []string{`<table id="apps"`, `<script src="/static/dashboard.js" defer>`, `aria-current="page">Dashboard`}, nil},
		{"gui-app", "/app/WEB", []string{`data-group="app" data-id="web" data-secret="false"`, `<span id="entry-name">Web</span>`, `id="log"`}, []string{`id="secret"`}},
		{"gui-app-secret", "/app/locked", []string{`data-secret="true"`, `<input id="secret"`}, nil},
		{"gui-service", "/service/db", []string{`data-group="service" data-id="db"`, "Database"}, []string{`id="log"`}},
		{"gui-plan", "/plan", []string{`<textarea id="config-text"`, `<script src="/static/plan.js" defer>`}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := do(t, h, "GET", c.target, "")
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			wantGUIHeaders(t, w.Header().Get, "text/html; charset=utf-8")
			body := w.Body.String()
			for _, s := range c.contains {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %s", s)
				}
			}
			for _, s := range c.lacks {
				if strings.Contains(body, s) {
					t.Errorf("page has %s", s)
				}
			}
			checkNoInline(t, body)
			golden(t, c.name+".golden", w.Body.Bytes())
		})
	}
	for _, c := range []struct{ target, ctype string }{
		{"/static/patrol.css", "text/css; charset=utf-8"},
		{"/static/common.js", "text/javascript; charset=utf-8"},
		{"/static/dashboard.js", "text/javascript; charset=utf-8"},
	} {
		w := do(t, h, "GET", c.target, "")
		if w.Code != 200 || w.Body.Len() == 0 {
			t.Errorf("%s: %d, %d bytes", c.target, w.Code, w.Body.Len())
		}
		wantGUIHeaders(t, w.Header().Get, c.ctype)
		etag := w.Header().Get("ETag")
		if etag == "" || w.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("%s: ETag %q, Cache-Control %q", c.target, etag, w.Header().Get("Cache-Control"))
		}
		if w := do(t, h, "GET", c.target, "", "If-None-Match", etag); w.Code != 304 {
			t.Errorf("%s revalidated: %d, want 304", c.target, w.Code)
		}
	}
}

func wantGUIHeaders(t *testing.T, get func(string) string, ctype string) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Type":            ctype,
		"Content-Security-Policy": contentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
	} {
		if got := get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(contentSecurityPolicy, "default-src 'self'") || strings.Contains(contentSecurityPolicy, "unsafe") {
		t.Errorf("policy %q", contentSecurityPolicy)
	}
}

var (
	scriptTag   = regexp.MustCompile(`<script[^>]*>`)
	inlineAttrs = regexp.MustCompile(`(?i)\s(on[a-z]+|style)\s*=`)
)

// checkNoInline checks what the Content-Security-Policy would block: no
// inline script, no event handler attribute, no style attribute, nothing
// from another origin.
func checkNoInline(t *testing.T, page string) {
	t.Helper()
	for _, tag := range scriptTag.FindAllString(page, -1) {
		if !strings.Contains(tag, `src="/static/`) {
			t.Errorf("inline or foreign script: %s", tag)
		}
	}
	if m := inlineAttrs.FindString(page); m != "" {
		t.Errorf("inline attribute %q", m)
	}
	if strings.Contains(page, "<style") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("inline style or external reference")
	}
}

// TestGUIAssetsSelfContained: the scripts and the style sheet load nothing
// from elsewhere and use no eval or inline HTML injection.
func TestGUIAssetsSelfContained(t *testing.T) {
	err := fs.WalkDir(staticFS, "gui/static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		for _, bad := range []string{"http://", "https://", "eval(", "new Function", "innerHTML", "document.write", "@import"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s uses %s", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(statics()) != 5 {
		t.Errorf("%d assets: %v", len(statics()), statics())
	}
}

func TestGUIErrors(t *testing.T) {
	h := newTestServer(&fakeBackend{}, "")
	for _, c := range []struct {
		method, target string
		code           int
		text           string
	}{
		{"GET", "/app/nope", 404, "Unknown App"},
		{"GET", "/service/nope", 404, "Unknown Service"},
		{"POST", "/", 405, schema.ErrInvalidMethod},
		{"DELETE", "/plan", 405, schema.ErrInvalidMethod},
	} {
		w := do(t, h, c.method, c.target, "")
		if w.Code != c.code || !strings.Contains(w.Body.String(), c.text) {
			t.Errorf("%s %s: %d %s", c.method, c.target, w.Code, w.Body)
		}
		wantGUIHeaders(t, w.Header().Get, "text/html; charset=utf-8")
	}
	for _, target := range []string{"/nope", "/static/nope.js", "/app/", "/app/web/x"} {
		if w := do(t, h, "GET", target, ""); w.Code != 404 {
			t.Errorf("GET %s: %d", target, w.Code)
		}
	}
	h = newTestServer(&fakeBackend{reqErr: errBackend}, "")
	if w := do(t, h, "GET", "/app/web", ""); w.Code != 503 || !strings.Contains(w.Body.String(), schema.ErrShuttingDown) {
		t.Errorf("backend down: %d %s", w.Code, w.Body)
	}
}

// TestPlanText: /api/plan?format=text is the CLI's text plan; errors stay
// JSON.
func TestPlanText(t *testing.T) {
	h := newTestServer(&fakeBackend{}, "")
	for _, method := range []string{"GET", "POST"} {
		body := ""
		if method == "POST" {
			body = "{}"
		}
		w := do(t, h, method, "/api/plan?format=text", body)
		if w.Code != 200 || w.Body.String() != fakePlan.Text() || w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("%s: %d %q %s", method, w.Code, w.Body, w.Header().Get("Content-Type"))
		}
	}
	w := do(t, h, "POST", "/api/plan?format=text", `{"tick-evry": 1}`)
	wantErrors(t, w, 400, "apps.web.binary: required", `tick-evry: unknown key, did you mean "tick-every"?`)
	wantErrors(t, do(t, h, "GET", "/api/plan?format=yaml", ""), 400, schema.ErrInvalidRequest)
}
