package desired_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
)

const (
	// callDeadline bounds the wait for an expected onChange call.
	callDeadline = 5 * time.Second
	// quietWindow is how long no further call may arrive after the
	// expected ones: the one fixed wait of these tests.
	quietWindow = 200 * time.Millisecond
	// missing is what a call reads when the config path does not resolve.
	missing = "<missing>"
)

// call is one onChange call and what the config path held when it was made.
type call struct {
	reason  string
	content string
}

func (c call) String() string { return fmt.Sprintf("%s:%q", c.reason, c.content) }

// startWatcher watches path until the end of the test and returns the
// channel its onChange calls arrive on. Each call reads the file, as the
// caller's reload would.
func startWatcher(t *testing.T, path string) <-chan call {
	t.Helper()
	calls := make(chan call, 100)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := desired.NewWatcher(path, log, func(reason string) {
		data, err := os.ReadFile(path)
		content := string(data)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			content = missing
		case err != nil:
			content = "error: " + err.Error()
		}
		calls <- call{reason, content}
	})
	if err != nil {
		t.Fatalf("NewWatcher: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: got %v, want nil", err)
			}
		case <-time.After(callDeadline):
			t.Errorf("Run did not return after cancel")
		}
	})
	return calls
}

// expect waits for exactly the calls with the given reasons, in order,
// and checks that no other call follows within quietWindow.
func expect(t *testing.T, calls <-chan call, reasons ...string) []call {
	t.Helper()
	if slices.Equal(reasons, []string{"write"}) {
		return expectWrites(t, calls)
	}
	var got []call
	deadline := time.After(callDeadline)
	for len(got) < len(reasons) {
		select {
		case c := <-calls:
			got = append(got, c)
		case <-deadline:
			t.Fatalf("calls: got %v, want reasons %q", got, reasons)
		}
	}
	select {
	case c := <-calls:
		t.Fatalf("calls: got %v and then %v, want reasons %q", got, c, reasons)
	case <-time.After(quietWindow):
	}
	var gotReasons []string
	for _, c := range got {
		gotReasons = append(gotReasons, c.reason)
	}
	if !slices.Equal(gotReasons, reasons) {
		t.Fatalf("calls: got %v, want reasons %q", got, reasons)
	}
	return got
}

// expectWrites expects an in-place write: one "write" call, or more when
// the writer paused longer than the debounce between its writes (a loaded
// machine), each reading what was there; the caller checks the last.
func expectWrites(t *testing.T, calls <-chan call) []call {
	t.Helper()
	got := settle(t, calls)
	for _, c := range got {
		if c.reason != "write" {
			t.Fatalf("calls: got %v, want only writes", got)
		}
	}
	return got
}

// settle collects calls until none has come for quietWindow, after waiting
// for at least one.
func settle(t *testing.T, calls <-chan call) []call {
	t.Helper()
	var got []call
	select {
	case c := <-calls:
		got = append(got, c)
	case <-time.After(callDeadline):
		t.Fatalf("no call within %v", callDeadline)
	}
	for {
		select {
		case c := <-calls:
			got = append(got, c)
		case <-time.After(quietWindow):
			return got
		}
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeChunks overwrites path in place in three writes, each made durable
// before the next.
func writeChunks(t *testing.T, path string, chunks ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	must(t, err)
	defer f.Close()
	for _, c := range chunks {
		_, err := f.WriteString(c)
		must(t, err)
		must(t, f.Sync())
	}
	must(t, f.Close())
}

// cp copies src over dst the way cp(1) does: truncate dst in place, then
// copy (with copy_file_range, as cp does on Linux).
func cp(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	must(t, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	must(t, err)
	defer out.Close()
	_, err = io.Copy(out, in)
	must(t, err)
	must(t, out.Close())
}

// watchStep is one thing done to the directory of a watched config file
// and the calls it must cause.
type watchStep struct {
	do      func(t *testing.T, dir, path string)
	reasons []string // exactly these calls, in order
	content string   // what the last call reads
}

func TestWatchFileChanges(t *testing.T) {
	const v1, v2, v3 = `{"v": 1}`, `{"v": 2, "apps": {}}`, `{"v": 3}`
	cases := []struct {
		name  string
		steps []watchStep
	}{
		{"write in place", []watchStep{{
			do:      func(t *testing.T, dir, path string) { write(t, path, v2) },
			reasons: []string{"write"}, content: v2,
		}}},
		{"write in three chunks with fsync", []watchStep{{
			do:      func(t *testing.T, dir, path string) { writeChunks(t, path, `{"v": `, `2, "apps"`, `: {}}`) },
			reasons: []string{"write"}, content: v2,
		}}},
		{"cp over the file", []watchStep{{
			do: func(t *testing.T, dir, path string) {
				src := filepath.Join(t.TempDir(), "new.json")
				write(t, src, v2)
				cp(t, src, path)
			},
			reasons: []string{"write"}, content: v2,
		}}},
		{"rename a temporary file onto it", []watchStep{{
			do: func(t *testing.T, dir, path string) {
				write(t, path+".tmp", v2)
				must(t, os.Rename(path+".tmp", path))
			},
			reasons: []string{"rename"}, content: v2,
		}}},
		{"rename while a write is pending", []watchStep{{
			do: func(t *testing.T, dir, path string) {
				write(t, path+".tmp", v3)
				write(t, path, v2)
				must(t, os.Rename(path+".tmp", path))
			},
			reasons: []string{"rename"}, content: v3,
		}}},
		{"vim save with a swap file", []watchStep{{
			do: func(t *testing.T, dir, path string) {
				swp := filepath.Join(dir, ".config.json.swp")
				write(t, swp, "swap")
				must(t, os.WriteFile(swp, []byte("swap, more"), 0o600))
				write(t, path+"~", v1)
				write(t, filepath.Join(dir, ".config.json.new"), v2)
				must(t, os.Rename(filepath.Join(dir, ".config.json.new"), path))
				must(t, os.Remove(swp))
				must(t, os.Remove(path+"~"))
			},
			reasons: []string{"rename"}, content: v2,
		}}},
		{"vim save renaming the original to a backup", []watchStep{{
			// vim's default on Linux (backupcopy=auto), and Emacs's: the
			// original becomes the backup and a new file is written; the
			// path is briefly missing, then empty.
			do: func(t *testing.T, dir, path string) {
				probe := filepath.Join(dir, "4913")
				write(t, probe, "")
				must(t, os.Remove(probe))
				must(t, os.Rename(path, path+"~"))
				write(t, path, v2)
				must(t, os.Chmod(path, 0o600))
				must(t, os.Remove(path+"~"))
			},
			reasons: []string{"create"}, content: v2,
		}}},
		{"JetBrains safe write", []watchStep{{
			do: func(t *testing.T, dir, path string) {
				write(t, path+"___jb_tmp___", v2)
				must(t, os.Rename(path, path+"___jb_old___"))
				must(t, os.Rename(path+"___jb_tmp___", path))
				must(t, os.Remove(path+"___jb_old___"))
			},
			reasons: []string{"rename"}, content: v2,
		}}},
		{"replace within the quiet period", []watchStep{{
			do: func(t *testing.T, dir, path string) {
				must(t, os.Remove(path))
				write(t, path, v2)
			},
			reasons: []string{"create"}, content: v2,
		}}},
		{"vim probe file", []watchStep{{
			do: func(t *testing.T, dir, path string) {
				probe := filepath.Join(dir, "4913")
				write(t, probe, "")
				must(t, os.Remove(probe))
			},
		}}},
		{"unrelated files", []watchStep{{
			do: func(t *testing.T, dir, path string) {
				for _, name := range []string{"other.json", ".hidden", "config.json.bak", "config.json~", ".config.json.swx"} {
					p := filepath.Join(dir, name)
					write(t, p, "x")
					write(t, p, "xy")
					must(t, os.Rename(p, p+".2"))
					must(t, os.Remove(p+".2"))
				}
				must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
				must(t, os.Remove(filepath.Join(dir, "sub")))
			},
		}}},
		{"chmod and touch", []watchStep{{
			do: func(t *testing.T, dir, path string) {
				must(t, os.Chmod(path, 0o600))
				now := time.Now()
				must(t, os.Chtimes(path, now, now))
			},
		}}},
		{"remove and recreate", []watchStep{{
			do:      func(t *testing.T, dir, path string) { must(t, os.Remove(path)) },
			reasons: []string{"remove"}, content: missing,
		}, {
			do:      func(t *testing.T, dir, path string) { write(t, path, v2) },
			reasons: []string{"create"}, content: v2,
		}, {
			do:      func(t *testing.T, dir, path string) { write(t, path, v3) },
			reasons: []string{"write"}, content: v3,
		}}},
		{"rename away and back", []watchStep{{
			do:      func(t *testing.T, dir, path string) { must(t, os.Rename(path, path+".old")) },
			reasons: []string{"moved away"}, content: missing,
		}, {
			do:      func(t *testing.T, dir, path string) { must(t, os.Rename(path+".old", path)) },
			reasons: []string{"rename"}, content: v1,
		}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.json")
			write(t, path, v1)
			calls := startWatcher(t, path)
			for i, s := range tc.steps {
				s.do(t, dir, path)
				got := expect(t, calls, s.reasons...)
				if len(got) > 0 && got[len(got)-1].content != s.content {
					t.Errorf("step %d: last call read %q, want %q", i, got[len(got)-1].content, s.content)
				}
			}
		})
	}
}

// TestWatchGitCheckout replaces the file the way git checkout does: unlink,
// then create and write a new file. The last call must see the new content.
func TestWatchGitCheckout(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	write(t, path, `{"v": 1}`)
	calls := startWatcher(t, path)

	must(t, os.Remove(path))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	must(t, err)
	_, err = f.WriteString(`{"v": 2, "apps": {}}`)
	must(t, err)
	must(t, f.Close())

	got := settle(t, calls)
	if len(got) > 2 {
		t.Errorf("calls: got %v, want at most 2", got)
	}
	if last := got[len(got)-1]; last.content != `{"v": 2, "apps": {}}` {
		t.Errorf("last call %v: read %q, want the new content", last, last.content)
	}
}

// TestWatchFileAppears starts without a config file; the watcher must see
// it appear, and a directory and files around it must not count.
func TestWatchFileAppears(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	calls := startWatcher(t, path)
	write(t, filepath.Join(dir, "other.json"), "x")
	expect(t, calls)
	write(t, path, "1")
	if got := expect(t, calls, "create"); got[0].content != "1" {
		t.Errorf("read %q, want 1", got[0].content)
	}
}

func TestWatchRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	write(t, "config.json", "1")
	calls := startWatcher(t, "config.json")
	write(t, filepath.Join(dir, "config.json"), "2")
	expect(t, calls, "write")
}

// configMap lays out a Kubernetes ConfigMap volume in dir and returns a
// function that publishes a new version the way the kubelet does.
func configMap(t *testing.T, dir, content string) (update func(content string)) {
	t.Helper()
	version := 0
	publish := func(content string) (old string) {
		version++
		ts := fmt.Sprintf("..2026_01_02_03_04_%02d.%d", version, 100+version)
		must(t, os.Mkdir(filepath.Join(dir, ts), 0o755))
		write(t, filepath.Join(dir, ts, "config.json"), content)
		old, _ = os.Readlink(filepath.Join(dir, "..data"))
		must(t, os.Symlink(ts, filepath.Join(dir, "..data_tmp")))
		must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
		return old
	}
	publish(content)
	must(t, os.Symlink("..data/config.json", filepath.Join(dir, "config.json")))
	return func(content string) {
		old := publish(content)
		must(t, os.RemoveAll(filepath.Join(dir, old)))
	}
}

func TestWatchConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	update := configMap(t, dir, `{"v": 1}`)
	path := filepath.Join(dir, "config.json")
	calls := startWatcher(t, path)

	for _, v := range []string{`{"v": 2}`, `{"v": 3}`, `{"v": 4}`} {
		update(v)
		got := expect(t, calls, "symlink swap")
		if got[0].content != v {
			t.Errorf("after publishing %s: read %q", v, got[0].content)
		}
	}
	// Unrelated keys of the ConfigMap live next to config.json.
	write(t, filepath.Join(dir, "other.txt"), "x")
	expect(t, calls)
}

// TestWatchSymlinkRetarget points the config path at files in other
// directories and checks that the watch follows the link.
func TestWatchSymlinkRetarget(t *testing.T) {
	etc, srv1, srv2 := t.TempDir(), t.TempDir(), t.TempDir()
	path := filepath.Join(etc, "config.json")
	target1, target2 := filepath.Join(srv1, "patrol.json"), filepath.Join(srv2, "patrol.json")
	write(t, target1, "1")
	write(t, target2, "2")
	must(t, os.Symlink(target1, path))
	calls := startWatcher(t, path)

	write(t, target1, "1b")
	if got := expect(t, calls, "write"); got[len(got)-1].content != "1b" {
		t.Errorf("read %q, want 1b", got[len(got)-1].content)
	}

	// ln -sfn, atomically: a new link renamed over the old one.
	must(t, os.Symlink(target2, path+".new"))
	must(t, os.Rename(path+".new", path))
	if got := expect(t, calls, "symlink swap"); got[0].content != "2" {
		t.Errorf("read %q, want 2", got[0].content)
	}

	write(t, target1, "1c") // no longer the config
	expect(t, calls)
	write(t, target2, "2b")
	expect(t, calls, "write")

	must(t, os.Remove(path))
	expect(t, calls, "remove")
}

func TestWatchDirectoryRemoved(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "conf")
	must(t, os.Mkdir(conf, 0o755))
	path := filepath.Join(conf, "config.json")
	write(t, path, "1")
	calls := startWatcher(t, path)

	must(t, os.RemoveAll(conf))
	expect(t, calls, "remove")
	must(t, os.Mkdir(conf, 0o755))
	expect(t, calls)
	write(t, path, "2")
	if got := expect(t, calls, "create"); got[0].content != "2" {
		t.Errorf("read %q, want 2", got[0].content)
	}
	write(t, path, "3")
	expect(t, calls, "write")
}

func TestWatchDirectoryMovedAway(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "conf")
	must(t, os.Mkdir(conf, 0o755))
	path := filepath.Join(conf, "config.json")
	write(t, path, "1")
	calls := startWatcher(t, path)

	must(t, os.Rename(conf, conf+".old"))
	expect(t, calls, "directory moved away")
	write(t, filepath.Join(conf+".old", "config.json"), "2") // not the config path any more
	expect(t, calls)
	must(t, os.Rename(conf+".old", conf))
	if got := expect(t, calls, "rename"); got[0].content != "2" {
		t.Errorf("read %q, want 2", got[0].content)
	}
	write(t, path, "3")
	expect(t, calls, "write")
}

func TestWatchRunStops(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	write(t, path, "1")
	before := runtime.NumGoroutine()

	called := make(chan string, 10)
	w, err := desired.NewWatcher(path, nil, func(reason string) { called <- reason })
	must(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	write(t, path, "2")
	select {
	case <-called:
	case <-time.After(callDeadline):
		t.Fatal("no call for a write")
	}
	write(t, path, "3") // leave a debounce pending
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
	case <-time.After(callDeadline):
		t.Fatal("Run did not return after cancel")
	}
	if err := w.Run(t.Context()); err == nil {
		t.Error("second Run: got nil, want an error")
	}

	deadline := time.Now().Add(callDeadline)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: got %d, want %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatchRunCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	w, err := desired.NewWatcher(path, nil, func(string) { t.Error("unexpected call") })
	must(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Errorf("Run: got %v, want nil", err)
	}
}

func TestNewWatcherErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	write(t, file, "")
	cases := []struct {
		name     string
		path     string
		onChange func(string)
		want     string
	}{
		{"missing directory", filepath.Join(dir, "nope", "config.json"), func(string) {}, "no such file or directory"},
		{"directory is a file", filepath.Join(file, "config.json"), func(string) {}, "not a directory"},
		{"nil onChange", filepath.Join(dir, "config.json"), nil, "onChange is nil"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, err := desired.NewWatcher(tc.path, nil, tc.onChange)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewWatcher: got %v, %v; want an error containing %q", w, err, tc.want)
			}
		})
	}
}
