package exec

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// settleSpares waits until testRunner has made every spare asked for.
func settleSpares(t *testing.T) {
	t.Helper()
	eventually(t, "spare log files made", func() bool {
		testRunner.spares.mu.Lock()
		defer testRunner.spares.mu.Unlock()
		return testRunner.spares.pending == 0
	})
}

// spareInodes returns the inodes of testRunner's spare files for id (0, 0
// if it has none).
func spareInodes(t *testing.T, id string) (out, err uint64) {
	t.Helper()
	s := &testRunner.spares
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.byID[id]
	if sp == nil {
		return 0, 0
	}
	ino := func(f *os.File) uint64 {
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	return ino(sp.out), ino(sp.err)
}

func inodeOfPath(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// logFiles lists the files under dir.
func logFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestRestartLinksSpareLogFiles: the first start of an app creates its log
// files; once it has started again, the next start's files are made ahead
// (unnamed) and that start links them under their names, with the child
// writing into them through descriptors that show those names.
func TestRestartLinksSpareLogFiles(t *testing.T) {
	for _, merge := range []bool{false, true} {
		name := "separate"
		if merge {
			name = "std-merge"
		}
		t.Run(name, func(t *testing.T) {
			a := helperApp(t, "write-stdout-stderr")
			a.ID = "spare-" + name
			a.StdMerge = merge
			runApp(t, a, AppContext{})
			settleSpares(t)
			if o, _ := spareInodes(t, a.ID); o != 0 {
				t.Fatal("a spare was made after the first start")
			}
			runApp(t, a, AppContext{})
			settleSpares(t)
			spareOut, spareErr := spareInodes(t, a.ID)
			if spareOut == 0 {
				t.Fatal("no spare after the second start")
			}
			if merge != (spareOut == spareErr) {
				t.Fatalf("std-merge %v: spare inodes %d and %d", merge, spareOut, spareErr)
			}
			// The third start runs long enough to look at its descriptors.
			long := *a
			long.Args = []string{helperArg, "sleep"}
			tag, ch := subscribe(t)
			l, err := testRunner.StartApp(&long, AppContext{}, tag, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			killGroupAtCleanup(t, l.PGID)
			if got := inodeOfPath(t, l.Stdout); got != spareOut {
				t.Errorf("stdout %s is inode %d, want the spare's %d", l.Stdout, got, spareOut)
			}
			if got := inodeOfPath(t, l.Stderr); got != spareErr {
				t.Errorf("stderr %s is inode %d, want the spare's %d", l.Stderr, got, spareErr)
			}
			for fd, want := range map[int]string{1: l.Stdout, 2: l.Stderr} {
				got, err := os.Readlink("/proc/" + strconv.Itoa(l.PID) + "/fd/" + strconv.Itoa(fd))
				if err != nil || got != want {
					t.Errorf("child's fd %d is %q (%v), want %q", fd, got, err, want)
				}
			}
			if err := SignalGroup(l.PGID, "SIGKILL"); err != nil {
				t.Fatal(err)
			}
			waitExit(t, ch)
			// The fourth start writes into linked files too.
			before := len(logFiles(t, a.LogDirectory))
			settleSpares(t)
			l = runApp(t, a, AppContext{})
			out, err := os.ReadFile(l.Stdout)
			if err != nil {
				t.Fatal(err)
			}
			want := "out\n"
			if merge {
				want = "out\nerr\n"
			} else if e, _ := os.ReadFile(l.Stderr); string(e) != "err\n" {
				t.Errorf("stderr: %q, want %q", e, "err\n")
			}
			if string(out) != want {
				t.Errorf("stdout: %q, want %q", out, want)
			}
			files := 2
			if merge {
				files = 1
			}
			if n := len(logFiles(t, a.LogDirectory)); n != before+files {
				t.Errorf("%d files in the log directory after a start, %d before: want %d more", n, before, files)
			}
		})
	}
}

// TestSpareForAnotherLogDirectory: a spare made for a log directory the app
// no longer uses is dropped, and the start creates its files as usual.
func TestSpareForAnotherLogDirectory(t *testing.T) {
	a := helperApp(t, "write-stdout-stderr")
	a.ID = "spare-moved"
	runApp(t, a, AppContext{})
	runApp(t, a, AppContext{})
	settleSpares(t)
	if o, _ := spareInodes(t, a.ID); o == 0 {
		t.Fatal("no spare after the second start")
	}
	moved := *a
	moved.LogDirectory = filepath.Join(t.TempDir(), "elsewhere")
	l := runApp(t, &moved, AppContext{})
	if !strings.HasPrefix(l.Stdout, moved.LogDirectory+"/") {
		t.Fatalf("stdout %s, want it under %s", l.Stdout, moved.LogDirectory)
	}
	if out, err := os.ReadFile(l.Stdout); err != nil || string(out) != "out\n" {
		t.Errorf("stdout: %q, %v", out, err)
	}
	settleSpares(t)
}

// TestSparesBounded: at most maxSpares apps have spare files, and closing
// the spares closes them all.
func TestSparesBounded(t *testing.T) {
	dir := t.TempDir()
	fds := countFDs(t)
	var s spares
	for i := range maxSpares + 10 {
		k := spareKey{id: "app-" + strconv.Itoa(i), root: dir}
		s.started(k)                              // the first start
		s.started(k)                              // a restart: a spare is asked for
		eventually(t, "spare made", func() bool { // the queue holds 64
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.pending == 0
		})
	}
	s.mu.Lock()
	n, order := len(s.byID), len(s.order)
	s.mu.Unlock()
	if n != maxSpares || order != maxSpares {
		t.Errorf("%d spares (%d in order), want %d", n, order, maxSpares)
	}
	if sp := s.take(spareKey{id: "app-0", root: dir}); sp != nil {
		t.Error("the oldest spare was not evicted")
	}
	if sp := s.take(spareKey{id: "app-" + strconv.Itoa(maxSpares+9), root: dir}); sp == nil {
		t.Error("the newest spare is missing")
	} else {
		sp.close()
	}
	s.close()
	if got := countFDs(t); got != fds {
		t.Errorf("%d descriptors open after close, %d before", got, fds)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spares left files behind: %v", ents)
	}
}
