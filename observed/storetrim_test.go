package observed

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patrolhq/patrol/desired"
)

// deepValue is a value nested n arrays deep, as a store decodes it.
func deepValue(n int) any {
	var v any = json.Number("1")
	for range n {
		v = []any{v}
	}
	return v
}

// TestStoreTrimsOversizedKeyValue: state saved by a Patrol without limits
// (a value 9000 levels deep in an entry and in a history record) is
// trimmed when a store with limits opens it, with a warning, and the
// trimmed state is what the files hold from then on.
func TestStoreTrimsOversizedKeyValue(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir, nil)
	bad := map[string]any{"ok": "kept", "deep": deepValue(9000)}
	r := record(1)
	r.KeyValue = bad
	s.Put(SetMeta(keyWeb, 7, bad, nil, 1, "", ""), AppendHistory(keyWeb, r, 10),
		SetMeta(keyWorker, 9, map[string]any{"fine": json.Number("1")}, nil, 1, "", ""))
	syncT(t, s)
	closeT(t, s)

	limits := desired.KeyValueLimits{MaxDepth: 10, MaxBytes: 16384, MaxKeys: 256}
	var logs bytes.Buffer
	s, p, err := OpenStoreLimited(dir, slog.New(slog.NewTextHandler(&logs, nil)), limits)
	if err != nil {
		t.Fatalf("OpenStoreLimited: %v", err)
	}
	want := map[string]any{"ok": "kept"}
	check := func(p *Persisted) {
		t.Helper()
		web := p.Entries[keyWeb]
		if web == nil || !equalJSON(web.KeyValue, want) || len(web.History) != 1 || !equalJSON(web.History[0].KeyValue, want) {
			t.Fatalf("web after trimming: %+v", web)
		}
		if w := p.Entries[keyWorker]; w == nil || !equalJSON(w.KeyValue, map[string]any{"fine": json.Number("1")}) {
			t.Fatalf("worker changed: %+v", w)
		}
	}
	check(p)
	if l := logs.String(); !strings.Contains(l, "keyvalue-limits trimmed") || !strings.Contains(l, "id=web") ||
		!strings.Contains(l, "dropped-keys=[deep]") || !strings.Contains(l, "history-records-trimmed=1") || strings.Contains(l, "id=worker") {
		t.Errorf("log: %s", l)
	}
	closeT(t, s)

	// The files now hold the trimmed state: a store without limits reads it.
	for _, name := range []string{snapshotName, journalName} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("[[[[")) {
			t.Errorf("%s still holds the deep value (%d bytes)", name, len(b))
		}
	}
	logs.Reset()
	s, p, err = OpenStoreLimited(dir, slog.New(slog.NewTextHandler(&logs, nil)), limits)
	if err != nil {
		t.Fatal(err)
	}
	check(p)
	if logs.Len() > 0 {
		t.Errorf("trimmed again: %s", logs.String())
	}
	closeT(t, s)
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
