package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// The GUI's changes are HTML forms that POST to /gui/toggle, so that they
// work without JavaScript: the answer is a 303 back to the page, whose
// message area then shows the result (kept server-side for a minute under
// a random id, never echoed from the URL). With JavaScript the page sends
// the same form with fetch and Accept: application/json, and gets the
// result as JSON. Both are refused unless they come from Patrol's own
// origin (Sec-Fetch-Site / Origin, as for the API) and carry the page's
// CSRF token, a random value of this server that a page of another origin
// cannot read.

// guiResult is the outcome of a GUI form.
type guiResult struct {
	OK bool `json:"ok"`
	// Changed is set when the entry changed since the page showed it, or
	// changed in between (CAS): nothing was done.
	Changed bool `json:"changed,omitempty"`
	// Token is set when the change needed the API token.
	Token bool   `json:"token,omitempty"`
	Text  string `json:"text"`
}

// flashes keeps the results of form posts for the page they redirect to.
type flashes struct {
	mu sync.Mutex
	m  map[string]flash
}

type flash struct {
	r       guiResult
	expires time.Time
}

const (
	flashLife = time.Minute
	maxFlash  = 1000
)

// put stores a result and returns its id.
func (f *flashes) put(r guiResult, now time.Time) string {
	b := make([]byte, 9)
	rand.Read(b)
	id := hex.EncodeToString(b)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]flash{}
	}
	for k, v := range f.m {
		if now.After(v.expires) || len(f.m) >= maxFlash {
			delete(f.m, k)
		}
	}
	f.m[id] = flash{r: r, expires: now.Add(flashLife)}
	return id
}

// get returns a stored result, once.
func (f *flashes) get(id string, now time.Time) (guiResult, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[id]
	if !ok || now.After(v.expires) {
		return guiResult{}, false
	}
	delete(f.m, id)
	return v.r, true
}

// newCSRF returns a random token for the GUI's forms.
func newCSRF() string {
	b := make([]byte, 18)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// digest is what an operator sees of an entry: a form acts only if it
// still holds, so that a click on a stale page does nothing (the page's
// CAS is not enough: pings and other invisible updates move it).
func digest(e *schema.Response) string {
	ov, _ := json.Marshal(e.Override)
	return sig(e.State, e.PID, e.InstanceID, e.Disabled, e.RunOnce, e.ConfigDisabled, string(ov))
}

// guiForm is a parsed GUI form.
type guiForm struct {
	group, id, digest string
	toggle            schema.Toggle
	clear             bool
	replicas          int // a scale ("act" is "scale")
	ttl               schema.Seconds
	secret, token     string
	back              string // the page to go back to
}

// parseGUIForm reads a form: "act" is "N" or "clear" (the entry page), or
// "N|group|id|digest" (a dashboard row's button).
func parseGUIForm(r *http.Request) (guiForm, error) {
	f := guiForm{group: r.PostFormValue("group"), id: r.PostFormValue("id"), digest: r.PostFormValue("digest"),
		secret: r.PostFormValue("secret"), token: r.PostFormValue("token"), back: r.PostFormValue("return")}
	act := r.PostFormValue("act")
	if parts := strings.Split(act, "|"); len(parts) == 4 {
		act, f.group, f.id, f.digest = parts[0], parts[1], parts[2], parts[3]
	}
	switch act {
	case "clear":
		f.clear = true
	case "scale":
		n, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("replicas")))
		if err != nil || n < 1 {
			return f, fmt.Errorf("replicas: %q is not a number of replicas", r.PostFormValue("replicas"))
		}
		f.replicas = n
	default:
		n, err := strconv.Atoi(act)
		if err != nil || n < int(schema.ToggleEnable) || n > int(schema.ToggleEnableRunOnceDisable) {
			return f, fmt.Errorf("unknown action %q", act)
		}
		f.toggle = schema.Toggle(n)
	}
	if v := strings.TrimSpace(r.PostFormValue("ttl")); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 {
			return f, fmt.Errorf("override lasts: %q is not a number of seconds", v)
		}
		f.ttl = schema.Seconds(n)
	}
	if f.group != string(schema.GroupApp) && f.group != string(schema.GroupService) {
		return f, fmt.Errorf("unknown group %q", f.group)
	}
	if f.id == "" {
		return f, errors.New("no id")
	}
	return f, nil
}

// localPath returns p if it is a path on this server, else "/".
func localPath(p string) string {
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(p, "//") || strings.Contains(p, "\\") {
		return "/"
	}
	u.RawQuery = stripFlash(u.Query()).Encode()
	return u.String()
}

func stripFlash(v url.Values) url.Values {
	v.Del("flash")
	return v
}

// guiToggle is POST /gui/toggle.
func (s *Server) guiToggle(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.renderError(w, r, newError(http.StatusMethodNotAllowed, schema.ErrInvalidMethod, fmt.Errorf("method %s", r.Method)))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	wantJSON := strings.Contains(r.Header.Get("Accept"), "application/json")
	answer := func(res guiResult, back string) {
		if wantJSON {
			writeJSON(w, http.StatusOK, res)
			return
		}
		u, _ := url.Parse(localPath(back))
		q := u.Query()
		q.Set("flash", s.flash.put(res, s.now()))
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
	}
	if err := s.sameOrigin(r); err != nil {
		s.renderError(w, r, err)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, newError(http.StatusBadRequest, schema.ErrInvalidBody, err))
		return
	}
	if !validToken(r.PostFormValue("csrf"), s.csrf) {
		s.renderError(w, r, newError(http.StatusForbidden, "the page is stale (Patrol restarted?): reload it and try again", errors.New("gui form: wrong CSRF token")))
		return
	}
	f, err := parseGUIForm(r)
	if err != nil {
		answer(guiResult{Text: "Not done: " + err.Error() + "."}, f.back)
		return
	}
	label := f.group + " " + f.id
	if want := s.token(); want != "" && !validBearer(r.Header.Get("Authorization"), want) && (f.token == "" || !validToken(f.token, want)) {
		answer(guiResult{Token: true, Text: label + ": not done: this Patrol needs its API token for changes (enter it on the entry page, or in the token box with JavaScript)."}, f.back)
		return
	}
	answer(s.toggleEntry(r.Context(), f, label), f.back)
}

// toggleEntry reads the entry afresh and, if it still is as the page
// showed it, sends the change with the CAS just read.
func (s *Server) toggleEntry(ctx context.Context, f guiForm, label string) guiResult {
	cur, err := s.backend.Request(ctx, &schema.Request{ID: f.id, Group: f.group}, schema.TransportHTTP)
	if err != nil || cur == nil {
		return guiResult{Text: label + ": Patrol did not answer (shutting down?)."}
	}
	if len(cur.Errors) > 0 {
		return guiResult{Text: label + ": " + strings.Join(cur.Errors, "; ") + "."}
	}
	if f.digest != "" && digest(cur) != f.digest {
		return guiResult{Changed: true, Text: fmt.Sprintf("%s changed meanwhile (it is %s now): the page shows it again; check it and try again.", label, cur.State)}
	}
	if f.toggle == schema.ToggleRestart && cur.State == schema.StateDisabled {
		return guiResult{Text: label + " is disabled: restart is once only and would enable it for good; enable it instead."}
	}
	if cur.Secret && f.secret == "" {
		return guiResult{Text: label + " is protected: enter its secret on its page."}
	}
	req := &schema.Request{ID: f.id, Group: f.group, Toggle: f.toggle, Clear: f.clear, Replicas: f.replicas, TTL: f.ttl, Secret: f.secret, CAS: cur.CAS}
	resp, err := s.backend.Request(ctx, req, schema.TransportHTTP)
	if err != nil || resp == nil {
		return guiResult{Text: label + ": Patrol did not answer (shutting down?)."}
	}
	if len(resp.Errors) > 0 {
		return guiResult{Text: label + ": " + strings.Join(resp.Errors, "; ") + "."}
	}
	if resp.CASInvalid {
		return guiResult{Changed: true, Text: label + " changed meanwhile: the page shows it again; check it and try again."}
	}
	return guiResult{OK: true, Text: label + ": done."}
}
