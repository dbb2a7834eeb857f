package exec

import (
	"bytes"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/patrolhq/patrol/observed"
)

// lineScanEvery is how often the log files of instances waiting for their
// ready line are read. Only while some instance waits does anything run.
const lineScanEvery = 50 * time.Millisecond

// maxLine caps how much of one line is kept while its newline has not
// come: a longer line is matched on its first maxLine bytes.
const maxLine = 64 << 10

// LineWatcher reports when an instance writes a line matching its app's
// ready-line to its log files ("ready": "log-line"). The app writes its
// log files itself, so Patrol reads them: one goroutine, running only
// while some instance waits for its line, reads what was appended to
// each waiting file every 50 ms, and forgets an instance at its first
// match. Matches are reported as NotifyMessage with LogLine set.
type LineWatcher struct {
	report func(observed.NotifyMessage)
	mu     sync.Mutex
	byTag  map[string]*lineWait
	wake   chan struct{}
	// running is set while the scanning goroutine runs.
	running bool
	closed  bool
	wg      sync.WaitGroup
}

// lineWait is one instance waiting for its line.
type lineWait struct {
	re    *regexp.Regexp
	files []*lineFile
}

// lineFile is one log file being read.
type lineFile struct {
	path    string
	off     int64
	partial []byte
}

// NewLineWatcher returns a LineWatcher that reports matches to report.
func NewLineWatcher(report func(observed.NotifyMessage)) *LineWatcher {
	return &LineWatcher{report: report, byTag: map[string]*lineWait{}, wake: make(chan struct{}, 1)}
}

// Watch makes the watcher read paths (the instance's log files, from their
// start) for a line matching re; a new Watch of tag replaces the last.
func (w *LineWatcher) Watch(tag string, paths []string, re *regexp.Regexp) {
	lw := &lineWait{re: re}
	for _, p := range paths {
		if p != "" && (len(lw.files) == 0 || lw.files[0].path != p) {
			lw.files = append(lw.files, &lineFile{path: p})
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(lw.files) == 0 {
		return
	}
	w.byTag[tag] = lw
	if !w.running {
		w.running = true
		w.wg.Go(w.run)
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Stop forgets tag.
func (w *LineWatcher) Stop(tag string) {
	w.mu.Lock()
	delete(w.byTag, tag)
	w.mu.Unlock()
}

// Close stops the watcher and waits for its goroutine.
func (w *LineWatcher) Close() {
	w.mu.Lock()
	w.closed = true
	clear(w.byTag)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	w.wg.Wait()
}

// run scans the waiting files until none is left.
func (w *LineWatcher) run() {
	t := time.NewTicker(lineScanEvery)
	defer t.Stop()
	buf := make([]byte, 64<<10)
	for {
		w.mu.Lock()
		if len(w.byTag) == 0 || w.closed {
			w.running = false
			w.mu.Unlock()
			return
		}
		waits := make(map[string]*lineWait, len(w.byTag))
		for tag, lw := range w.byTag {
			waits[tag] = lw
		}
		w.mu.Unlock()
		for tag, lw := range waits {
			line, ok := lw.scan(buf)
			if !ok {
				continue
			}
			w.mu.Lock()
			current := w.byTag[tag] == lw
			if current {
				delete(w.byTag, tag)
			}
			w.mu.Unlock()
			if current {
				w.report(observed.NotifyMessage{Tag: tag, At: time.Now(), LogLine: clipText(line, 200)})
			}
		}
		select {
		case <-t.C:
		case <-w.wake:
		}
	}
}

// scan reads what was appended to the instance's files and returns the
// first line that matches.
func (lw *lineWait) scan(buf []byte) (string, bool) {
	for _, f := range lw.files {
		if line, ok := f.scan(lw.re, buf); ok {
			return line, true
		}
	}
	return "", false
}

// scan reads f from its offset to its end, a buffer at a time, matching
// each complete line.
func (f *lineFile) scan(re *regexp.Regexp, buf []byte) (string, bool) {
	fh, err := os.Open(f.path)
	if err != nil {
		return "", false // not there yet, or removed: nothing to read
	}
	defer fh.Close()
	for {
		n, err := fh.ReadAt(buf, f.off)
		if n > 0 {
			f.off += int64(n)
			data := buf[:n]
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					f.partial = append(f.partial, data[:min(len(data), max(0, maxLine-len(f.partial)))]...)
					break
				}
				line := data[:i]
				if len(f.partial) > 0 {
					line = append(f.partial, line[:min(len(line), max(0, maxLine-len(f.partial)))]...)
					f.partial = f.partial[:0]
				}
				line = bytes.TrimSuffix(line, []byte("\r"))
				if re.Match(line) {
					return string(line), true
				}
				data = data[i+1:]
			}
		}
		if err != nil || n < len(buf) {
			return "", false // at the end (or unreadable): the next scan goes on
		}
	}
}
