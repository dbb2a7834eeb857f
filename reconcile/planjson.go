package reconcile

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// ToPlan converts actions into the plan's wire form, with its summary.
// Nothing volatile (no times, no pids of processes to start) goes in, so
// the same input gives the same bytes.
func ToPlan(actions []Action) *schema.Plan {
	p := &schema.Plan{Actions: []schema.PlanAction{}}
	for _, a := range actions {
		pa := schema.PlanAction{Group: a.Group, ID: a.ID, Action: string(a.Kind), Reason: a.Reason, Note: a.Note}
		for _, c := range a.Changes {
			pa.Changes = append(pa.Changes, schema.FieldChange{Field: c.Field, Old: c.Old, New: c.New, Restart: c.Restart})
		}
		switch a.Kind {
		case KindStart:
			p.Summary.Start++
		case KindRestart:
			p.Summary.Restart++
		case KindUpdate:
			p.Summary.Update++
		case KindStop:
			p.Summary.Stop++
		case KindAdopt:
			p.Summary.Adopt++
		case KindKeep:
			p.Summary.Kept++
		case KindWait:
			p.Summary.Wait++
		}
		p.Actions = append(p.Actions, pa)
	}
	return p
}

// PlanFor returns what applying st would do now, against the observed
// state, without applying anything (`patrol plan`, /api/plan). Overrides
// that st would supersede are dropped, and the plan says so.
func (l *Loop) PlanFor(ctx context.Context, st *desired.State) (*schema.Plan, error) {
	var p *schema.Plan
	err := l.read(ctx, func() { p = l.planFor(st, l.now()) })
	return p, err
}

// PlanCurrent returns what the loop will do next for the current file.
func (l *Loop) PlanCurrent(ctx context.Context) (*schema.Plan, error) {
	var p *schema.Plan
	err := l.read(ctx, func() { p = l.planFor(l.conf, l.now()) })
	return p, err
}

func (l *Loop) planFor(st *desired.State, now time.Time) *schema.Plan {
	st = scaled(st, l.overrides, now)
	ov := maps.Clone(l.overrides)
	dropped := map[desired.Key]string{}
	for k, o := range ov {
		if why := st.Stale(k, o, now); why != "" {
			delete(ov, k)
			dropped[k] = "API override dropped: " + why
		}
	}
	p := ToPlan(Plan(st.WithOverrides(ov), l.snap, now))
	return NoteLimits(noteEntries(p, dropped, schema.ReasonOverride), st, l.notEnforced)
}

// NoteLimits adds "limits: not enforced (why)" to the plan of every app of
// st whose limits this host cannot enforce (notEnforced: by limit key, as
// exec detected): on the app's action, else as a note of its own.
func NoteLimits(p *schema.Plan, st *desired.State, notEnforced map[string]string) *schema.Plan {
	notes := map[desired.Key]string{}
	for _, a := range st.Apps() {
		if why := a.Limits.Unenforced(notEnforced); why != "" {
			notes[desired.Key{Group: schema.GroupApp, ID: a.ID}] = "limits: " + why
		}
	}
	return noteEntries(p, notes, schema.ReasonLimits)
}

// PlanEmpty is the plan of st against an empty observed state: what a new
// Patrol would do (`patrol plan` without a reachable daemon).
func PlanEmpty(st *desired.State, now time.Time) *schema.Plan {
	return ToPlan(Plan(st, observed.NewSnapshot(), now))
}

// noteEntries attaches notes (such as dropped overrides) to the entries'
// actions, or adds a note with reason where the entry has none.
func noteEntries(p *schema.Plan, dropped map[desired.Key]string, reason schema.Reason) *schema.Plan {
	if len(dropped) == 0 {
		return p
	}
	for i := range p.Actions {
		a := &p.Actions[i]
		k := desired.Key{Group: a.Group, ID: a.ID}
		if note, ok := dropped[k]; ok {
			if a.Note != "" {
				note = a.Note + "; " + note
			}
			a.Note = note
			delete(dropped, k)
		}
	}
	for _, k := range sortedKeys(dropped) {
		p.Actions = append(p.Actions, schema.PlanAction{Group: k.Group, ID: k.ID, Action: schema.ActionKeep, Reason: reason, Note: dropped[k]})
		p.Summary.Kept++
	}
	return p
}

func sortedKeys(m map[desired.Key]string) []desired.Key {
	return slices.SortedFunc(maps.Keys(m), func(a, b desired.Key) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.ID, b.ID))
	})
}

// PlanTransition is the plan of next for a Patrol running everything of
// old as old says (`patrol fleet apply`: what a host will do when the new
// config reaches it): old's enabled apps run, its overrides are none.
func PlanTransition(old, next *desired.State, now time.Time) *schema.Plan {
	o := observed.NewSnapshot()
	for i, a := range old.Apps() {
		if a.Disabled {
			continue
		}
		pid := 1000 + i
		inst := &observed.Instance{ID: "inst-" + a.ID, App: a, PID: pid, PGID: pid, Started: now, LastSeen: now}
		inst.Health.Ready, inst.Health.StartupDone = true, true
		o.Apps[a.ID] = &observed.App{ID: a.ID, Instance: inst, Starts: 1}
	}
	return ToPlan(Plan(next, o, now))
}
