package exec

import (
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Spare log files. Every start of an app creates its log files (two new
// inodes, one with std-merge) while the app is down, and on some file
// systems that is most of a restart: ext4 without a journal, for one, skips
// every inode deleted in the last minute when it allocates one, and after
// many deletions a create takes hundreds of microseconds. So once an app has
// restarted, the Runner makes the files of its next start ahead of time, off
// the start path: unnamed files (O_TMPFILE) on its log directory's file
// system, which the next start links under their dated names (linkat, no
// inode to allocate) and then opens by name, instead of creating them. A
// crash-looping app is back sooner; the first start of an app is unchanged.
//
// The files are unnamed until linked, so nothing is left behind if Patrol
// dies; a spare that cannot be linked (another file system, no O_TMPFILE
// support, /proc not mounted) is closed and the start creates its files as
// usual. The log files' creation time is when they were made ahead.

// maxSpares bounds the apps with spare log files (two descriptors each), and
// maxSeen the apps remembered as started.
const (
	maxSpares = 256
	maxSeen   = 4096
)

// spareKey is what a spare was made for: an app, its log directory (the
// file system) and whether it merges its streams (one file or two).
type spareKey struct {
	id    string
	root  string
	merge bool
}

// spare is one start's log files, unnamed. err is out with std-merge.
type spare struct {
	key      spareKey
	out, err *os.File
}

func (s *spare) close() {
	s.out.Close()
	if s.err != s.out {
		s.err.Close()
	}
}

// spares holds the Runner's spare log files and makes new ones on its own
// goroutine.
type spares struct {
	mu    sync.Mutex
	byID  map[string]*spare
	order []string        // ids with a spare, oldest first
	seen  map[string]bool // apps started since the Runner was made
	queue chan spareKey   // spares to make; nil until the maker runs
	// pending counts the spares asked for and not made (or given up) yet.
	pending int
	closed  bool
	maker   sync.WaitGroup
}

// take removes and returns the spare for k, if there is one.
func (s *spares) take(k spareKey) *spare {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.byID[k.id]
	if sp == nil {
		return nil
	}
	s.remove(k.id)
	if sp.key != k {
		sp.close() // the app's log directory or std-merge changed
		return nil
	}
	return sp
}

// remove forgets the spare of id; s.mu is held.
func (s *spares) remove(id string) {
	delete(s.byID, id)
	for i, o := range s.order {
		if o == id {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// started records a start of k.id and, if the app had started before, asks
// for a spare for its next start.
func (s *spares) started(k spareKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if !s.seen[k.id] {
		if s.seen == nil || len(s.seen) >= maxSeen {
			s.seen = map[string]bool{}
		}
		s.seen[k.id] = true
		return
	}
	if s.queue == nil {
		s.queue = make(chan spareKey, 64)
		s.byID = map[string]*spare{}
		s.maker.Go(s.run)
	}
	select {
	case s.queue <- k:
		s.pending++
	default: // the maker is behind: this start goes without
	}
}

// run is the maker's goroutine: it makes the spares asked for.
func (s *spares) run() {
	for k := range s.queue {
		sp, err := makeSpare(k)
		s.mu.Lock()
		s.pending--
		if err != nil {
			s.mu.Unlock()
			continue // the start creates its files as usual
		}
		if old := s.byID[k.id]; old != nil {
			s.remove(k.id)
			old.close()
		}
		if s.closed {
			s.mu.Unlock()
			sp.close()
			continue
		}
		s.byID[k.id] = sp
		s.order = append(s.order, k.id)
		if len(s.order) > maxSpares {
			oldest := s.order[0]
			s.byID[oldest].close()
			s.remove(oldest)
		}
		s.mu.Unlock()
	}
}

// close stops the maker and closes every spare.
func (s *spares) close() {
	s.mu.Lock()
	s.closed = true
	if s.queue != nil {
		close(s.queue)
	}
	s.mu.Unlock()
	s.maker.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.byID {
		sp.close()
	}
	s.byID, s.order = nil, nil
}

// makeSpare makes the unnamed log files of k's next start in its log
// directory.
func makeSpare(k spareKey) (*spare, error) {
	out, err := tmpLog(k.root)
	if err != nil {
		return nil, err
	}
	sp := &spare{key: k, out: out, err: out}
	if !k.merge {
		if sp.err, err = tmpLog(k.root); err != nil {
			out.Close()
			return nil, err
		}
	}
	return sp, nil
}

// tmpLog makes an unnamed file in dir's file system, with a log file's
// mode.
func tmpLog(dir string) (*os.File, error) {
	return openForChild(dir, unix.O_WRONLY|unix.O_TMPFILE, 0o644)
}

// link names sp's files outPath and errPath (the same path with
// std-merge). The caller then closes sp and opens the files by name, which
// creates any that could not be linked.
func (sp *spare) link(outPath, errPath string) error {
	if err := linkFile(sp.out, outPath); err != nil {
		return err
	}
	if sp.err == sp.out {
		return nil
	}
	return linkFile(sp.err, errPath)
}

// linkFile gives the unnamed file f the name path. linkat(2) with
// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; through /proc/self/fd it does
// not.
func linkFile(f *os.File, path string) error {
	for {
		err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.LinkError{Op: "link", Old: f.Name(), New: path, Err: err}
		}
		return nil
	}
}
