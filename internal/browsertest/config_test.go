package browsertest_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConfigErrorBanner: a broken config file shows in red on the
// dashboard, without a reload, and goes away when the file is fixed.
func TestConfigErrorBanner(t *testing.T) {
	cfg := exampleConfig(t, nil)
	in := startPatrol(t, cfg)
	ctx := browser(t)
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/"))
	waitJS[bool](t, ctx, "the config banner", `document.getElementById("config-path").textContent.endsWith("config.json")`, 10*time.Second)
	rev := eval[string](t, ctx, `document.getElementById("config-revision").textContent`)

	writeJSON(t, in.config, `{"apps": {"clock": {"binary": ""}}, "tick-evry": 3}`)
	text := waitJS[string](t, ctx, "the config error", `!document.getElementById("config-error").hidden && document.getElementById("config-error-text").textContent`, 15*time.Second)
	for _, want := range []string{"apps.clock.binary", "tick-evry"} {
		if !strings.Contains(text, want) {
			t.Errorf("config error %q does not mention %s", text, want)
		}
	}
	if eval[string](t, ctx, `getComputedStyle(document.getElementById("config-error-text")).color`) != "rgb(164, 14, 38)" {
		t.Error("the config error is not red")
	}
	if got := eval[string](t, ctx, `document.getElementById("config-revision").textContent`); got != rev {
		t.Errorf("revision after a failed reload: got %s, want the last good %s", got, rev)
	}
	screenshot(t, ctx, "dashboard-config-error.png")

	cfg["tick-every"] = 20
	writeJSON(t, in.config, cfg)
	waitJS[bool](t, ctx, "the error to clear", `document.getElementById("config-error").hidden && document.getElementById("config-revision").textContent !== `+jsString(rev), 15*time.Second)
}

// TestPlanView: the plan page shows the pending plan and previews a pasted
// config in the CLI's text format; an invalid one lists its problems.
func TestPlanView(t *testing.T) {
	cfg := exampleConfig(t, nil)
	in := startPatrol(t, cfg)
	ctx := browser(t)
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/plan"))
	waitJS[bool](t, ctx, "the pending plan", `document.getElementById("plan-current").textContent.length > 0`, 10*time.Second)

	apps := cfg["apps"].(map[string]any)
	apps["clock"].(map[string]any)["args"] = []any{"-interval", "1s"}
	delete(apps, "daemon")
	apps["extra"] = map[string]any{"binary": "bin/demoapp", "args": []any{"-interval", "5s"}}
	next, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	// The preview is a form: the page is rendered again with the plan.
	do(t, ctx, 10*time.Second,
		chromedp.SetValue(chromedp.ID("config-text"), string(next)),
		chromedp.Click(chromedp.CSS(`#preview-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("plan-preview")))
	plan := waitJS[string](t, ctx, "the preview", `!document.getElementById("plan-preview").hidden && document.getElementById("plan-preview").textContent`, 10*time.Second)
	t.Logf("previewed plan:\n%s", plan)
	// The CLI's columns, compared with single spaces.
	flat := strings.Join(strings.Fields(plan), " ")
	for _, want := range []string{
		`~ app clock restart (args: ["-interval","2s"] -> ["-interval","1s"])`,
		"+ app extra start (added)",
		"- app daemon stop (removed)",
		// (and ", 1 waiting for dependencies" while the example's api
		// waits for db)
		"Plan: 1 to start, 1 to restart, 0 to update in place, 1 to stop",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("preview lacks %q", want)
		}
	}
	// Nothing was applied.
	if e := in.entry(t, "app", "clock"); len(e.History) != 0 {
		t.Errorf("clock was restarted by a preview: %+v", e.History)
	}
	screenshot(t, ctx, "plan.png")

	do(t, ctx, 10*time.Second,
		chromedp.SetValue(chromedp.ID("config-text"), `{"apps": {"web": {}}}`),
		chromedp.Click(chromedp.CSS(`#preview-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("preview-errors")))
	errs := waitJS[string](t, ctx, "the problems", `!document.getElementById("preview-errors").hidden && document.getElementById("preview-errors").textContent`, 10*time.Second)
	if !strings.Contains(errs, "apps.web.binary") {
		t.Errorf("problems: %q", errs)
	}
	if !eval[bool](t, ctx, `document.getElementById("plan-preview").hidden`) {
		t.Error("the old preview still shows next to the problems")
	}
}
