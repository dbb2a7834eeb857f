package desired

import (
	"maps"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// Key names an app or service.
type Key struct {
	Group schema.Group
	ID    string
}

// Override is a runtime override of one entry, written by an API toggle on
// top of the file (DESIGN §7). It lasts until it is cleared, the entry's
// config changes, or it expires.
type Override struct {
	// Disabled, when set, replaces the file's "disabled".
	Disabled *bool
	// RunOnce makes the next instance the last: when it ends, the entry is
	// disabled.
	RunOnce bool
	// Replicas, when non-zero, scales an app with "replicas" (the
	// override of replica 0's id) to this many replicas (see Scaled).
	Replicas int
	Since    time.Time
	// Expires is when the override lapses; zero means never.
	Expires time.Time
	// Fingerprint is the entry's config fingerprint when the override was
	// written; a config change supersedes the override.
	Fingerprint string
}

// Empty reports whether the override no longer overrides anything.
func (o *Override) Empty() bool {
	return o == nil || (o.Disabled == nil && !o.RunOnce && o.Replicas == 0)
}

// Expired reports whether the override's expiry has passed.
func (o *Override) Expired(now time.Time) bool {
	return !o.Expires.IsZero() && !now.Before(o.Expires)
}

// WithOverrides returns the effective desired state: s with the given
// overrides layered on top. Overrides for unknown entries are ignored; the
// caller prunes expired and superseded ones (see Stale).
func (s *State) WithOverrides(ov map[Key]*Override) *State {
	if len(ov) == 0 && len(s.overrides) == 0 {
		return s // immutable: nothing to layer, nothing to copy
	}
	e := *s
	e.overrides = maps.Clone(ov)
	return &e
}

// Override returns the override in force for an entry, if any.
func (s *State) Override(k Key) *Override {
	if o := s.overrides[k]; !o.Empty() {
		return o
	}
	return nil
}

// AppDisabled reports whether app a is disabled once overrides apply.
func (s *State) AppDisabled(a *App) bool {
	if o := s.Override(Key{schema.GroupApp, a.ID}); o != nil && o.Disabled != nil {
		return *o.Disabled
	}
	return a.Disabled
}

// ServiceDisabled reports whether service v is disabled once overrides
// apply.
func (s *State) ServiceDisabled(v *Service) bool {
	if o := s.Override(Key{schema.GroupService, v.ID}); o != nil && o.Disabled != nil {
		return *o.Disabled
	}
	return v.Disabled
}

// Stale reports why an override no longer applies to the state s: the
// entry is gone, its config changed since the override was written, or the
// override expired. It returns "" for an override still in force.
func (s *State) Stale(k Key, o *Override, now time.Time) string {
	var fp string
	switch k.Group {
	case schema.GroupApp:
		a, ok := s.apps[k.ID]
		if !ok {
			return "the entry was removed from the config"
		}
		fp = a.fingerprint
	case schema.GroupService:
		v, ok := s.services[k.ID]
		if !ok {
			return "the entry was removed from the config"
		}
		fp = v.fingerprint
	}
	switch {
	case o.Fingerprint != fp:
		return "the entry's config changed"
	case o.Expired(now):
		return "it expired"
	case o.Empty():
		return "it no longer overrides anything"
	case o.Replicas > 0:
		if why := s.ScaleProblem(k.ID, o.Replicas); why != "" {
			return "its scale can no longer be applied: " + why
		}
	}
	return ""
}
