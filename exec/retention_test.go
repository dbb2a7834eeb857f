package exec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
)

// pruneNow is the time the retention tests measure age against.
var pruneNow = time.Date(2025, time.June, 15, 12, 0, 0, 0, time.Local)

// daysAgo is pruneNow minus d days.
func daysAgo(d float64) time.Time {
	return pruneNow.Add(-time.Duration(d * float64(24*time.Hour)))
}

// writeLog creates the log file of stream ("stdout", "stderr" or
// "stdmerge") of an instance of the app logging to dir started at when, as
// LogFiles names it, with size bytes, modified at when.
func writeLog(t testing.TB, dir string, when time.Time, stream string, size int64) string {
	t.Helper()
	out, errPath := LogFiles(&desired.App{LogDirectory: dir, StdMerge: stream == "stdmerge"}, when)
	path := out
	if stream == "stderr" {
		path = errPath
	}
	writeSized(t, path, size, when)
	return path
}

// writeSized creates the file path (and its directory) with size bytes
// (sparse), modified at mtime.
func writeSized(t testing.TB, path string, size int64, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// symlink creates the symlink link to target.
func symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// mustExist fails unless every path exists (not following a final symlink).
func mustExist(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s should exist: %v", p, err)
		}
	}
}

// mustNotExist fails if a path exists.
func mustNotExist(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s should not exist (lstat: %v)", p, err)
		}
	}
}

// checkPrune runs PruneLogs, checking that it leaks no descriptor, that it
// reports no error, removed exactly want (in any order) and kept kept files
// of keptBytes bytes.
func checkPrune(t *testing.T, dirs []string, inUse map[string]bool, r Retention, now time.Time, want []string, kept int, keptBytes int64) PruneResult {
	t.Helper()
	settleSpares(t) // no spare log file is made meanwhile
	fds := countFDs(t)
	res := PruneLogs(dirs, inUse, r, now)
	// More after is a leak; fewer is another part of the test process
	// (an earlier test's watcher or pipe) closing one meanwhile.
	if n := countFDs(t); n > fds {
		t.Errorf("%d descriptors open after PruneLogs, %d before", n, fds)
	}
	for _, err := range res.Errors {
		t.Errorf("error: %v", err)
	}
	got := slices.Sorted(slices.Values(res.Removed))
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("removed:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	mustNotExist(t, want...)
	if res.Kept != kept || res.KeptBytes != keptBytes {
		t.Errorf("kept %d files, %d bytes; want %d, %d", res.Kept, res.KeptBytes, kept, keptBytes)
	}
	return res
}

// countFDs counts the open descriptors of the test process.
func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// sizeOf sums the sizes of files (of a result).
func sizeOf(t *testing.T, res PruneResult, want int64) {
	t.Helper()
	if res.RemovedBytes != want {
		t.Errorf("removed %d bytes, want %d", res.RemovedBytes, want)
	}
}

func TestPruneLogsAge(t *testing.T) {
	dir := t.TempDir()
	// Alone in its year: the day, month and year directories go.
	dec := writeLog(t, dir, time.Date(2024, time.December, 1, 10, 0, 0, 0, time.Local), "stdmerge", 10)
	// Alone in its month.
	mayOut := writeLog(t, dir, daysAgo(40), "stdout", 20)
	mayErr := writeLog(t, dir, daysAgo(40), "stderr", 30)
	// An old file in use keeps its day directory.
	oldOut := writeLog(t, dir, daysAgo(10), "stdout", 40)
	inUse := writeLog(t, dir, daysAgo(10).Add(time.Minute), "stdmerge", 50)
	// Either side of the limit.
	justOld := writeLog(t, dir, daysAgo(7).Add(-time.Minute), "stdout", 60)
	justYoung := writeLog(t, dir, daysAgo(7).Add(time.Minute), "stdout", 70)
	young := writeLog(t, dir, daysAgo(3), "stderr", 80)
	// An empty directory was not emptied by pruning: it stays.
	empty := filepath.Join(dir, "2025", "june", "2")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}

	res := checkPrune(t, []string{dir}, map[string]bool{inUse: true}, Retention{Days: 7}, pruneNow,
		[]string{dec, mayOut, mayErr, oldOut, justOld}, 3, 50+70+80)
	sizeOf(t, res, 10+20+30+40+60)
	mustExist(t, inUse, justYoung, young, empty, filepath.Dir(inUse), filepath.Join(dir, "2025", "june"))
	mustNotExist(t, filepath.Join(dir, "2024"), filepath.Join(dir, "2025", "may"))
	// justOld shared its day directory with justYoung: it stays.
	mustExist(t, filepath.Dir(justOld))
	if filepath.Dir(justOld) != filepath.Dir(justYoung) {
		t.Fatal("test setup: justOld and justYoung should share a day")
	}

	// Nothing more to do.
	checkPrune(t, []string{dir}, map[string]bool{inUse: true}, Retention{Days: 7}, pruneNow, nil, 3, 50+70+80)
	// The in-use file goes once it is no longer in use.
	checkPrune(t, []string{dir}, nil, Retention{Days: 7}, pruneNow, []string{inUse}, 2, 70+80)
	mustNotExist(t, filepath.Dir(inUse))
}

func TestPruneLogsSize(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i := range 5 {
		files = append(files, writeLog(t, dir, daysAgo(float64(50-10*i)), "stdout", 100))
	}
	// 500 bytes, at most 250: the 3 oldest go.
	res := checkPrune(t, []string{dir}, nil, Retention{MaxBytes: 250}, pruneNow, files[:3], 2, 200)
	sizeOf(t, res, 300)
	mustExist(t, files[3:]...)

	t.Run("in use", func(t *testing.T) {
		dir := t.TempDir()
		var files []string
		for i := range 5 {
			files = append(files, writeLog(t, dir, daysAgo(float64(50-10*i)), "stdout", 100))
		}
		// The oldest is in use: the next 3 go.
		checkPrune(t, []string{dir}, map[string]bool{files[0]: true}, Retention{MaxBytes: 250}, pruneNow,
			files[1:4], 2, 200)
		mustExist(t, files[0], files[4])
	})

	t.Run("budget not met", func(t *testing.T) {
		dir := t.TempDir()
		var files []string
		for i := range 4 {
			files = append(files, writeLog(t, dir, daysAgo(float64(50-10*i)), "stderr", 100))
		}
		inUse := map[string]bool{files[0]: true, files[2]: true, files[3]: true}
		checkPrune(t, []string{dir}, inUse, Retention{MaxBytes: 50}, pruneNow, files[1:2], 3, 300)
		checkPrune(t, []string{dir}, inUse, Retention{MaxBytes: 1}, pruneNow, nil, 3, 300)
	})

	t.Run("exactly at the budget", func(t *testing.T) {
		dir := t.TempDir()
		a := writeLog(t, dir, daysAgo(2), "stdout", 100)
		b := writeLog(t, dir, daysAgo(1), "stdout", 100)
		checkPrune(t, []string{dir}, nil, Retention{MaxBytes: 200}, pruneNow, nil, 2, 200)
		checkPrune(t, []string{dir}, nil, Retention{MaxBytes: 199}, pruneNow, []string{a}, 1, 100)
		mustExist(t, b)
	})

	t.Run("ties by path", func(t *testing.T) {
		dir := t.TempDir()
		when := daysAgo(5)
		out := writeLog(t, dir, when, "stdout", 100) // ".stderr" < ".stdout"
		errPath := writeLog(t, dir, when, "stderr", 100)
		checkPrune(t, []string{dir}, nil, Retention{MaxBytes: 150}, pruneNow, []string{errPath}, 1, 100)
		mustExist(t, out)
	})
}

func TestPruneLogsBoth(t *testing.T) {
	dir := t.TempDir()
	old1 := writeLog(t, dir, daysAgo(30), "stdout", 1000)
	old2 := writeLog(t, dir, daysAgo(20), "stdmerge", 1000)
	mid := writeLog(t, dir, daysAgo(6), "stdout", 100)
	newer := writeLog(t, dir, daysAgo(4), "stderr", 100)
	newest := writeLog(t, dir, daysAgo(1), "stdout", 100)
	// Age removes old1 and old2, then the budget of 250 removes mid.
	res := checkPrune(t, []string{dir}, nil, Retention{Days: 14, MaxBytes: 250}, pruneNow,
		[]string{old1, old2, mid}, 2, 200)
	sizeOf(t, res, 2100)
	mustExist(t, newer, newest)
	// Age first, in walk order; then the budget.
	if got := res.Removed[len(res.Removed)-1]; got != mid {
		t.Errorf("last removed %s, want %s (budget after age)", got, mid)
	}
}

func TestPruneLogsNoLimits(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i := range 6 {
		files = append(files, writeLog(t, dir, daysAgo(float64(1000-100*i)), "stdout", 1<<20))
	}
	for _, r := range []Retention{{}, {Days: -1, MaxBytes: -1}} {
		res := checkPrune(t, []string{dir}, nil, r, pruneNow, nil, 6, 6<<20)
		sizeOf(t, res, 0)
	}
	mustExist(t, files...)
}

func TestPruneLogsForeignFiles(t *testing.T) {
	dir := t.TempDir()
	old := daysAgo(400)
	day := filepath.Join(dir, "2024", "january", "5")
	var foreign []string
	for _, rel := range []string{
		// Names that do not match, in a day directory.
		"2024/january/5/notes.txt",
		"2024/january/5/123.stdout.log.gz",
		"2024/january/5/app.log",
		"2024/january/5/123.stdout.logx",
		"2024/january/5/.123.stdout.log",
		"2024/january/5/12a.stdout.log",
		"2024/january/5/.stdout.log",
		"2024/january/5/stdout.log",
		"2024/january/5/123.STDOUT.log",
		"2024/january/5/123.stdin.log",
		"2024/january/5/-123.stdout.log",
		"2024/january/5/123.stdout.log~",
		"2024/january/5/ 123.stdout.log",
		// Matching names outside the layout.
		"123.stdout.log",
		"2024/123.stdout.log",
		"2024/january/123.stderr.log",
		"2024/january/5/sub/123.stdout.log",
		"2024/january/5/sub/2024/january/5/123.stdout.log",
		"24/january/5/123.stdout.log",
		"02024/january/5/123.stdout.log",
		"2024/January/5/123.stdout.log",
		"2024/jan/5/123.stdout.log",
		"2024/january/05/123.stdout.log",
		"2024/january/0/123.stdout.log",
		"2024/january/32/123.stdout.log",
		"2024/january/100/123.stdout.log",
		"old/2024/january/5/123.stdout.log",
	} {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		writeSized(t, p, 100, old)
		foreign = append(foreign, p)
	}
	// A directory and a fifo named like log files.
	logDir := filepath.Join(day, "456.stderr.log")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(day, "789.stdout.log")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// The one log file.
	log := filepath.Join(day, "1704441600000000000.stdout.log")
	writeSized(t, log, 100, old)

	checkPrune(t, []string{dir}, nil, Retention{Days: 1, MaxBytes: 1}, pruneNow, []string{log}, 0, 0)
	mustExist(t, foreign...)
	mustExist(t, logDir, fifo, day)
}

func TestPruneLogsSymlinks(t *testing.T) {
	dir := t.TempDir()
	out := t.TempDir()
	// Symlinks' own times are their creation's: measure age a year later.
	now := time.Now().Add(365 * 24 * time.Hour)
	old := now.Add(-100 * 24 * time.Hour)

	// Outside the tree, a full layout of old log files.
	outDay := filepath.Join(out, "2024", "january", "5")
	outLog := filepath.Join(outDay, "1.stdout.log")
	writeSized(t, outLog, 1000, old)
	outBig := filepath.Join(out, "big")
	writeSized(t, outBig, 1000, old)

	day := filepath.Join(dir, "2024", "january", "5")
	realLog := filepath.Join(day, "10.stdout.log")
	writeSized(t, realLog, 100, old)
	links := []string{
		filepath.Join(day, "2.stdout.log"),          // to a log file outside
		filepath.Join(day, "3.stderr.log"),          // dangling
		filepath.Join(day, "4.stdmerge.log"),        // to a file in the tree
		filepath.Join(dir, "2023"),                  // year, outside
		filepath.Join(dir, "2024", "february"),      // month, outside
		filepath.Join(dir, "2024", "january", "6"),  // day, outside
		filepath.Join(dir, "2024", "january", "7"),  // day, inside
		filepath.Join(dir, "2024", "march"),         // month, to a file
		filepath.Join(dir, "2024", "january", "31"), // day, dangling
	}
	targets := []string{
		outLog,
		filepath.Join(out, "nothing"),
		realLog,
		filepath.Join(out, "2024"),
		filepath.Join(out, "2024", "january"),
		outDay,
		day,
		outBig,
		filepath.Join(out, "nothing"),
	}
	for i, l := range links {
		symlink(t, targets[i], l)
	}
	// A day directory with only a symlink left.
	day2 := filepath.Join(dir, "2024", "april", "1")
	real2 := filepath.Join(day2, "20.stdout.log")
	writeSized(t, real2, 100, old)
	link2 := filepath.Join(day2, "21.stdout.log")
	symlink(t, outLog, link2)

	checkPrune(t, []string{dir}, nil, Retention{Days: 30, MaxBytes: 1}, now, []string{realLog, real2}, 0, 0)
	mustExist(t, links...)
	mustExist(t, link2, day, day2, outLog, outBig, outDay)
	if fi, err := os.Stat(outLog); err != nil || fi.Size() != 1000 {
		t.Errorf("outside log file: %v, %v", fi, err)
	}

	// The budget counts no symlink: nothing is over.
	young := filepath.Join(day, "30.stdout.log")
	writeSized(t, young, 100, now)
	checkPrune(t, []string{dir}, nil, Retention{MaxBytes: 100}, now, nil, 1, 100)
}

func TestPruneLogsDirectorySymlinked(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	link := filepath.Join(base, "link")
	a := writeLog(t, real, daysAgo(30), "stdout", 100)
	b := writeLog(t, real, daysAgo(20), "stdout", 100)
	c := writeLog(t, real, daysAgo(1), "stdout", 100)
	symlink(t, real, link)
	linkPath := func(p string) string { return filepath.Join(link, strings.TrimPrefix(p, real)) }

	// The log directory itself may be a symlink (it is the configured
	// directory); reached twice, it is walked once. A file in use is
	// recognized through another path.
	inUse := map[string]bool{b: true}
	checkPrune(t, []string{link, real, link + "/"}, inUse, Retention{Days: 7}, pruneNow,
		[]string{linkPath(a)}, 2, 200)
	mustExist(t, b, c)

	// Relative directories are made absolute.
	t.Chdir(base)
	checkPrune(t, []string{"real", ""}, nil, Retention{Days: 7}, pruneNow, []string{b}, 1, 100)
}

func TestPruneLogsSeveralApps(t *testing.T) {
	base := t.TempDir()
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	missing := filepath.Join(base, "missing")
	var fa, fb []string
	for i := range 3 {
		fa = append(fa, writeLog(t, a, daysAgo(float64(60-20*i)), "stdout", 100))
		fb = append(fb, writeLog(t, b, daysAgo(float64(50-20*i)), "stderr", 100))
	}
	// The budget is global: the 3 oldest of both go (a 60, b 50, a 40 days).
	dirs := []string{a, missing, b, a}
	res := checkPrune(t, dirs, nil, Retention{MaxBytes: 300}, pruneNow, []string{fa[0], fb[0], fa[1]}, 3, 300)
	if want := []string{fa[0], fb[0], fa[1]}; !slices.Equal(res.Removed, want) {
		t.Errorf("removed %v, want oldest first %v", res.Removed, want)
	}
	mustExist(t, fa[2], fb[1], fb[2])

	// Equal times: by path, a before b.
	when := daysAgo(2)
	ta := writeLog(t, a, when, "stdmerge", 100)
	tb := writeLog(t, b, when, "stdmerge", 100)
	checkPrune(t, []string{b, a}, nil, Retention{MaxBytes: 400}, pruneNow, []string{fb[1]}, 4, 400)
	checkPrune(t, []string{b, a}, nil, Retention{MaxBytes: 300}, pruneNow, []string{fa[2]}, 3, 300)
	checkPrune(t, []string{b, a}, nil, Retention{MaxBytes: 200}, pruneNow, []string{fb[2]}, 2, 200)
	checkPrune(t, []string{b, a}, nil, Retention{MaxBytes: 100}, pruneNow, []string{ta}, 1, 100)
	mustExist(t, tb)

	// Only missing directories.
	checkPrune(t, []string{missing, filepath.Join(missing, "x")}, nil, Retention{Days: 1, MaxBytes: 1}, pruneNow, nil, 0, 0)
	checkPrune(t, nil, nil, Retention{Days: 1, MaxBytes: 1}, pruneNow, nil, 0, 0)
}

func TestPruneLogsKeepsTodaysDirectory(t *testing.T) {
	dir := t.TempDir()
	today := writeLog(t, dir, pruneNow.Add(-time.Hour), "stdout", 100)
	yesterday := writeLog(t, dir, pruneNow.Add(-24*time.Hour), "stdout", 100)
	// Old enough and over budget, both go, but StartApp may be about to
	// create a file in today's directory: it stays.
	checkPrune(t, []string{dir}, nil, Retention{MaxBytes: 1}, pruneNow, []string{today, yesterday}, 0, 0)
	mustExist(t, filepath.Dir(today))
	mustNotExist(t, filepath.Dir(yesterday))
}

func TestPruneLogsErrors(t *testing.T) {
	base := t.TempDir()
	notDir := filepath.Join(base, "file")
	writeSized(t, notDir, 1, pruneNow)
	dir := filepath.Join(base, "logs")
	a := writeLog(t, dir, daysAgo(30), "stdout", 100)
	b := writeLog(t, dir, daysAgo(30).AddDate(0, 0, -2), "stdout", 100)

	var locked string
	if os.Geteuid() != 0 {
		// A day directory one cannot write to: its file stays, the other
		// goes, and the error is reported.
		locked = filepath.Dir(a)
		if err := os.Chmod(locked, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(locked, 0o755) })
	}
	res := PruneLogs([]string{notDir, dir}, nil, Retention{Days: 7}, pruneNow)
	var msgs []string
	for _, err := range res.Errors {
		msgs = append(msgs, err.Error())
	}
	t.Logf("errors: %q", msgs)
	wantErrs := 1
	if locked != "" {
		wantErrs = 2
	}
	if len(res.Errors) != wantErrs || !strings.Contains(msgs[0], notDir+": not a directory") {
		t.Errorf("errors %q, want %d, the first about %s (not a directory)", msgs, wantErrs, notDir)
	}
	if locked != "" {
		if !errors.Is(res.Errors[1], fs.ErrPermission) || !strings.Contains(msgs[1], a) {
			t.Errorf("second error %q, want permission denied on %s", msgs[1], a)
		}
		if res.Kept != 1 || !slices.Equal(res.Removed, []string{b}) {
			t.Errorf("kept %d, removed %v; want 1 and %s", res.Kept, res.Removed, b)
		}
		mustExist(t, a)
	} else if res.Kept != 0 || len(res.Removed) != 2 {
		t.Errorf("kept %d, removed %v; want 0 and both", res.Kept, res.Removed)
	}
}

func TestPruneLogsNames(t *testing.T) {
	for name, want := range map[string]bool{
		"0.stdout.log": true, "1749988800000000000.stderr.log": true, "12.stdmerge.log": true,
		".stdout.log": false, "x1.stdout.log": false, "1.stdout.log.1": false, "1.log": false,
		"1.stdout": false, "1.stdmerge.log.gz": false, "١.stdout.log": false,
	} {
		if got := isLogName(name); got != want {
			t.Errorf("isLogName(%q) = %v", name, got)
		}
	}
	for name, want := range map[string]bool{
		"1": true, "9": true, "10": true, "31": true, "0": false, "01": false, "32": false, "": false, "1a": false, "100": false,
	} {
		if got := isLogDay(name); got != want {
			t.Errorf("isLogDay(%q) = %v", name, got)
		}
	}
	for name, want := range map[string]bool{"2025": true, "0999": true, "999": false, "20250": false, "20x5": false} {
		if got := isLogYear(name); got != want {
			t.Errorf("isLogYear(%q) = %v", name, got)
		}
	}
	for m := time.January; m <= time.December; m++ {
		if !isLogMonth(strings.ToLower(m.String())) || isLogMonth(m.String()) || isLogMonth(m.String()[:3]) {
			t.Errorf("isLogMonth wrong for %v", m)
		}
	}
	// LogFiles' names are all recognized.
	for _, when := range []time.Time{pruneNow, time.Date(2024, time.February, 29, 23, 59, 59, 1, time.Local)} {
		for _, merge := range []bool{false, true} {
			out, errPath := LogFiles(&desired.App{LogDirectory: "/l", StdMerge: merge}, when)
			for _, p := range []string{out, errPath} {
				rel, _ := filepath.Rel("/l", p)
				parts := strings.Split(rel, "/")
				if len(parts) != 4 || !isLogYear(parts[0]) || !isLogMonth(parts[1]) || !isLogDay(parts[2]) || !isLogName(parts[3]) {
					t.Errorf("LogFiles path %s not recognized", p)
				}
			}
		}
	}
}

// BenchmarkPruneLogs walks 10,000 log files of 10 apps (50 days, 10
// instances a day): "scan" removes nothing (the steady state), "prune"
// removes the 1,000 oldest by age (recreated between iterations, off the
// clock).
func BenchmarkPruneLogs(b *testing.B) {
	const apps, days, perDay = 10, 50, 10 // × stdout and stderr = 10,000 files
	base := b.TempDir()
	var dirs []string
	var oldest []string // the files of the 5 oldest days
	for a := range apps {
		dir := filepath.Join(base, fmt.Sprintf("app%d", a))
		dirs = append(dirs, dir)
		for d := range days {
			for i := range perDay {
				when := daysAgo(float64(days-d) - float64(i)/100)
				for _, s := range []string{"stdout", "stderr"} {
					p := writeLog(b, dir, when, s, 1000)
					if d < 5 {
						oldest = append(oldest, p)
					}
				}
			}
		}
	}
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			res := PruneLogs(dirs, nil, Retention{Days: 365, MaxBytes: 1 << 40}, pruneNow)
			if len(res.Removed) != 0 || res.Kept != 10000 || len(res.Errors) != 0 {
				b.Fatalf("%d removed, %d kept, errors %v", len(res.Removed), res.Kept, res.Errors)
			}
		}
	})
	b.Run("prune", func(b *testing.B) {
		for b.Loop() {
			res := PruneLogs(dirs, nil, Retention{Days: days - 5, MaxBytes: 1 << 40}, pruneNow)
			if len(res.Removed) != len(oldest) || len(res.Errors) != 0 {
				b.Fatalf("%d removed, errors %v", len(res.Removed), res.Errors)
			}
			b.StopTimer()
			for _, p := range oldest {
				writeSized(b, p, 1000, time.Unix(0, 0)) // older than any limit
			}
			b.StartTimer()
		}
	})
}
