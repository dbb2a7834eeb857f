package observed

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/schema"
)

// The state store keeps Patrol's state under one directory in two files:
//
//   - state.json, the snapshot: {"version":1,"seq":N,"entries":[...]}, one
//     entry per app or service, sorted by group and id. It is only ever
//     replaced whole: written to a temporary file in the same directory,
//     fsynced, renamed over the old one, and the directory fsynced.
//   - journal.jsonl, the records since the snapshot, one JSON object per
//     line: {"seq":N,"meta":{...}}, {"seq":N,"history":{...}},
//     {"seq":N,"instance":{...}} or {"seq":N,"delete":{...}}. The last record
//     of each Sync also carries "end":true: a batch without its end marker
//     was never acknowledged, so replay drops it whole, and one Sync's
//     changes survive a crash together or not at all.
//
// Sequence numbers go up by one per record and are never reused. The
// snapshot says which record it includes, so a crash between writing a new
// snapshot and emptying the journal never applies a record twice: replay
// skips records whose seq is not above the snapshot's.

// StoreVersion is the version of the state store's file format, written
// into every snapshot. OpenStore sets a snapshot of any other version aside
// as corrupt rather than guess at its meaning.
const StoreVersion = 1

const (
	snapshotName = "state.json"
	journalName  = "journal.jsonl"
	// corruptStamp is the layout of the UTC time in the name of a file set
	// aside as corrupt: state.json.corrupt-20060102T150405Z.
	corruptStamp = "20060102T150405Z"

	// defaultCompactBytes and defaultCompactRecords bound the journal: a
	// Sync that would grow it past either writes a new snapshot instead.
	defaultCompactBytes   = 4 << 20
	defaultCompactRecords = 20000
)

// Persisted is the state Patrol keeps across restarts, by app or service.
type Persisted struct {
	Entries map[desired.Key]*PersistedEntry
}

// PersistedEntry is what the store keeps for one app or service.
type PersistedEntry struct {
	CAS uint64
	// KeyValue holds values as encoding/json decodes them with UseNumber:
	// nil, bool, json.Number, string, []any and map[string]any. Put
	// normalises what it is given to these types, so the state reads the
	// same before and after a restart. An empty map is nil.
	KeyValue map[string]any
	Override *desired.Override
	// History is oldest first; nil when empty.
	History []Record
	// Instance is the running instance, nil when none.
	Instance *PersistedInstance
	// Runs are the earlier runs of a scheduled app with concurrency
	// "allow" still running (see App.Runs), oldest first; nil when none.
	Runs       []*PersistedInstance
	Starts     int
	LastStdout string
	LastStderr string
}

// PersistedInstance is a running instance as the store keeps it: enough to
// find the process again after a restart and adopt it.
type PersistedInstance struct {
	ID        string
	PID, PGID int
	SpawnPGID int
	// StartTime is the process start time from /proc/PID/stat: with the PID
	// it identifies the process.
	StartTime  uint64
	Started    time.Time
	LastSeen   time.Time
	Keepalive  int
	RunOnce    bool
	Adopted    bool
	Signalable bool
	Revision   string
	// Fingerprint is the entry's config fingerprint; Shape that of its
	// restart keys only ("" when written by an older Patrol).
	Fingerprint    string
	Shape          string
	Stdout, Stderr string
}

// A Change is one record for the store, made by SetMeta, AppendHistory,
// SetInstance or DeleteEntry. Every change but DeleteEntry creates the
// entry it names if it is missing. The zero Change is invalid.
type Change struct {
	line journalLine
}

// SetMeta returns a change that sets an entry's CAS counter, key/value
// data, override, start count and last log files.
func SetMeta(k desired.Key, cas uint64, kv map[string]any, ov *desired.Override, starts int, stdout, stderr string) Change {
	return Change{journalLine{Meta: &metaJSON{
		keyJSON:    keyOf(k),
		CAS:        cas,
		KeyValue:   kv,
		Override:   overrideToJSON(ov),
		Starts:     starts,
		LastStdout: stdout,
		LastStderr: stderr,
	}}}
}

// AppendHistory returns a change that appends r to an entry's history and
// keeps only the last limit records; a limit of 0 or less keeps none.
func AppendHistory(k desired.Key, r Record, limit int) Change {
	return Change{journalLine{History: &historyJSON{keyJSON: keyOf(k), Record: recordToJSON(r), Limit: max(limit, 0)}}}
}

// SetInstance returns a change that sets an entry's running instance; nil
// clears it.
func SetInstance(k desired.Key, inst *PersistedInstance) Change {
	return SetInstances(k, inst, nil)
}

// SetInstances returns a change that sets an entry's running instance and
// its earlier runs still running (concurrency "allow").
func SetInstances(k desired.Key, inst *PersistedInstance, runs []*PersistedInstance) Change {
	c := &instanceChangeJSON{keyJSON: keyOf(k), Instance: instanceToJSON(inst)}
	for _, r := range runs {
		c.Runs = append(c.Runs, instanceToJSON(r))
	}
	return Change{journalLine{Instance: c}}
}

// DeleteEntry returns a change that forgets an entry.
func DeleteEntry(k desired.Key) Change {
	kj := keyOf(k)
	return Change{journalLine{Delete: &kj}}
}

// CorruptError reports state OpenStore could not read and set aside: the
// store started empty. Files are the paths the files were renamed to.
type CorruptError struct {
	Files  []string
	Reason string
}

// Error says what was set aside and why.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt state store: %s; set aside as %s; starting with empty state",
		e.Reason, strings.Join(e.Files, ", "))
}

var errClosed = errors.New("state store is closed")

// Store is Patrol's crash-safe state store: a snapshot plus a journal of the
// records since, under one directory. It keeps the materialised state in
// memory. It is safe for concurrent use; Put never waits for I/O.
type Store struct {
	dir string
	log *slog.Logger

	// ioMu serialises Sync and Close and guards the fields below it.
	ioMu           sync.Mutex
	journal        *os.File
	journalBytes   int64
	journalRecords int
	// broken is set when a write to the journal or a compaction failed: the
	// journal's tail is unknown, so nothing is appended to it until a
	// compaction has replaced it.
	broken bool
	// unsynced is set when Flush wrote to the journal without an fsync.
	unsynced bool
	// compactBytes and compactRecords are the journal's limits; tests lower
	// them.
	compactBytes   int64
	compactRecords int

	// mu guards the fields below it. It is never held during I/O.
	mu           sync.Mutex
	state        *Persisted
	seq          uint64   // the last record's sequence number
	pending      [][]byte // encoded records not yet written, without newlines
	pendingBytes int64
	putErr       error
	closed       bool
}

// OpenStore opens the state store in dir, creating dir (0o700) if needed,
// and returns it with the state it holds.
//
// A journal that ends in an incomplete or unparseable line, or in records
// without their batch's end marker, was cut short by a crash during a Sync
// that never returned: that tail is dropped, with a warning through log.
// Any other damage (a snapshot that cannot be read, a bad line followed by
// acknowledged records, a sequence number out of place, another
// StoreVersion) sets both files aside as <name>.corrupt-<UTC time> and
// starts empty: OpenStore then returns a usable store, an empty state and
// a *CorruptError saying what was set aside and why. Only a directory that
// cannot be used (not a directory, permission denied, disk errors) gives a
// plain error and no store.
func OpenStore(dir string, log *slog.Logger) (*Store, *Persisted, error) {
	return OpenStoreLimited(dir, log, desired.KeyValueLimits{})
}

// OpenStoreLimited is OpenStore with key/value limits: key/value data in
// the saved state that breaks them (an older Patrol had no limits) is
// trimmed as desired.KeyValueLimits.Trim does, the entry's and every
// history record's, with a warning through log naming the entry and the
// keys dropped, and the trimmed state is written back at once as a new
// snapshot.
func OpenStoreLimited(dir string, log *slog.Logger, limits desired.KeyValueLimits) (*Store, *Persisted, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, cerr, err := openStore(dir, log, limits)
	if err != nil {
		return nil, nil, fmt.Errorf("open state store %s: %w", dir, err)
	}
	if cerr != nil {
		return s, s.State(), cerr
	}
	return s, s.State(), nil
}

func openStore(dir string, log *slog.Logger, limits desired.KeyValueLimits) (*Store, *CorruptError, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, nil, err
	} else if !fi.IsDir() {
		return nil, nil, fmt.Errorf("not a directory")
	}
	// Temporary snapshots left by a crash are of no use.
	if tmps, err := filepath.Glob(filepath.Join(dir, snapshotName+".tmp-*")); err == nil {
		for _, t := range tmps {
			if err := os.Remove(t); err != nil {
				log.Warn("state store: cannot remove a temporary file", "file", t, "err", err)
			}
		}
	}
	snapPath := filepath.Join(dir, snapshotName)
	journalPath := filepath.Join(dir, journalName)
	snap, haveSnap, err := readIfExists(snapPath)
	if err != nil {
		return nil, nil, err
	}
	journal, haveJournal, err := readIfExists(journalPath)
	if err != nil {
		return nil, nil, err
	}

	ld, reason := load(snap, haveSnap, journal)
	var cerr *CorruptError
	if reason != "" {
		files, err := setAside(dir, haveSnap, haveJournal)
		if err != nil {
			return nil, nil, fmt.Errorf("set aside corrupt state (%s): %w", reason, err)
		}
		cerr = &CorruptError{Files: files, Reason: reason}
		ld = &loaded{state: &Persisted{Entries: map[desired.Key]*PersistedEntry{}}}
		haveSnap = false
	} else if ld.dropped > 0 {
		log.Warn("state store: dropping the incomplete tail of the journal, left by a crash during a write that was never acknowledged",
			"file", journalPath, "bytes", int64(len(journal))-ld.keep, "lines", ld.dropped)
	}

	trimmed := trimKeyValues(ld.state, limits, log)

	f, err := os.OpenFile(journalPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	s := &Store{
		dir:            dir,
		log:            log,
		journal:        f,
		journalBytes:   ld.keep,
		journalRecords: ld.records,
		compactBytes:   defaultCompactBytes,
		compactRecords: defaultCompactRecords,
		state:          ld.state,
		seq:            ld.seq,
	}
	if !haveSnap || ld.stale > 0 || trimmed {
		// A first snapshot records the version; records the snapshot
		// already holds are cleared out; trimmed key/value data replaces
		// what broke the limits.
		data, err := encodeSnapshot(s.state, s.seq)
		if err == nil {
			err = s.compact(data)
		}
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return s, cerr, nil
	}
	if cerr == nil && ld.dropped > 0 {
		if err := f.Truncate(ld.keep); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("truncate %s: %w", journalName, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("sync %s: %w", journalName, err)
		}
	}
	if !haveJournal {
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	return s, cerr, nil
}

// Put applies changes to the in-memory state and queues them for the next
// Sync. It never waits for I/O. A change that cannot be stored (a key with
// an unknown group or no id, a value JSON cannot encode, a time outside
// years 0-9999) is dropped, and the next Sync reports it. Put after Close
// does nothing.
func (s *Store) Put(changes ...Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for _, c := range changes {
		l := c.line
		l.Seq = s.seq + 1
		b, err := json.Marshal(&l)
		var d *journalLine
		switch {
		case err != nil:
		case l.identity():
			// Decoding would give l back: apply it as it is.
			d, err = &l, l.check()
		default:
			// Applying the decoded record, as replay does, makes the state
			// the same before and after a restart.
			d, err = decodeLine(b)
		}
		if err != nil {
			if s.putErr == nil {
				s.putErr = fmt.Errorf("put %s: %w", c.line.describe(), err)
			}
			continue
		}
		s.seq++
		s.state.apply(d)
		s.pending = append(s.pending, b)
		s.pendingBytes += int64(len(b)) + 1
	}
}

// Sync writes the changes queued by Put to the journal with one write and
// one fsync; with nothing queued it does nothing. When the journal would
// grow past its limits, or after a failed write, it writes a new snapshot
// and empties the journal instead. After Sync returns nil, every change Put
// before it survives a crash of Patrol or of the machine (given disks that
// honour fsync).
func (s *Store) Sync() error {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	if err := s.syncLocked(true); err != nil {
		return fmt.Errorf("sync state store %s: %w", s.dir, err)
	}
	return nil
}

// Flush is Sync without the fsync: the changes reach the journal (the
// kernel's page cache) and survive a crash of Patrol, not of the machine,
// until the next Sync makes them durable. It is for records whose only use
// is after a crash of Patrol while the machine runs on, such as start
// intents: after a crash of the machine there is no process to find.
func (s *Store) Flush() error {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	if err := s.syncLocked(false); err != nil {
		return fmt.Errorf("flush state store %s: %w", s.dir, err)
	}
	return nil
}

func (s *Store) syncLocked(fsync bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	putErr := s.putErr
	s.putErr = nil
	batch, batchBytes := s.pending, s.pendingBytes
	s.pending, s.pendingBytes = nil, 0
	compact := s.broken || len(batch) > 0 &&
		(s.journalBytes+batchBytes > s.compactBytes || s.journalRecords+len(batch) > s.compactRecords)
	var snap []byte
	var err error
	if compact {
		// The snapshot includes the batch: the batch is not written.
		snap, err = encodeSnapshot(s.state, s.seq)
	}
	s.mu.Unlock()

	switch {
	case compact && err != nil:
		s.broken = true
	case compact:
		err = s.compact(snap)
	case len(batch) > 0:
		err = s.append(batch, batchBytes, fsync)
	case fsync && s.unsynced:
		err = s.fsyncJournal()
	}
	return errors.Join(putErr, err)
}

// fsyncJournal makes the journal's writes so far durable. s.ioMu is held.
func (s *Store) fsyncJournal() error {
	if err := s.journal.Sync(); err != nil {
		// After a failed fsync the file's contents are unknown; only a new
		// snapshot makes the batch durable.
		s.broken = true
		return fmt.Errorf("sync %s: %w", journalName, err)
	}
	s.unsynced = false
	return nil
}

// append writes a batch of records to the journal, marking its last record
// as the batch's end, and fsyncs it when fsync is set. s.ioMu is held.
func (s *Store) append(batch [][]byte, size int64, fsync bool) error {
	buf := make([]byte, 0, size+int64(len(`"end":true,`)))
	for i, b := range batch {
		if i == len(batch)-1 {
			buf = append(buf, `{"end":true,`...)
			buf = append(buf, b[1:]...)
		} else {
			buf = append(buf, b...)
		}
		buf = append(buf, '\n')
	}
	if _, err := s.journal.Write(buf); err != nil {
		s.broken = true
		return fmt.Errorf("write %s: %w", journalName, err)
	}
	s.journalBytes += int64(len(buf))
	s.journalRecords += len(batch)
	if !fsync {
		s.unsynced = true
		return nil
	}
	return s.fsyncJournal()
}

// compact replaces the snapshot with data and then empties the journal.
// s.ioMu is held. A crash in between leaves a journal whose records the
// new snapshot already holds; replay skips them by their seq.
func (s *Store) compact(data []byte) error {
	s.broken = true
	if err := writeSnapshot(s.dir, data); err != nil {
		return err
	}
	// A new file descriptor: the old one may carry a failed write.
	f, err := os.OpenFile(filepath.Join(s.dir, journalName), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("empty %s: %w", journalName, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("empty %s: %w", journalName, err)
	}
	if s.journal != nil {
		s.journal.Close()
	}
	s.journal = f
	s.journalBytes, s.journalRecords = 0, 0
	s.broken, s.unsynced = false, false
	return nil
}

// State returns a deep copy of the state.
func (s *Store) State() *Persisted {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.clone()
}

// Close syncs the store and closes it. Closing a closed store does
// nothing.
func (s *Store) Close() error {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}
	err := s.syncLocked(true)
	s.mu.Lock()
	s.closed = true
	s.pending, s.pendingBytes = nil, 0
	s.mu.Unlock()
	if cerr := s.journal.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close state store %s: %w", s.dir, err)
	}
	return nil
}

// Files.

func readIfExists(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// writeSnapshot replaces the snapshot atomically and durably.
func writeSnapshot(dir string, data []byte) error {
	f, err := os.CreateTemp(dir, snapshotName+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", snapshotName, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, snapshotName))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", snapshotName, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// setAside renames the store's files to <name>.corrupt-<UTC time> and
// returns their new paths.
func setAside(dir string, snap, journal bool) ([]string, error) {
	stamp := time.Now().UTC().Format(corruptStamp)
	var files []string
	for _, f := range []struct {
		name   string
		exists bool
	}{{snapshotName, snap}, {journalName, journal}} {
		if !f.exists {
			continue
		}
		to := filepath.Join(dir, f.name+".corrupt-"+stamp)
		for i := 2; ; i++ {
			if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
				break
			}
			to = filepath.Join(dir, f.name+".corrupt-"+stamp+"-"+strconv.Itoa(i))
		}
		if err := os.Rename(filepath.Join(dir, f.name), to); err != nil {
			return nil, err
		}
		files = append(files, to)
	}
	return files, syncDir(dir)
}

// Replay.

// loaded is the outcome of reading a snapshot and a journal.
type loaded struct {
	state *Persisted
	seq   uint64 // the last record applied
	// keep is the length of the journal's acknowledged prefix; dropped
	// counts the lines after it.
	keep    int64
	dropped int
	// records counts the records kept; stale, those the snapshot already
	// held.
	records int
	stale   int
}

// load rebuilds the state from a snapshot and a journal. It returns why
// they are corrupt, or "".
func load(snap []byte, haveSnap bool, journal []byte) (*loaded, string) {
	ld := &loaded{state: &Persisted{Entries: map[desired.Key]*PersistedEntry{}}}
	var snapSeq uint64
	if haveSnap {
		var err error
		if ld.state, snapSeq, err = decodeSnapshot(snap); err != nil {
			return nil, snapshotName + ": " + err.Error()
		}
	}
	ld.seq = snapSeq

	var (
		batch    []*journalLine
		prev     uint64
		off      int
		lineNo   int
		tornLine int // the first unreadable line, 0 if none
	)
	for off < len(journal) {
		lineNo++
		n := bytes.IndexByte(journal[off:], '\n')
		if n < 0 || !json.Valid(journal[off:off+n]) {
			tornLine = lineNo
			break
		}
		l, err := decodeLine(journal[off : off+n])
		switch {
		case err != nil:
			return nil, fmt.Sprintf("%s line %d: %v", journalName, lineNo, err)
		case l.Seq <= prev:
			return nil, fmt.Sprintf("%s line %d: seq %d after %d", journalName, lineNo, l.Seq, prev)
		case l.Seq > snapSeq && l.Seq != max(prev, snapSeq)+1:
			return nil, fmt.Sprintf("%s line %d: seq %d, want %d (records are missing between the snapshot's seq %d and it)",
				journalName, lineNo, l.Seq, max(prev, snapSeq)+1, snapSeq)
		}
		prev = l.Seq
		off += n + 1
		batch = append(batch, l)
		if !l.End {
			continue
		}
		for _, l := range batch {
			if l.Seq <= snapSeq {
				ld.stale++
				continue
			}
			ld.state.apply(l)
			ld.seq = l.Seq
		}
		ld.records += len(batch)
		ld.keep = int64(off)
		batch = batch[:0]
	}
	if tornLine > 0 {
		// An unreadable line is a torn write only if no acknowledged batch
		// ends after it.
		rest := journal[off:]
		for i := 1; len(rest) > 0; i++ {
			line := rest
			if n := bytes.IndexByte(rest, '\n'); n >= 0 {
				line, rest = rest[:n], rest[n+1:]
			} else {
				rest = nil
			}
			if i == 1 || !json.Valid(line) {
				continue
			}
			if l, err := decodeLine(line); err == nil && l.End {
				return nil, fmt.Sprintf("%s line %d is unreadable, and acknowledged records follow it on line %d",
					journalName, tornLine, tornLine+i-1)
			}
		}
	}
	if tail := journal[ld.keep:]; len(tail) > 0 {
		ld.dropped = bytes.Count(tail, []byte{'\n'})
		if tail[len(tail)-1] != '\n' {
			ld.dropped++
		}
	}
	return ld, ""
}

// decodeLine decodes and checks one journal record.
func decodeLine(b []byte) (*journalLine, error) {
	var l journalLine
	if err := decodeStrict(b, &l); err != nil {
		return nil, err
	}
	if err := l.check(); err != nil {
		return nil, err
	}
	return &l, nil
}

func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

func decodeSnapshot(b []byte) (*Persisted, uint64, error) {
	var v struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, 0, fmt.Errorf("not a state snapshot: %w", err)
	}
	switch {
	case v.Version == nil:
		return nil, 0, errors.New("no store version")
	case *v.Version != StoreVersion:
		return nil, 0, fmt.Errorf("store version %d, but this Patrol reads version %d", *v.Version, StoreVersion)
	}
	var sj snapshotJSON
	if err := decodeStrict(b, &sj); err != nil {
		return nil, 0, err
	}
	p := &Persisted{Entries: make(map[desired.Key]*PersistedEntry, len(sj.Entries))}
	for i := range sj.Entries {
		ej := &sj.Entries[i]
		if err := ej.check(); err != nil {
			return nil, 0, fmt.Errorf("entry %d: %w", i, err)
		}
		k := ej.key()
		if _, dup := p.Entries[k]; dup {
			return nil, 0, fmt.Errorf("entry %d: %s %q appears twice", i, k.Group, k.ID)
		}
		e := &PersistedEntry{Instance: ej.Instance.model()}
		ej.setMeta(e)
		for _, r := range ej.History {
			e.History = append(e.History, r.model())
		}
		p.Entries[k] = e
	}
	return p, sj.Seq, nil
}

func encodeSnapshot(p *Persisted, seq uint64) ([]byte, error) {
	sj := snapshotJSON{Version: StoreVersion, Seq: seq, Entries: make([]entryJSON, 0, len(p.Entries))}
	for _, k := range slices.SortedFunc(maps.Keys(p.Entries), func(a, b desired.Key) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.ID, b.ID))
	}) {
		e := p.Entries[k]
		ej := entryJSON{
			metaJSON: metaJSON{
				keyJSON:    keyOf(k),
				CAS:        e.CAS,
				KeyValue:   e.KeyValue,
				Override:   overrideToJSON(e.Override),
				Starts:     e.Starts,
				LastStdout: e.LastStdout,
				LastStderr: e.LastStderr,
			},
			Instance: instanceToJSON(e.Instance),
			Runs:     runsToJSON(e.Runs),
		}
		for _, r := range e.History {
			ej.History = append(ej.History, recordToJSON(r))
		}
		sj.Entries = append(sj.Entries, ej)
	}
	b, err := json.Marshal(&sj)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", snapshotName, err)
	}
	return append(b, '\n'), nil
}

// The state in memory.

func (p *Persisted) entry(k keyJSON) *PersistedEntry {
	key := k.key()
	e := p.Entries[key]
	if e == nil {
		e = &PersistedEntry{}
		p.Entries[key] = e
	}
	return e
}

// apply applies a decoded record; the state takes over its maps.
func (p *Persisted) apply(l *journalLine) {
	switch {
	case l.Meta != nil:
		l.Meta.setMeta(p.entry(l.Meta.keyJSON))
	case l.History != nil:
		e := p.entry(l.History.keyJSON)
		e.History = append(e.History, l.History.Record.model())
		if n := len(e.History) - l.History.Limit; n > 0 {
			e.History = e.History[:copy(e.History, e.History[n:])]
		}
		if len(e.History) == 0 {
			e.History = nil
		}
	case l.Instance != nil:
		e := p.entry(l.Instance.keyJSON)
		e.Instance, e.Runs = l.Instance.Instance.model(), runsModel(l.Instance.Runs)
	case l.Delete != nil:
		delete(p.Entries, l.Delete.key())
	}
}

func (p *Persisted) clone() *Persisted {
	c := &Persisted{Entries: make(map[desired.Key]*PersistedEntry, len(p.Entries))}
	for k, e := range p.Entries {
		ce := *e
		ce.KeyValue = cloneKeyValue(e.KeyValue)
		if e.Override != nil {
			o := *e.Override
			if o.Disabled != nil {
				d := *o.Disabled
				o.Disabled = &d
			}
			ce.Override = &o
		}
		if e.History != nil {
			ce.History = make([]Record, len(e.History))
			for i, r := range e.History {
				r.KeyValue = cloneKeyValue(r.KeyValue)
				ce.History[i] = r
			}
		}
		if e.Instance != nil {
			inst := *e.Instance
			ce.Instance = &inst
		}
		ce.Runs = nil
		for _, r := range e.Runs {
			run := *r
			ce.Runs = append(ce.Runs, &run)
		}
		c.Entries[k] = &ce
	}
	return c
}

func cloneKeyValue(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = cloneValue(v)
	}
	return c
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneKeyValue(v)
	case []any:
		c := make([]any, len(v))
		for i, x := range v {
			c[i] = cloneValue(x)
		}
		return c
	}
	return v
}

// The files' JSON. These types, not the Go types they mirror, define the
// format, so renaming a Go field cannot silently change it; a test checks
// that they cover every field.

type snapshotJSON struct {
	Version int         `json:"version"`
	Seq     uint64      `json:"seq"`
	Entries []entryJSON `json:"entries"`
}

type entryJSON struct {
	metaJSON
	History  []recordJSON    `json:"history,omitempty"`
	Instance *instanceJSON   `json:"instance,omitempty"`
	Runs     []*instanceJSON `json:"runs,omitempty"`
}

// journalLine is one journal record: exactly one of its changes is set.
type journalLine struct {
	Seq      uint64              `json:"seq"`
	End      bool                `json:"end,omitempty"`
	Meta     *metaJSON           `json:"meta,omitempty"`
	History  *historyJSON        `json:"history,omitempty"`
	Instance *instanceChangeJSON `json:"instance,omitempty"`
	Delete   *keyJSON            `json:"delete,omitempty"`
}

type keyJSON struct {
	Group schema.Group `json:"group"`
	ID    string       `json:"id"`
}

type metaJSON struct {
	keyJSON
	CAS        uint64         `json:"cas,omitempty"`
	KeyValue   map[string]any `json:"keyvalue,omitempty"`
	Override   *overrideJSON  `json:"override,omitempty"`
	Starts     int            `json:"starts,omitempty"`
	LastStdout string         `json:"last-stdout,omitempty"`
	LastStderr string         `json:"last-stderr,omitempty"`
}

type historyJSON struct {
	keyJSON
	Record recordJSON `json:"record"`
	Limit  int        `json:"limit"`
}

type instanceChangeJSON struct {
	keyJSON
	// Instance is nil to clear the entry's instance.
	Instance *instanceJSON `json:"instance,omitempty"`
	// Runs replace the entry's earlier runs (absent: none).
	Runs []*instanceJSON `json:"runs,omitempty"`
}

type overrideJSON struct {
	Disabled    *bool     `json:"disabled,omitempty"`
	RunOnce     bool      `json:"run-once,omitempty"`
	Replicas    int       `json:"replicas,omitempty"`
	Since       time.Time `json:"since,omitzero"`
	Expires     time.Time `json:"expires,omitzero"`
	Fingerprint string    `json:"fingerprint,omitempty"`
}

type recordJSON struct {
	InstanceID     string         `json:"instance-id,omitempty"`
	PID            int            `json:"pid,omitempty"`
	Started        time.Time      `json:"started,omitzero"`
	LastSeen       time.Time      `json:"lastseen,omitzero"`
	Stopped        time.Time      `json:"stopped,omitzero"`
	Disabled       bool           `json:"disabled,omitempty"`
	Restart        bool           `json:"restart,omitempty"`
	RunOnce        bool           `json:"run-once,omitempty"`
	Shutdown       bool           `json:"shutdown,omitempty"`
	ExitCode       int            `json:"exit-code,omitempty"`
	Reason         schema.Reason  `json:"reason,omitempty"`
	ConfigRevision string         `json:"config-revision,omitempty"`
	KeyValue       map[string]any `json:"keyvalue,omitempty"`
}

type instanceJSON struct {
	ID          string    `json:"instance-id,omitempty"`
	PID         int       `json:"pid,omitempty"`
	PGID        int       `json:"pgid,omitempty"`
	SpawnPGID   int       `json:"spawn-pgid,omitempty"`
	StartTime   uint64    `json:"start-time,omitempty"`
	Started     time.Time `json:"started,omitzero"`
	LastSeen    time.Time `json:"lastseen,omitzero"`
	Keepalive   int       `json:"keepalive,omitempty"`
	RunOnce     bool      `json:"run-once,omitempty"`
	Adopted     bool      `json:"adopted,omitempty"`
	Signalable  bool      `json:"signalable,omitempty"`
	Revision    string    `json:"revision,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Shape       string    `json:"shape,omitempty"`
	Stdout      string    `json:"stdout,omitempty"`
	Stderr      string    `json:"stderr,omitempty"`
}

func keyOf(k desired.Key) keyJSON { return keyJSON{Group: k.Group, ID: k.ID} }

func (k keyJSON) key() desired.Key { return desired.Key{Group: k.Group, ID: k.ID} }

func (k keyJSON) check() error {
	if k.Group != schema.GroupApp && k.Group != schema.GroupService {
		return fmt.Errorf("unknown group %q", k.Group)
	}
	if k.ID == "" {
		return errors.New("no id")
	}
	return nil
}

// describe names a change for an error message.
func (l *journalLine) describe() string {
	var what string
	var k keyJSON
	switch {
	case l.Meta != nil:
		what, k = "meta", l.Meta.keyJSON
	case l.History != nil:
		what, k = "history", l.History.keyJSON
	case l.Instance != nil:
		what, k = "instance", l.Instance.keyJSON
	case l.Delete != nil:
		what, k = "delete", *l.Delete
	default:
		return "empty change"
	}
	return fmt.Sprintf("%s of %s %q", what, k.Group, k.ID)
}

// identity reports whether decoding l's encoding gives l back exactly, so
// that Put may apply l without decoding it (a JSON decode per record was
// most of the cost of a start's intent): an instance change or a delete
// whose strings are valid UTF-8 (encoding replaces invalid bytes). Their
// other fields are integers, booleans and times that instanceToJSON made
// UTC without a monotonic reading, which JSON round-trips. Records that
// hold key/value data (meta, history) are decoded: JSON turns their
// numbers into json.Number.
func (l *journalLine) identity() bool {
	switch {
	case l.Meta != nil || l.History != nil:
		return false
	case l.Delete != nil:
		return l.Instance == nil && utf8.ValidString(string(l.Delete.Group)) && utf8.ValidString(l.Delete.ID)
	case l.Instance != nil:
		c := l.Instance
		if !utf8.ValidString(string(c.Group)) || !utf8.ValidString(c.ID) {
			return false
		}
		i := c.Instance
		return i == nil || utf8.ValidString(i.ID) && utf8.ValidString(i.Revision) &&
			utf8.ValidString(i.Fingerprint) && utf8.ValidString(i.Shape) && utf8.ValidString(i.Stdout) && utf8.ValidString(i.Stderr) &&
			plainUTC(i.Started) && plainUTC(i.LastSeen)
	}
	return false
}

// plainUTC reports whether t is a time JSON decodes to itself: in UTC,
// without a monotonic clock reading.
func plainUTC(t time.Time) bool { return t == t.UTC().Round(0) }

func (l *journalLine) check() error {
	var n int
	var err error
	if l.Meta != nil {
		n++
		err = l.Meta.check()
	}
	if l.History != nil {
		n++
		err = l.History.keyJSON.check()
		if err == nil && l.History.Limit < 0 {
			err = fmt.Errorf("history limit %d", l.History.Limit)
		}
		if err == nil {
			err = l.History.Record.check()
		}
	}
	if l.Instance != nil {
		n++
		err = l.Instance.keyJSON.check()
		if err == nil {
			err = l.Instance.Instance.check()
		}
		if err == nil {
			err = checkRuns(l.Instance.Runs)
		}
	}
	if l.Delete != nil {
		n++
		err = l.Delete.check()
	}
	switch {
	case n != 1:
		return fmt.Errorf("a record holds %d changes, want 1", n)
	case l.Seq == 0:
		return errors.New("no seq")
	}
	return err
}

func (m *metaJSON) check() error {
	if err := m.keyJSON.check(); err != nil {
		return err
	}
	return m.Override.check()
}

func (m *metaJSON) setMeta(e *PersistedEntry) {
	e.CAS = m.CAS
	e.KeyValue = m.KeyValue
	if len(e.KeyValue) == 0 {
		e.KeyValue = nil
	}
	e.Override = m.Override.model()
	e.Starts = m.Starts
	e.LastStdout = m.LastStdout
	e.LastStderr = m.LastStderr
}

func (e *entryJSON) check() error {
	if err := e.metaJSON.check(); err != nil {
		return err
	}
	for i := range e.History {
		if err := e.History[i].check(); err != nil {
			return fmt.Errorf("history %d: %w", i, err)
		}
	}
	if err := checkRuns(e.Runs); err != nil {
		return err
	}
	return e.Instance.check()
}

// checkRuns checks the earlier runs of an entry: each a valid instance.
func checkRuns(runs []*instanceJSON) error {
	for i, r := range runs {
		if r == nil {
			return fmt.Errorf("run %d: null", i)
		}
		if err := r.check(); err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
	}
	return nil
}

func runsToJSON(runs []*PersistedInstance) []*instanceJSON {
	var out []*instanceJSON
	for _, r := range runs {
		out = append(out, instanceToJSON(r))
	}
	return out
}

func runsModel(runs []*instanceJSON) []*PersistedInstance {
	var out []*PersistedInstance
	for _, r := range runs {
		out = append(out, r.model())
	}
	return out
}

// checkTimes reports a time that could not be written back: JSON times
// have four-digit years, in UTC once stored.
func checkTimes(ts ...time.Time) error {
	for _, t := range ts {
		if y := t.UTC().Year(); y < 0 || y > 9999 {
			return fmt.Errorf("time %s outside years 0-9999 in UTC", t.Format(time.RFC3339Nano))
		}
	}
	return nil
}

func overrideToJSON(o *desired.Override) *overrideJSON {
	if o == nil {
		return nil
	}
	oj := &overrideJSON{
		RunOnce:     o.RunOnce,
		Replicas:    o.Replicas,
		Since:       o.Since.UTC(),
		Expires:     o.Expires.UTC(),
		Fingerprint: o.Fingerprint,
	}
	if o.Disabled != nil {
		d := *o.Disabled
		oj.Disabled = &d
	}
	return oj
}

func (o *overrideJSON) check() error {
	if o == nil {
		return nil
	}
	if o.Replicas < 0 || o.Replicas > desired.MaxReplicas {
		return fmt.Errorf("override replicas %d out of range", o.Replicas)
	}
	return checkTimes(o.Since, o.Expires)
}

func (o *overrideJSON) model() *desired.Override {
	if o == nil {
		return nil
	}
	return &desired.Override{
		Disabled:    o.Disabled,
		RunOnce:     o.RunOnce,
		Replicas:    o.Replicas,
		Since:       o.Since.UTC(),
		Expires:     o.Expires.UTC(),
		Fingerprint: o.Fingerprint,
	}
}

func recordToJSON(r Record) recordJSON {
	return recordJSON{
		InstanceID:     r.InstanceID,
		PID:            r.PID,
		Started:        r.Started.UTC(),
		LastSeen:       r.LastSeen.UTC(),
		Stopped:        r.Stopped.UTC(),
		Disabled:       r.Disabled,
		Restart:        r.Restart,
		RunOnce:        r.RunOnce,
		Shutdown:       r.Shutdown,
		ExitCode:       r.ExitCode,
		Reason:         r.Reason,
		ConfigRevision: r.ConfigRevision,
		KeyValue:       r.KeyValue,
	}
}

func (r *recordJSON) check() error { return checkTimes(r.Started, r.LastSeen, r.Stopped) }

func (r *recordJSON) model() Record {
	kv := r.KeyValue
	if len(kv) == 0 {
		kv = nil
	}
	return Record{
		InstanceID:     r.InstanceID,
		PID:            r.PID,
		Started:        r.Started.UTC(),
		LastSeen:       r.LastSeen.UTC(),
		Stopped:        r.Stopped.UTC(),
		Disabled:       r.Disabled,
		Restart:        r.Restart,
		RunOnce:        r.RunOnce,
		Shutdown:       r.Shutdown,
		ExitCode:       r.ExitCode,
		Reason:         r.Reason,
		ConfigRevision: r.ConfigRevision,
		KeyValue:       kv,
	}
}

func instanceToJSON(i *PersistedInstance) *instanceJSON {
	if i == nil {
		return nil
	}
	return &instanceJSON{
		ID:          i.ID,
		PID:         i.PID,
		PGID:        i.PGID,
		SpawnPGID:   i.SpawnPGID,
		StartTime:   i.StartTime,
		Started:     i.Started.UTC(),
		LastSeen:    i.LastSeen.UTC(),
		Keepalive:   i.Keepalive,
		RunOnce:     i.RunOnce,
		Adopted:     i.Adopted,
		Signalable:  i.Signalable,
		Revision:    i.Revision,
		Fingerprint: i.Fingerprint,
		Shape:       i.Shape,
		Stdout:      i.Stdout,
		Stderr:      i.Stderr,
	}
}

func (i *instanceJSON) check() error {
	if i == nil {
		return nil
	}
	return checkTimes(i.Started, i.LastSeen)
}

func (i *instanceJSON) model() *PersistedInstance {
	if i == nil {
		return nil
	}
	return &PersistedInstance{
		ID:          i.ID,
		PID:         i.PID,
		PGID:        i.PGID,
		SpawnPGID:   i.SpawnPGID,
		StartTime:   i.StartTime,
		Started:     i.Started.UTC(),
		LastSeen:    i.LastSeen.UTC(),
		Keepalive:   i.Keepalive,
		RunOnce:     i.RunOnce,
		Adopted:     i.Adopted,
		Signalable:  i.Signalable,
		Revision:    i.Revision,
		Fingerprint: i.Fingerprint,
		Shape:       i.Shape,
		Stdout:      i.Stdout,
		Stderr:      i.Stderr,
	}
}
