package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
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
	return lq, nil
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

// logs is GET /api/logs?id=ID&stream=stdout|stderr&tail=N&follow=1&secret=S:
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
	off, err := tailStart(f, size, lq.tail, maxTailBytes, buf)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("logs: read %s: %w", path, err))
		return
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
