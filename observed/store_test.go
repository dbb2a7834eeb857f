package observed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/schema"
)

var (
	keyWeb    = desired.Key{Group: schema.GroupApp, ID: "web"}
	keyWorker = desired.Key{Group: schema.GroupApp, ID: "worker"}
	keyNginx  = desired.Key{Group: schema.GroupService, ID: "nginx"}
	keyGone   = desired.Key{Group: schema.GroupApp, ID: "gone"}

	// t0 is in a zone other than UTC: the store keeps the instant and
	// returns it in UTC.
	t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))
)

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// openT opens a store that must open cleanly.
func openT(t testing.TB, dir string, log *slog.Logger) (*Store, *Persisted) {
	t.Helper()
	if log == nil {
		log = discardLog()
	}
	s, p, err := OpenStore(dir, log)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	return s, p
}

func syncT(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func closeT(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// assertState fails unless got and want are deeply equal.
func assertState(t testing.TB, got, want *Persisted) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	g, _ := encodeSnapshot(got, 0)
	w, _ := encodeSnapshot(want, 0)
	t.Fatalf("state differs\ngot  %s\nwant %s", g, w)
}

func record(i int) Record {
	return Record{
		InstanceID:     fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
		PID:            1000 + i,
		Started:        t0.Add(time.Duration(i) * time.Minute),
		LastSeen:       t0.Add(time.Duration(i)*time.Minute + 30*time.Second),
		Stopped:        t0.Add(time.Duration(i)*time.Minute + 31*time.Second),
		Restart:        i%3 == 0,
		ExitCode:       i % 5,
		Reason:         schema.ReasonCrashed,
		ConfigRevision: fmt.Sprintf("rev-%d", i),
	}
}

func instance(id string, pid int) *PersistedInstance {
	return &PersistedInstance{
		ID: id, PID: pid, PGID: pid, SpawnPGID: pid,
		StartTime:   987654321 + uint64(pid),
		Started:     t0,
		LastSeen:    t0.Add(time.Second),
		Keepalive:   1,
		Signalable:  true,
		Revision:    "rev-1",
		Fingerprint: "fp-" + id,
		Stdout:      "/var/log/patrol/" + id + ".stdout.log",
		Stderr:      "/var/log/patrol/" + id + ".stderr.log",
	}
}

// putMix puts a realistic mix of changes, syncing in between.
func putMix(t testing.TB, s *Store) {
	t.Helper()
	yes := true
	kv := map[string]any{
		"str":    "x",
		"n":      42,
		"f":      1.5,
		"big":    uint64(math.MaxUint64),
		"nested": map[string]any{"a": []any{1, "two", true, nil}, "b": map[string]any{}},
	}
	s.Put(
		SetMeta(keyWeb, 7, kv, &desired.Override{Disabled: &yes, Since: t0, Expires: t0.Add(time.Hour), Fingerprint: "fp1"},
			3, "/logs/web.stdout.log", "/logs/web.stderr.log"),
		SetInstance(keyWeb, instance("web-1", 4242)),
	)
	syncT(t, s)
	for i := range 12 {
		s.Put(AppendHistory(keyWeb, record(i), 5))
		if i%4 == 0 {
			syncT(t, s)
		}
	}
	s.Put(SetInstances(keyWeb, instance("web-2", 4343), []*PersistedInstance{instance("web-r1", 4400)}))

	r := record(100)
	r.KeyValue = map[string]any{"last": "words", "list": []string{"a", "b"}}
	s.Put(
		SetInstance(keyWorker, instance("worker-1", 5000)),
		AppendHistory(keyWorker, r, 100),
		SetInstance(keyWorker, nil),
		SetMeta(keyWorker, 1<<63, nil, &desired.Override{Replicas: 4, Since: t0, Fingerprint: "fp3"}, 1, "", ""),
	)
	syncT(t, s)

	inst := instance("nginx-1", 0)
	inst.Keepalive, inst.Adopted, inst.Signalable, inst.RunOnce = 0, true, false, true
	s.Put(
		SetMeta(keyNginx, 2, map[string]any{"owner": "ops"}, &desired.Override{RunOnce: true, Since: t0, Fingerprint: "fp2"}, 0, "", ""),
		AppendHistory(keyNginx, Record{InstanceID: "n-0", Started: t0, Stopped: t0.Add(time.Hour), Reason: schema.ReasonStoppedByAPI, Disabled: true}, 100),
		SetInstance(keyNginx, inst),
		SetMeta(keyGone, 1, map[string]any{"x": 1}, nil, 0, "", ""),
		AppendHistory(keyGone, record(1), 10),
		DeleteEntry(keyGone),
	)
	syncT(t, s)
}

func TestStoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, p := openT(t, dir, nil)
	if len(p.Entries) != 0 {
		t.Fatalf("new store: got %d entries, want 0", len(p.Entries))
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: got %v, %v, want mode 0700", fi.Mode(), err)
	}
	putMix(t, s)
	before := s.State()
	closeT(t, s)

	s, after := openT(t, dir, nil)
	defer closeT(t, s)
	assertState(t, after, before)
	assertState(t, s.State(), before)

	web := after.Entries[keyWeb]
	if web == nil {
		t.Fatal("web: missing")
	}
	if web.CAS != 7 || web.Starts != 3 || web.LastStdout != "/logs/web.stdout.log" || web.LastStderr != "/logs/web.stderr.log" {
		t.Errorf("web meta: got %+v", web)
	}
	var ids []string
	for _, r := range web.History {
		ids = append(ids, r.InstanceID[len(r.InstanceID)-2:])
	}
	if want := []string{"07", "08", "09", "10", "11"}; !slices.Equal(ids, want) {
		t.Errorf("web history: got %v, want %v", ids, want)
	}
	if r, want := web.History[0], record(7); !r.Started.Equal(want.Started) || !r.Stopped.Equal(want.Stopped) ||
		r.Started.Location() != time.UTC || r.PID != want.PID || r.ExitCode != want.ExitCode || r.Reason != want.Reason || r.Restart != want.Restart {
		t.Errorf("web history[0]: got %+v, want %+v", r, want)
	}
	o := web.Override
	if o == nil || o.Disabled == nil || !*o.Disabled || !o.Since.Equal(t0) || !o.Expires.Equal(t0.Add(time.Hour)) || o.Fingerprint != "fp1" {
		t.Errorf("web override: got %+v", o)
	}
	if web.KeyValue["n"] != json.Number("42") || web.KeyValue["f"] != json.Number("1.5") ||
		web.KeyValue["big"] != json.Number("18446744073709551615") || web.KeyValue["str"] != "x" {
		t.Errorf("web keyvalue: got %#v", web.KeyValue)
	}
	nested := map[string]any{"a": []any{json.Number("1"), "two", true, nil}, "b": map[string]any{}}
	if !reflect.DeepEqual(web.KeyValue["nested"], nested) {
		t.Errorf("web keyvalue nested: got %#v, want %#v", web.KeyValue["nested"], nested)
	}
	wantInst := instance("web-2", 4343)
	if got := web.Instance; got == nil || !got.Started.Equal(wantInst.Started) || !got.LastSeen.Equal(wantInst.LastSeen) {
		t.Errorf("web instance: got %+v, want %+v", got, wantInst)
	} else {
		got, want := *got, *wantInst
		got.Started, got.LastSeen, want.Started, want.LastSeen = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if got != want {
			t.Errorf("web instance: got %+v, want %+v", got, want)
		}
	}

	if len(web.Runs) != 1 || web.Runs[0].ID != "web-r1" || web.Runs[0].PID != 4400 {
		t.Errorf("web runs: got %+v", web.Runs)
	}
	worker := after.Entries[keyWorker]
	if worker == nil || worker.Instance != nil || worker.CAS != 1<<63 || len(worker.History) != 1 || worker.Override == nil || worker.Override.Replicas != 4 {
		t.Fatalf("worker: got %+v", worker)
	}
	if kv := worker.History[0].KeyValue; !reflect.DeepEqual(kv, map[string]any{"last": "words", "list": []any{"a", "b"}}) {
		t.Errorf("worker history keyvalue: got %#v", kv)
	}
	nginx := after.Entries[keyNginx]
	if nginx == nil || nginx.Override == nil || !nginx.Override.RunOnce || nginx.Override.Disabled != nil ||
		!nginx.Override.Expires.IsZero() || nginx.Instance == nil || !nginx.Instance.Adopted || !nginx.Instance.RunOnce ||
		nginx.Instance.Signalable || len(nginx.History) != 1 || !nginx.History[0].Disabled || !nginx.History[0].LastSeen.IsZero() {
		t.Errorf("nginx: got %+v", nginx)
	}
	if _, ok := after.Entries[keyGone]; ok {
		t.Error("gone: still present after DeleteEntry")
	}
}

func TestStoreStateIsACopy(t *testing.T) {
	s, _ := openT(t, t.TempDir(), nil)
	defer closeT(t, s)
	kv := map[string]any{"a": map[string]any{"b": "c"}}
	s.Put(SetMeta(keyWeb, 1, kv, nil, 0, "", ""), AppendHistory(keyWeb, record(1), 10))
	kv["a"].(map[string]any)["b"] = "changed by the caller"
	p := s.State()
	p.Entries[keyWeb].KeyValue["a"].(map[string]any)["b"] = "changed by a reader"
	p.Entries[keyWeb].History[0].PID = -1
	delete(p.Entries, keyWeb)
	e := s.State().Entries[keyWeb]
	if got := e.KeyValue["a"].(map[string]any)["b"]; got != "c" {
		t.Errorf("keyvalue: got %v, want c", got)
	}
	if got := e.History[0].PID; got != record(1).PID {
		t.Errorf("history pid: got %v, want %v", got, record(1).PID)
	}
}

// syncPoint is the store's files and state right after a Sync.
type syncPoint struct {
	snap, journal []byte
	state         *Persisted
}

func readPoint(t testing.TB, dir string, s *Store) syncPoint {
	t.Helper()
	snap, err := os.ReadFile(filepath.Join(dir, snapshotName))
	if err != nil {
		t.Fatal(err)
	}
	journal, err := os.ReadFile(filepath.Join(dir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	return syncPoint{snap, journal, s.State()}
}

func writeFiles(t testing.TB, dir string, snap, journal []byte) {
	t.Helper()
	if snap != nil {
		if err := os.WriteFile(filepath.Join(dir, snapshotName), snap, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if journal != nil {
		if err := os.WriteFile(filepath.Join(dir, journalName), journal, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoreCrashAtEverySync copies the store's files at every Sync and
// checks that each copy opens to the state at that Sync, and that a crash
// anywhere in the next Sync's write opens to the same state.
func TestStoreCrashAtEverySync(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir, nil)
	s.compactRecords = 7
	points := []syncPoint{readPoint(t, dir, s)}
	for i := range 30 {
		k := keyWeb
		if i%3 == 1 {
			k = keyNginx
		}
		s.Put(AppendHistory(k, record(i), 1000))
		if i%2 == 0 {
			s.Put(SetMeta(k, uint64(i), map[string]any{"i": i}, nil, i, "", ""))
		}
		if i%5 == 0 {
			s.Put(SetInstance(k, instance(fmt.Sprint("i", i), 100+i)))
		}
		syncT(t, s)
		points = append(points, readPoint(t, dir, s))
	}
	closeT(t, s)

	var compactions, torn int
	for i, pt := range points {
		d := t.TempDir()
		writeFiles(t, d, pt.snap, pt.journal)
		s, p := openT(t, d, nil)
		assertState(t, p, pt.state)
		closeT(t, s)

		if i+1 == len(points) {
			break
		}
		next := points[i+1]
		if !bytes.Equal(next.snap, pt.snap) || !bytes.HasPrefix(next.journal, pt.journal) {
			compactions++
			continue
		}
		// Cut the next Sync's write short at many places, including right
		// after each complete line of its batch.
		var cuts []int
		for c := len(pt.journal) + 1; c < len(next.journal); c += 37 {
			cuts = append(cuts, c)
		}
		for j, b := range next.journal[len(pt.journal) : len(next.journal)-1] {
			if b == '\n' {
				cuts = append(cuts, len(pt.journal)+j+1)
			}
		}
		cuts = append(cuts, len(next.journal)-1)
		for _, c := range cuts {
			d := t.TempDir()
			writeFiles(t, d, pt.snap, next.journal[:c])
			var logs bytes.Buffer
			s, p := openT(t, d, slog.New(slog.NewTextHandler(&logs, nil)))
			assertState(t, p, pt.state)
			if !strings.Contains(logs.String(), "dropping the incomplete tail") {
				t.Errorf("sync %d cut at %d: no warning, logs %q", i+1, c, logs.String())
			}
			closeT(t, s)
			torn++
		}
	}
	if compactions < 3 {
		t.Errorf("got %d compactions, want at least 3", compactions)
	}
	t.Logf("%d sync points, %d compactions, %d torn writes", len(points), compactions, torn)
}

func TestStoreTornTail(t *testing.T) {
	tests := []struct {
		name string
		// tail returns what a crash left after the acknowledged journal,
		// given the next record's seq.
		tail func(seq uint64) string
	}{
		{"half a record", func(seq uint64) string {
			return fmt.Sprintf(`{"end":true,"seq":%d,"meta":{"group":"ap`, seq)
		}},
		{"record without its newline", func(seq uint64) string {
			return fmt.Sprintf(`{"end":true,"seq":%d,"delete":{"group":"app","id":"web"}}`, seq)
		}},
		{"batch without its end", func(seq uint64) string {
			return fmt.Sprintf(`{"seq":%d,"delete":{"group":"app","id":"web"}}`+"\n", seq)
		}},
		{"batch cut short", func(seq uint64) string {
			return fmt.Sprintf(`{"seq":%d,"delete":{"group":"app","id":"web"}}`+"\n"+`{"end":tr`, seq)
		}},
		{"zeros", func(uint64) string { return strings.Repeat("\x00", 4096) }},
		{"garbage lines", func(uint64) string { return "\x00\x00\n\xff\xfe\nnot json\n" }},
		{"empty line", func(uint64) string { return "\n" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openT(t, dir, nil)
			for i := range 5 {
				s.Put(AppendHistory(keyWeb, record(i), 100), SetMeta(keyWeb, uint64(i), nil, nil, i, "", ""))
				syncT(t, s)
			}
			want, seq := s.State(), s.seq
			closeT(t, s)

			path := filepath.Join(dir, journalName)
			good, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, append(slices.Clip(good), tt.tail(seq+1)...), 0o600); err != nil {
				t.Fatal(err)
			}

			var logs bytes.Buffer
			s, got := openT(t, dir, slog.New(slog.NewTextHandler(&logs, nil)))
			assertState(t, got, want)
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "dropping the incomplete tail") {
				t.Errorf("logs: got %q, want a warning", logs.String())
			}
			if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, good) {
				t.Errorf("journal after open: got %q (%v), want the acknowledged %q", after, err, good)
			}

			// The store goes on from there.
			s.Put(AppendHistory(keyWeb, record(99), 100))
			syncT(t, s)
			want = s.State()
			closeT(t, s)
			logs.Reset()
			s, got = openT(t, dir, slog.New(slog.NewTextHandler(&logs, nil)))
			defer closeT(t, s)
			assertState(t, got, want)
			if n := len(got.Entries[keyWeb].History); n != 6 {
				t.Errorf("history: got %d records, want 6", n)
			}
			if logs.Len() != 0 {
				t.Errorf("logs after a clean close: got %q, want none", logs.String())
			}
		})
	}
}

func snapshotSeq(t testing.TB, dir string) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, snapshotName))
	if err != nil {
		t.Fatal(err)
	}
	var sj snapshotJSON
	if err := json.Unmarshal(b, &sj); err != nil {
		t.Fatal(err)
	}
	return sj.Seq
}

func TestStoreCompaction(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir, nil)
	s.compactRecords = 10

	var (
		compactions int
		// crash is the moment of the last compaction: the journal before
		// it, the snapshot it wrote and the state it saved.
		crash syncPoint
	)
	const syncs = 100
	for i := range syncs {
		prevSeq := snapshotSeq(t, dir)
		prevJournal, err := os.ReadFile(filepath.Join(dir, journalName))
		if err != nil {
			t.Fatal(err)
		}
		s.Put(AppendHistory(keyWeb, record(i), 1000), SetMeta(keyWeb, uint64(i), map[string]any{"i": i}, nil, i, "", ""))
		syncT(t, s)
		if seq := snapshotSeq(t, dir); seq != prevSeq {
			if seq != s.seq {
				t.Fatalf("sync %d: snapshot seq %d, want %d", i, seq, s.seq)
			}
			compactions++
			crash = readPoint(t, dir, s)
			crash.journal = prevJournal
		}
		if s.journalRecords > s.compactRecords {
			t.Fatalf("sync %d: journal holds %d records, limit %d", i, s.journalRecords, s.compactRecords)
		}
	}
	if compactions < syncs*2/(s.compactRecords+2) {
		t.Errorf("got %d compactions, want at least %d", compactions, syncs*2/(s.compactRecords+2))
	}
	fi, err := os.Stat(filepath.Join(dir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 10*1024 {
		t.Errorf("journal size: got %d bytes after compactions", fi.Size())
	}
	want := s.State()
	closeT(t, s)
	s, got := openT(t, dir, nil)
	assertState(t, got, want)
	closeT(t, s)

	// A crash after the new snapshot's rename, before the journal was
	// emptied: the records are in both, and are applied once.
	if len(crash.journal) == 0 {
		t.Fatal("no compaction with a journal to put back")
	}
	d := t.TempDir()
	writeFiles(t, d, crash.snap, crash.journal)
	s, got = openT(t, d, nil)
	assertState(t, got, crash.state)
	if n, want := len(got.Entries[keyWeb].History), int(got.Entries[keyWeb].CAS)+1; n != want {
		t.Errorf("history after the crash: got %d records, want %d", n, want)
	}
	s.Put(AppendHistory(keyWeb, record(1000), 1000))
	syncT(t, s)
	want = s.State()
	closeT(t, s)
	s, got = openT(t, d, nil)
	defer closeT(t, s)
	assertState(t, got, want)
}

func TestStoreCompactsBySize(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir, nil)
	s.compactBytes = 4096
	for i := range 200 {
		s.Put(SetMeta(keyWeb, uint64(i), map[string]any{"pad": strings.Repeat("x", 100)}, nil, i, "", ""))
		syncT(t, s)
		if s.journalBytes > s.compactBytes {
			t.Fatalf("sync %d: journal %d bytes, limit %d", i, s.journalBytes, s.compactBytes)
		}
	}
	if seq := snapshotSeq(t, dir); seq == 0 {
		t.Error("snapshot seq: got 0, want a compaction")
	}
	want := s.State()
	closeT(t, s)
	s, got := openT(t, dir, nil)
	defer closeT(t, s)
	assertState(t, got, want)
}

var corruptName = regexp.MustCompile(`^(state\.json|journal\.jsonl)\.corrupt-\d{8}T\d{6}Z(-\d+)?$`)

func TestStoreCorrupt(t *testing.T) {
	tests := []struct {
		name string
		// damage changes the files of a store whose snapshot holds seq 3
		// and whose journal holds two batches, seq 4 and 5, one line each.
		damage func(t *testing.T, snap, journal []byte) (newSnap, newJournal []byte)
		reason string
	}{
		{"garbage snapshot", func(t *testing.T, _, journal []byte) ([]byte, []byte) {
			return []byte("\x00\x01 not json {"), journal
		}, "state.json: not a state snapshot"},
		{"empty snapshot", func(t *testing.T, _, journal []byte) ([]byte, []byte) {
			return []byte{}, journal
		}, "state.json: not a state snapshot"},
		{"future store version", func(t *testing.T, snap, journal []byte) ([]byte, []byte) {
			return bytes.Replace(snap, []byte(`"version":1`), []byte(`"version":2`), 1), journal
		}, "state.json: store version 2, but this Patrol reads version 1"},
		{"snapshot without version", func(t *testing.T, snap, journal []byte) ([]byte, []byte) {
			return bytes.Replace(snap, []byte(`"version":1,`), nil, 1), journal
		}, "state.json: no store version"},
		{"snapshot with an unknown field", func(t *testing.T, snap, journal []byte) ([]byte, []byte) {
			return bytes.Replace(snap, []byte(`"history":`), []byte(`"mystery":1,"history":`), 1), journal
		}, `unknown field "mystery"`},
		{"bad line in the middle of the journal", func(t *testing.T, snap, journal []byte) ([]byte, []byte) {
			i := bytes.IndexByte(journal, '\n') + 1
			return snap, slices.Concat(journal[:i], []byte("garbage\n"), journal[i:])
		}, "journal.jsonl line 2 is unreadable, and acknowledged records follow it on line 3"},
		{"missing record", func(t *testing.T, snap, journal []byte) ([]byte, []byte) {
			return snap, journal[bytes.IndexByte(journal, '\n')+1:]
		}, "journal.jsonl line 1: seq 5, want 4"},
		{"records out of order", func(t *testing.T, snap, journal []byte) ([]byte, []byte) {
			i := bytes.IndexByte(journal, '\n') + 1
			return snap, slices.Concat(journal[i:], journal[:i])
		}, "journal.jsonl line 1: seq 5, want 4"},
		{"unknown record as the last line", func(t *testing.T, snap, journal []byte) ([]byte, []byte) {
			return snap, append(slices.Clip(journal), `{"end":true,"seq":6,"frobnicate":{"group":"app","id":"web"}}`+"\n"...)
		}, `journal.jsonl line 3: json: unknown field "frobnicate"`},
		{"record with two changes", func(t *testing.T, snap, journal []byte) ([]byte, []byte) {
			return snap, append(slices.Clip(journal), `{"end":true,"seq":6,"delete":{"group":"app","id":"web"},"instance":{"group":"app","id":"web"}}`+"\n"...)
		}, "journal.jsonl line 3: a record holds 2 changes, want 1"},
		{"record of an unknown group", func(t *testing.T, snap, journal []byte) ([]byte, []byte) {
			return snap, append(slices.Clip(journal), `{"end":true,"seq":6,"delete":{"group":"robot","id":"web"}}`+"\n"...)
		}, `journal.jsonl line 3: unknown group "robot"`},
		{"journal without its snapshot", func(t *testing.T, _, journal []byte) ([]byte, []byte) {
			return nil, journal
		}, "journal.jsonl line 1: seq 4, want 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openT(t, dir, nil)
			s.compactRecords = 2
			for i := range 5 {
				s.Put(AppendHistory(keyWeb, record(i), 100))
				syncT(t, s)
			}
			closeT(t, s)
			if seq := snapshotSeq(t, dir); seq != 3 {
				t.Fatalf("setup: snapshot seq %d, want 3", seq)
			}
			p := readPoint(t, dir, s)
			if n := bytes.Count(p.journal, []byte{'\n'}); n != 2 {
				t.Fatalf("setup: journal has %d lines, want 2", n)
			}
			snap, journal := tt.damage(t, p.snap, p.journal)
			if snap == nil {
				if err := os.Remove(filepath.Join(dir, snapshotName)); err != nil {
					t.Fatal(err)
				}
			}
			writeFiles(t, dir, snap, journal)

			s, got, err := OpenStore(dir, discardLog())
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("OpenStore: got %v, want a *CorruptError", err)
			}
			if !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("reason: got %q, want it to contain %q", ce.Reason, tt.reason)
			}
			if !strings.Contains(err.Error(), ce.Reason) || !strings.Contains(err.Error(), ce.Files[0]) {
				t.Errorf("error: got %q, want the reason and the files", err)
			}
			if s == nil || got == nil || len(got.Entries) != 0 {
				t.Fatalf("OpenStore: got store %v, state %+v, want a store and an empty state", s, got)
			}
			wantFiles := map[string][]byte{journalName: journal}
			if snap != nil {
				wantFiles[snapshotName] = snap
			}
			if len(ce.Files) != len(wantFiles) {
				t.Errorf("files: got %q, want %d", ce.Files, len(wantFiles))
			}
			for _, f := range ce.Files {
				base := filepath.Base(f)
				if filepath.Dir(f) != dir || !corruptName.MatchString(base) {
					t.Errorf("file set aside: got %q, want %s/<name>.corrupt-<time>", f, dir)
					continue
				}
				if _, err := time.Parse(corruptStamp, strings.TrimPrefix(filepath.Ext(base), ".corrupt-")); err != nil {
					t.Errorf("file set aside %q: %v", f, err)
				}
				orig := strings.TrimSuffix(base, filepath.Ext(base))
				b, err := os.ReadFile(f)
				if err != nil || !bytes.Equal(b, wantFiles[orig]) {
					t.Errorf("file set aside %q: got %q (%v), want the original %s", f, b, err, orig)
				}
			}
			// The original names hold a fresh, empty store.
			if seq := snapshotSeq(t, dir); seq != 0 {
				t.Errorf("fresh snapshot seq: got %d, want 0", seq)
			}
			if b, err := os.ReadFile(filepath.Join(dir, journalName)); err != nil || len(b) != 0 {
				t.Errorf("fresh journal: got %q, %v, want empty", b, err)
			}

			s.Put(AppendHistory(keyNginx, record(1), 10))
			syncT(t, s)
			want := s.State()
			closeT(t, s)
			s, got = openT(t, dir, nil)
			defer closeT(t, s)
			assertState(t, got, want)
			if len(got.Entries) != 1 || got.Entries[keyNginx] == nil {
				t.Errorf("after recovery: got %+v, want nginx only", got.Entries)
			}
		})
	}
}

func TestStoreCorruptTwiceKeepsBoth(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		writeFiles(t, dir, fmt.Appendf(nil, "bad snapshot %d", i), nil)
		s, _, err := OpenStore(dir, discardLog())
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("OpenStore %d: got %v, want a *CorruptError", i, err)
		}
		closeT(t, s)
	}
	aside, err := filepath.Glob(filepath.Join(dir, snapshotName+".corrupt-*"))
	if err != nil || len(aside) != 2 {
		t.Fatalf("files set aside: got %q, %v, want 2", aside, err)
	}
	for i, f := range aside {
		if b, err := os.ReadFile(f); err != nil || !strings.HasPrefix(string(b), "bad snapshot") {
			t.Errorf("file %d: got %q, %v", i, b, err)
		}
	}
}

func TestOpenStoreUnusableDir(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) string
		root  bool // whether the case holds for root too
	}{
		{"a regular file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "state")
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, true},
		{"below a regular file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(p, "state")
		}, true},
		{"state.json a directory", func(t *testing.T) string {
			p := t.TempDir()
			if err := os.Mkdir(filepath.Join(p, snapshotName), 0o700); err != nil {
				t.Fatal(err)
			}
			return p
		}, true},
		{"permission denied", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(p, 0o500); err != nil {
				t.Fatal(err)
			}
			return p
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.root && os.Geteuid() == 0 {
				t.Skip("root is not denied")
			}
			dir := tt.setup(t)
			s, p, err := OpenStore(dir, discardLog())
			if err == nil {
				s.Close()
				t.Fatal("OpenStore: got no error")
			}
			var ce *CorruptError
			if errors.As(err, &ce) || s != nil || p != nil {
				t.Errorf("OpenStore: got %v, %v, %T, want a plain error", s, p, err)
			}
			if want := "open state store " + dir + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error: got %q, want it to start with %q", err, want)
			}
		})
	}
}

func TestStorePutErrors(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir, nil)
	tests := []struct {
		name   string
		change Change
		want   string
	}{
		{"unencodable value", SetMeta(keyWeb, 1, map[string]any{"nan": math.NaN()}, nil, 0, "", ""), `put meta of app "web": json: unsupported value: NaN`},
		{"unknown group", DeleteEntry(desired.Key{Group: "robot", ID: "x"}), `put delete of robot "x": unknown group "robot"`},
		{"no id", SetInstance(desired.Key{Group: schema.GroupApp}, nil), `put instance of app "": no id`},
		{"zero change", Change{}, "put empty change: a record holds 0 changes, want 1"},
		{"time out of range", AppendHistory(keyWeb, Record{Started: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, 10), "year outside of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Put(tt.change, AppendHistory(keyNginx, record(1), 100))
			err := s.Sync()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Sync: got %v, want an error containing %q", err, tt.want)
			}
			if err := s.Sync(); err != nil {
				t.Errorf("second Sync: got %v, want nil", err)
			}
		})
	}
	want := s.State()
	if _, ok := want.Entries[keyWeb]; ok {
		t.Error("web: got an entry from failed changes")
	}
	if n := len(want.Entries[keyNginx].History); n != len(tests) {
		t.Errorf("nginx history: got %d, want %d: the good changes beside the bad ones", n, len(tests))
	}
	closeT(t, s)
	s, got := openT(t, dir, nil)
	defer closeT(t, s)
	assertState(t, got, want)
}

// TestStoreFailedWrite checks that after a failed write the store
// compacts instead of appending after an unknown tail.
func TestStoreFailedWrite(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir, nil)
	s.Put(AppendHistory(keyWeb, record(0), 100))
	syncT(t, s)
	s.journal.Close() // the next write fails
	s.Put(AppendHistory(keyWeb, record(1), 100))
	if err := s.Sync(); err == nil || !strings.Contains(err.Error(), "write journal.jsonl") {
		t.Fatalf("Sync: got %v, want a write error", err)
	}
	s.Put(AppendHistory(keyWeb, record(2), 100))
	syncT(t, s)
	if seq := snapshotSeq(t, dir); seq != 3 {
		t.Errorf("snapshot seq: got %d, want 3", seq)
	}
	want := s.State()
	closeT(t, s)
	s, got := openT(t, dir, nil)
	defer closeT(t, s)
	assertState(t, got, want)
	if n := len(got.Entries[keyWeb].History); n != 3 {
		t.Errorf("history: got %d records, want 3", n)
	}
}

func TestStoreClose(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir, nil)
	s.Put(AppendHistory(keyWeb, record(0), 100)) // Close syncs it
	closeT(t, s)
	if err := s.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	if err := s.Sync(); err == nil || !strings.Contains(err.Error(), "state store is closed") {
		t.Errorf("Sync after Close: got %v, want an error", err)
	}
	s.Put(DeleteEntry(keyWeb))
	s, got := openT(t, dir, nil)
	defer closeT(t, s)
	if got.Entries[keyWeb] == nil {
		t.Error("web: lost the change Put before Close")
	}
}

func TestStoreConcurrentReads(t *testing.T) {
	s, _ := openT(t, t.TempDir(), nil)
	defer closeT(t, s)
	s.compactRecords = 20
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				p := s.State()
				if e := p.Entries[keyWeb]; e != nil && len(e.History) > 10 {
					t.Errorf("history: got %d records, limit 10", len(e.History))
				}
			}
		}
	})
	for i := range 100 {
		s.Put(AppendHistory(keyWeb, record(i), 10), SetMeta(keyWeb, uint64(i), map[string]any{"i": i}, nil, i, "", ""))
		syncT(t, s)
	}
	close(done)
	wg.Wait()
}

// TestStoreFormatsCoverTypes fails when a field is added to a type the
// store persists without being added to its file format.
func TestStoreFormatsCoverTypes(t *testing.T) {
	fields := func(typ reflect.Type, skip ...string) []string {
		var names []string
		for f := range typ.Fields() {
			if !f.Anonymous && !slices.Contains(skip, f.Name) {
				names = append(names, f.Name)
			}
		}
		return names
	}
	tests := []struct {
		name      string
		got, want []string
	}{
		{"Record", fields(reflect.TypeFor[recordJSON]()), fields(reflect.TypeFor[Record]())},
		{"desired.Override", fields(reflect.TypeFor[overrideJSON]()), fields(reflect.TypeFor[desired.Override]())},
		{"PersistedInstance", fields(reflect.TypeFor[instanceJSON]()), fields(reflect.TypeFor[PersistedInstance]())},
		{"PersistedEntry",
			slices.Concat(fields(reflect.TypeFor[metaJSON]()), fields(reflect.TypeFor[entryJSON]())),
			fields(reflect.TypeFor[PersistedEntry]())},
		{"desired.Key", fields(reflect.TypeFor[keyJSON]()), fields(reflect.TypeFor[desired.Key]())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := slices.Sorted(slices.Values(tt.got)), slices.Sorted(slices.Values(tt.want))
			if !slices.Equal(got, want) {
				t.Errorf("fields: got %v, want %v", got, want)
			}
		})
	}
}

// addFuzzSeeds adds the files of a store after a realistic mix of changes
// and two more Syncs, and variations on them.
func addFuzzSeeds(f *testing.F) {
	dir := f.TempDir()
	s, _ := openT(f, dir, nil)
	putMix(f, s)
	s.compactRecords = 0
	s.Put(DeleteEntry(keyNginx))
	syncT(f, s) // compacts
	s.compactRecords = defaultCompactRecords
	s.Put(AppendHistory(keyWeb, record(200), 3), SetInstance(keyWeb, nil))
	syncT(f, s)
	s.Put(SetMeta(keyWorker, 9, map[string]any{"k": []any{1.5, "v"}}, nil, 2, "a", "b"))
	syncT(f, s)
	p := readPoint(f, dir, s)
	closeT(f, s)
	snap, journal := p.snap, p.journal

	f.Add(snap, journal, false)
	f.Add(snap, journal[:len(journal)-7], false)
	f.Add(snap, append(slices.Clip(journal), "garbage\n"...), false)
	f.Add(snap, []byte{}, false)
	f.Add([]byte{}, journal, true)
	f.Add([]byte(`{"version":1,"seq":0,"entries":[]}`), []byte(`{"end":true,"seq":1,"delete":{"group":"app","id":"x"}}`+"\n"), false)
	f.Add([]byte(`{"version":1,"seq":0,"entries":[{"group":"app","id":"x","history":[{"started":"9999-12-31T23:59:59-23:59"}]}]}`), []byte{}, false)
	f.Add([]byte(`{"version":2}`), []byte("\x00\x00"), false)
}

// FuzzStoreReplay opens a store on arbitrary files: OpenStore never fails
// on their contents, and the store it returns works. Each run touches the
// disk, so minimising a new input takes long; fuzz it with
// -fuzzminimizetime 100x.
func FuzzStoreReplay(f *testing.F) {
	addFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, snap, journal []byte, noSnapshot bool) {
		dir := t.TempDir()
		if noSnapshot {
			snap = nil
		}
		writeFiles(t, dir, snap, journal)
		s, p, err := OpenStore(dir, discardLog())
		var ce *CorruptError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("OpenStore: got %v, want nil or a *CorruptError", err)
		}
		if s == nil || p == nil {
			t.Fatal("OpenStore: got no store or no state")
		}
		if ce != nil && len(p.Entries) != 0 {
			t.Fatalf("corrupt store: got %d entries, want 0", len(p.Entries))
		}
		assertState(t, s.State(), p)
		s.Put(AppendHistory(keyWeb, record(1), 3), SetMeta(keyNginx, 1, map[string]any{"a": 1}, nil, 1, "", ""))
		syncT(t, s)
		want := s.State()
		closeT(t, s)
		s, got := openT(t, dir, nil)
		defer closeT(t, s)
		assertState(t, got, want)
	})
}

// FuzzStoreLoad fuzzes replay without the file system, fast: whatever load
// accepts can be written back as a snapshot (as a compaction does) and
// reads back the same, also with the old journal still beside it.
func FuzzStoreLoad(f *testing.F) {
	addFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, snap, journal []byte, noSnapshot bool) {
		ld, reason := load(snap, !noSnapshot, journal)
		if reason != "" {
			return
		}
		if ld.keep < 0 || ld.keep > int64(len(journal)) || (ld.keep > 0 && journal[ld.keep-1] != '\n') {
			t.Fatalf("keep: got %d of %d bytes", ld.keep, len(journal))
		}
		b, err := encodeSnapshot(ld.state, ld.seq)
		if err != nil {
			t.Fatalf("an accepted state cannot be written back: %v", err)
		}
		again, reason := load(b, true, journal[:ld.keep])
		if reason != "" {
			t.Fatalf("the state written back is corrupt: %s", reason)
		}
		assertState(t, again.state, ld.state)
		if again.seq != ld.seq || again.dropped != 0 || again.stale != again.records {
			t.Fatalf("loaded again: got seq %d, %d dropped, %d of %d stale; want seq %d, none dropped, all stale",
				again.seq, again.dropped, again.stale, again.records, ld.seq)
		}
	})
}

func BenchmarkStoreSync(b *testing.B) {
	s, _ := openT(b, b.TempDir(), nil)
	defer closeT(b, s)
	kv := map[string]any{"owner": "ops", "port": 8080}
	var cas uint64
	for b.Loop() {
		cas++
		s.Put(SetMeta(keyWeb, cas, kv, nil, int(cas), "/logs/web.stdout.log", "/logs/web.stderr.log"))
		if err := s.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStoreFlush: changes written by Flush are in the journal at once (a
// Patrol started after this one died reads them) though not fsynced; the
// next Sync fsyncs them even with nothing new queued.
func TestStoreFlush(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, _ := openT(t, dir, nil)
	defer closeT(t, s)
	s.Put(SetInstance(keyWeb, instance("web-1", 4242)))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !s.unsynced {
		t.Error("Flush fsynced")
	}
	// Another store on the same files, as the next Patrol after a kill -9.
	next, p := openT(t, dir, nil)
	if e := p.Entries[keyWeb]; e == nil || e.Instance == nil || e.Instance.ID != "web-1" || e.Instance.PID != 4242 {
		t.Errorf("the flushed instance is not in the journal: %+v", e)
	}
	closeT(t, next)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if s.unsynced {
		t.Error("Sync with nothing queued left a flushed write unsynced")
	}
}

// FuzzStorePutIdentity checks the shortcut of Put for instance and delete
// records (applied without a JSON round trip): the state in memory must be
// exactly the state replay gives, whatever the strings (invalid UTF-8
// included) and times (any zone, monotonic readings, zero).
func FuzzStorePutIdentity(f *testing.F) {
	f.Add("web", "id-1", "rev", "fp", "/logs/a.log", "/logs/b.log", int64(0), int64(1), int16(0), true, false)
	f.Add("w\xffb", "id\xfe", "r\u2028", "", "", "", int64(-1), int64(1e18), int16(120), false, true)
	f.Fuzz(func(t *testing.T, id, instID, rev, fp, stdout, stderr string, started, seen int64, zone int16, mono, del bool) {
		if id == "" {
			return // not storable; TestStorePutErrors covers it
		}
		dir := t.TempDir()
		s, _ := openT(t, dir, nil)
		k := desired.Key{Group: schema.GroupApp, ID: id}
		ts := time.Unix(0, started).In(time.FixedZone("z", int(zone)*60))
		if mono {
			ts = time.Now().Add(time.Duration(started % int64(time.Hour)))
		}
		inst := &PersistedInstance{ID: instID, PID: 42, Started: ts, LastSeen: time.Unix(0, seen), Keepalive: 1,
			Revision: rev, Fingerprint: fp, Stdout: stdout, Stderr: stderr}
		s.Put(SetInstance(k, inst))
		if del {
			s.Put(DeleteEntry(k))
		}
		if err := s.Sync(); err != nil {
			closeT(t, s)
			return // a time JSON cannot hold: dropped and reported
		}
		want := s.State()
		closeT(t, s)
		s, got := openT(t, dir, nil)
		defer closeT(t, s)
		assertState(t, got, want)
	})
}
