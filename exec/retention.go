package exec

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Retention bounds the log files of apps.
type Retention struct {
	Days     int   // delete files older than this many days (by modification time); 0 = no age limit
	MaxBytes int64 // then delete the oldest files until the total is at most this; 0 = no size limit
	// MaxInstances, applied between the two, keeps in each log directory
	// the files of at most this many instances (the newest, by the
	// unixnano in their names); 0 = no count limit.
	MaxInstances int
}

// PruneResult says what PruneLogs did.
type PruneResult struct {
	Removed      []string // files removed
	RemovedBytes int64
	Kept         int // files kept
	KeptBytes    int64
	Errors       []error // problems with single files or directories; pruning goes on
}

// PruneLogs applies r to the log files under dirs (each an app's log-directory; a directory may appear
// more than once or not exist — skip missing ones). It only ever considers files whose names match the
// Patrol log pattern `<digits>.stdout.log`, `<digits>.stderr.log`, `<digits>.stdmerge.log` inside
// `YYYY/<month>/<day>/` subdirectories (nothing else is touched, whatever the directory contains), never
// removes a file in `inUse` (absolute paths of the log files of running instances — they are open and being
// written), never follows symlinks (neither for directories nor files: a symlink is skipped), and removes
// day/month/year directories that become empty (only those, and only if they are empty). The size budget
// is global across all dirs (oldest first by modification time, ties by path). now is the time to measure
// age against.
//
// Details:
//   - The layout is LogFiles': a year is 4 digits, a month a lower-case English month name, a day 1 to 31
//     without zero padding. Only regular files are considered; a directory, symlink, fifo or socket whose
//     name matches the pattern is left alone, as is everything in a directory outside the layout.
//   - Each entry of dirs is the app's configured log directory and is used as it is, even when it is itself
//     a symlink (StartApp writes through it too); everything below it is walked without following
//     symlinks. Every operation below it is made relative to an open directory (os.Root), so a directory
//     swapped for a symlink while pruning cannot lead outside the log directory. Relative entries are made
//     absolute; empty entries are skipped; a directory reached twice (listed twice or through an alias) is
//     walked once, and a file reached twice (hard link) counts once.
//   - A file is older than Days when its modification time is before now minus Days × 24 hours. Negative
//     Days or MaxBytes mean no limit.
//   - A file is in use when its path (the log directory as given, made absolute and cleaned, joined with
//     YYYY/month/day/name) is in inUse, or when it is the same file (device and inode) as a path of inUse,
//     which protects it also when inUse names it through another path. In-use files count toward the size
//     budget but are never removed, so the budget may not be met; Kept and KeptBytes then include them.
//   - A directory becomes empty when PruneLogs removed a file (or, for months and years, a directory) from
//     it and nothing else is left; directories that were already empty are left alone. The day directory of
//     now's date (local time, as LogFiles names it) is never removed, because StartApp may be about to
//     create a log file in it.
//   - Nothing is read from the files; each directory of the layout is listed once and each candidate file
//     is stat'ed once (linear in the size of the tree); the size budget sorts the remaining files, and only
//     when they exceed it.
//   - MaxInstances counts instances per log directory (each entry of dirs): the files of one start share
//     the unixnano of their names. The newest MaxInstances instances are kept; in-use files count and are
//     never removed.
//   - A file or directory that vanishes while pruning is not an error. Removed lists the paths in the order
//     of removal: age first (walk order), then the instance cap (newest kept), then size (oldest first).
func PruneLogs(dirs []string, inUse map[string]bool, r Retention, now time.Time) PruneResult {
	p := &pruner{
		r:       r,
		inUse:   make(map[string]bool, len(inUse)),
		inUseID: make(map[inode]bool, len(inUse)),
		seen:    map[inode]bool{},
		touched: map[string]bool{},
	}
	if r.Days > 0 {
		p.cutoff = now.Add(-time.Duration(r.Days) * 24 * time.Hour)
	}
	t := now.Local()
	p.today = filepath.Join(fmt.Sprintf("%04d", t.Year()), strings.ToLower(t.Month().String()), strconv.Itoa(t.Day()))
	for path, ok := range inUse {
		if !ok {
			continue
		}
		p.inUse[filepath.Clean(path)] = true
		if fi, err := os.Stat(path); err == nil {
			if id, ok := inodeOf(fi); ok {
				p.inUseID[id] = true
			}
		}
	}
	p.openRoots(dirs)
	defer func() {
		for _, lr := range p.roots {
			lr.root.Close()
		}
	}()
	for i := range p.roots {
		p.walkRoot(i)
	}
	p.applyInstanceCap()
	p.applyBudget()
	p.removeEmptyDirs()
	for i := range p.files {
		if f := &p.files[i]; !f.removed {
			p.res.Kept++
			p.res.KeptBytes += f.size
		}
	}
	return p.res
}

// pruner is the state of one PruneLogs call.
type pruner struct {
	r       Retention
	cutoff  time.Time // files modified before are too old; zero without an age limit
	today   string    // "YYYY/month/day" of now, whose day directory is kept
	inUse   map[string]bool
	inUseID map[inode]bool
	seen    map[inode]bool // files already found, against hard links and aliased directories
	roots   []pruneRoot
	files   []pruneFile     // files kept by the age limit, in walk order
	touched map[string]bool // "<root index>/<relative dir>" of directories a file or directory was removed from
	res     PruneResult
}

// pruneRoot is an open log directory.
type pruneRoot struct {
	path string // absolute and clean
	root *os.Root
}

// pruneFile is a log file found by the walk.
type pruneFile struct {
	root    int    // index in pruner.roots
	dir     string // YYYY/month/day, relative to the root
	name    string
	path    string // absolute
	size    int64
	mtime   time.Time
	inUse   bool
	removed bool
}

// inode identifies a file by device and inode.
type inode struct{ dev, ino uint64 }

// inodeOf returns the device and inode of fi.
func inodeOf(fi fs.FileInfo) (inode, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return inode{}, false
	}
	return inode{dev: uint64(st.Dev), ino: st.Ino}, true
}

// openRoots opens the distinct existing directories of dirs.
func (p *pruner) openRoots(dirs []string) {
	paths := map[string]bool{}
	ids := map[inode]bool{}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			p.errorf("open", d, err)
			continue
		}
		if paths[abs] {
			continue
		}
		paths[abs] = true
		root, err := os.OpenRoot(abs)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				p.errorf("open", abs, err)
			}
			continue
		}
		fi, err := root.Stat(".")
		if err != nil {
			p.errorf("stat", abs, err)
			root.Close()
			continue
		}
		if id, ok := inodeOf(fi); ok {
			if ids[id] {
				root.Close()
				continue
			}
			ids[id] = true
		}
		p.roots = append(p.roots, pruneRoot{path: abs, root: root})
	}
}

// walkRoot finds the log files of root i, removing those too old.
func (p *pruner) walkRoot(i int) {
	lr := p.roots[i]
	for _, year := range p.subdirs(lr.root, lr.path, isLogYear) {
		yr := p.openSub(lr.root, lr.path, year)
		if yr == nil {
			continue
		}
		yearPath := filepath.Join(lr.path, year)
		for _, month := range p.subdirs(yr, yearPath, isLogMonth) {
			mr := p.openSub(yr, yearPath, month)
			if mr == nil {
				continue
			}
			monthPath := filepath.Join(yearPath, month)
			for _, day := range p.subdirs(mr, monthPath, isLogDay) {
				dr := p.openSub(mr, monthPath, day)
				if dr == nil {
					continue
				}
				p.walkDay(i, dr, filepath.Join(year, month, day))
				dr.Close()
			}
			mr.Close()
		}
		yr.Close()
	}
}

// walkDay finds the log files of day directory dir (relative to root i),
// open as dr, removing those too old.
func (p *pruner) walkDay(i int, dr *os.Root, dir string) {
	dirPath := filepath.Join(p.roots[i].path, dir)
	names, err := readDirIn(dr, ".")
	if err != nil {
		p.errorf("readdir", dirPath, err)
	}
	for _, e := range names {
		if !e.Type().IsRegular() || !isLogName(e.Name()) {
			continue
		}
		path := filepath.Join(dirPath, e.Name())
		// A directory opened in an os.Root lists its entries with their
		// FileInfo, read relative to the directory (lstat: a symlink is
		// itself).
		fi, err := e.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				p.errorf("lstat", path, err)
			}
			continue
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		f := pruneFile{root: i, dir: dir, name: e.Name(), path: path, size: fi.Size(), mtime: fi.ModTime()}
		f.inUse = p.inUse[path]
		if id, ok := inodeOf(fi); ok {
			if p.seen[id] {
				continue
			}
			p.seen[id] = true
			f.inUse = f.inUse || p.inUseID[id]
		}
		if !f.inUse && !p.cutoff.IsZero() && f.mtime.Before(p.cutoff) {
			if p.remove(dr, &f) || f.removed {
				continue
			}
		}
		p.files = append(p.files, f)
	}
}

// applyBudget removes the oldest files not in use until the total is at
// most MaxBytes.
func (p *pruner) applyBudget() {
	if p.r.MaxBytes <= 0 {
		return
	}
	var total int64
	order := make([]*pruneFile, 0, len(p.files))
	for i := range p.files {
		if f := &p.files[i]; !f.removed { // by the instance cap
			total += f.size
			order = append(order, f)
		}
	}
	if total <= p.r.MaxBytes {
		return
	}
	slices.SortFunc(order, func(a, b *pruneFile) int {
		if c := a.mtime.Compare(b.mtime); c != 0 {
			return c
		}
		return cmp.Compare(a.path, b.path)
	})
	var days dayDirs
	defer days.close()
	for _, f := range order {
		if total <= p.r.MaxBytes {
			break
		}
		if f.inUse {
			continue
		}
		if p.removeFile(&days, f) {
			total -= f.size
		}
	}
}

// applyInstanceCap removes, in each log directory, the files of all but
// the newest MaxInstances instances, except files in use (whose instances
// count toward the cap all the same).
func (p *pruner) applyInstanceCap() {
	if p.r.MaxInstances <= 0 {
		return
	}
	type inst struct {
		root  int
		dir   string
		nano  int64
		files []*pruneFile
	}
	byStem := map[string]*inst{}
	var insts []*inst
	for i := range p.files {
		f := &p.files[i]
		nano, ok := logNano(f.name)
		if !ok {
			continue // more digits than an int64: not Patrol's
		}
		key := strconv.Itoa(f.root) + "/" + f.dir + "/" + strconv.FormatInt(nano, 10)
		in := byStem[key]
		if in == nil {
			in = &inst{root: f.root, dir: f.dir, nano: nano}
			byStem[key] = in
			insts = append(insts, in)
		}
		in.files = append(in.files, f)
	}
	// Newest first within each log directory.
	slices.SortFunc(insts, func(a, b *inst) int {
		if a.root != b.root {
			return cmp.Compare(a.root, b.root)
		}
		if c := cmp.Compare(b.nano, a.nano); c != 0 {
			return c
		}
		return cmp.Compare(b.dir, a.dir)
	})
	var days dayDirs
	defer days.close()
	kept, root := 0, -1
	for _, in := range insts {
		if in.root != root {
			kept, root = 0, in.root
		}
		if kept < p.r.MaxInstances || slices.ContainsFunc(in.files, func(f *pruneFile) bool { return f.inUse }) {
			kept++ // an instance with a file in use keeps all its files
			continue
		}
		for _, f := range in.files {
			p.removeFile(&days, f)
		}
	}
}

// dayDirs keeps the last day directory a removal opened: files of one day
// directory mostly come one after the other.
type dayDirs struct {
	dr  *os.Root
	key string
	err error
}

func (d *dayDirs) close() {
	if d.dr != nil {
		d.dr.Close()
	}
}

// removeFile removes f, opening its day directory through days, and
// reports whether f is gone (removed now, or vanished).
func (p *pruner) removeFile(days *dayDirs, f *pruneFile) bool {
	if key := strconv.Itoa(f.root) + "/" + f.dir; key != days.key {
		days.close()
		days.key = key
		days.dr, days.err = p.roots[f.root].root.OpenRoot(f.dir)
		if days.err != nil && !errors.Is(days.err, fs.ErrNotExist) {
			p.errorf("open", filepath.Dir(f.path), days.err)
		}
	}
	switch {
	case days.err == nil:
		p.remove(days.dr, f)
	case errors.Is(days.err, fs.ErrNotExist):
		f.removed = true // vanished with its directory
	}
	return f.removed
}

// remove removes f from its day directory, open as dr. It reports whether
// this call removed it; f.removed is also set when the file had vanished.
func (p *pruner) remove(dr *os.Root, f *pruneFile) bool {
	if err := dr.Remove(f.name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			f.removed = true
			return false
		}
		p.errorf("remove", f.path, err)
		return false
	}
	f.removed = true
	p.res.Removed = append(p.res.Removed, f.path)
	p.res.RemovedBytes += f.size
	p.touched[strconv.Itoa(f.root)+"/"+f.dir] = true
	return true
}

// removeEmptyDirs removes the day, then month, then year directories that
// became empty.
func (p *pruner) removeEmptyDirs() {
	for range 3 { // day, month, year
		keys := make([]string, 0, len(p.touched))
		for k := range p.touched {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		clear(p.touched)
		for _, k := range keys {
			is, dir, _ := strings.Cut(k, "/")
			i, _ := strconv.Atoi(is)
			if dir == p.today {
				continue
			}
			lr := p.roots[i]
			fi, err := lr.root.Lstat(dir)
			if err != nil || !fi.IsDir() {
				continue // vanished, or replaced: not ours any more
			}
			if err := lr.root.Remove(dir); err != nil {
				if !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) && !errors.Is(err, fs.ErrNotExist) {
					p.errorf("remove", filepath.Join(lr.path, dir), err)
				}
				continue
			}
			if parent := filepath.Dir(dir); parent != "." {
				p.touched[is+"/"+parent] = true
			}
		}
	}
}

// subdirs returns the names of the subdirectories (not symlinks) of the
// directory open as r at path whose names satisfy match.
func (p *pruner) subdirs(r *os.Root, path string, match func(string) bool) []string {
	ents, err := readDirIn(r, ".")
	if err != nil {
		p.errorf("readdir", path, err)
	}
	return dirNames(ents, match)
}

// dirNames returns the names of the directories (not symlinks) among ents
// that satisfy match.
func dirNames(ents []fs.DirEntry, match func(string) bool) []string {
	var names []string
	for _, e := range ents {
		if e.IsDir() && match(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

// openSub opens subdirectory name of the directory open as r at path, or
// returns nil.
func (p *pruner) openSub(r *os.Root, path, name string) *os.Root {
	sub, err := r.OpenRoot(name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			p.errorf("open", filepath.Join(path, name), err)
		}
		return nil
	}
	return sub
}

// readDirIn lists directory dir of r ("." for r itself), in directory
// order. On an error it returns what it read before.
func readDirIn(r *os.Root, dir string) ([]fs.DirEntry, error) {
	f, err := r.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// errorf records a problem with path, keeping the cause of err.
func (p *pruner) errorf(op, path string, err error) {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	p.res.Errors = append(p.res.Errors, &os.PathError{Op: "prune logs: " + op, Path: path, Err: err})
}

// isLogYear reports whether name is a year directory of the log layout.
func isLogYear(name string) bool {
	return len(name) == 4 && isDigits(name)
}

// logMonths are the names of the month directories of the log layout.
var logMonths = func() map[string]bool {
	m := make(map[string]bool, 12)
	for i := time.January; i <= time.December; i++ {
		m[strings.ToLower(i.String())] = true
	}
	return m
}()

// isLogMonth reports whether name is a month directory of the log layout.
func isLogMonth(name string) bool {
	return logMonths[name]
}

// isLogDay reports whether name is a day directory of the log layout: 1 to
// 31 without zero padding.
func isLogDay(name string) bool {
	if name == "" || len(name) > 2 || name[0] == '0' || !isDigits(name) {
		return false
	}
	d, _ := strconv.Atoi(name)
	return d <= 31
}

// isLogName reports whether name is a log file name of the log layout.
func isLogName(name string) bool {
	for _, suffix := range [...]string{".stdout.log", ".stderr.log", ".stdmerge.log"} {
		if digits, ok := strings.CutSuffix(name, suffix); ok {
			return digits != "" && isDigits(digits)
		}
	}
	return false
}

// logNano returns the unixnano a log file's name starts with (the time
// its instance started, LogFiles), and whether name is a log file name.
func logNano(name string) (int64, bool) {
	if !isLogName(name) {
		return 0, false
	}
	digits, _, _ := strings.Cut(name, ".")
	nano, err := strconv.ParseInt(digits, 10, 64)
	return nano, err == nil
}

// isDigits reports whether s has only ASCII digits.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
