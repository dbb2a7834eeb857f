package exec

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
)

// TestPruneLogsInstances: the count cap keeps the newest instances of each
// log directory (both files of an instance, or its merged one), counting
// in-use files without removing them, before the size budget applies.
func TestPruneLogsInstances(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	var aFiles, bFiles [][]string
	for i := range 5 {
		when := daysAgo(float64(10 - i))
		aFiles = append(aFiles, []string{writeLog(t, a, when, "stdout", 10), writeLog(t, a, when, "stderr", 10)})
		bFiles = append(bFiles, []string{writeLog(t, b, when.Add(time.Hour), "stdmerge", 10)})
	}
	// Oldest first: a keeps its last 2 instances, b its last 2; a's
	// oldest is in use and counted, so only a[1], a[2] and b[0..2] go.
	inUse := map[string]bool{aFiles[0][0]: true}
	want := slices.Concat(aFiles[1], aFiles[2], bFiles[0], bFiles[1], bFiles[2])
	checkPrune(t, []string{a, b}, inUse, Retention{MaxInstances: 2}, pruneNow, want, 2+4+2, 80)
	mustExist(t, aFiles[0][0], aFiles[0][1], aFiles[3][0], aFiles[4][1], bFiles[3][0], bFiles[4][0])

	t.Run("then the size budget", func(t *testing.T) {
		dir := t.TempDir()
		var files []string
		for i := range 4 {
			files = append(files, writeLog(t, dir, daysAgo(float64(10-i)), "stdout", 100))
		}
		// 3 instances kept by count (300 bytes), then 1 more by size.
		checkPrune(t, []string{dir}, nil, Retention{MaxInstances: 3, MaxBytes: 250}, pruneNow, files[:2], 2, 200)
	})
}

// startLogs makes the log files of an instance of app id in root started at
// when, as StartApp does, and records the start with c.
func startLogs(t *testing.T, c *logCap, id, root string, when time.Time, keep int, shared bool) []string {
	t.Helper()
	out, errPath := LogFiles(&desired.App{LogDirectory: root}, when)
	writeSized(t, out, 0, when)
	writeSized(t, errPath, 0, when)
	c.started(id, root, out, keep, shared)
	return []string{out, errPath}
}

// logFilesIn lists the log files under root.
func logFilesIn(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// TestLogCap: a crash loop of 200 starts with a cap of 5 leaves exactly
// the 5 newest instances' files, counting those an earlier Patrol left
// (listed once), and the day directories it emptied are removed.
func TestLogCap(t *testing.T) {
	root := filepath.Join(t.TempDir(), "logs", "web")
	var c logCap
	base := time.Now().Add(-72 * time.Hour)
	// An earlier Patrol's files, two days back; one foreign file.
	for i := range 10 {
		startLogs(t, &logCap{}, "web", root, base.Add(time.Duration(i)*time.Second), 0, false)
	}
	foreign := filepath.Join(root, dayDir(base), "notes.txt")
	writeSized(t, foreign, 3, base)

	var last [][]string
	for i := range 200 {
		last = append(last, startLogs(t, &c, "web", root, time.Now().Add(time.Duration(i)*time.Microsecond), 5, false))
		if len(last) > 5 {
			last = last[1:]
		}
	}
	c.wait()
	want := append(slices.Concat(last...), foreign)
	slices.Sort(want)
	if got := logFilesIn(t, root); !slices.Equal(got, want) {
		t.Errorf("files left:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if c.errs != 0 {
		t.Errorf("%d removals failed", c.errs)
	}
	if len(c.dirs[root].stems) != 5 {
		t.Errorf("%d instances remembered, want 5", len(c.dirs[root].stems))
	}

	t.Run("emptied day directories go", func(t *testing.T) {
		root := t.TempDir()
		var c logCap
		old := startLogs(t, &c, "a", root, base, 1, false)
		startLogs(t, &c, "a", root, time.Now(), 1, false)
		c.wait()
		mustNotExist(t, old...)
		mustNotExist(t, filepath.Dir(old[0]), filepath.Dir(filepath.Dir(old[0])))
	})

	t.Run("no cap", func(t *testing.T) {
		root := t.TempDir()
		var c logCap
		for i := range 20 {
			startLogs(t, &c, "a", root, base.Add(time.Duration(i)*time.Second), 0, false)
		}
		c.wait()
		if n := len(logFilesIn(t, root)); n != 40 {
			t.Errorf("%d files, want 40", n)
		}
	})

	t.Run("shared directory: each app counts its own starts", func(t *testing.T) {
		root := t.TempDir()
		var c logCap
		before := startLogs(t, &logCap{}, "x", root, base, 0, false) // not listed: whose is it?
		var a, b [][]string
		for i := range 6 {
			a = append(a, startLogs(t, &c, "a", root, base.Add(time.Duration(2*i+1)*time.Second), 2, true))
			b = append(b, startLogs(t, &c, "b", root, base.Add(time.Duration(2*i+2)*time.Second), 2, true))
		}
		c.wait()
		want := slices.Concat(before, a[4], a[5], b[4], b[5])
		slices.Sort(want)
		if got := logFilesIn(t, root); !slices.Equal(got, want) {
			t.Errorf("files left:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	})

	t.Run("the newest start's files stay whatever their names", func(t *testing.T) {
		root := t.TempDir()
		var c logCap
		future := startLogs(t, &c, "a", root, base.Add(48*time.Hour), 1, false)
		now := startLogs(t, &c, "a", root, base, 1, false) // the clock went back
		c.wait()
		mustExist(t, now...)
		mustNotExist(t, future...)
	})
}

// BenchmarkLogCapStart is the cost a start pays for the cap: "under"
// counts a start below the cap; "at" a start at it in a crash loop, which
// hands the oldest instance to the remover (whose unlinks, of files that
// are not there, share the cores).
func BenchmarkLogCapStart(b *testing.B) {
	for _, bc := range []struct {
		name string
		keep int
	}{{"under", 1 << 30}, {"at", 100}} {
		b.Run(bc.name, func(b *testing.B) {
			root := b.TempDir()
			var c logCap
			out, _ := LogFiles(&desired.App{LogDirectory: root}, time.Now())
			dir := filepath.Dir(out)
			paths := make([]string, b.N)
			for i := range paths {
				paths[i] = filepath.Join(dir, strconv.Itoa(1_000_000+i)+".stdout.log")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				c.started("a", root, paths[i], bc.keep, false)
			}
			c.wait()
		})
	}
}
