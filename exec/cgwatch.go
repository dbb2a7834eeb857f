package exec

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// emptyWatch tells the loop when an instance's cgroup v2 leaf empties:
// one inotify descriptor for every watched leaf's cgroup.events (the
// kernel signals a change of "populated" as a modification of it), read
// by one goroutine. Nothing is polled.
type emptyWatch struct {
	mu      sync.Mutex
	f       *os.File         // the inotify descriptor; nil until the first watch
	leaves  map[int32]string // watch descriptor -> leaf
	onEmpty func()
	closed  bool
}

// OnEmpty sets what is called (from a goroutine of the Runner, never
// blocking it for long) when a leaf watched by WatchEmpty has emptied.
// Call it before Run.
func (r *Runner) OnEmpty(f func()) {
	r.ew.mu.Lock()
	defer r.ew.mu.Unlock()
	r.ew.onEmpty = f
}

// WatchEmpty watches the cgroup of the instance whose process group is
// pgid until nothing is left in it, then calls OnEmpty's function once. It
// reports false when it cannot (no cgroup, no inotify): the caller then
// looks again by itself.
func (r *Runner) WatchEmpty(pgid int) bool {
	leaf := r.cg.leafOf(pgid)
	w := &r.ew
	w.mu.Lock()
	defer w.mu.Unlock()
	if leaf == "" || w.onEmpty == nil || w.closed {
		return false
	}
	if w.f == nil {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return false
		}
		w.f = os.NewFile(uintptr(fd), "inotify") // non-blocking: Read waits in Go's poller
		w.leaves = map[int32]string{}
		go w.read(w.f)
	}
	wd, err := unix.InotifyAddWatch(int(w.f.Fd()), filepath.Join(leaf, "cgroup.events"), unix.IN_MODIFY)
	if err != nil {
		return false
	}
	w.leaves[int32(wd)] = leaf
	if !populated(leaf) {
		// It emptied before the watch was in place.
		unix.InotifyRmWatch(int(w.f.Fd()), uint32(wd))
		delete(w.leaves, int32(wd))
		go w.onEmpty()
	}
	return true
}

// read serves the inotify descriptor until it is closed.
func (w *emptyWatch) read(f *os.File) {
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		emptied := false
		w.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			off += unix.SizeofInotifyEvent + nameLen
			leaf, ok := w.leaves[wd]
			switch {
			case !ok:
			case mask&unix.IN_IGNORED != 0: // removed (rmdir)
				delete(w.leaves, wd)
				emptied = true
			case !populated(leaf):
				unix.InotifyRmWatch(int(f.Fd()), uint32(wd))
				delete(w.leaves, wd)
				emptied = true
			}
		}
		onEmpty := w.onEmpty
		w.mu.Unlock()
		if emptied && onEmpty != nil {
			onEmpty()
		}
	}
}

// close stops the watching (at the Runner's Close).
func (w *emptyWatch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}
