package api

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// writeTemp writes a file with content into the test's temp dir.
func writeTemp(t *testing.T, content string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "log-*.stdout.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// naiveTail is the last n lines of s, the obvious way.
func naiveTail(s string, n int) string {
	if n == 0 {
		return ""
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines[max(0, len(lines)-n):], "")
}

// TestTailStart compares tailStart, with chunks small enough to split
// lines, against the obvious implementation on random texts, and checks
// the byte limit.
func TestTailStart(t *testing.T) {
	for _, c := range []struct {
		name, text string
		n          int
		want       string
	}{
		{"empty", "", 3, ""},
		{"one line, no newline", "abc", 1, "abc"},
		{"one line", "abc\n", 1, "abc\n"},
		{"last two", "a\nb\nc\n", 2, "b\nc\n"},
		{"more than there are", "a\nb\n", 5, "a\nb\n"},
		{"unfinished last line", "a\nb\nc", 2, "b\nc"},
		{"empty lines", "\n\n\n", 2, "\n\n"},
		{"zero", "a\nb\n", 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := strings.NewReader(c.text)
			off, err := tailStart(r, int64(len(c.text)), c.n, 1<<20, make([]byte, 2))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.text[off:]; got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		b := make([]byte, rng.IntN(60))
		for j := range b {
			b[j] = "ab\n"[rng.IntN(3)]
		}
		text, n := string(b), rng.IntN(8)
		off, err := tailStart(strings.NewReader(text), int64(len(text)), n, 1<<20, make([]byte, 1+rng.IntN(7)))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := text[off:], naiveTail(text, n); got != want {
			t.Fatalf("case %d: %q, %d lines: got %q, want %q", i, text, n, got, want)
		}
	}
	// The limit: at most limit bytes are read, and the answer starts at a
	// line start within them when there is one.
	text := strings.Repeat("x", 100) + "\nabc\ndef\n"
	r := &countingReader{ReaderAt: strings.NewReader(text)}
	off, err := tailStart(r, int64(len(text)), 10, 10, make([]byte, 4))
	if err != nil {
		t.Fatal(err)
	}
	if got := text[off:]; got != "abc\ndef\n" {
		t.Errorf("limited: got %q", got)
	}
	if n := r.n.Load(); n > 11 {
		t.Errorf("limited: read %d bytes", n)
	}
	off, _ = tailStart(strings.NewReader(strings.Repeat("x", 100)), 100, 10, 10, make([]byte, 4))
	if off != 90 {
		t.Errorf("limited without newlines: offset %d, want 90", off)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	io.ReaderAt
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.ReaderAt.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// countingFile is a log file that counts what is read of it.
type countingFile struct {
	*os.File
	n *atomic.Int64
}

func (c countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.File.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func (c countingFile) Stat() (fs.FileInfo, error) { return c.File.Stat() }

func TestLogsTail(t *testing.T) {
	var b strings.Builder
	for i := 1; i <= 1000; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	f := &fakeBackend{}
	f.setLog("stdout", writeTemp(t, b.String()))
	f.setLog("stderr", writeTemp(t, "err 1\nerr 2\n"))
	h := newTestServer(f, "")
	w := do(t, h, "GET", "/api/logs?id=web&tail=3", "")
	if w.Code != 200 || w.Body.String() != "line 998\nline 999\nline 1000\n" {
		t.Errorf("tail=3: %d %q", w.Code, w.Body)
	}
	for k, want := range map[string]string{"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if w := do(t, h, "GET", "/api/logs?id=WEB", ""); strings.Count(w.Body.String(), "\n") != 200 || !strings.HasPrefix(w.Body.String(), "line 801\n") {
		t.Errorf("default tail: %d lines from %q", strings.Count(w.Body.String(), "\n"), w.Body.String()[:20])
	}
	if w := do(t, h, "GET", "/api/logs?id=web&tail=0", ""); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("tail=0: %d %q", w.Code, w.Body)
	}
	if w := do(t, h, "GET", "/api/logs?id=web&stream=stderr&tail=10000", ""); w.Body.String() != "err 1\nerr 2\n" {
		t.Errorf("stderr: %q", w.Body)
	}
}

// TestLogsBigFile: the tail of a 4 GiB log is read from its end: a few
// kilobytes, not the file.
func TestLogsBigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.stdout.log")
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse file: 4 GiB of lines "x...\n" would need the disk; holes of
	// zero bytes are as good, with a newline now and then.
	const size = 4 << 30
	if err := fh.Truncate(size); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	appendFile(t, path, "\nfirst\nsecond\nthird\n")
	f := &fakeBackend{}
	f.setLog("stdout", path)
	s := NewServer(f, Options{})
	var read atomic.Int64
	s.openLog = func(p string) (logFile, error) {
		fh, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		return countingFile{fh, &read}, nil
	}
	w := do(t, s.Handler(), "GET", "/api/logs?id=web&tail=2", "")
	if w.Code != 200 || w.Body.String() != "second\nthird\n" {
		t.Errorf("tail=2: %d %q", w.Code, w.Body)
	}
	if n := read.Load(); n > 2*logChunk {
		t.Errorf("read %d bytes for two lines", n)
	}
	// More lines than the end holds: the answer stops at the byte limit.
	read.Store(0)
	w = do(t, s.Handler(), "GET", "/api/logs?id=web&tail=10000", "")
	if w.Code != 200 || w.Body.String() != "first\nsecond\nthird\n" {
		t.Errorf("tail=10000: %d, %d bytes", w.Code, w.Body.Len())
	}
	if n := read.Load(); n > 2*maxTailBytes+logChunk {
		t.Errorf("read %d bytes of a %d-byte file", n, int64(size))
	}
}

// TestLogsFollow: a followed log streams what is appended and moves on to
// a new instance's file with a marker line.
func TestLogsFollow(t *testing.T) {
	a := writeTemp(t, "one\n")
	f := &fakeBackend{}
	f.setLog("stdout", a)
	s := NewServer(f, Options{})
	s.followPoll = 5 * time.Millisecond
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	resp, rd, cancel := streamClient(t, srv.URL, "/api/logs?id=web&follow=1")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	want := func(line string) {
		t.Helper()
		got, err := rd.ReadString('\n')
		if err != nil || got != line {
			t.Fatalf("got %q, %v; want %q", got, err, line)
		}
	}
	want("one\n")
	appendFile(t, a, "two\n")
	want("two\n")
	// A new instance: the old file's last words, the marker, the new file
	// from its start.
	b := writeTemp(t, "three\n")
	appendFile(t, a, "last of a\n")
	f.setLog("stdout", b)
	want("last of a\n")
	want("--- new instance: " + b + " ---\n")
	want("three\n")
	appendFile(t, b, "four\n")
	want("four\n")
	// The app goes away: the stream says so and ends.
	f.mu.Lock()
	f.logs = nil
	f.mu.Unlock()
	want("--- No Log ---\n")
	if rest, err := io.ReadAll(rd); err != nil || len(rest) != 0 {
		t.Errorf("after the end: %q, %v", rest, err)
	}
	cancel()
}

// TestLogsFollowDisconnect: the handler ends when the client goes away.
func TestLogsFollowDisconnect(t *testing.T) {
	f := &fakeBackend{}
	f.setLog("stdout", writeTemp(t, "x\n"))
	var open atomic.Int32
	s := NewServer(f, Options{})
	s.openLog = func(p string) (logFile, error) {
		fh, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		open.Add(1)
		return closeCounter{fh, &open}, nil
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	_, rd, cancel := streamClient(t, srv.URL, "/api/logs?id=web&follow=1")
	bufio.NewReader(rd).ReadString('\n')
	cancel()
	srv.Close() // waits for the handler
	if n := open.Load(); n != 0 {
		t.Errorf("%d log files left open", n)
	}
}

type closeCounter struct {
	*os.File
	open *atomic.Int32
}

func (c closeCounter) Close() error {
	c.open.Add(-1)
	return c.File.Close()
}

func TestLogsErrors(t *testing.T) {
	f := &fakeBackend{}
	h := newTestServer(f, "")
	for _, c := range []struct {
		target string
		code   int
		msg    string
	}{
		{"/api/logs", 400, schema.ErrUnknownApp},
		{"/api/logs?id=nope", 400, schema.ErrUnknownApp},
		{"/api/logs?id=locked", 400, schema.ErrSecretInvalid},
		{"/api/logs?id=locked&secret=wrong", 400, schema.ErrSecretInvalid},
		{"/api/logs?id=locked&secret=s3cret", 404, "No Log"},
		{"/api/logs?id=web", 404, "No Log"},
		{"/api/logs?id=web&stream=both", 400, schema.ErrInvalidRequest},
		{"/api/logs?id=web&tail=abc", 400, schema.ErrInvalidRequest},
		{"/api/logs?id=web&tail=-1", 400, schema.ErrInvalidRequest},
		{"/api/logs?id=web&since=abc", 400, schema.ErrInvalidRequest},
		{"/api/logs?id=web&since=-5m", 400, schema.ErrInvalidRequest},
		{"/api/logs?id=web&tail=10001", 400, schema.ErrInvalidRequest},
	} {
		wantErrors(t, do(t, h, "GET", c.target, ""), c.code, c.msg)
	}
	wantErrors(t, do(t, h, "POST", "/api/logs?id=web", ""), 405, schema.ErrInvalidMethod)
	f.setLog("stdout", filepath.Join(t.TempDir(), "gone.log"))
	wantErrors(t, do(t, h, "GET", "/api/logs?id=web", ""), 404, "No Log")
	f.logErr = errors.New("loop stopped")
	wantErrors(t, do(t, h, "GET", "/api/logs?id=web", ""), 503, schema.ErrShuttingDown)
}
