package api

import (
	"fmt"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// An entry's restart timeline: its instances as bars on a time axis that
// ends now, and each ended instance as a mark where it ended, coloured by
// why (crashed, killed by a signal, failed a check, exited, stopped on
// purpose). Plain SVG from the template: no chart library, no script.

const (
	tlWidth  = 600 // the viewBox's width
	tlLeft   = 8   // margins inside it
	tlRight  = 8
	tlBarY   = 14 // where the instance bars are
	tlMarkY  = 18 // the marks' centre
	tlAxisY  = 36
	tlHeight = 52
)

// timeline is what the template draws.
type timeline struct {
	Width, Height, AxisY, BarY, MarkY int
	Runs                              []tlSpan
	Marks                             []tlMark
	Ticks                             []tlTick
	From, To                          string // the axis's ends, ISO
	Label                             string // for screen readers
}

type tlSpan struct {
	X, W  float64
	Class string
}

type tlMark struct {
	X     float64
	Class string
	Title string
}

type tlTick struct {
	X      float64
	Label  string
	Anchor string
}

// makeTimeline lays out an entry's history and current instance.
func makeTimeline(e *schema.Response, now time.Time) timeline {
	tl := timeline{Width: tlWidth, Height: tlHeight, AxisY: tlAxisY, BarY: tlBarY, MarkY: tlMarkY}
	from := now.Add(-10 * time.Second) // the shortest axis
	for _, h := range e.History {
		if t, ok := parseTime(h.Started); ok && t.Before(from) {
			from = t
		}
		if t, ok := parseTime(h.Stopped); ok && t.Before(from) {
			from = t
		}
	}
	if t, ok := parseTime(e.Started); ok && running(e) && t.Before(from) {
		from = t
	}
	span := now.Sub(from)
	from = from.Add(-span / 50) // a little room before the first
	span = now.Sub(from)
	x := func(t time.Time) float64 {
		f := float64(t.Sub(from)) / float64(span)
		return tlLeft + min(max(f, 0), 1)*float64(tlWidth-tlLeft-tlRight)
	}
	crashes := 0
	for _, h := range e.History {
		start, okStart := parseTime(h.Started)
		stop, okStop := parseTime(h.Stopped)
		if okStart && okStop {
			tl.Runs = append(tl.Runs, tlSpan{X: x(start), W: max(x(stop)-x(start), 1), Class: "run"})
		}
		if okStop {
			cls := reasonClass(h)
			if cls != "stopped" && cls != "exited" {
				crashes++
			}
			tl.Marks = append(tl.Marks, tlMark{X: x(stop), Class: "mark mark-" + cls,
				Title: fmt.Sprintf("%s: %s, exit code %d", isoTime(h.Stopped), cmpReason(h.Reason), h.ExitCode)})
		}
	}
	if t, ok := parseTime(e.Started); ok && running(e) {
		tl.Runs = append(tl.Runs, tlSpan{X: x(t), W: max(x(now)-x(t), 1), Class: "run run-current"})
	}
	tl.From, tl.To = isoTime(from.Format(time.RFC3339Nano)), isoTime(now.Format(time.RFC3339Nano))
	for i := range 5 {
		t := from.Add(span * time.Duration(i) / 4)
		label := "now"
		if i < 4 {
			label = "-" + duration(now.Sub(t))
		}
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		tl.Ticks = append(tl.Ticks, tlTick{X: x(t), Label: label, Anchor: anchor})
	}
	tl.Label = fmt.Sprintf("%d ended instances over the last %s, %d of them failures", len(tl.Marks), duration(span), crashes)
	return tl
}

func cmpReason(r schema.Reason) string {
	if r == "" {
		return "ended"
	}
	return string(r)
}
