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

// ReplicaID is the entry id of replica i of app id.
func ReplicaID(id string, i int) string {
	if i == 0 {
		return id
	}
	return id + "-" + strconv.Itoa(i)
}

// expandReplicas turns every app with replicas into its entries, checking
// that their ids are free; problems go to errs.
func expandReplicas(c *schema.Config, apps map[string]*App, errs *problems) {
	any := false
	for _, a := range c.Apps {
		any = any || (a != nil && a.Replicas > 0)
	}
	if !any {
		return // the common case: no app has replicas
	}
	keys := map[string]string{} // lower-cased id -> the config's key
	for k := range c.Apps {
		keys[strings.ToLower(k)] = k
	}
	for _, key := range slices.Sorted(maps.Keys(c.Apps)) {
		a := c.Apps[key]
		base := apps[strings.ToLower(key)]
		if a == nil || a.Replicas == 0 || base == nil {
			continue
		}
		p := joinKey("apps", key)
		n := a.Replicas
		if n > 1 && a.PIDPath != "" && !strings.Contains(a.PIDPath, ReplicaPlaceholder) {
			errs.add(p+".pid-path", "with replicas, must contain "+ReplicaPlaceholder+" (each replica has its own pid file)")
		}
		if n > 1 && a.LogDirectory != "" && !strings.Contains(a.LogDirectory, ReplicaPlaceholder) {
			errs.add(p+".log-directory", "with replicas, must contain "+ReplicaPlaceholder+" (each replica has its own log files)")
		}
		for i := range n {
			id := ReplicaID(base.ID, i)
			if i > 0 {
				if other, taken := keys[id]; taken {
					errs.add(p+".replicas", fmt.Sprintf("replica %d would be %q, which is %s", i, id, joinKey("apps", other)))
					continue
				}
			}
			r := replica(base, i, n, a.Rolling == nil || *a.Rolling)
			r.ID = id
			if i > 0 {
				if a.Name == "" {
					r.Name = id
				} else {
					r.Name = fmt.Sprintf("%s (replica %d)", a.Name, i)
				}
				if a.LogDirectory == "" {
					r.LogDirectory = strings.TrimSuffix(base.LogDirectory, base.ID) + id
				}
			}
			apps[id] = r
			keys[id] = key
		}
	}
}

// replica is replica i of n of the app t.
func replica(t *App, i, n int, rolling bool) *App {
	r := *t
	r.ReplicaOf, r.Replica, r.Replicas, r.Rolling = t.ID, i, n, rolling
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
	return &r
}
