package browsertest_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/patrolhq/patrol/schema"
)

// get fetches a page as curl would and returns its body.
func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	return string(b)
}

// TestServerRendered: the dashboard, an entry page and the plan page carry
// their whole content in the HTML the server sends (what curl sees): every
// app's id and name, the config revision, after a bad edit the config
// error, an entry's history rows, the pending plan.
func TestServerRendered(t *testing.T) {
	cfg := exampleConfig(t, nil)
	in := startPatrol(t, cfg)
	st, err := in.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	page := get(t, in.base+"/")
	for id, e := range st.Apps {
		if !strings.Contains(page, `data-key="app/`+id+`"`) || !strings.Contains(page, html.EscapeString(e.Name)) {
			t.Errorf("the dashboard lacks app %s (%q)", id, e.Name)
		}
	}
	if !strings.Contains(page, `<code id="config-revision">`+st.Config.Revision+`</code>`) {
		t.Errorf("the dashboard lacks the config revision %s", st.Config.Revision)
	}

	// An entry's history: clock killed once.
	clock := in.entry(t, schema.GroupApp, "clock")
	if _, err := in.Request(t.Context(), &schema.Request{ID: "clock", Group: "app", Toggle: schema.ToggleRestart}, schema.TransportLibrary); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "clock restarted", 15*time.Second, func() bool { e := in.entry(t, schema.GroupApp, "clock"); return e.PID != 0 && e.PID != clock.PID })
	page = get(t, in.base+"/app/clock")
	rows := regexp.MustCompile(`<tr class="reason-[a-z]+"><td>([a-z-]+)</td>`).FindAllStringSubmatch(page, -1)
	if len(rows) != 1 || rows[0][1] != "stopped-by-api" {
		t.Errorf("clock's history rows: %q", rows)
	}
	for _, want := range []string{`<dd class="detail-pid">`, `id="timeline"`, `class="mark mark-stopped"`} {
		if !strings.Contains(page, want) {
			t.Errorf("clock's page lacks %s", want)
		}
	}

	// The plan page: the pending plan for the file as it is.
	if page = get(t, in.base+"/plan"); !strings.Contains(page, "No changes.") {
		t.Errorf("the plan page lacks the pending plan:\n%s", page)
	}

	// A bad edit: the error, and the plan page's problems.
	writeJSON(t, in.config, `{"apps": {"clock": {"binary": ""}}, "tick-evry": 3}`)
	waitFor(t, "the config error", 15*time.Second, func() bool {
		st, err := in.Status(t.Context())
		return err == nil && st.Config.Error != ""
	})
	page = get(t, in.base+"/")
	if !strings.Contains(page, "The last reload failed") || !strings.Contains(page, "apps.clock.binary") || strings.Contains(page, `id="config-error" class="config-error" role="alert" hidden`) {
		t.Errorf("the dashboard does not show the config error")
	}
	if page = get(t, in.base+"/plan"); !strings.Contains(page, "tick-evry") {
		t.Errorf("the plan page does not show the file's problems")
	}
}

// TestNoJavaScript: with JavaScript disabled the dashboard shows every
// app, and its Disable and Enable buttons work (form posts, redirected
// back), checked by the app's state.
func TestNoJavaScript(t *testing.T) {
	in := startPatrol(t, exampleConfig(t, nil))
	ctx := browser(t)
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/"))
	text := textOf(t, ctx, "#apps tbody")
	for _, id := range []string{"clock", "daemon", "flaky", "stubborn"} {
		if !strings.Contains(text, id) {
			t.Errorf("the dashboard without JavaScript lacks %s", id)
		}
	}
	if got := textOf(t, ctx, "#conn"); got != "" {
		t.Errorf("a script ran: the connection line says %q", got)
	}
	waitFor(t, "clock running", 15*time.Second, func() bool { return in.entry(t, schema.GroupApp, "clock").State == schema.StateRunning })
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/"))
	do(t, ctx, 30*time.Second, chromedp.Click(chromedp.CSS(`tr[data-key="app/clock"] button[aria-label="Disable clock"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-key="app/clock"] button[aria-label="Enable clock"]`)))
	// The row offers Enable as soon as clock is disabled, while it still
	// stops too.
	waitFor(t, "clock disabled", 15*time.Second, func() bool { return in.entry(t, schema.GroupApp, "clock").State == schema.StateDisabled })
	if msg := textOf(t, ctx, "#message"); msg != "app clock: done." {
		t.Errorf("message after the redirect: %q", msg)
	}
	screenshot(t, ctx, "dashboard-nojs.png")
	// The page was rendered while clock still stopped: without JavaScript
	// it does not change, and a form from it would be refused as "changed
	// meanwhile" (clock is not as the page shows it). Reloaded, as a
	// reader would, its Enable works.
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/"))
	do(t, ctx, 30*time.Second, chromedp.Click(chromedp.CSS(`tr[data-key="app/clock"] button[aria-label="Enable clock"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-key="app/clock"] button[aria-label="Disable clock"]`)))
	if msg := textOf(t, ctx, "#message"); msg != "app clock: done." {
		t.Errorf("message after Enable: %q", msg)
	}
	waitFor(t, "clock running again", 15*time.Second, func() bool { return in.entry(t, schema.GroupApp, "clock").State == schema.StateRunning })
}

// textOf is the text of the element sel selects.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(v)
}

// TestTimeline: the entry page of an app that crashed five times shows
// five crash marks on its timeline (SVG elements in the DOM) and a
// flapping badge, on the dashboard too; a screenshot is kept for review.
func TestTimeline(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	in := startPatrol(t, exampleConfig(t, func(cfg map[string]any) {
		cfg["apps"].(map[string]any)["crasher"] = map[string]any{
			"name": "Crasher (crashes five times, then runs)", "binary": sh,
			"args":    []any{"-c", `n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ "$n" -ge 5 ] && exec sleep 3600; exit 3`},
			"backoff": map[string]any{"initial": 0.05, "max": 0.05},
		}
	}))
	waitFor(t, "five crashes", 30*time.Second, func() bool {
		e := in.entry(t, schema.GroupApp, "crasher")
		return len(e.History) == 5 && e.State == schema.StateRunning
	})
	ctx := browser(t)
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/app/crasher"))
	if n := eval[int](t, ctx, `document.querySelectorAll("#timeline circle.mark-crashed").length`); n != 5 {
		t.Errorf("%d crash marks on the timeline, want 5", n)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#timeline .mark").length`); n != 5 {
		t.Errorf("%d marks on the timeline, want 5", n)
	}
	if !eval[bool](t, ctx, `!!document.getElementById("entry-flapping")`) {
		t.Error("no flapping badge on the entry page")
	}
	// Usage from /proc: memory at once, CPU from the second sample (the
	// page refreshes every 5 s; samples are at least 2 s apart).
	waitJS[bool](t, ctx, "the memory sparkline", `/[KMG]iB$/.test(document.getElementById("usage-mem").textContent)`, 10*time.Second)
	waitJS[bool](t, ctx, "the CPU share", `/^[0-9]+%$/.test(document.getElementById("usage-cpu").textContent)`, 15*time.Second)
	screenshot(t, ctx, "entry-timeline.png")
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/?state=flapping"))
	if got := eval[string](t, ctx, `Array.from(document.querySelectorAll("#apps tbody tr"), (r) => r.dataset.id).join(",")`); got != "crasher" {
		t.Errorf("the dashboard filtered on flapping shows %q", got)
	}
}
