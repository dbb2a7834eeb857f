package browsertest_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patrolhq/patrol/schema"
)

// rowJS is a JavaScript expression for the dashboard row of an app.
func rowJS(id string) string {
	return `document.querySelector('tr[data-key="app/` + id + `"]')`
}

// cellJS is the text of one cell (a class of td) of an app's row, or "".
func cellJS(id, cell string) string {
	return `((r) => r ? r.querySelector("td.` + cell + `").textContent : "")(` + rowJS(id) + `)`
}

// TestDashboard loads the dashboard of the example config and checks that
// every app appears with the state Patrol reports; then it kills an app's
// process and sees the new PID without a reload, and disables an app with
// its button and sees it stop.
func TestDashboard(t *testing.T) {
	in := startPatrol(t, exampleConfig(t, nil))
	ctx := browser(t)

	// The pinging apps start after 2 × ping-timeout: wait until every app
	// has settled, so that the page has something definite to show.
	want := map[string]schema.State{
		"clock": schema.StateRunning, "daemon": schema.StateRunning, "pinger-http": schema.StateRunning,
		"pinger-udp": schema.StateRunning, "stubborn": schema.StateDisabled,
		"db": schema.StateRunning, "api": schema.StateRunning, "workers": schema.StateRunning, "workers-1": schema.StateRunning,
	}
	waitFor(t, "the example's apps to run", 30*time.Second, func() bool {
		for id, st := range want {
			if in.entry(t, schema.GroupApp, id).State != st {
				return false
			}
		}
		return true
	})

	start := time.Now()
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/"))
	// The example's 10 apps, workers twice (replicas: 2).
	const rows = 11
	n := waitJS[int](t, ctx, "every app's row", `document.querySelectorAll("#apps tbody tr").length >= `+strconv.Itoa(rows)+` && document.querySelectorAll("#apps tbody tr").length`, 15*time.Second)
	t.Logf("dashboard rendered %d apps in %v", n, time.Since(start))
	if n != rows {
		t.Errorf("rows: got %d, want %d", n, rows)
	}
	// api has checks that passed: a "ready" health badge; clock has none.
	waitJS[bool](t, ctx, "api's health badge", cellJS("api", "health")+` === "ready"`, 10*time.Second)
	if got := eval[string](t, ctx, cellJS("clock", "health")); got != "-" {
		t.Errorf("clock (no checks) shows health %q", got)
	}
	for id, st := range want {
		waitJS[bool](t, ctx, id+" "+string(st), cellJS(id, "state")+` === `+jsString(string(st)), 10*time.Second)
	}
	// flaky crash-loops: whatever it shows must be a state it can be in.
	switch got := eval[string](t, ctx, cellJS("flaky", "state")); got {
	case "running", "starting", "backoff", "stopped":
	default:
		t.Errorf("flaky shows state %q", got)
	}
	// The PID shown is the one Patrol has.
	clock := in.entry(t, schema.GroupApp, "clock")
	waitJS[bool](t, ctx, "clock's pid", cellJS("clock", "pid")+` === `+jsString(strconv.Itoa(int(clock.PID))), 10*time.Second)
	waitJS[bool](t, ctx, "the config banner", `document.getElementById("config-revision").textContent === `+jsString(configRevision(t, in)), 10*time.Second)
	if eval[bool](t, ctx, `!document.getElementById("config-error").hidden`) {
		t.Error("the config error shows for a good config")
	}
	if got := eval[string](t, ctx, `document.getElementById("conn").textContent`); got != "live" {
		t.Errorf("connection indicator: got %q, want live", got)
	}
	screenshot(t, ctx, "dashboard.png")
	// The phone layout: each row a card.
	do(t, ctx, 10*time.Second, chromedp.EmulateViewport(390, 844))
	waitJS[bool](t, ctx, "the phone layout", `getComputedStyle(document.querySelector("#apps tbody tr")).display === "block"`, 5*time.Second)
	screenshot(t, ctx, "dashboard-phone.png")
	do(t, ctx, 10*time.Second, chromedp.EmulateViewport(1366, 900))

	// Kill clock's process: the row shows the new PID, without a reload
	// (the marker set in the page survives).
	eval[bool](t, ctx, `window.__noReload = true`)
	old := int(clock.PID)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pid := waitJS[string](t, ctx, "clock's new pid", `((p) => p !== "-" && p !== "`+strconv.Itoa(old)+`" && p)(`+cellJS("clock", "pid")+`)`, 15*time.Second)
	if now := in.entry(t, schema.GroupApp, "clock"); pid != strconv.Itoa(int(now.PID)) {
		t.Errorf("page pid %s, Patrol's %d", pid, now.PID)
	}
	if !eval[bool](t, ctx, `window.__noReload === true`) {
		t.Error("the page was reloaded")
	}
	waitJS[bool](t, ctx, "clock's last exit", cellJS("clock", "exit")+` === "137 (signal)"`, 10*time.Second)

	// Disable clock with its button: the row says disabled and the process
	// is gone.
	newPID, _ := strconv.Atoi(pid)
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`tr[data-key="app/clock"] button[aria-label="Disable clock"]`)))
	waitJS[bool](t, ctx, "clock disabled", cellJS("clock", "state")+` === "disabled"`, 15*time.Second)
	waitJS[bool](t, ctx, "clock's override badge", cellJS("clock", "override")+` === "disabled"`, 10*time.Second)
	waitFor(t, fmt.Sprintf("clock's process %d to be gone", newPID), 15*time.Second, func() bool {
		return syscall.Kill(newPID, 0) == syscall.ESRCH
	})
	if e := in.entry(t, schema.GroupApp, "clock"); e.State != schema.StateDisabled || e.PID != 0 {
		t.Errorf("clock after Disable: state %s pid %d", e.State, e.PID)
	}
	msg := eval[string](t, ctx, `document.getElementById("message").textContent`)
	if msg != "app clock: done." {
		t.Errorf("message: got %q", msg)
	}
	// And back: the same row now offers Enable.
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`tr[data-key="app/clock"] button[aria-label="Enable clock"]`)))
	waitJS[bool](t, ctx, "clock running again", cellJS("clock", "state")+` === "running"`, 15*time.Second)
}

func configRevision(t *testing.T, in *instance) string {
	t.Helper()
	st, err := in.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.Config.Revision
}

// TestReconnect: when Patrol restarts, the open dashboard says it is
// reconnecting, reconnects by itself and shows the new Patrol, without a
// reload.
func TestReconnect(t *testing.T) {
	in := startPatrol(t, exampleConfig(t, func(cfg map[string]any) {
		// Only clock: a quick restart.
		apps := cfg["apps"].(map[string]any)
		for id := range apps {
			if id != "clock" {
				delete(apps, id)
			}
		}
	}))
	ctx := browser(t)
	first, err := in.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/"))
	waitJS[bool](t, ctx, "the first Patrol", `document.getElementById("patrol-line").textContent.includes(`+jsString(first.InstanceID)+`) && document.getElementById("conn").textContent === "live"`, 10*time.Second)
	eval[bool](t, ctx, `window.__noReload = true`)

	addr := in.HTTPAddr()
	in.stop(t)
	waitJS[bool](t, ctx, "the page to notice", `document.getElementById("conn").textContent === "reconnecting…"`, 10*time.Second)
	in.start(t, addr)
	second, err := in.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	waitJS[bool](t, ctx, "the second Patrol", `document.getElementById("patrol-line").textContent.includes(`+jsString(second.InstanceID)+`) && document.getElementById("conn").textContent === "live"`, 20*time.Second)
	if !eval[bool](t, ctx, `window.__noReload === true`) {
		t.Error("the page was reloaded")
	}
	waitJS[bool](t, ctx, "clock's new pid", cellJS("clock", "pid")+` === `+jsString(strconv.Itoa(int(in.entry(t, schema.GroupApp, "clock").PID))), 10*time.Second)
}

// TestServices: a service (the example's init script, management 2) shows
// in the services table with its state, can be disabled from there, and
// has an entry page without a log viewer.
func TestServices(t *testing.T) {
	data, err := os.ReadFile("../../examples/services.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	// Only the init script: the others need systemctl and service.
	cfg["services"] = map[string]any{"demo": cfg["services"].(map[string]any)["demo"]}
	cfg["tick-every"] = 1
	in := startPatrolFiles(t, cfg, map[string]string{"initd/demo-service": "../../examples/initd/demo-service"})
	script := filepath.Join(in.dir, "initd", "demo-service")
	t.Cleanup(func() {
		// Patrol leaves services running when it stops; this one is ours.
		if out, err := exec.Command(script, "stop").CombinedOutput(); err != nil {
			t.Logf("%s stop: %v %s", script, err, out)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(readFile(filepath.Join(in.dir, "initd", "demo-service.pid"))))
		if pid > 0 {
			waitFor(t, "the demo service to stop", 10*time.Second, func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH })
		}
	})
	ctx := browser(t)
	waitFor(t, "the demo service to run", 30*time.Second, func() bool {
		return in.entry(t, schema.GroupService, "demo").State == schema.StateRunning
	})
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/"))
	svc := `((r) => r ? r.querySelector("td.state").textContent : "")(document.querySelector('tr[data-key="service/demo"]'))`
	waitJS[bool](t, ctx, "the service row", svc+` === "running"`, 10*time.Second)
	if !eval[bool](t, ctx, `document.getElementById("apps-empty").hidden === false && document.querySelector("#apps").closest(".table-wrap").hidden`) {
		t.Error("an empty apps table is shown")
	}
	do(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`tr[data-key="service/demo"] button[aria-label="Disable demo"]`)))
	waitJS[bool](t, ctx, "the service disabled", svc+` === "disabled"`, 20*time.Second)
	if e := in.entry(t, schema.GroupService, "demo"); e.State != schema.StateDisabled {
		t.Errorf("demo after Disable: %s", e.State)
	}
	do(t, ctx, 30*time.Second, chromedp.Navigate(in.base+"/service/demo"))
	waitJS[bool](t, ctx, "the service page", `document.getElementById("entry-state").textContent === "disabled"`, 10*time.Second)
	if eval[bool](t, ctx, `document.getElementById("log") !== null`) {
		t.Error("a service page has a log viewer")
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
