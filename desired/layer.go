package desired

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Layer merges a host's config over a common one, for a fleet whose hosts
// share a common config (PREFIX/common/config.json) and each have their
// own (PREFIX/hosts/NAME/config.json). The host wins, per entry:
//
//   - "apps" and "services" are merged by id: an id in both is the host's
//     entry, whole (its keys are not merged with common's entry);
//   - every other top-level key ("http", "hooks", "tick-every", ...) is
//     the host's when the host sets it, else common's;
//   - null in the host's config takes common's away: "apps": {"x": null}
//     leaves common's app x out of this host, "http": null leaves common's
//     http block out (the default applies). A null entry in common's
//     config is an error; null (and an empty "apps" or "services") is
//     otherwise the same as absent.
//
// Either may be nil (absent); both absent is an error. Each must be a JSON
// object without duplicate keys; what is wrong with one is reported with
// its name (common, host). The result is one config document, validated
// by Parse like a file.
func Layer(common, host []byte) ([]byte, error) {
	if common == nil && host == nil {
		return nil, single("", "no config: neither the common nor the host's config exists")
	}
	c, err := layerObject("common", common)
	if err != nil {
		return nil, err
	}
	h, err := layerObject("host", host)
	if err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	for k, v := range c {
		if !isNull(v) {
			out[k] = v
		}
	}
	for k, v := range h {
		switch {
		case k == "apps" || k == "services":
		case isNull(v):
			delete(out, k)
		default:
			out[k] = v
		}
	}
	for _, group := range []string{"apps", "services"} {
		delete(out, group)
		ce, err := layerEntries("common", group, c[group])
		if err != nil {
			return nil, err
		}
		he, err := layerEntries("host", group, h[group])
		if err != nil {
			return nil, err
		}
		merged := maps.Clone(ce)
		if merged == nil {
			merged = map[string]json.RawMessage{}
		}
		for id, v := range he {
			if isNull(v) {
				delete(merged, id)
			} else {
				merged[id] = v
			}
		}
		if len(merged) == 0 {
			continue
		}
		b, err := marshalSorted(merged)
		if err != nil {
			return nil, err
		}
		out[group] = b
	}
	return marshalSorted(out)
}

// layerObject checks one layer (syntax, duplicate keys, an object) and
// returns its top-level keys.
func layerObject(name string, data []byte) (map[string]json.RawMessage, error) {
	if data == nil {
		return nil, nil
	}
	errs := &problems{}
	root, err := parse(data, errs)
	if err != nil {
		return nil, single("", name+" config: "+err.Error())
	}
	if root.kind != kindObject {
		return nil, single("", name+" config must be a JSON object, got "+kindNames[root.kind])
	}
	if len(errs.list) > 0 {
		for _, e := range errs.list {
			e.Msg = "in the " + name + " config: " + e.Msg
		}
		return nil, errs.err()
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, single("", name+" config: "+err.Error())
	}
	return m, nil
}

// layerEntries decodes one layer's "apps" or "services" object.
func layerEntries(name, group string, raw json.RawMessage) (map[string]json.RawMessage, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, single(group, fmt.Sprintf("in the %s config: must be an object of entries by id", name))
	}
	if name == "common" {
		for _, id := range slices.Sorted(maps.Keys(m)) {
			if isNull(m[id]) {
				return nil, single(group+"."+id, "in the common config: null takes an entry of common away in a host's config; in common, leave the entry out")
			}
		}
	}
	return m, nil
}

// isNull reports whether a JSON value is null.
func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// Stage returns a host config that, layered on oldCommon, gives what host
// layered on newCommon gives: the host's own keys and entries, common's
// new ones copied in, and null for what common drops. A rollout of a
// common change writes it to each host's key in turn, so that the hosts
// change batch by batch, and then writes newCommon and the hosts' own
// configs, which changes nothing more.
func Stage(oldCommon, newCommon, host []byte) ([]byte, error) {
	oc, err := layerObject("common", oldCommon)
	if err != nil {
		return nil, err
	}
	nc, err := layerObject("common", newCommon)
	if err != nil {
		return nil, err
	}
	h, err := layerObject("host", host)
	if err != nil {
		return nil, err
	}
	out := maps.Clone(h)
	if out == nil {
		out = map[string]json.RawMessage{}
	}
	for k, v := range nc {
		if _, ok := h[k]; !ok && k != "apps" && k != "services" {
			out[k] = v
		}
	}
	for k := range oc {
		if _, ok := out[k]; !ok && k != "apps" && k != "services" {
			out[k] = json.RawMessage("null")
		}
	}
	for _, group := range []string{"apps", "services"} {
		oe, err := layerEntries("common", group, oc[group])
		if err != nil {
			return nil, err
		}
		ne, err := layerEntries("common", group, nc[group])
		if err != nil {
			return nil, err
		}
		he, err := layerEntries("host", group, h[group])
		if err != nil {
			return nil, err
		}
		entries := maps.Clone(he)
		if entries == nil {
			entries = map[string]json.RawMessage{}
		}
		for id, v := range ne {
			if _, ok := he[id]; !ok {
				entries[id] = v
			}
		}
		for id := range oe {
			if _, ok := entries[id]; !ok {
				entries[id] = json.RawMessage("null")
			}
		}
		if len(entries) == 0 {
			continue
		}
		b, err := marshalSorted(entries)
		if err != nil {
			return nil, err
		}
		out[group] = b
	}
	return marshalSorted(out)
}

// marshalSorted encodes an object with its keys sorted, values as given.
func marshalSorted(m map[string]json.RawMessage) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(',')
		}
		key, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		b.Write(key)
		b.WriteByte(':')
		b.Write(m[k])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
