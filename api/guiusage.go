package api

import (
	"fmt"
	"strconv"
	"strings"
)

// usageView is an app's recent usage as the GUI shows it: the latest CPU
// share and resident memory, and sparklines of both (plain SVG polyline
// points, scaled to the largest value shown).
type usageView struct {
	CPU, Mem             string // "3%", "45 MiB"
	CPUPoints, MemPoints string
	CPUMax, MemMax       string
	Samples              int
	W, H                 int
}

// makeUsage builds the view of samples (oldest first) for sparklines w×h;
// nil when there are none.
func makeUsage(samples []UsageSample, w, h int) *usageView {
	if len(samples) == 0 {
		return nil
	}
	v := &usageView{Samples: len(samples), W: w, H: h, CPU: "-"}
	var cpu, mem []float64
	for i, s := range samples {
		mem = append(mem, float64(s.RSS))
		if i > 0 {
			dt := s.At.Sub(samples[i-1].At).Seconds()
			if dt > 0 {
				cpu = append(cpu, max(0, (s.CPU-samples[i-1].CPU).Seconds()/dt*100))
			}
		}
	}
	if n := len(cpu); n > 0 {
		v.CPU = strconv.Itoa(int(cpu[n-1]+0.5)) + "%"
		var top float64
		v.CPUPoints, top = points(cpu, w, h, 1)
		v.CPUMax = strconv.Itoa(int(top+0.5)) + "%"
	}
	v.Mem = bytesText(uint64(mem[len(mem)-1]))
	var top float64
	v.MemPoints, top = points(mem, w, h, 1<<20)
	v.MemMax = bytesText(uint64(top))
	return v
}

// points lays values out as polyline points across w, scaled so that the
// largest (at least floor) reaches the top of h; it returns the scale's
// top too.
func points(vals []float64, w, h int, floor float64) (string, float64) {
	top := floor
	for _, x := range vals {
		top = max(top, x)
	}
	var b strings.Builder
	n := len(vals)
	for i, x := range vals {
		px := float64(w)
		if n > 1 {
			px = float64(i) * float64(w) / float64(n-1)
		}
		py := float64(h) - x/top*float64(h-2) - 1
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", px, py)
	}
	return b.String(), top
}

// bytesText writes a byte count in binary units: "812 KiB", "45 MiB".
func bytesText(n uint64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
