package patrol_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/exec"
	"github.com/patrolhq/patrol/schema"
)

// logInstances counts the instances whose log files are under root (one
// or two files each), and the files.
func logInstances(t *testing.T, root string) (instances, files int) {
	t.Helper()
	stems := map[string]bool{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".log") {
			files++
			stem, _, _ := strings.Cut(filepath.Base(p), ".")
			stems[stem] = true
		}
		return nil
	})
	return len(stems), files
}

// TestLogFilesCappedByCount: a crash loop with no backoff at all
// (reset-after 0: every restart immediate) and log-retention.max-instances
// 5 never keeps more than 5 instances' files plus what the remover has
// not reached yet, however many starts it makes, and once it stops the log
// directory holds exactly the 5 newest instances; the files an earlier
// Patrol left there are counted in and gone too.
func TestLogFilesCappedByCount(t *testing.T) {
	cfg := config(map[string]any{
		"crasher": appCfg(t, map[string]any{"backoff": map[string]any{"reset-after": 0}}, "exit", "1"),
	}, map[string]any{"log-retention": map[string]any{"max-instances": 5}})
	dir := t.TempDir()
	root := filepath.Join(dir, "logs", "crasher")
	// An earlier Patrol's files: 30 instances, a day ago.
	var oldDay string
	for i := range 30 {
		out, errPath := exec.LogFiles(&desired.App{LogDirectory: root}, time.Now().Add(-24*time.Hour+time.Duration(i)*time.Second))
		oldDay = filepath.Dir(out)
		for _, p := range []string{out, errPath} {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg["apps"].(map[string]any)["crasher"].(map[string]any)["working-directory"] = dir
	d := startPatrol(t, cfg)
	most := 0
	waitFor(t, "60 restarts", 60*time.Second, func() bool {
		n, _ := logInstances(t, root)
		most = max(most, n)
		return d.app(t, "crasher").Restarts >= 60
	})
	if err := d.Toggle(t.Context(), schema.GroupApp, "crasher", schema.ToggleDisable, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "5 instances' files left", 10*time.Second, func() bool {
		n, files := logInstances(t, root)
		return n == 5 && files == 10
	})
	t.Logf("at most %d instances' files seen during 60 restarts (cap 5, %d more may wait for the remover)", most, 64)
	if most > 5+64+1 {
		t.Errorf("%d instances' files at once, more than the cap and the remover's backlog", most)
	}
	if _, err := os.Stat(oldDay); !os.IsNotExist(err) {
		t.Errorf("the emptied day directory %s is still there (%v)", oldDay, err)
	}
}
