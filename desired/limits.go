package desired

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/patrolhq/patrol/schema"
)

// Limits are an app's cgroup limits (issue 18); a zero field is no limit.
// They apply to a running instance in place.
type Limits struct {
	MemoryMax  uint64 // bytes
	MemoryHigh uint64 // bytes
	// CPUQuota and CPUPeriod are microseconds: the app may run CPUQuota
	// in every CPUPeriod (cgroup v2's cpu.max); CPUQuota 0 is no cap.
	CPUQuota, CPUPeriod uint64
	PIDsMax             uint64
}

// Any reports whether any limit is set.
func (l Limits) Any() bool { return l != Limits{} }

// LimitKeys are the config keys of Limits, in the order they are shown.
var LimitKeys = []string{"memory-max", "memory-high", "cpu-max", "pids-max"}

// Set reports whether the limit under a config key is set.
func (l Limits) Set(key string) bool {
	switch key {
	case "memory-max":
		return l.MemoryMax > 0
	case "memory-high":
		return l.MemoryHigh > 0
	case "cpu-max":
		return l.CPUQuota > 0
	case "pids-max":
		return l.PIDsMax > 0
	}
	return false
}

// Controller is the cgroup controller a limit key needs.
func Controller(key string) string {
	switch key {
	case "memory-max", "memory-high":
		return "memory"
	case "cpu-max":
		return "cpu"
	}
	return "pids"
}

// Unenforced says which of an app's limits this host cannot enforce, and
// why ("" when it enforces them all): why maps a limit key to the reason
// it is not enforced (from exec's detection of the host's cgroups).
func (l Limits) Unenforced(why map[string]string) string {
	var parts []string
	for _, k := range LimitKeys {
		if l.Set(k) && why[k] != "" {
			parts = append(parts, k+": "+why[k])
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "not enforced (" + strings.Join(parts, "; ") + ")"
}

// Text is a limit as the config writes it ("" when not set).
func (l Limits) Text(key string) string {
	if !l.Set(key) {
		return ""
	}
	switch key {
	case "memory-max":
		return bytesText(l.MemoryMax)
	case "memory-high":
		return bytesText(l.MemoryHigh)
	case "cpu-max":
		return fmt.Sprintf("%d %d", l.CPUQuota, l.CPUPeriod)
	}
	return strconv.FormatUint(l.PIDsMax, 10)
}

// bytesText writes bytes with the largest exact unit ("32M").
func bytesText(n uint64) string {
	for _, u := range []struct {
		s string
		n uint64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n%u.n == 0 {
			return strconv.FormatUint(n/u.n, 10) + u.s
		}
	}
	return strconv.FormatUint(n, 10)
}

// errText is an error's text, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// minMemory is the least memory limit accepted: below a few pages no
// program starts, and a typo ("32" for "32M") should be caught.
const minMemory = 1 << 20

// ParseBytes reads a memory limit: a number of bytes, or a number with K,
// M, G or T (powers of 1024; "KiB", "KB", "k" read the same), or "max"
// (0: none).
func ParseBytes(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	if t == "max" || t == "infinity" {
		return 0, nil
	}
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I")
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
	sh, ok := shift[unit]
	n, err := strconv.ParseUint(num, 10, 64)
	if !ok || err != nil || num == "" || (unit == "" && strings.HasSuffix(strings.ToUpper(t), "B")) {
		return 0, fmt.Errorf(`must be bytes, a number with K, M, G or T ("512M"), or "max", got %q`, s)
	}
	if n > (1<<63)>>sh {
		return 0, fmt.Errorf("%q is too large", s)
	}
	n <<= sh
	if n < minMemory {
		return 0, fmt.Errorf("must be at least 1M, got %q (%d bytes)", s, n)
	}
	return n, nil
}

// DefaultCPUPeriod is cgroup v2's default cpu.max period (100 ms).
const DefaultCPUPeriod = 100000

// ParseCPUMax reads a CPU cap: "50%" of one CPU, "QUOTA PERIOD" in
// microseconds, or "max" (quota 0: none).
func ParseCPUMax(s string) (quota, period uint64, err error) {
	t := strings.TrimSpace(s)
	bad := fmt.Errorf(`must be a percentage of one CPU ("50%%", "200%%"), "QUOTA PERIOD" in microseconds ("50000 100000"), or "max", got %q`, s)
	if t == "max" {
		return 0, 0, nil
	}
	if p, ok := strings.CutSuffix(t, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f != f {
			return 0, 0, bad
		}
		if f < 0.1 || f > 100000 {
			return 0, 0, fmt.Errorf("must be between 0.1%% and 100000%% of one CPU, got %q", s)
		}
		return uint64(f*DefaultCPUPeriod/100 + 0.5), DefaultCPUPeriod, nil
	}
	f := strings.Fields(t)
	if len(f) != 2 {
		return 0, 0, bad
	}
	q, err1 := strconv.ParseUint(f[0], 10, 64)
	per, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, bad
	}
	// The kernel's bounds: a period of 1 ms to 1 s, a quota of at least
	// 1 ms.
	if per < 1000 || per > 1000000 || q < 1000 || q > 1<<40 {
		return 0, 0, fmt.Errorf("needs a period of 1000 to 1000000 µs and a quota of at least 1000 µs, got %q", s)
	}
	return q, per, nil
}

// ParsePIDsMax reads a pids limit: a number of at least 1, or "max" (0).
func ParsePIDsMax(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	if t == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n < 1 || n > 1<<22 {
		return 0, errors.New(`must be a number of processes from 1 to 4194304, or "max", got ` + strconv.Quote(s))
	}
	return n, nil
}

// limits parses an app's limits (their forms were checked by the
// validator) and checks them together: memory-high at most memory-max.
func limits(a *schema.App, path string, errs *problems) Limits {
	var l Limits
	if a.MemoryMax == "" && a.MemoryHigh == "" && a.CPUMax == "" && a.PIDsMax == "" {
		return l // most apps: no limits, nothing to parse
	}
	l.MemoryMax, _ = ParseBytes(string(a.MemoryMax))
	l.MemoryHigh, _ = ParseBytes(string(a.MemoryHigh))
	l.CPUQuota, l.CPUPeriod, _ = ParseCPUMax(string(a.CPUMax))
	l.PIDsMax, _ = ParsePIDsMax(string(a.PIDsMax))
	if l.MemoryMax > 0 && l.MemoryHigh > l.MemoryMax {
		errs.add(joinKey(path, "memory-high"), fmt.Sprintf("must not be above memory-max (%s), got %s", bytesText(l.MemoryMax), bytesText(l.MemoryHigh)))
	}
	return l
}
