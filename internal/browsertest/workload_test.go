package browsertest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patrolhq/patrol/schema"
)

// TestScaleAndSchedule: the bundled example's workers page scales them
// with its Replicas field (a third replica runs, the override says so),
// and the report job's page shows its schedule and next run.
func TestScaleAndSchedule(t *testing.T) {
	in := startPatrol(t, exampleConfig(t, nil))
	ctx := browser(t)
	waitFor(t, "two workers", 15*time.Second, func() bool {
		return in.entry(t, schema.GroupApp, "workers").State == schema.StateRunning &&
			in.entry(t, schema.GroupApp, "workers-1").State == schema.StateRunning
	})
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/app/workers"))
	waitJS[bool](t, ctx, "the replicas detail", `document.querySelector(".detail-replicas").textContent === "2"`, 10*time.Second)
	do(t, ctx, 10*time.Second,
		chromedp.SetValue(chromedp.ID("replicas"), "3"),
		chromedp.Click(chromedp.CSS(`button[value="scale"]`)))
	waitFor(t, "a third worker", 15*time.Second, func() bool {
		st, err := in.Status(t.Context()) // workers-2 is not in the status before the scale
		return err == nil && st.Apps["workers-2"] != nil && st.Apps["workers-2"].State == schema.StateRunning
	})
	if ov := in.entry(t, schema.GroupApp, "workers").Override; ov == nil || ov.Replicas != 3 {
		t.Errorf("workers' override after the scale: %+v", ov)
	}
	waitJS[bool](t, ctx, "the override detail", `document.querySelector(".detail-override").textContent.startsWith("scaled to 3 replicas")`, 10*time.Second)

	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/app/report"))
	waitJS[bool](t, ctx, "the schedule detail", `document.querySelector(".detail-schedule").textContent === "@every 1m"`, 10*time.Second)
	next := eval[string](t, ctx, `document.querySelector(".detail-next-run").textContent`)
	if next == "-" || !strings.Contains(next, "T") {
		t.Errorf("next run on the page: %q", next)
	}
	screenshot(t, ctx, "entry-report.png")
}
