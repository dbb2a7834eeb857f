package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// liveConfig is a config of sleeping helper apps: each app maps to extra
// helper arguments (which sleep ignores, so changing them changes only
// the args).
func liveConfig(apps map[string]string, names map[string]string) string {
	var entries []string
	for id, extra := range apps {
		args := []string{"sleep", ""}
		if extra != "" {
			args = append(args, extra)
		}
		name := ""
		if n, ok := names[id]; ok {
			name = fmt.Sprintf(`"name": %q`, n)
		}
		entries = append(entries, fmt.Sprintf("%q: %s", id, helperApp(name, args...)))
	}
	return fmt.Sprintf(`{"tick-every": 60, "apps": {%s}}`, strings.Join(entries, ",\n"))
}

// replaceFile writes data to path atomically, as editors and git do.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func pids(st *schema.Status) map[string]uint32 {
	out := map[string]uint32{}
	for id, a := range st.Apps {
		if a.State == schema.StateRunning {
			out[id] = a.PID
		}
	}
	return out
}

// TestLiveEdit: with five apps running, the file is atomically replaced
// with one app's args changed, one added and one removed. Before, `patrol
// plan` shows exactly those three actions and changes nothing; after, the
// change is applied within 250 ms and the other three keep their pids.
func TestLiveEdit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, []byte(liveConfig(map[string]string{"a": "", "b": "", "c": "", "changed": "v1", "removed": ""}, nil)), 0o644)
	p := startDaemon(t, path)
	poll(t, "five apps running", 10*time.Second, func() bool { return len(pids(p.status(t))) == 5 })
	old := pids(p.status(t))
	removedPGID := int(old["removed"])

	next := liveConfig(map[string]string{"a": "", "b": "", "c": "", "changed": "v2", "added": ""}, nil)
	nextPath := filepath.Join(dir, "next.json")
	os.WriteFile(nextPath, []byte(next), 0o644)

	// The plan first: exactly three actions, nothing applied.
	code, out, errOut := cli(t, "plan", nextPath, "--server", p.addr, "--detailed-exitcode")
	if code != exitChanges {
		t.Errorf("plan exit %d, want 2; stderr %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"+ app     added    start    (added)",
		`~ app     changed  restart  (args: ["patrol-helper","sleep","","v1"] -> ["patrol-helper","sleep","","v2"])`,
		"- app     removed  stop     (removed)",
		"Plan: 1 to start, 1 to restart, 0 to update in place, 1 to stop.",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	code, js, _ := cli(t, "plan", nextPath, "--server", p.addr, "--json")
	var plan schema.Plan
	if err := json.Unmarshal([]byte(js), &plan); code != 0 || err != nil || plan.Summary != (schema.PlanSummary{Start: 1, Restart: 1, Stop: 1}) {
		t.Errorf("plan --json: exit %d, %v, %+v", code, err, plan.Summary)
	}
	if got := pids(p.status(t)); fmt.Sprint(got) != fmt.Sprint(old) {
		t.Fatalf("plan changed something: %v -> %v", old, got)
	}
	// An identical config: no changes, exit 0.
	if code, out, _ := cli(t, "plan", path, "--server", p.addr, "--detailed-exitcode"); code != 0 || out != "No changes.\n" {
		t.Errorf("identical config: exit %d, %q", code, out)
	}

	start := time.Now()
	replaceFile(t, path, next)
	var now map[string]uint32
	poll(t, "the edit applied", 5*time.Second, func() bool {
		now = pids(p.status(t))
		return now["changed"] != 0 && now["changed"] != old["changed"] && now["added"] != 0 && now["removed"] == 0 &&
			!testhelper.Alive(removedPGID)
	})
	took := time.Since(start)
	t.Logf("edit applied in %v", took)
	if took > 250*time.Millisecond {
		t.Errorf("edit took %v to apply, want under 250 ms", took)
	}
	for _, id := range []string{"a", "b", "c"} {
		if now[id] != old[id] {
			t.Errorf("untouched app %s restarted: pid %d -> %d", id, old[id], now[id])
		}
	}
	st := p.status(t)
	if h := st.Apps["removed"]; h != nil && h.State == schema.StateRunning {
		t.Errorf("removed app still listed as running: %+v", h)
	}
	shutdown(t, p)
}

// TestInPlaceEdit: changing only the name keeps the pid and updates status.
func TestInPlaceEdit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, []byte(liveConfig(map[string]string{"web": ""}, map[string]string{"web": "Web"})), 0o644)
	p := startDaemon(t, path)
	poll(t, "running", 10*time.Second, func() bool { return len(pids(p.status(t))) == 1 })
	pid := p.status(t).Apps["web"].PID
	replaceFile(t, path, liveConfig(map[string]string{"web": ""}, map[string]string{"web": "Web 2"}))
	poll(t, "the new name", 5*time.Second, func() bool { return p.status(t).Apps["web"].Name == "Web 2" })
	if a := p.status(t).Apps["web"]; a.PID != pid || a.Restarts != 0 {
		t.Errorf("an in-place change restarted the app: pid %d -> %d, restarts %d", pid, a.PID, a.Restarts)
	}
	shutdown(t, p)
}

// TestBadEditsKeepApps: broken JSON, a validation error and a deleted file
// each leave every app untouched and show config.error; fixing the file
// clears it and applies.
func TestBadEditsKeepApps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	good := liveConfig(map[string]string{"web": "", "db": ""}, nil)
	os.WriteFile(path, []byte(good), 0o644)
	p := startDaemon(t, path)
	poll(t, "running", 10*time.Second, func() bool { return len(pids(p.status(t))) == 2 })
	old := pids(p.status(t))
	rev := p.status(t).Config.Revision
	for _, bad := range []struct {
		name  string
		apply func()
		want  string
	}{
		{"broken JSON", func() { replaceFile(t, path, good[:len(good)/2]) }, "invalid JSON"},
		{"validation error", func() { replaceFile(t, path, `{"apps": {"web": {"binnary": "/x"}}}`) }, `apps.web.binnary: unknown key, did you mean "binary"?`},
		{"deleted file", func() { os.Remove(path) }, "no such file or directory"},
	} {
		bad.apply()
		var cfg *schema.ConfigStatus
		poll(t, bad.name+" reported", 5*time.Second, func() bool {
			cfg = p.status(t).Config
			return strings.Contains(cfg.Error, bad.want)
		})
		if cfg.ErrorSince == "" || cfg.Revision != rev {
			t.Errorf("%s: config status %+v", bad.name, cfg)
		}
		if got := pids(p.status(t)); fmt.Sprint(got) != fmt.Sprint(old) {
			t.Errorf("%s changed the apps: %v -> %v", bad.name, old, got)
		}
	}
	// Fixed, with a change: applied, the error gone.
	replaceFile(t, path, liveConfig(map[string]string{"web": "", "db": "", "new": ""}, nil))
	poll(t, "the fix applied", 5*time.Second, func() bool {
		st := p.status(t)
		return st.Config.Error == "" && len(pids(st)) == 3
	})
	if got := pids(p.status(t)); got["web"] != old["web"] || got["db"] != old["db"] {
		t.Errorf("the fix restarted unchanged apps: %v -> %v", old, got)
	}
	shutdown(t, p)
}

// TestEditorSaves: a vim-style save and a Kubernetes ConfigMap symlink swap
// are each applied once, with no spurious restarts.
func TestEditorSaves(t *testing.T) {
	dir := t.TempDir()
	// The ConfigMap layout: config.json -> ..data/config.json, ..data ->
	// ..2026_1, swapped atomically.
	gen := filepath.Join(dir, "..2026_1")
	os.Mkdir(gen, 0o755)
	os.WriteFile(filepath.Join(gen, "config.json"), []byte(liveConfig(map[string]string{"web": ""}, map[string]string{"web": "v1"})), 0o644)
	os.Symlink("..2026_1", filepath.Join(dir, "..data"))
	path := filepath.Join(dir, "config.json")
	os.Symlink("..data/config.json", path)
	p := startDaemon(t, path)
	poll(t, "running", 10*time.Second, func() bool { return len(pids(p.status(t))) == 1 })
	pid := p.status(t).Apps["web"].PID

	loads := func() int {
		n := 0
		for {
			select {
			case l, ok := <-p.logs:
				if !ok {
					return n
				}
				if strings.Contains(l, `msg="config loaded"`) {
					n++
				}
			default:
				return n
			}
		}
	}
	// settle waits out late events, then returns how many loads were
	// logged since the last call.
	settle := func() int {
		time.Sleep(200 * time.Millisecond)
		return loads()
	}
	settle()

	// ConfigMap swap to v2.
	gen2 := filepath.Join(dir, "..2026_2")
	os.Mkdir(gen2, 0o755)
	os.WriteFile(filepath.Join(gen2, "config.json"), []byte(liveConfig(map[string]string{"web": ""}, map[string]string{"web": "v2"})), 0o644)
	os.Symlink("..2026_2", filepath.Join(dir, "..data_tmp"))
	os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data"))
	os.RemoveAll(gen)
	poll(t, "v2", 5*time.Second, func() bool { return p.status(t).Apps["web"].Name == "v2" })
	if n := settle(); n != 1 {
		t.Errorf("the ConfigMap swap loaded %d times, want once", n)
	}

	// A vim save of the resolved file: swap file, backup, the new content
	// written to a temp file and renamed over, the swap file removed.
	real := filepath.Join(gen2, "config.json")
	os.WriteFile(filepath.Join(gen2, ".config.json.swp"), []byte("swap"), 0o644)
	os.WriteFile(filepath.Join(gen2, "config.json~"), []byte("backup"), 0o644)
	replaceFile(t, real, liveConfig(map[string]string{"web": ""}, map[string]string{"web": "v3"}))
	os.Remove(filepath.Join(gen2, ".config.json.swp"))
	poll(t, "v3", 5*time.Second, func() bool { return p.status(t).Apps["web"].Name == "v3" })
	if n := settle(); n != 1 {
		t.Errorf("the vim save loaded %d times, want once", n)
	}
	if a := p.status(t).Apps["web"]; a.PID != pid || a.Restarts != 0 {
		t.Errorf("a name change restarted the app: pid %d -> %d", pid, a.PID)
	}
	shutdown(t, p)
}

// shutdown stops a daemon gracefully and checks it exits 0.
func shutdown(t testing.TB, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
