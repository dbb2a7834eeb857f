package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patrolhq/patrol/schema"
)

const (
	// defaultTail and maxTail are the lines GET /api/logs answers by
	// default and at most.
	defaultTail = 200
	maxTail     = 10000
	// maxTailBytes bounds how far back from a log's end tail reads: 10000
	// lines of a log with enormous lines are cut to the last 8 MiB (from a
	// line start when there is one).
	maxTailBytes = 8 << 20
	// logChunk is the read buffer of one logs request: the memory it needs
	// whatever the file's size.
	logChunk = 32 << 10
	// followPollEvery is how often a followed log is checked for new bytes
	// and for a new instance's file.
	followPollEvery = 200 * time.Millisecond
)

// errNoLog is the backend's answer for an app without a log file (yet).
const errNoLog = "No Log"

// logFile is what the logs handler needs of an open log file.
type logFile interface {
	io.ReaderAt
	io.Closer
	Stat() (fs.FileInfo, error)
}

func openLogFile(path string) (logFile, error) { return os.Open(path) }

// logsQuery is a parsed GET /api/logs query.
type logsQuery struct {
	id, stream, secret string
	tail               int
	follow             bool
	// since, when set, asks for the whole output of every instance that
	// started within it (oldest first) instead of the newest file's tail.
	since time.Duration
}

func parseLogsQuery(r *http.Request) (logsQuery, error) {
	q := r.URL.Query()
	lq := logsQuery{id: q.Get("id"), stream: q.Get("stream"), secret: q.Get("secret"), tail: defaultTail, follow: truthy(q.Get("follow"))}
	if lq.stream == "" {
		lq.stream = "stdout"
	}
	if lq.id == "" {
		return lq, newError(http.StatusBadRequest, schema.ErrUnknownApp, errors.New("logs: no id"))
	}
	if lq.stream != "stdout" && lq.stream != "stderr" {
		return lq, newError(http.StatusBadRequest, schema.ErrInvalidRequest, fmt.Errorf("logs: stream %q", lq.stream))
	}
	if t := q.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > maxTail {
			return lq, newError(http.StatusBadRequest, schema.ErrInvalidRequest, fmt.Errorf("logs: tail %q is not 0-%d", t, maxTail))
		}
		lq.tail = n
	}
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			secs, ferr := strconv.ParseFloat(v, 64)
			err, d = ferr, time.Duration(secs*float64(time.Second))
		}
		if err != nil || d <= 0 {
			return lq, newError(http.StatusBadRequest, schema.ErrInvalidRequest, fmt.Errorf("logs: since %q is not a positive duration", v))
		}
		lq.since = d
	}
	return lq, nil
}

// maxSinceFiles bounds how many instances' files one request with since
// writes (the newest ones).
const maxSinceFiles = 1000

// instanceFiles lists the files of the app's instances that started at or
// after from, oldest first, other than newest itself, and says whether
// newest started then too. A log file is named after its instance's start
// (LOGDIR/YYYY/MONTH/DAY/UNIXNANO.STREAM.log), which is how they are
// found and ordered.
func instanceFiles(newest string, from time.Time) ([]string, bool) {
	base := filepath.Base(newest)
	nano, suffix, ok := strings.Cut(base, ".")
	if !ok {
		return nil, false
	}
	startOf := func(p string) (int64, bool) {
		n, _, _ := strings.Cut(filepath.Base(p), ".")
		v, err := strconv.ParseInt(n, 10, 64)
		return v, err == nil
	}
	dir := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(newest))))
	paths, _ := filepath.Glob(filepath.Join(dir, "*", "*", "*", "*."+suffix))
	var out []string
	for _, p := range paths {
		if t, ok := startOf(p); ok && p != newest && t >= from.UnixNano() {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		ta, _ := startOf(a)
		tb, _ := startOf(b)
		return cmp.Compare(ta, tb)
	})
	if len(out) > maxSinceFiles {
		out = out[len(out)-maxSinceFiles:]
	}
	t, err := strconv.ParseInt(nano, 10, 64)
	return out, err == nil && t >= from.UnixNano()
}

// writeInstanceHeader marks where an instance's output starts.
func writeInstanceHeader(w io.Writer, path string) error {
	what := path
	n, _, _ := strings.Cut(filepath.Base(path), ".")
	if v, err := strconv.ParseInt(n, 10, 64); err == nil {
		what = "started " + time.Unix(0, v).Local().Format(isoLayout) + ": " + path
	}
	_, err := fmt.Fprintf(w, "--- instance %s ---\n", what)
	return err
}

// logPath asks the backend for the app's newest log file: an API error
// becomes a 404 (no log yet) or a 400 (unknown app, wrong secret, bad
// stream) *Error, as the API answers them.
func (s *Server) logPath(ctx context.Context, lq logsQuery) (string, error) {
	path, apiErr, err := s.backend.LogFile(ctx, lq.id, lq.stream, lq.secret)
	switch {
	case err != nil:
		return "", fmt.Errorf("logs: %w: %w", errBackend, err)
	case apiErr == errNoLog:
		return "", newError(http.StatusNotFound, apiErr, fmt.Errorf("logs: app %q has no %s log", lq.id, lq.stream))
	case apiErr != "":
		return "", newError(http.StatusBadRequest, apiErr, fmt.Errorf("logs: app %q", lq.id))
	}
	return path, nil
}

// logs is GET /api/logs?id=ID&stream=stdout|stderr&tail=N&follow=1&secret=S
// (&since=DURATION: instead of the tail, the whole output of every
// instance started within DURATION, oldest first, each after a line
// "--- instance started TIME: PATH ---"; app output has no timestamps of
// its own, so instances are the unit):
// the last N lines (default 200, at most 10000) of the app's newest log
// file as plain text, read from the file's end (never the whole file).
// With follow, the answer stays open and carries what is appended, polled
// every 200 ms; when the app's newest file changes (a new instance), a
// line "--- new instance: PATH ---" is written and the new file follows
// from its start. It ends when the client goes away or the server shuts
// down. A request holds one open file and one 32 KiB buffer.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.writeError(w, r, newError(http.StatusMethodNotAllowed, schema.ErrInvalidMethod, fmt.Errorf("method %s", r.Method)))
		return
	}
	lq, err := parseLogsQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	path, err := s.logPath(ctx, lq)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f, err := s.openLog(path)
	if err != nil {
		s.writeError(w, r, newError(http.StatusNotFound, errNoLog, fmt.Errorf("logs: %w", err)))
		return
	}
	defer func() { f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		s.writeError(w, r, newError(http.StatusNotFound, errNoLog, fmt.Errorf("logs: %w", err)))
		return
	}
	buf := make([]byte, logChunk)
	size := fi.Size()
	var older []string
	whole := false // the newest file from its start (it started within since)
	if lq.since > 0 {
		older, whole = instanceFiles(path, s.now().Add(-lq.since))
	}
	off := int64(0)
	if !whole {
		if off, err = tailStart(f, size, lq.tail, maxTailBytes, buf); err != nil {
			s.writeError(w, r, fmt.Errorf("logs: read %s: %w", path, err))
			return
		}
	}

	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if lq.follow {
		h.Set("X-Accel-Buffering", "no")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	for _, p := range older {
		if err := s.copyFile(w, p, buf); err != nil {
			return
		}
	}
	if whole && lq.since > 0 {
		if writeInstanceHeader(w, path) != nil {
			return
		}
	}
	n, err := copyRange(w, f, off, size, buf)
	off += n
	if err != nil || !lq.follow {
		return
	}
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(s.followPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if off, err = follow(w, f, off, buf); err != nil {
			return
		}
		next, apiErr, err := s.backend.LogFile(ctx, lq.id, lq.stream, lq.secret)
		if err != nil {
			return
		}
		if apiErr != "" {
			fmt.Fprintf(w, "--- %s ---\n", apiErr)
			rc.Flush()
			return
		}
		if next != path {
			nf, err := s.openLog(next)
			if err != nil {
				continue // not there yet: try again at the next tick
			}
			// The old instance may have written its last words since the
			// size was checked.
			if _, err := follow(w, f, off, buf); err != nil {
				nf.Close()
				return
			}
			f.Close()
			f, path, off = nf, next, 0
			if _, err := fmt.Fprintf(w, "--- new instance: %s ---\n", path); err != nil {
				return
			}
			if off, err = follow(w, f, off, buf); err != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// copyFile writes an older instance's whole file, after its header; a
// file removed meanwhile (log retention) is skipped.
func (s *Server) copyFile(w io.Writer, path string, buf []byte) error {
	f, err := s.openLog(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	if err := writeInstanceHeader(w, path); err != nil {
		return err
	}
	_, err = copyRange(w, f, 0, fi.Size(), buf)
	return err
}

// follow writes what f holds beyond off and returns the new offset. A file
// that shrank (truncated) is read again from its start.
func follow(w io.Writer, f logFile, off int64, buf []byte) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return off, err
	}
	size := fi.Size()
	if size < off {
		off = 0
	}
	n, err := copyRange(w, f, off, size, buf)
	return off + n, err
}

// copyRange writes the bytes [off, end) of r to w through buf.
func copyRange(w io.Writer, r io.ReaderAt, off, end int64, buf []byte) (int64, error) {
	var done int64
	for off+done < end {
		k := int(min(int64(len(buf)), end-off-done))
		n, err := r.ReadAt(buf[:k], off+done)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return done, werr
			}
			done += int64(n)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return done, nil
			}
			return done, err
		}
	}
	return done, nil
}

// tailStart returns the offset of the n-th last line of a file of size
// bytes, reading backwards from the end in chunks of len(buf) and at most
// limit bytes. A final newline ends the last line rather than starting an
// empty one. When the limit is reached first, the answer is the first line
// start within the limit (or the limit itself, in a file without newlines
// there).
func tailStart(r io.ReaderAt, size int64, n int, limit int64, buf []byte) (int64, error) {
	if n <= 0 || size == 0 {
		return size, nil
	}
	end := size
	var last [1]byte
	if _, err := r.ReadAt(last[:], size-1); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	if last[0] == '\n' {
		end--
	}
	floor := max(0, size-limit)
	lowest := int64(-1)
	for pos := end; pos > floor; {
		k := min(int64(len(buf)), pos-floor)
		chunk := buf[:k]
		if _, err := r.ReadAt(chunk, pos-k); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := k - 1; i >= 0; i-- {
			if chunk[i] != '\n' {
				continue
			}
			lowest = pos - k + i
			if n--; n == 0 {
				return lowest + 1, nil
			}
		}
		pos -= k
	}
	switch {
	case floor == 0:
		return 0, nil
	case lowest >= 0:
		return lowest + 1, nil
	}
	return floor, nil
}
