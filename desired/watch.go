package desired

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

const (
	// writeQuiet is how long in-place writes must pause before the file is
	// read again: long enough to cover a truncate followed by a write, or a
	// write in several chunks, and short enough to stay well inside the
	// 50 ms apply budget (DESIGN §4).
	writeQuiet = 20 * time.Millisecond
	// retryEvery is how often the watcher tries again to watch a directory
	// it could not watch (permissions, the inotify watch limit, a path that
	// kept changing while it was being resolved).
	retryEvery = 500 * time.Millisecond
	// maxLinks bounds the symbolic links followed while resolving the config
	// path, as the kernel does (ELOOP after 40).
	maxLinks = 40
	// maxDrain bounds the queued events handled before a due debounced call
	// is made, so that a busy directory cannot postpone it forever.
	maxDrain = 64
)

// Watcher watches a config file and reports when its content may have
// changed.
//
// It watches directories, never the file: the directory holding the file
// and the directory of every symbolic link the config path resolves through
// (a Kubernetes ConfigMap mount is config.json -> ..data/config.json with
// ..data -> ..2026_01_02_03_04_05.123, and an update renames a new ..data
// over the old one). Editors that write a temporary file and rename it over
// the config, cp, git checkout and such link swaps are all seen; events for
// other names in those directories (swap files, backups, unrelated files)
// are ignored. After every event that concerns the path, the path is
// resolved again and the watches move with it.
//
// A file renamed onto the path and a swapped link are complete, so they
// are reported at once. Everything else is reported once the path has been
// left alone for 20 ms: writes in place (a truncate and a write, or a write
// in chunks, make one call), a new file created at the path (it is empty
// until written), and the path being removed or moved away, which editors
// (vim's and Emacs's default backup by renaming, JetBrains' safe write) and
// git checkout follow at once with the new file; the caller keeps its last
// good config meanwhile. A rename onto the path ends the quiet period early:
// the caller reads after it, so it sees the final content. Attribute changes
// (chmod, touch) are ignored. When a directory on the path disappears, the
// watcher watches the nearest directory that still exists until the path
// comes back.
//
// Changes made through a hard link in another directory, or on another
// machine sharing a network file system, are not seen: inotify reports
// neither.
type Watcher struct {
	path     string
	log      *slog.Logger
	onChange func(reason string)
	fs       *fsnotify.Watcher
	started  atomic.Bool

	// The fields below belong to the goroutine running Run.

	chain   chain           // what the path resolved through at the last look
	watched map[string]bool // directories with a watch

	pending  string      // reason of the debounced call; "" when none is due
	arms     uint64      // counts (re)starts of the debounce timer
	debounce *time.Timer // fires writeQuiet after the last debounced change

	blind bool        // some directory could not be watched: retry
	retry *time.Timer // fires retryEvery after a failed attempt
	gone  string      // a watched directory that disappeared, until it is watched again

	afterRename bool // the previous event was a rename away from a name (IN_MOVED_FROM)
}

// NewWatcher returns a watcher for the config file at path (made absolute).
// onChange is called (from the watcher's goroutine, never concurrently with
// itself) with a short reason ("write", "create", "rename", "symlink swap",
// "remove", "moved away", "directory removed", ...) each time the file
// should be read again. The caller reloads and compares revisions, so a
// spurious call is harmless, but the watcher avoids them. log may be nil.
//
// The watches are in place when NewWatcher returns, so a caller that
// creates the watcher before its first Load misses no change; an error
// (the directory holding the config file does not exist, inotify limits)
// means watching cannot start. Run must be called to release the watches.
// onChange should return promptly: events wait while it runs, and so does
// Run's return after ctx is done.
func NewWatcher(path string, log *slog.Logger, onChange func(reason string)) (*Watcher, error) {
	if onChange == nil {
		return nil, errors.New("watch config: onChange is nil")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("watch config: %w", err)
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil {
		return nil, fmt.Errorf("watch config: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("watch config: %s is not a directory", filepath.Dir(abs))
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch config: %w", err)
	}
	w := &Watcher{
		path:     abs,
		log:      log,
		onChange: onChange,
		fs:       fsw,
		watched:  map[string]bool{},
		debounce: stoppedTimer(),
		retry:    stoppedTimer(),
	}
	if err := w.sync(); err != nil {
		fsw.Close()
		return nil, fmt.Errorf("watch config %s: %w", abs, err)
	}
	return w, nil
}

// The reasons passed to onChange. They are meant for logs: the caller reads
// the file again whatever the reason.
const (
	reasonWrite        = "write"                // the file was written in place
	reasonCreate       = "create"               // a new file was created at the path and written
	reasonRename       = "rename"               // a file (or directory on the path) was renamed onto the path
	reasonSymlinkSwap  = "symlink swap"         // a link the path resolves through was created or replaced
	reasonRemove       = "remove"               // the file or a link it resolves through was removed
	reasonMovedAway    = "moved away"           // the file or a link it resolves through was renamed away
	reasonDirRemoved   = "directory removed"    // a directory on the path was removed
	reasonDirMovedAway = "directory moved away" // a directory on the path was renamed away
	reasonEventsLost   = "events lost"          // the kernel's event queue overflowed
	reasonWatchBack    = "watch restored"       // watching works again after a failure
)

// Run watches until ctx is done, then closes the fsnotify watcher and
// returns nil. The watches were set up by NewWatcher, so Run returns an
// error only if it is called more than once.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("watch config: Run called more than once")
	}
	defer w.fs.Close()
	defer w.debounce.Stop()
	defer w.retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fs.Events:
			if !ok {
				return nil
			}
			w.event(ev)
		case err, ok := <-w.fs.Errors:
			if !ok {
				return nil
			}
			w.failed(err)
		case <-w.debounce.C:
			w.quiet()
		case <-w.retry.C:
			w.retried()
		}
	}
}

// event handles one fsnotify event.
func (w *Watcher) event(ev fsnotify.Event) {
	if ev.Op == fsnotify.Chmod {
		// chmod, touch, and the link count dropping on an unlink: no new
		// content. The unlink itself arrives as Remove.
		return
	}
	afterRename := w.afterRename
	w.afterRename = ev.Op == fsnotify.Rename

	name := filepath.Clean(ev.Name)
	if w.watched[name] && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		w.dirLost(name, ev.Has(fsnotify.Rename))
		return
	}
	role := w.chain.names[name]
	if role == 0 {
		return
	}
	existed := w.chain.exists
	switch {
	case ev.Has(fsnotify.Create):
		w.resync()
		switch {
		case role == roleLink || w.chain.names[name] == roleLink:
			// symlink(2) and rename(2) are atomic: a link is complete.
			w.now(existed, reasonSymlinkSwap)
		case afterRename:
			// IN_MOVED_FROM then IN_MOVED_TO: a rename onto the path,
			// with complete content.
			w.now(existed, reasonRename)
		default:
			// A plain create (IN_CREATE) comes before the writes that
			// fill the file, so wait for them like for writes in place.
			w.later(existed, reasonCreate)
		}
	case ev.Has(fsnotify.Remove):
		w.resync()
		w.later(existed, reasonRemove)
	case ev.Has(fsnotify.Rename):
		w.resync()
		w.later(existed, reasonMovedAway)
	case ev.Has(fsnotify.Write):
		w.later(true, reasonWrite)
	}
}

// dirLost handles a watched directory that was removed or renamed away:
// the watch went with it, so the path is resolved again, which watches the
// nearest directory that still exists until the path comes back.
func (w *Watcher) dirLost(dir string, renamed bool) {
	delete(w.watched, dir)
	_ = w.fs.Remove(dir) // fsnotify has usually dropped it already
	reason := reasonDirRemoved
	if renamed {
		reason = reasonDirMovedAway
	}
	existed := w.chain.exists
	w.resync()
	if !w.watched[dir] {
		w.gone = dir
		w.log.Warn("config directory is gone; waiting for it to come back",
			"path", w.path, "dir", dir, "reason", reason, "watching", w.watchList())
	}
	w.later(existed, reason)
}

// now calls onChange at once for a change that brings complete content.
func (w *Watcher) now(existed bool, reason string) {
	if w.nothing(existed) {
		return
	}
	w.fire(reason)
}

// later calls onChange once the path has been left alone for writeQuiet:
// for writes in place and new files, which are filled after they appear,
// and for a path that stopped resolving, which an editor or git usually
// fills again at once.
func (w *Watcher) later(existed bool, reason string) {
	if w.nothing(existed) {
		return
	}
	if w.pending == "" || gone(reason) != gone(w.pending) {
		// A burst is named by its first change, or by the first one after
		// the path disappeared or came back: a file removed, then created
		// and written, is reported as created.
		w.pending = reason
	}
	w.arms++
	w.debounce.Reset(writeQuiet)
}

// gone reports whether a reason means that the path stopped resolving.
func gone(reason string) bool {
	switch reason {
	case reasonRemove, reasonMovedAway, reasonDirRemoved, reasonDirMovedAway:
		return true
	}
	return false
}

// nothing reports whether there was nothing to read before the event,
// nothing now and no call due: a directory removed after the file in it,
// or a file created and removed again before the watcher looked.
func (w *Watcher) nothing(existed bool) bool {
	return !existed && !w.chain.exists && w.pending == ""
}

// quiet makes the debounced call once the path has been left alone for
// writeQuiet. Events already queued come first: a rename among them
// replaces the call, and another change starts the quiet period again.
func (w *Watcher) quiet() {
	if w.pending == "" {
		return
	}
	arms := w.arms
drain:
	for range maxDrain {
		select {
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			w.event(ev)
			if w.pending == "" || w.arms != arms {
				return
			}
		default:
			break drain
		}
	}
	w.fire(w.pending)
}

// fire calls onChange, replacing any debounced call: the caller reads the
// file after this, so it sees whatever the pending writes wrote.
func (w *Watcher) fire(reason string) {
	w.pending = ""
	w.debounce.Stop()
	w.log.Debug("config changed", "path", w.path, "reason", reason)
	w.onChange(reason)
}

// failed handles an error from fsnotify.
func (w *Watcher) failed(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		// Events were dropped; one of them may have mattered.
		w.log.Warn("config watch lost events; reading the config again", "path", w.path)
		w.resync()
		w.fire(reasonEventsLost)
		return
	}
	w.log.Warn("config watch", "path", w.path, "err", err)
}

// retried tries again to watch what the path resolves through. Once it
// works, the file is read again: a change while blind would be missed.
func (w *Watcher) retried() {
	existed := w.chain.exists
	w.resync()
	if !w.blind {
		w.now(existed, reasonWatchBack)
	}
}

// resync is sync for the running watcher: a failure is logged once and
// retried every retryEvery until it succeeds.
func (w *Watcher) resync() {
	err := w.sync()
	switch {
	case err != nil:
		if !w.blind {
			w.log.Warn("cannot watch config; retrying", "path", w.path, "every", retryEvery, "err", err)
		}
		w.blind = true
		w.retry.Reset(retryEvery)
	case w.blind:
		w.blind = false
		w.retry.Stop()
		w.log.Info("watching config again", "path", w.path, "watching", w.watchList())
	}
	if w.gone != "" && w.watched[w.gone] {
		w.log.Info("config directory is back", "path", w.path, "dir", w.gone)
		w.gone = ""
	}
}

// sync resolves the config path and moves the watches to the directories
// it goes through. The path is resolved again after the watches are added,
// so a change in between is seen by one or the other; if the directories
// changed meanwhile, it starts over.
func (w *Watcher) sync() error {
	c := resolve(w.path)
	for range 8 {
		err := w.watch(c.dirs())
		again := resolve(w.path)
		if slices.Equal(again.dirs(), c.dirs()) {
			w.chain = again
			return err
		}
		c = again
	}
	w.chain = c
	return errors.New("the path keeps changing")
}

// watch makes dirs the watched directories. Adding a watch that exists is
// cheap and renews one whose directory was replaced.
func (w *Watcher) watch(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		if err := w.fs.Add(d); err != nil {
			delete(w.watched, d)
			errs = append(errs, fmt.Errorf("watch %s: %w", d, err))
			continue
		}
		w.watched[d] = true
	}
	for d := range w.watched {
		if !slices.Contains(dirs, d) {
			// An error means the watch went with its directory.
			_ = w.fs.Remove(d)
			delete(w.watched, d)
		}
	}
	return errors.Join(errs...)
}

func (w *Watcher) watchList() []string {
	return slices.Sorted(maps.Keys(w.watched))
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// role is what a name means to the config path.
type role uint8

const (
	roleFile    role = iota + 1 // where the path ends: the config file
	roleLink                    // a symbolic link the path resolves through
	roleMissing                 // where resolving stopped: absent, or not a directory
)

// chain is what the config path resolved through at one moment: every
// symbolic link followed and the file it ended at, or the first component
// that was missing. Names are absolute and free of symbolic links except
// in their last element, so they match the names of events in the watched
// directories (each name's parent).
type chain struct {
	names  map[string]role
	exists bool // the path resolved to something that exists
}

// dirs returns the directories holding the chain's names, sorted.
func (c chain) dirs() []string {
	var dirs []string
	for name := range c.names {
		dirs = append(dirs, filepath.Dir(name))
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}

// resolve follows an absolute, clean path one component at a time, as the
// kernel does, recording every symbolic link on the way.
func resolve(path string) chain {
	c := chain{names: map[string]role{}}
	resolved := "/"
	rest := path
	for links := 0; rest != ""; {
		var elem string
		elem, rest, _ = strings.Cut(strings.TrimLeft(rest, "/"), "/")
		switch elem {
		case "", ".":
			continue
		case "..":
			// resolved holds no links, so its parent is the real one.
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, elem)
		fi, err := os.Lstat(next)
		if err != nil {
			c.names[next] = roleMissing
			return c
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			c.names[next] = roleLink
			target, err := os.Readlink(next)
			links++
			if err != nil || links > maxLinks {
				return c
			}
			if filepath.IsAbs(target) {
				resolved = "/"
			}
			if rest != "" {
				target += "/" + rest
			}
			rest = target
			continue
		}
		if strings.Trim(rest, "/") != "" && !fi.IsDir() {
			c.names[next] = roleMissing
			return c
		}
		resolved = next
	}
	c.names[resolved] = roleFile
	c.exists = true
	return c
}
