package reconcile

import (
	"fmt"
	"strings"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// holds reports whether dependency dep's condition holds in o.
func holds(o *observed.Snapshot, dep desired.Dependency) bool {
	oa := o.Apps[dep.ID]
	switch dep.Condition {
	case schema.ConditionReady:
		return running(o, dep.ID) && oa.Instance.Health.Ready
	case schema.ConditionCompleted, schema.ConditionCompletedSuccessfully:
		if oa == nil || oa.Instance != nil || oa.LastEnd == nil || !oa.LastEnd.BySelf || oa.LastEnd.Exit == nil {
			return false
		}
		return dep.Condition == schema.ConditionCompleted || oa.LastEnd.Succeeded()
	}
	return running(o, dep.ID)
}

// unmet returns the dependencies of da whose conditions do not hold.
func unmet(o *observed.Snapshot, da *desired.App) []desired.Dependency {
	var out []desired.Dependency
	for _, dep := range da.DependsOn {
		if !holds(o, dep) {
			out = append(out, dep)
		}
	}
	return out
}

// afterNote is a waiting start's note: "after db is ready and setup has
// completed successfully".
func afterNote(deps []desired.Dependency) string {
	parts := make([]string, len(deps))
	for i, d := range deps {
		parts[i] = d.Describe()
	}
	return "after " + strings.Join(parts, " and ")
}

// waitingFor says in status what a waiting app waits for, and what its
// dependencies are doing meanwhile when that explains the wait: "waiting
// for setup to complete successfully (it exited with code 1)".
func waitingFor(d *desired.State, o *observed.Snapshot, deps []desired.Dependency) string {
	parts := make([]string, len(deps))
	for i, dep := range deps {
		s := dep.ID + " to "
		switch dep.Condition {
		case schema.ConditionReady:
			s += "be ready"
		case schema.ConditionCompleted:
			s += "complete"
		case schema.ConditionCompletedSuccessfully:
			s += "complete successfully"
		default:
			s += "be started"
		}
		why := dependencyDoing(o.Apps[dep.ID])
		if da, ok := d.App(dep.ID); ok && d.AppDisabled(da) && (o.Apps[dep.ID] == nil || o.Apps[dep.ID].Instance == nil) {
			why = "it is disabled"
		}
		if why != "" {
			s += " (" + why + ")"
		}
		parts[i] = s
	}
	return "waiting for " + strings.Join(parts, " and ")
}

// dependencyDoing says what a dependency is up to, for a wait's reason.
func dependencyDoing(oa *observed.App) string {
	switch {
	case oa == nil:
		return "not started yet"
	case oa.Instance != nil && oa.Instance.Stopping != nil:
		return "it is stopping"
	case oa.Instance != nil && oa.Instance.Health.WasReady && !oa.Instance.Health.Ready:
		return "it is unready"
	case oa.Instance != nil:
		return "it is starting"
	case oa.LastEnd != nil && oa.LastEnd.Exit != nil && (oa.LastEnd.Reason == schema.ReasonExited || oa.LastEnd.Reason == schema.ReasonCrashed ||
		oa.LastEnd.Reason == schema.ReasonCompleted || oa.LastEnd.Reason == schema.ReasonFailed):
		return fmt.Sprintf("it %s with code %d", oa.LastEnd.Reason, oa.LastEnd.Exit.Code)
	case oa.LastEnd != nil && oa.LastEnd.Exit != nil && oa.LastEnd.Reason == schema.ReasonSignal:
		return fmt.Sprintf("it was killed by a signal, code %d", oa.LastEnd.Exit.Code)
	case oa.LastEnd != nil && oa.LastEnd.Reason == schema.ReasonOOMKilled:
		return "it was killed for using more than its memory-max"
	case oa.LastEnd != nil:
		return "it ended: " + string(oa.LastEnd.Reason)
	}
	return "not started yet"
}

// removedDependents maps app ids to the apps removed from d whose
// running instance depends on them (by the config it runs with), so that
// a removal of both stops the dependent first. Nil when no removed app
// runs, as on nearly every pass.
func removedDependents(d *desired.State, o *observed.Snapshot) map[string][]string {
	var out map[string][]string
	for id, oa := range o.Apps {
		if oa.Instance == nil {
			continue
		}
		if _, ok := d.App(id); ok {
			continue
		}
		for _, dep := range oa.Instance.App.DependsOn {
			if out == nil {
				out = map[string][]string{}
			}
			out[dep.ID] = append(out[dep.ID], id)
		}
	}
	return out
}

// dependentsUp returns the first of the apps that depend on an app (by
// the desired config, and the removed ones) that still has processes. The
// desired graph is acyclic (validated), and no app of it depends on a
// removed one, so the stop order has no cycle either.
func dependentsUp(o *observed.Snapshot, lists ...[]string) string {
	for _, ids := range lists {
		for _, id := range ids {
			if oa := o.Apps[id]; oa != nil && (oa.Instance != nil || oa.Leftover != nil) {
				return id
			}
		}
	}
	return ""
}

// restartedDependency returns a dependency that the instance restarts
// with and that got a new instance (or lost it) since the instance
// started.
func restartedDependency(o *observed.Snapshot, inst *observed.Instance, da *desired.App) (string, bool) {
	for _, dep := range da.DependsOn {
		if !dep.Restart {
			continue
		}
		was, ok := inst.DependencyInstances[dep.ID]
		if !ok {
			continue // started before it restarted with it: nothing to compare
		}
		now := ""
		if oa := o.Apps[dep.ID]; oa != nil && oa.Instance != nil {
			now = oa.Instance.ID
		}
		if now != was {
			return dep.ID, true
		}
	}
	return "", false
}
