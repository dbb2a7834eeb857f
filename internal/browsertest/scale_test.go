package browsertest_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patrolhq/patrol/schema"
)

// TestDashboard500 checks that the dashboard of 500 apps renders in
// reasonable time and stays responsive while events stream: a background
// load restarts 100 apps a second (about 500 events a second) while the
// test measures how long the page's main thread takes to answer, how often
// the page refetches the status, and how long a click takes to show its
// effect. The bounds are generous (the race detector, two cores); the
// numbers are logged.
func TestDashboard500(t *testing.T) {
	if testing.Short() {
		t.Skip("500 processes; skipped with -short")
	}
	chromium(t)
	const n = 500
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	apps := map[string]any{}
	for i := range n {
		apps[fmt.Sprintf("app-%03d", i)] = map[string]any{"binary": sleep, "args": []any{"3600"}, "stop-timeout": 5}
	}
	in := startPatrol(t, map[string]any{"apps": apps, "history": 5})
	ctx := browser(t)
	waitFor(t, "500 running apps", 90*time.Second, func() bool {
		st, err := in.Status(t.Context())
		if err != nil {
			return false
		}
		for _, e := range st.Apps {
			if e.State != schema.StateRunning {
				return false
			}
		}
		return len(st.Apps) == n
	})

	start := time.Now()
	do(t, ctx, 60*time.Second, chromedp.Navigate(in.base+"/"))
	waitJS[bool](t, ctx, "500 running rows", `document.querySelectorAll("#apps tbody .state-running").length === 500`, 30*time.Second)
	firstRender := time.Since(start)
	t.Logf("first full render of %d rows: %v (navigation included)", n, firstRender)
	if firstRender > 15*time.Second {
		t.Errorf("first render took %v", firstRender)
	}
	eval[bool](t, ctx, `(() => {
		window.__long = [];
		new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); }).observe({type: "longtask"});
		performance.clearResourceTimings();
		performance.setResourceTimingBufferSize(10000);
		return true;
	})()`)

	// The load: 10 restarts every 100 ms, apps 0-249 only (the click goes
	// to app-400).
	loadCtx, stopLoad := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var restarts int
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for k := 0; ; k++ {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			for j := range 10 {
				id := fmt.Sprintf("app-%03d", (k*10+j)%250)
				if _, err := in.Request(loadCtx, &schema.Request{ID: id, Group: "app", Toggle: schema.ToggleRestart}, schema.TransportLibrary); err == nil {
					restarts++
				}
			}
		}
	})
	defer func() { stopLoad(); wg.Wait() }()
	phase := time.Now()

	// The main thread answers while events stream.
	var lat []time.Duration
	for range 40 {
		t0 := time.Now()
		eval[float64](t, ctx, `performance.now()`)
		lat = append(lat, time.Since(t0))
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(lat)
	t.Logf("main thread round trips while streaming: median %v, max %v", lat[len(lat)/2], lat[len(lat)-1])
	if lat[len(lat)-1] > 3*time.Second {
		t.Errorf("the page did not answer for %v", lat[len(lat)-1])
	}

	// A click still does its job promptly.
	t0 := time.Now()
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`tr[data-key="app/app-400"] button[aria-label="Disable app-400"]`)))
	waitJS[bool](t, ctx, "app-400 disabled", cellJS("app-400", "state")+` === "disabled"`, 20*time.Second)
	click := time.Since(t0)
	t.Logf("click Disable to the row showing disabled: %v", click)
	if click > 10*time.Second {
		t.Errorf("the click took %v to show", click)
	}
	if msg := eval[string](t, ctx, `document.getElementById("message").textContent`); msg != "app app-400: done." {
		t.Errorf("message: %q", msg)
	}

	stopLoad()
	wg.Wait()
	elapsed := time.Since(phase)
	fetches := eval[int](t, ctx, `performance.getEntriesByType("resource").filter((e) => e.name.includes("fragment=live")).length`)
	long := eval[[]float64](t, ctx, `window.__long`)
	longMax := 0.0
	for _, d := range long {
		longMax = max(longMax, d)
	}
	rate := float64(fetches) / elapsed.Seconds()
	t.Logf("load phase %v: %d restarts, %d status fetches (%.1f/s), %d long tasks (max %.0f ms)", elapsed.Round(time.Millisecond), restarts, fetches, rate, len(long), longMax)
	if rate > 4.5 {
		t.Errorf("the page fetched the status %.1f times a second", rate)
	}
}
