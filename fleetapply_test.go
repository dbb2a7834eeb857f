package patrol

import (
	"slices"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/fleet"
)

// TestPlanApplyResume: after a common rollout stopped half-way (host a
// staged, b not), applying the same directory again changes only b, and
// applying the previous directory (the old common) changes only a back.
func TestPlanApplyResume(t *testing.T) {
	oldCommon := []byte(`{"apps": {"agent": {"binary": "/bin/sleep", "args": ["1"]}}}`)
	newCommon := []byte(`{"apps": {"agent": {"binary": "/bin/sleep", "args": ["2"]}}}`)
	host := func(id string) []byte { return []byte(`{"apps": {"` + id + `": {"binary": "/bin/true"}}}`) }
	staged, err := desired.Stage(oldCommon, newCommon, host("a"))
	if err != nil {
		t.Fatal(err)
	}
	cur := &fleet.Current{Common: oldCommon, Hosts: map[string][]byte{"a": staged, "b": host("b")}, Up: map[string]bool{"a": true, "b": true}}
	bundle := &fleet.Bundle{Common: newCommon, Hosts: map[string][]byte{"a": host("a"), "b": host("b")}}
	ap := planApply(cur, bundle, t.TempDir(), time.Now())
	if len(ap.problems) > 0 || !slices.Equal(ap.changed, []string{"b"}) {
		t.Errorf("the same directory again: changed %v, problems %v", ap.changed, ap.problems)
	}
	if p := ap.plans["a"]; p == nil || len(p.Actions) != 0 {
		t.Errorf("a's plan: %+v, want no action", p)
	}
	back := &fleet.Bundle{Common: oldCommon, Hosts: bundle.Hosts}
	ap = planApply(cur, back, t.TempDir(), time.Now())
	if len(ap.problems) > 0 || !slices.Equal(ap.changed, []string{"a"}) {
		t.Errorf("the previous directory: changed %v, problems %v", ap.changed, ap.problems)
	}
}
