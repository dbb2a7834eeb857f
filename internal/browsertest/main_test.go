package browsertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// demoapp is the example's demo app, built once by TestMain.
var demoapp string

// screenshotDir receives a copy of every screenshot, for people to look at.
const screenshotDir = "/tmp/patrol-screenshots"

func TestMain(m *testing.M) {
	patrol.Launcher()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// Patrol makes the test process a subreaper when it starts; do it up
	// front so that whatever a browser or a daemon leaves behind is ours
	// to reap in every test order.
	if err := testhelper.SetSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "subreaper:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "patrol-browsertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	demoapp = filepath.Join(dir, "demoapp")
	build := exec.Command("go", "build", "-o", demoapp, "../../examples/demoapp")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the demo app:", err)
		return 1
	}
	fds, goroutines := testhelper.CountFDs(), runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		// A browser's helpers outlive it by a moment; as their subreaper we
		// collect them before counting what is left.
		deadline := time.Now().Add(10 * time.Second)
		for len(testhelper.Children()) > 0 && time.Now().Before(deadline) {
			testhelper.ReapOrphans()
			time.Sleep(20 * time.Millisecond)
		}
		for _, p := range testhelper.LeakCheck(fds, goroutines+8) {
			fmt.Fprintln(os.Stderr, "leak check:", p)
			code = 1
		}
	}
	return code
}

// instance is a Patrol running in the test process, on loopback ports.
type instance struct {
	*patrol.Patrol
	dir    string // holds config.json and bin/demoapp
	config string
	base   string // http://127.0.0.1:PORT
	cancel context.CancelFunc
	done   chan error
}

// exampleConfig returns examples/config.json with ping-timeout 1, so that
// the pinging apps start after two seconds, and edit applied.
func exampleConfig(t *testing.T, edit func(cfg map[string]any)) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../../examples/config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "$schema")
	cfg["ping-timeout"] = 1
	if edit != nil {
		edit(cfg)
	}
	return cfg
}

// startPatrol writes cfg as config.json into a temp dir that holds the demo
// app as bin/demoapp, and runs Patrol on it (HTTP and UDP on free loopback
// ports) until the test ends: then it shuts down gracefully, stopping
// every app.
func startPatrol(t *testing.T, cfg map[string]any) *instance {
	t.Helper()
	return startPatrolFiles(t, cfg, nil)
}

// startPatrolFiles is startPatrol with more files copied into the config's
// directory: files maps a path there to the file to copy.
func startPatrolFiles(t *testing.T, cfg map[string]any, files map[string]string) *instance {
	t.Helper()
	chromium(t) // every test needs the browser: skip before starting anything
	dir := t.TempDir()
	files = maps.Clone(files)
	if files == nil {
		files = map[string]string{}
	}
	files["bin/demoapp"] = demoapp
	for to, from := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, to)), 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, from, filepath.Join(dir, to))
	}
	in := &instance{dir: dir, config: filepath.Join(dir, "config.json")}
	writeJSON(t, in.config, cfg)
	in.start(t, "127.0.0.1:0")
	return in
}

// start runs Patrol on the instance's config with HTTP on addr.
func (in *instance) start(t *testing.T, addr string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := patrol.New(patrol.Options{ConfigPath: in.config, HTTPAddr: addr, UDPAddr: "127.0.0.1:0", Log: log})
	if err != nil {
		t.Fatalf("new patrol: %q", patrol.Problems(err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.Patrol, in.cancel, in.done = p, cancel, make(chan error, 1)
	go func() { in.done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-in.done:
		t.Fatalf("run patrol: %v", err)
	}
	in.base = "http://" + p.HTTPAddr()
	t.Cleanup(func() { in.stop(t) })
}

// stop shuts Patrol down gracefully and waits for it; later calls return
// at once.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("run patrol: %v", err)
		}
		in.done <- nil
	case <-time.After(60 * time.Second):
		in.Kill()
		t.Errorf("graceful shutdown did not finish in 60 s")
	}
}

// entry returns an entry's status.
func (in *instance) entry(t *testing.T, group schema.Group, id string) *schema.Response {
	t.Helper()
	st, err := in.Status(t.Context())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	m := st.Apps
	if group == schema.GroupService {
		m = st.Services
	}
	e := m[id]
	if e == nil {
		t.Fatalf("no %s %q in the status", group, id)
	}
	return e
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeJSON replaces path with v as JSON (or v itself when it is a string)
// atomically, as an editor's save does.
func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, ok := v.(string)
	if !ok {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		data = string(b)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// testWriter sends Patrol's log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// chromium returns the browser to test with. When there is none, the test
// fails in CI (CI=true: the browser tests must run there) and is skipped
// elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const how = "chromium is missing: install it with `apt-get install -y chromium` (Debian) to run the browser tests"
	if os.Getenv("CI") == "true" {
		t.Fatal(how + " (CI=true: the browser tests must run)")
	}
	t.Skip(how)
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns the
// context of its tab; the browser is closed (and waited for) when the test
// ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	// Chromium now and then dies while it starts on a loaded machine
	// (crashpad's "no stack mapping"): a second start is a fresh browser.
	var err error
	for range 2 {
		var ctx context.Context
		if ctx, err = startBrowser(t); err == nil {
			return ctx
		}
		t.Logf("chromium did not start, once more: %v", err)
	}
	t.Fatalf("start chromium: %v", err)
	return nil
}

func startBrowser(t *testing.T) (context.Context, error) {
	path := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		chromedp.FromContext(ctx).Allocator.Wait()
	})
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		return nil, err
	}
	return ctx, nil
}

// do runs browser actions with a timeout.
func do(t *testing.T, ctx context.Context, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript expression in the page until it is truthy and
// returns its value; on timeout the test fails with what the page shows.
func waitJS[T any](t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Poll[T](expr, chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ""`))
		t.Fatalf("waiting for %s: %v\nthe page shows:\n%s", what, err, body)
	}
	return v
}

// screenshot saves a full-page PNG into the test's temp dir and a copy
// into /tmp/patrol-screenshots, and logs its path, size and dimensions.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	img, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s: %d bytes, %dx%d", path, len(img), cfg.Width, cfg.Height)
	if err := os.MkdirAll(screenshotDir, 0o755); err == nil {
		if err := os.WriteFile(filepath.Join(screenshotDir, name), img, 0o644); err == nil {
			t.Logf("copied to %s", filepath.Join(screenshotDir, name))
		}
	}
}

// jsString quotes s for a JavaScript expression.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
