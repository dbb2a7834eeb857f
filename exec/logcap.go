package exec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The count cap on log files (log-retention.max-instances). Retention by age
// and size runs an hour apart and does not bound inodes: a crash loop made
// 163,892 empty files in 76 s. So every start of an app with a cap counts
// the instances whose log files it made, and once there are more than the
// cap, the oldest instances' files are removed, off the start path, by a
// goroutine that runs only while there is such work; should it fall behind
// (more than maxCapBacklog instances waiting), a start removes its share
// itself, so a crash loop can never make files faster than they go.
//
// The first time an app goes over its cap, the files its log directory
// held before (an earlier Patrol's) are listed once and counted in, oldest
// first by the unixnano in their names, so the cap is exact from then on.
// A log directory shared by several apps is never listed (its files cannot
// be told apart): each app then counts only the instances it started
// since this Patrol started, and the hourly retention pass caps the
// directory as a whole (PruneLogs with MaxInstances). The files of the
// instance just started are never removed, and an app has no other
// instance running when it starts (never two copies).

// maxCapBacklog bounds the instances waiting for their files to be removed.
const maxCapBacklog = 64

// logStem is one instance's log files: <root>/<day>/<nano>.std*.log.
type logStem struct {
	day  string // "YYYY/month/day", relative to the log directory
	nano int64
}

// capDir is what the cap knows of one app's log directory.
type capDir struct {
	root  string
	keep  int       // the cap at the last start
	stems []logStem // instances with files, oldest first
	last  logStem   // the newest start's: never removed
	// complete is set once stems also counts the files that were there
	// before (or, for a shared directory, when those are not counted).
	complete, listing bool
}

// capJob is work for the remover: list d, or remove the files of stems.
type capJob struct {
	d      *capDir
	list   bool
	remove []logStem
}

// logCap caps the log files of apps by count. Its zero value is ready.
type logCap struct {
	mu      sync.Mutex
	dirs    map[string]*capDir // by log directory (and app id, when shared)
	queue   []capJob
	backlog int // stems in queue
	running bool
	wg      sync.WaitGroup
	// errs counts removals that failed for another reason than a file
	// already gone (for tests and logs).
	errs  int
	onErr func(error)
}

// started records a start of app id whose stdout log file is outPath, in
// log directory root, capped at keep instances (0: no cap); shared says
// other apps use root too.
func (c *logCap) started(id, root, outPath string, keep int, shared bool) {
	stem, ok := stemOf(root, outPath)
	if !ok {
		return
	}
	key := root
	if shared {
		key = root + "\x00" + id
	}
	c.mu.Lock()
	if keep <= 0 {
		delete(c.dirs, key)
		c.mu.Unlock()
		return
	}
	if c.dirs == nil {
		c.dirs = map[string]*capDir{}
	}
	d := c.dirs[key]
	if d == nil {
		d = &capDir{root: root, complete: shared}
		c.dirs[key] = d
	}
	if n := len(d.stems); n > 0 && d.stems[n-1].day == stem.day {
		stem.day = d.stems[n-1].day // one string per day
	}
	d.keep, d.last = keep, stem
	d.stems = append(d.stems, stem)
	var job capJob
	switch {
	case len(d.stems) <= keep:
	case !d.complete:
		if !d.listing {
			d.listing = true
			job = capJob{d: d, list: true}
		}
	default:
		if out := d.take(); len(out) > 0 {
			job = capJob{d: d, remove: out}
		}
	}
	inline := job.d != nil && c.backlog >= maxCapBacklog
	if job.d != nil && !inline {
		c.queue = append(c.queue, job)
		c.backlog += len(job.remove)
		if !c.running {
			c.running = true
			c.wg.Go(c.run)
		}
	}
	c.mu.Unlock()
	if inline {
		c.do(job)
	}
}

// take removes from d the instances over its cap, oldest first, except
// the newest start's, and returns them; c.mu is held.
func (d *capDir) take() []logStem {
	n := len(d.stems) - d.keep
	if n <= 0 {
		return nil
	}
	var out []logStem
	kept := d.stems[:0]
	for _, s := range d.stems {
		if len(out) < n && s != d.last {
			out = append(out, s)
			continue
		}
		kept = append(kept, s)
	}
	clear(d.stems[len(kept):])
	d.stems = kept
	return out
}

// run does the queued jobs until there are none, all the jobs waiting at
// once each time round.
func (c *logCap) run() {
	for {
		c.mu.Lock()
		jobs := c.queue
		c.queue, c.backlog = nil, 0
		if len(jobs) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		// The removals of one directory, one after the other in a crash
		// loop, are done together.
		byDir := map[*capDir][]logStem{}
		var order []*capDir
		for _, job := range jobs {
			if job.list {
				c.do(job)
				continue
			}
			if byDir[job.d] == nil {
				order = append(order, job.d)
			}
			byDir[job.d] = append(byDir[job.d], job.remove...)
		}
		for _, d := range order {
			c.remove(d.root, byDir[d])
		}
	}
}

// do does one job: a listing, then the removals it leads to.
func (c *logCap) do(job capJob) {
	if job.list {
		found, err := listStems(job.d.root)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.fail(err)
		}
		c.mu.Lock()
		d := job.d
		d.stems = mergeStems(found, d.stems)
		d.complete, d.listing = true, false
		job.remove = d.take()
		c.mu.Unlock()
	}
	if len(job.remove) > 0 {
		c.remove(job.d.root, job.remove)
	}
}

// remove removes the log files of stems from the log directory root, and
// the day, month and year directories that this leaves empty (not
// today's, where a start may be about to create files).
func (c *logCap) remove(root string, stems []logStem) {
	r, err := os.OpenRoot(root)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.fail(err)
		}
		return
	}
	defer r.Close()
	days := map[string]bool{}
	for _, s := range stems {
		base := strconv.FormatInt(s.nano, 10)
		for _, suffix := range [...]string{".stdout.log", ".stderr.log", ".stdmerge.log"} {
			if err := r.Remove(s.day + "/" + base + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				c.fail(err)
			}
		}
		days[s.day] = true
	}
	today := dayDir(time.Now())
	for day := range days {
		for dir := day; dir != "." && dir != today && !strings.HasPrefix(today, dir+"/"); dir = filepath.Dir(dir) {
			if r.Remove(dir) != nil {
				break // not empty (or gone): its parents are not either
			}
		}
	}
}

func (c *logCap) fail(err error) {
	c.mu.Lock()
	c.errs++
	onErr := c.onErr
	c.mu.Unlock()
	if onErr != nil {
		onErr(err)
	}
}

// wait waits until the remover has nothing left to do.
func (c *logCap) wait() { c.wg.Wait() }

// dayDir is the "YYYY/month/day" directory of t in the log layout.
func dayDir(t time.Time) string {
	t = t.Local()
	return fmt.Sprintf("%04d/%s/%d", t.Year(), strings.ToLower(t.Month().String()), t.Day())
}

// stemOf returns the instance of a log file path under the log directory
// root (both clean).
func stemOf(root, path string) (logStem, bool) {
	if len(path) <= len(root) || path[len(root)] != '/' || path[:len(root)] != root {
		return logStem{}, false
	}
	rel := path[len(root)+1:]
	slash := strings.LastIndexByte(rel, '/')
	if slash < 0 {
		return logStem{}, false
	}
	nano, ok := logNano(rel[slash+1:])
	return logStem{day: rel[:slash], nano: nano}, ok
}

// listStems lists the instances whose log files are in the log directory
// root, in the layout of LogFiles, oldest first; it is PruneLogs' walk,
// reading names only.
func listStems(root string) ([]logStem, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var firstErr error
	list := func(dir string) []fs.DirEntry {
		ents, err := readDirIn(r, dir)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return ents
	}
	seen := map[logStem]bool{}
	var out []logStem
	for _, y := range dirNames(list("."), isLogYear) {
		for _, m := range dirNames(list(y), isLogMonth) {
			for _, d := range dirNames(list(y+"/"+m), isLogDay) {
				day := y + "/" + m + "/" + d
				for _, e := range list(day) {
					if !e.Type().IsRegular() {
						continue
					}
					if nano, ok := logNano(e.Name()); ok && !seen[logStem{day, nano}] {
						seen[logStem{day, nano}] = true
						out = append(out, logStem{day, nano})
					}
				}
			}
		}
	}
	slices.SortFunc(out, compareStems)
	return out, firstErr
}

// mergeStems merges two lists of instances, oldest first, without
// duplicates.
func mergeStems(a, b []logStem) []logStem {
	out := slices.Concat(a, b)
	slices.SortFunc(out, compareStems)
	return slices.Compact(out)
}

func compareStems(a, b logStem) int {
	if a.nano != b.nano {
		if a.nano < b.nano {
			return -1
		}
		return 1
	}
	return strings.Compare(a.day, b.day)
}
