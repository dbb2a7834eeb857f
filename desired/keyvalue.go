package desired

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/patrolhq/patrol/schema"
)

// KeyValueLimits bound an entry's key/value data (keyvalue-limits). A zero
// field is no limit.
type KeyValueLimits struct {
	// MaxDepth is how deeply the data may nest, the data itself counting as
	// one level ({"k": 1} is 1 deep, {"k": [1]} 2).
	MaxDepth int
	// MaxBytes caps the data's size as compact JSON.
	MaxBytes int
	// MaxKeys caps the number of keys at its top.
	MaxKeys int
}

// Problem checks kv against the limits: it returns "" when kv is within
// them, else the API error (schema.ErrKeyValueTooDeep,
// schema.ErrKeyValueTooLarge or schema.ErrKeyValueTooManyKeys) and a
// description naming the limit, such as "nested 12 levels deep, more than
// keyvalue-limits.max-depth 10". Depth is checked first and without
// walking further than the limit, so a value nested thousands of levels
// deep costs no more than one at the limit.
func (l KeyValueLimits) Problem(kv map[string]any) (apiErr, detail string) {
	if l.MaxKeys > 0 && len(kv) > l.MaxKeys {
		return schema.ErrKeyValueTooManyKeys, fmt.Sprintf("has %d keys, more than keyvalue-limits.max-keys %d", len(kv), l.MaxKeys)
	}
	if l.MaxDepth > 0 && len(kv) > 0 {
		if d := depthUpTo(kv, l.MaxDepth+1); d > l.MaxDepth {
			return schema.ErrKeyValueTooDeep, fmt.Sprintf("nests more than %d levels deep (keyvalue-limits.max-depth)", l.MaxDepth)
		}
	}
	if l.MaxBytes > 0 && len(kv) > 0 {
		if n := encodedSize(kv); n > l.MaxBytes {
			return schema.ErrKeyValueTooLarge, fmt.Sprintf("is %d bytes as JSON, more than keyvalue-limits.max-bytes %d", n, l.MaxBytes)
		}
	}
	return "", ""
}

// Trim returns kv within the limits, and the keys it dropped (sorted): a
// key whose value nests too deep is dropped, then keys are kept in sorted
// order while they fit max-keys and max-bytes. kv itself is not changed;
// when nothing is dropped, kv is returned as it is.
func (l KeyValueLimits) Trim(kv map[string]any) (map[string]any, []string) {
	if apiErr, _ := l.Problem(kv); apiErr == "" {
		return kv, nil
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string]any, min(len(kv), max(l.MaxKeys, 1)))
	size := len("{}")
	var dropped []string
	for _, k := range keys {
		v := kv[k]
		// One key/value pair nests as deep as the data does: one level
		// more than its value.
		fits := l.MaxDepth <= 0 || 1+depthUpTo(v, l.MaxDepth) <= l.MaxDepth
		fits = fits && (l.MaxKeys <= 0 || len(out) < l.MaxKeys)
		var pair int
		if fits && l.MaxBytes > 0 {
			pair = encodedSize(map[string]any{k: v}) - len("{}")
			if len(out) > 0 {
				pair++ // the comma
			}
			fits = size+pair <= l.MaxBytes
		}
		if !fits {
			dropped = append(dropped, k)
			continue
		}
		out[k] = v
		size += pair
	}
	if len(out) == 0 {
		out = nil
	}
	return out, dropped
}

// depthUpTo returns how deeply v nests (a scalar 0, an empty or flat
// object or array 1, ...), counting no further than limit: a deeper value
// returns limit.
func depthUpTo(v any, limit int) int {
	if limit <= 0 {
		return 0
	}
	deepest := 0
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			if deepest = max(deepest, depthUpTo(x, limit-1)); deepest == limit-1 {
				break
			}
		}
	case []any:
		for _, x := range v {
			if deepest = max(deepest, depthUpTo(x, limit-1)); deepest == limit-1 {
				break
			}
		}
	default:
		return 0
	}
	return 1 + deepest
}

// encodedSize is the size of v as compact JSON; a value JSON cannot encode
// (none that a decoder made) counts as too large.
func encodedSize(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return int(^uint(0) >> 1)
	}
	return len(b)
}
