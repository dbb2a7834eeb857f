package desired

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/patrolhq/patrol/schema"
)

// Replicas (issue 19): an app with "replicas": N is N entries. Replica 0
// keeps the app's id, so that going from 1 to N leaves the running
// instance alone; replica i is "ID-i". Each is an App of its own (own
// process group, logs, history, overrides), with "{replica}" replaced by
// its index in args, env, pid-path and log-directory.

// ReplicaPlaceholder is replaced by a replica's index.
const ReplicaPlaceholder = "{replica}"

// MaxReplicas bounds "replicas" and a scale override.
const MaxReplicas = 1000

// ReplicaID is the entry id of replica i of app id.
func ReplicaID(id string, i int) string {
	if i == 0 {
		return id
	}
	return id + "-" + strconv.Itoa(i)
}

// replicaSet is what an app with "replicas" keeps to make its replicas
// again for another count (a scale override): the app before any
// "{replica}" was replaced, and what the config said of its name and
// directories.
type replicaSet struct {
	template *App
	n        int    // the file's count
	name     string // the config's "name" ("" when not set)
	// logDirSet and pidPathSet say log-directory and pid-path were given.
	logDirSet, pidPathSet bool
	rolling               bool
}

// expandReplicas turns every app with replicas into its entries, checking
// that their ids are free; problems go to errs. It returns the apps' sets
// by id (nil when no app has replicas).
func expandReplicas(c *schema.Config, apps map[string]*App, errs *problems) map[string]*replicaSet {
	any := false
	for _, a := range c.Apps {
		any = any || (a != nil && a.Replicas > 0)
	}
	if !any {
		return nil // the common case: no app has replicas
	}
	keys := map[string]string{} // lower-cased id -> the config's key
	for k := range c.Apps {
		keys[strings.ToLower(k)] = k
	}
	sets := map[string]*replicaSet{}
	for _, key := range slices.Sorted(maps.Keys(c.Apps)) {
		a := c.Apps[key]
		base := apps[strings.ToLower(key)]
		if a == nil || a.Replicas == 0 || base == nil {
			continue
		}
		set := &replicaSet{
			template: base, n: a.Replicas, name: a.Name,
			logDirSet: a.LogDirectory != "", pidPathSet: a.PIDPath != "",
			rolling: a.Rolling == nil || *a.Rolling,
		}
		p := joinKey("apps", key)
		if a.Replicas > 1 && !set.pidPathOK() {
			errs.add(p+".pid-path", "with replicas, must contain "+ReplicaPlaceholder+" (each replica has its own pid file)")
		}
		if a.Replicas > 1 && !set.logDirOK() {
			errs.add(p+".log-directory", "with replicas, must contain "+ReplicaPlaceholder+" (each replica has its own log files)")
		}
		sets[base.ID] = set
		for i := range a.Replicas {
			id := ReplicaID(base.ID, i)
			if i > 0 {
				if other, taken := keys[id]; taken {
					errs.add(p+".replicas", fmt.Sprintf("replica %d would be %q, which is %s", i, id, joinKey("apps", other)))
					continue
				}
			}
			apps[id] = set.replica(i, a.Replicas)
			keys[id] = key
		}
	}
	return sets
}

// pidPathOK and logDirOK say the set's pid-path and log-directory tell
// its replicas apart: they are not set, or contain the placeholder.
func (set *replicaSet) pidPathOK() bool {
	return !set.pidPathSet || strings.Contains(set.template.PIDPath, ReplicaPlaceholder)
}

func (set *replicaSet) logDirOK() bool {
	return !set.logDirSet || strings.Contains(set.template.LogDirectory, ReplicaPlaceholder)
}

// problem says why the app cannot have n replicas ("" when it can).
func (set *replicaSet) problem(n int) string {
	switch {
	case n < 1 || n > MaxReplicas:
		return fmt.Sprintf("replicas must be from 1 to %d, got %d", MaxReplicas, n)
	case n > 1 && !set.pidPathOK():
		return "its pid-path must contain " + ReplicaPlaceholder + " for more than one replica"
	case n > 1 && !set.logDirOK():
		return "its log-directory must contain " + ReplicaPlaceholder + " for more than one replica"
	}
	return ""
}

// replica is replica i of n of the set's app.
func (set *replicaSet) replica(i, n int) *App {
	t := set.template
	r := *t
	r.ID = ReplicaID(t.ID, i)
	r.ReplicaOf, r.Replica, r.Replicas, r.Rolling = t.ID, i, n, set.rolling
	sub := func(s string) string { return strings.ReplaceAll(s, ReplicaPlaceholder, strconv.Itoa(i)) }
	subAll := func(list []string) []string {
		if list == nil {
			return nil
		}
		out := make([]string, len(list))
		for j, s := range list {
			out[j] = sub(s)
		}
		return out
	}
	r.Args, r.Env = subAll(t.Args), subAll(t.Env)
	r.PIDPath, r.LogDirectory = sub(t.PIDPath), sub(t.LogDirectory)
	if i > 0 {
		if set.name == "" {
			r.Name = r.ID
		} else {
			r.Name = fmt.Sprintf("%s (replica %d)", set.name, i)
		}
		if !set.logDirSet {
			r.LogDirectory = strings.TrimSuffix(t.LogDirectory, t.ID) + r.ID
		}
	}
	return &r
}

// Replicas returns the number of replicas the file gives app id, when it
// is an app with "replicas" (replica 0's id), and whether it is one.
func (s *State) Replicas(id string) (int, bool) {
	set, ok := s.replicaSets[strings.ToLower(id)]
	if !ok {
		return 0, false
	}
	return set.n, true
}

// ScaleProblem says why app id cannot be scaled to n replicas in s, or ""
// when it can: it must be an app with "replicas" in the file, n in range,
// its pid-path and log-directory must tell replicas apart, and the new
// replicas' ids must not be other apps'.
func (s *State) ScaleProblem(id string, n int) string {
	id = strings.ToLower(id)
	set, ok := s.replicaSets[id]
	if !ok {
		if a, isApp := s.apps[id]; isApp && a.ReplicaOf != "" {
			return fmt.Sprintf("%s is replica %d of %s: scale %s", id, a.Replica, a.ReplicaOf, a.ReplicaOf)
		}
		return id + " has no \"replicas\" in the config (add \"replicas\": 1 to scale it)"
	}
	if why := set.problem(n); why != "" {
		return why
	}
	if set.template.Schedule != nil && n > 1 {
		return id + " has a schedule: a job is not scaled (concurrency \"allow\" runs several at once)"
	}
	for i := set.n; i < n; i++ {
		if a, taken := s.apps[ReplicaID(id, i)]; taken && a.ReplicaOf != id {
			return fmt.Sprintf("replica %d would be %q, which is another app", i, a.ID)
		}
	}
	return ""
}

// Scaled returns s with the apps named in scale (replica 0's id → count)
// scaled to that many replicas, leaving out counts ScaleProblem refuses.
// The replicas' fingerprints stay those of the file's config (so that the
// overrides and backoffs of the replicas a scale keeps still apply to
// them, and a scale is superseded only by a change in the file); their
// Replicas field is the scaled count. It returns s itself when nothing is
// scaled.
func (s *State) Scaled(scale map[string]int) *State {
	var apps map[string]*App
	for _, id := range slices.Sorted(maps.Keys(scale)) {
		n, set := scale[id], s.replicaSets[id]
		if set == nil || n == set.n || s.ScaleProblem(id, n) != "" {
			continue
		}
		if apps == nil {
			apps = maps.Clone(s.apps)
		}
		for i := n; i < set.n; i++ {
			delete(apps, ReplicaID(id, i))
		}
		for i := range n {
			r := set.replica(i, n)
			if f, ok := s.apps[r.ID]; ok && f.ReplicaOf == id {
				r.fingerprint, r.logsShared = f.fingerprint, f.logsShared
			} else {
				r.Replicas = set.n
				r.fingerprint = fingerprint(r)
				r.Replicas = n
			}
			apps[r.ID] = r
		}
	}
	if apps == nil {
		return s
	}
	e := *s
	e.apps = apps
	e.appIDs = slices.Sorted(maps.Keys(apps))
	return &e
}
