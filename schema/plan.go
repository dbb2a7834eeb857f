package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Text renders a plan for people, like terraform: one line per action
// with a symbol (+ start or adopt, ~ restart or update, - stop, ! a note),
// the changed fields with old -> new values, and a summary line. The same
// plan always renders to the same bytes.
func (p *Plan) Text() string {
	if len(p.Actions) == 0 {
		return "No changes.\n"
	}
	idWidth := 0
	for _, a := range p.Actions {
		idWidth = max(idWidth, len(a.ID))
	}
	var b strings.Builder
	for _, a := range p.Actions {
		sym := "~"
		switch a.Action {
		case ActionStart, ActionAdopt, ActionWait:
			sym = "+"
		case ActionStop, "kill", "cleanup":
			sym = "-"
		case ActionKeep:
			sym = "!"
		}
		fmt.Fprintf(&b, "%s %-7s %-*s  ", sym, a.Group, idWidth, a.ID)
		if a.Action == ActionKeep {
			b.WriteString(a.Note)
			b.WriteString("\n")
			continue
		}
		if a.Action == ActionWait {
			// A start that waits: "+ app api start (after db is ready)".
			fmt.Fprintf(&b, "%-8s (%s)\n", ActionStart, a.Note)
			continue
		}
		fmt.Fprintf(&b, "%-8s (%s)\n", a.Action, a.details())
	}
	if !p.Changes() {
		b.WriteString("No changes.\n")
		return b.String()
	}
	b.WriteString(p.Summary.Text())
	b.WriteString("\n")
	return b.String()
}

// details is the parenthesised part of an action's line: the changed
// fields, else the reason; then the note.
func (a *PlanAction) details() string {
	var parts []string
	if len(a.Changes) > 0 {
		for _, c := range a.Changes {
			parts = append(parts, fmt.Sprintf("%s: %s -> %s", c.Field, orNull(c.Old), orNull(c.New)))
		}
	} else {
		parts = append(parts, string(a.Reason))
	}
	if a.Note != "" {
		parts = append(parts, a.Note)
	}
	return strings.Join(parts, "; ")
}

// orNull renders a raw JSON value on one line ("null" when absent): a plan
// that went through indented JSON renders the same as one that did not.
func orNull(raw []byte) string {
	if len(raw) == 0 {
		return "null"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// Text is the summary line: "Plan: 1 to start, 1 to restart, 1 to update
// in place, 1 to stop."
func (s PlanSummary) Text() string {
	parts := []string{
		fmt.Sprintf("%d to start", s.Start),
		fmt.Sprintf("%d to restart", s.Restart),
		fmt.Sprintf("%d to update in place", s.Update),
		fmt.Sprintf("%d to stop", s.Stop),
	}
	if s.Adopt > 0 {
		parts = append(parts, fmt.Sprintf("%d to adopt", s.Adopt))
	}
	if s.Wait > 0 {
		parts = append(parts, fmt.Sprintf("%d waiting for dependencies", s.Wait))
	}
	return "Plan: " + strings.Join(parts, ", ") + "."
}

// Changes reports whether the plan does anything (notes alone are not
// changes).
func (p *Plan) Changes() bool {
	for _, a := range p.Actions {
		if a.Action != ActionKeep && a.Action != ActionWait {
			return true
		}
	}
	return false
}
