package browsertest_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patrolhq/patrol/schema"
)

// tickRE matches the demo app's periodic line.
var tickRE = regexp.MustCompile(`demoapp clock: tick (\d+)`)

// lastTick is the highest tick number in a log text, or -1.
func lastTick(log string) int {
	n := -1
	for _, m := range tickRE.FindAllStringSubmatch(log, -1) {
		if k, _ := strconv.Atoi(m[1]); k > n {
			n = k
		}
	}
	return n
}

// TestEntryPage opens an app's page: its details and history, and its log
// followed live: a line the app prints after the page loaded appears, and
// a restart switches the viewer to the new instance's file.
func TestEntryPage(t *testing.T) {
	in := startPatrol(t, exampleConfig(t, func(cfg map[string]any) {
		clock := cfg["apps"].(map[string]any)["clock"].(map[string]any)
		clock["args"] = []any{"-interval", "300ms"}
	}))
	ctx := browser(t)
	waitFor(t, "clock to run", 15*time.Second, func() bool {
		return in.entry(t, schema.GroupApp, "clock").State == schema.StateRunning
	})
	// One ended instance for the history table.
	if _, err := in.Request(t.Context(), &schema.Request{ID: "clock", Group: "app", Toggle: schema.ToggleRestart}, schema.TransportLibrary); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "clock's restart", 15*time.Second, func() bool {
		e := in.entry(t, schema.GroupApp, "clock")
		return e.State == schema.StateRunning && len(e.History) == 1
	})

	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/app/clock"))
	waitJS[bool](t, ctx, "the state badge", `document.getElementById("entry-state").textContent === "running"`, 10*time.Second)
	pid := in.entry(t, schema.GroupApp, "clock").PID
	waitJS[bool](t, ctx, "the pid", `document.querySelector(".detail-pid").textContent === "`+strconv.Itoa(int(pid))+`"`, 10*time.Second)
	waitJS[bool](t, ctx, "the history row", `document.querySelectorAll("#history tbody tr").length === 1`, 10*time.Second)
	if got := eval[string](t, ctx, `document.querySelector("#history tbody tr td").textContent`); got != "stopped-by-api" {
		t.Errorf("history reason: got %q, want stopped-by-api", got)
	}
	if got := eval[string](t, ctx, `document.querySelector("#keyvalue tbody tr").textContent`); got != `team"demo"` {
		t.Errorf("keyvalue row: got %q", got)
	}

	// The log viewer shows the tail at once; following, a line printed
	// later appears.
	first := waitJS[string](t, ctx, "the log's tail", `((s) => s.includes("demoapp clock: started") && s)(document.getElementById("log").textContent)`, 10*time.Second)
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.ID("log-follow")))
	waitJS[bool](t, ctx, "following", `document.getElementById("log-status").textContent.startsWith("following")`, 10*time.Second)
	after := lastTick(first)
	line := waitJS[string](t, ctx, "a new tick line", `((s) => { const m = [...s.matchAll(/demoapp clock: tick (\d+)/g)].map((x) => +x[1]); return Math.max(...m) > `+strconv.Itoa(after)+` && s; })(document.getElementById("log").textContent)`, 15*time.Second)
	t.Logf("tick %d before following, %d after", after, lastTick(line))

	// A restart: the followed log continues with the new instance's file.
	if _, err := in.Request(t.Context(), &schema.Request{ID: "clock", Group: "app", Toggle: schema.ToggleRestart}, schema.TransportLibrary); err != nil {
		t.Fatal(err)
	}
	text := waitJS[string](t, ctx, "the new instance's lines", `((s) => { const i = s.indexOf("--- new instance: "); return i >= 0 && /tick \d+/.test(s.slice(i)) && s; })(document.getElementById("log").textContent)`, 20*time.Second)
	marker := text[strings.Index(text, "--- new instance: "):]
	marker = marker[:strings.IndexByte(marker, '\n')]
	if !strings.HasSuffix(marker, ".stdout.log ---") {
		t.Errorf("marker line %q", marker)
	}
	waitJS[bool](t, ctx, "two history rows", `document.querySelectorAll("#history tbody tr").length === 2`, 10*time.Second)
	screenshot(t, ctx, "entry-clock.png")

	// Stopping the follow ends the request.
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.ID("log-follow")))
	waitJS[bool](t, ctx, "the follow to stop", `!document.getElementById("log-status").textContent.startsWith("following")`, 10*time.Second)
}

// TestSecretAndToken: a protected app needs its secret for toggles and
// logs; with http.token set a change asks for the token; a page that shows
// an entry as it no longer is gets "changed meanwhile" instead of acting.
func TestSecretAndToken(t *testing.T) {
	in := startPatrol(t, exampleConfig(t, func(cfg map[string]any) {
		cfg["http"] = map[string]any{"listen": "127.0.0.1:8421", "token": "t0ken"}
	}))
	ctx := browser(t)
	waitFor(t, "pinger-udp to run", 20*time.Second, func() bool {
		return in.entry(t, schema.GroupApp, "pinger-udp").State == schema.StateRunning
	})
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/app/pinger-udp"))
	waitJS[bool](t, ctx, "the state badge", `document.getElementById("entry-state").textContent === "running"`, 10*time.Second)
	waitJS[bool](t, ctx, "the log refused without the secret", `document.getElementById("log-status").textContent === "Secret Invalid"`, 10*time.Second)

	// Without the secret nothing is sent.
	disable := chromedp.Click(chromedp.CSS(`#actions button[data-toggle="2"]`))
	do(t, ctx, 10*time.Second, disable)
	waitJS[bool](t, ctx, "the secret request", `document.getElementById("message").textContent.includes("enter its secret")`, 5*time.Second)

	// A wrong secret: the API's error.
	do(t, ctx, 10*time.Second, chromedp.SendKeys(chromedp.ID("secret"), "wrong"), disable)
	waitJS[bool](t, ctx, "the token box", `!document.getElementById("token-box").hidden`, 10*time.Second)
	if got := eval[string](t, ctx, `document.getElementById("message").textContent`); !strings.Contains(got, "API token") {
		t.Errorf("message without the token: %q", got)
	}
	do(t, ctx, 10*time.Second,
		chromedp.SendKeys(chromedp.ID("token-input"), "t0ken"),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
		disable)
	waitJS[bool](t, ctx, "Secret Invalid", `document.getElementById("message").textContent.includes("Secret Invalid")`, 10*time.Second)

	// The right secret: disabled.
	do(t, ctx, 10*time.Second, chromedp.SetValue(chromedp.ID("secret"), "demo-secret"), disable)
	waitJS[bool](t, ctx, "pinger-udp disabled", `document.getElementById("entry-state").textContent === "disabled"`, 15*time.Second)
	if e := in.entry(t, schema.GroupApp, "pinger-udp"); e.State != schema.StateDisabled {
		t.Errorf("pinger-udp: %s", e.State)
	}
	if got := eval[string](t, ctx, `sessionStorage.getItem("patrol-secret:app/pinger-udp")`); got != "demo-secret" {
		t.Errorf("stored secret: %q", got)
	}
	// The log is readable with the secret.
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`#log-form button[type="submit"]`)))
	waitJS[bool](t, ctx, "the log with the secret", `/demoapp/.test(document.getElementById("log").textContent)`, 10*time.Second)

	// A stale page: clock is disabled behind the page's back while the
	// page cannot refresh (it ignores what it fetches), so it still shows
	// clock running. Restart then says "changed meanwhile" and sends
	// nothing.
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/app/clock"))
	waitJS[bool](t, ctx, "clock's page", `document.getElementById("entry-state").textContent === "running"`, 10*time.Second)
	// The page stops taking in what it fetches (a fetch in flight when
	// the hold starts is ignored too).
	eval[bool](t, ctx, `(() => { window.Patrol.swap = function () {}; return true; })()`)
	if _, err := in.Request(t.Context(), &schema.Request{ID: "clock", Group: "app", Toggle: schema.ToggleDisable}, schema.TransportLibrary); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "clock disabled", 15*time.Second, func() bool {
		return in.entry(t, schema.GroupApp, "clock").State == schema.StateDisabled
	})
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`#actions button[data-toggle="3"]`)))
	waitJS[bool](t, ctx, "changed meanwhile", `document.getElementById("message").textContent.includes("changed meanwhile")`, 10*time.Second)
	if got := eval[string](t, ctx, `document.getElementById("entry-state").textContent`); got != "running" {
		t.Errorf("the stale page shows %q", got)
	}
	if e := in.entry(t, schema.GroupApp, "clock"); e.State != schema.StateDisabled {
		t.Errorf("clock after a refused restart: %s, want disabled", e.State)
	}
}

// TestEntryHealth: the entry page of the example's api shows its health,
// the STATUS= it sent, its probes and its watchdog; api waits (a striped
// "waiting" badge) until db is ready.
func TestEntryHealth(t *testing.T) {
	in := startPatrol(t, exampleConfig(t, nil))
	ctx := browser(t)
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/app/api"))
	// db is ready 3 s after its start: api waits until then.
	waitJS[bool](t, ctx, "api waiting", `document.getElementById("entry-state").textContent === "waiting"`, 10*time.Second)
	waitJS[bool](t, ctx, "api running", `document.getElementById("entry-state").textContent === "running"`, 20*time.Second)
	waitJS[bool](t, ctx, "the health line", `((e) => e && e.textContent.startsWith("ready (since "))(document.querySelector(".detail-health"))`, 10*time.Second)
	waitJS[bool](t, ctx, "the app's status", `((e) => e && e.textContent.startsWith("serving since "))(document.querySelector(".detail-status"))`, 10*time.Second)
	waitJS[bool](t, ctx, "the liveness probe", `((e) => e && e.textContent.startsWith("liveness passing (HTTP 200"))(document.querySelector(".detail-probes"))`, 15*time.Second)
	screenshot(t, ctx, "entry-api.png")
}
