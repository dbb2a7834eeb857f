package observed

import (
	"log/slog"
	"slices"
	"strings"

	"github.com/patrolhq/patrol/desired"
)

// trimKeyValues trims the key/value data of every entry of p, and of every
// history record, to limits, logging each entry that broke them; it
// reports whether anything was trimmed.
func trimKeyValues(p *Persisted, limits desired.KeyValueLimits, log *slog.Logger) bool {
	if limits == (desired.KeyValueLimits{}) {
		return false
	}
	keys := make([]desired.Key, 0, len(p.Entries))
	for k := range p.Entries {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b desired.Key) int {
		if a.Group != b.Group {
			return strings.Compare(string(a.Group), string(b.Group))
		}
		return strings.Compare(a.ID, b.ID)
	})
	trimmed := false
	for _, k := range keys {
		e := p.Entries[k]
		var dropped []string
		if kv, d := limits.Trim(e.KeyValue); len(d) > 0 {
			e.KeyValue, dropped = kv, d
		}
		records := 0
		for i := range e.History {
			if kv, d := limits.Trim(e.History[i].KeyValue); len(d) > 0 {
				e.History[i].KeyValue = kv
				records++
			}
		}
		if len(dropped) == 0 && records == 0 {
			continue
		}
		trimmed = true
		log.Warn("state store: key/value data over keyvalue-limits trimmed (saved by a Patrol without limits, or with looser ones)",
			"group", k.Group, "id", k.ID, "dropped-keys", dropped, "history-records-trimmed", records,
			"max-depth", limits.MaxDepth, "max-bytes", limits.MaxBytes, "max-keys", limits.MaxKeys)
	}
	return trimmed
}
