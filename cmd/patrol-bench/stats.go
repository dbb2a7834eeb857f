package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Stats summarises one side (Patrol or the baseline) of a measurement:
// either a distribution of N samples or a single Value.
type Stats struct {
	N    int     `json:"n,omitempty"`
	Min  float64 `json:"min,omitempty"`
	P50  float64 `json:"p50,omitempty"`
	P99  float64 `json:"p99,omitempty"`
	Max  float64 `json:"max,omitempty"`
	Mean float64 `json:"mean,omitempty"`
	// Value is set instead of the distribution for a single number.
	Value *float64 `json:"value,omitempty"`
}

// percentile returns the p-th percentile (0-100) of sorted samples by the
// nearest-rank method: the smallest sample with at least p % of the samples
// at or below it. With fewer than 100 samples p99 is the maximum.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(rank, 1)
	rank = min(rank, len(sorted))
	return sorted[rank-1]
}

// summarize returns the distribution of samples, or nil for no samples.
func summarize(samples []float64) *Stats {
	if len(samples) == 0 {
		return nil
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	return &Stats{
		N: len(s), Min: s[0], P50: percentile(s, 50), P99: percentile(s, 99), Max: s[len(s)-1],
		Mean: sum / float64(len(s)),
	}
}

// value returns Stats holding one number.
func value(v float64) *Stats { return &Stats{Value: &v} }

// ms converts durations to milliseconds.
func ms(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// pick returns the statistic named by which ("min", "p50", "p99", "value").
func (s *Stats) pick(which string) (float64, bool) {
	if s == nil {
		return 0, false
	}
	if s.Value != nil {
		return *s.Value, true
	}
	if s.N == 0 {
		return 0, false
	}
	switch which {
	case "min":
		return s.Min, true
	case "p50":
		return s.P50, true
	case "p99":
		return s.P99, true
	case "mean":
		return s.Mean, true
	}
	return 0, false
}

// Result is one line of the table.
type Result struct {
	// Name identifies the measurement ("crash-k1", "start-500", ...).
	Name string `json:"name"`
	// Title is the human description.
	Title string `json:"title"`
	Unit  string `json:"unit"`
	// Patrol and Baseline are the two sides; Baseline is nil when there is
	// none (see Note).
	Patrol   *Stats `json:"patrol,omitempty"`
	Baseline *Stats `json:"baseline,omitempty"`
	// Ratio is Patrol/Baseline of the statistic named by RatioOf.
	Ratio   *float64 `json:"ratio,omitempty"`
	RatioOf string   `json:"ratio_of,omitempty"`
	// Target is issue 9's target, in words; Met says whether it was met
	// (absent when there is no target or nothing was measured).
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	Note   string `json:"note,omitempty"`
	// Extra holds secondary numbers (for example the time until /proc
	// alone showed every process of a start).
	Extra map[string]float64 `json:"extra,omitempty"`
}

// target is a check of a Result against issue 9.
type target struct {
	text string
	// check returns whether the target is met; ok is false when the needed
	// numbers are missing.
	check func(r *Result) (met, ok bool)
}

// maxRatio: Patrol's statistic is at most k times the baseline's.
func maxRatio(k float64, which string) target {
	return target{
		text: fmt.Sprintf("≤ %g× baseline %s", k, which),
		check: func(r *Result) (bool, bool) {
			if r.Ratio == nil {
				return false, false
			}
			return *r.Ratio <= k, true
		},
	}
}

// maxRatioPlus: Patrol's statistic is at most k times the baseline's plus
// extra (in the Result's unit).
func maxRatioPlus(k, extra float64, which, unit string) target {
	return target{
		text: fmt.Sprintf("≤ %g× baseline + %g %s", k, extra, unit),
		check: func(r *Result) (bool, bool) {
			v, ok := r.Patrol.pick(which)
			b, bok := r.Baseline.pick(which)
			return v <= k*b+extra, ok && bok
		},
	}
}

// atMost: Patrol's statistic is at most limit (in the Result's unit).
func atMost(limit float64, which string, text string) target {
	return target{
		text: text,
		check: func(r *Result) (bool, bool) {
			v, ok := r.Patrol.pick(which)
			return v <= limit, ok
		},
	}
}

// below: Patrol's statistic is strictly below limit.
func below(limit float64, which string, text string) target {
	return target{
		text: text,
		check: func(r *Result) (bool, bool) {
			v, ok := r.Patrol.pick(which)
			return v < limit, ok
		},
	}
}

// atLeast: Patrol's statistic is at least limit.
func atLeast(limit float64, which string, text string) target {
	return target{
		text: text,
		check: func(r *Result) (bool, bool) {
			v, ok := r.Patrol.pick(which)
			return v >= limit, ok
		},
	}
}

// finish computes the ratio of the statistic ratioOf and checks the targets
// (all must hold).
func (r *Result) finish(ratioOf string, targets ...target) {
	if ratioOf != "" {
		p, okP := r.Patrol.pick(ratioOf)
		b, okB := r.Baseline.pick(ratioOf)
		if okP && okB && b > 0 {
			ratio := p / b
			r.Ratio, r.RatioOf = &ratio, ratioOf
		}
	}
	if len(targets) == 0 {
		return
	}
	var texts []string
	met, known := true, true
	for _, t := range targets {
		texts = append(texts, t.text)
		m, ok := t.check(r)
		met = met && m
		known = known && ok
	}
	r.Target = strings.Join(texts, "; ")
	if known {
		r.Met = &met
	}
}

// formatNumber prints v with about three significant digits.
func formatNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "NaN"
	case a == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	case a >= 0.1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// format prints a side: "min / p50 / p99 (n=N)" or the value.
func (s *Stats) format(unit string) string {
	if s == nil {
		return "—"
	}
	u := ""
	if unit != "" {
		u = " " + unit
	}
	if s.Value != nil {
		if v := *s.Value; v == math.Trunc(v) {
			return fmt.Sprintf("%.0f%s", v, u) // a count
		}
		return formatNumber(*s.Value) + u
	}
	return fmt.Sprintf("%s / %s / %s%s (n=%d)", formatNumber(s.Min), formatNumber(s.P50), formatNumber(s.P99), u, s.N)
}

// writeTable prints the results as an aligned table.
func writeTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tPatrol (min / p50 / p99 or value)\tbaseline\tratio\ttarget (issue 9)\tresult")
	for _, r := range results {
		ratio := "—"
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2f× (%s)", *r.Ratio, r.RatioOf)
		}
		tgt := r.Target
		if tgt == "" {
			tgt = "—"
		}
		res := "—"
		switch {
		case r.Met != nil && *r.Met:
			res = "met"
		case r.Met != nil:
			res = "NOT MET"
		case r.Target != "":
			res = "n/a"
		}
		base := r.Baseline.format(r.Unit)
		if r.Baseline == nil && r.Note != "" && strings.HasPrefix(r.Note, "no baseline") {
			base = "no baseline"
		}
		patrol := r.Patrol.format(r.Unit)
		if r.Patrol == nil {
			patrol = "n/a"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Title, patrol, base, ratio, tgt, res)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Each note once, under the first measurement that has it.
	var notes []string
	seen := map[string]bool{}
	for _, r := range results {
		if r.Note != "" && !seen[r.Note] {
			seen[r.Note] = true
			notes = append(notes, fmt.Sprintf("  %s: %s", r.Title, r.Note))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	return nil
}
