package desired

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/patrolhq/patrol/schema"
)

// Identity and limits of an app's processes: user, group, supplementary
// groups, umask, resource limits and an environment file (issue 18).

// Rlimit is one resource limit of an app (exec maps the name to the
// resource).
type Rlimit struct {
	Name       string // "nofile"
	Soft, Hard uint64 // RlimInfinity for no limit
}

// RlimInfinity is "infinity" (RLIM_INFINITY).
const RlimInfinity = ^uint64(0)

// RlimitNames are the limits an app may set.
var RlimitNames = []string{"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
	"nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}

// accountPattern is a user or group: a name (as useradd accepts them) or a
// numeric id.
var accountPattern = regexp.MustCompile(`^(?:[0-9]{1,10}|[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?)$`)

// umaskPattern is an octal umask: three digits, optionally after a 0.
var umaskPattern = regexp.MustCompile(`^0?[0-7]{3}$`)

func accountProblem(s string) string {
	if accountPattern.MatchString(s) {
		return ""
	}
	return fmt.Sprintf(`must be a user or group name (letters, digits, "_", "." and "-", at most 32) or a numeric id, got %q`, s)
}

func umaskProblem(s string) string {
	if umaskPattern.MatchString(s) {
		return ""
	}
	return fmt.Sprintf(`must be an octal umask such as "022" or "0027", got %q`, s)
}

// normalUmask writes an umask as three octal digits ("" for none).
func normalUmask(s string) string {
	if s == "" {
		return ""
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return s // validated before
	}
	return fmt.Sprintf("%03o", n)
}

// rlimits checks and parses an app's rlimits, sorted by name; problems go
// to errs under path ("apps.web.rlimits").
func rlimits(m map[string]schema.RlimitSpec, path string, errs *problems) []Rlimit {
	var out []Rlimit
	for _, name := range slices.Sorted(maps.Keys(m)) {
		p := joinKey(path, name)
		if !slices.Contains(RlimitNames, name) {
			errs.add(p, "unknown resource limit: want one of "+strings.Join(RlimitNames, ", "))
			continue
		}
		soft, hard, err := parseRlimit(string(m[name]))
		if err != nil {
			errs.add(p, err.Error())
			continue
		}
		out = append(out, Rlimit{Name: name, Soft: soft, Hard: hard})
	}
	return out
}

// parseRlimit reads "SOFT:HARD" or one value for both.
func parseRlimit(s string) (soft, hard uint64, err error) {
	one := func(v string) (uint64, error) {
		switch strings.TrimSpace(v) {
		case "infinity", "unlimited":
			return RlimInfinity, nil
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil || n == RlimInfinity {
			return 0, fmt.Errorf(`must be "SOFT:HARD" or one value, each a number or "infinity", got %q`, s)
		}
		return n, nil
	}
	a, b, two := strings.Cut(s, ":")
	if soft, err = one(a); err != nil {
		return 0, 0, err
	}
	hard = soft
	if two {
		if hard, err = one(b); err != nil {
			return 0, 0, err
		}
	}
	if soft > hard {
		return 0, 0, fmt.Errorf("the soft limit %s is above the hard limit %s", limitText(soft), limitText(hard))
	}
	return soft, hard, nil
}

func limitText(n uint64) string {
	if n == RlimInfinity {
		return "infinity"
	}
	return strconv.FormatUint(n, 10)
}

// String writes a limit as the config does ("1024:4096").
func (r Rlimit) String() string {
	if r.Soft == r.Hard {
		return limitText(r.Soft)
	}
	return limitText(r.Soft) + ":" + limitText(r.Hard)
}

// ParseEnvFile reads a dotenv file: KEY=VALUE lines; blank lines and lines
// starting with "#" are skipped; "export " before a key is allowed; a
// value in single quotes is taken as it is, in double quotes with \n, \t,
// \" and \\ escapes, unquoted up to a " #" comment, trimmed. A problem
// names its line.
func ParseEnvFile(data []byte) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, val, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || envKeyProblem(key) != "" {
			return nil, fmt.Errorf("line %d: want KEY=VALUE with a key of letters, digits and \"_\", got %q", n, truncate(line, 80))
		}
		v, err := envValue(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", n, key, err)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("line %d: %s: the value has a NUL byte", n, key)
		}
		out = append(out, key+"="+v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func envKeyProblem(k string) string {
	if k == "" {
		return "empty key"
	}
	for i, c := range k {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return "bad key"
		}
	}
	return ""
}

func envValue(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, "'"):
		if len(v) < 2 || !strings.HasSuffix(v, "'") {
			return "", fmt.Errorf("unterminated single quote")
		}
		return v[1 : len(v)-1], nil
	case strings.HasPrefix(v, `"`):
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			c := v[i]
			switch {
			case c == '"':
				if strings.TrimSpace(v[i+1:]) != "" && !strings.HasPrefix(strings.TrimSpace(v[i+1:]), "#") {
					return "", fmt.Errorf("text after the closing quote")
				}
				return b.String(), nil
			case c == '\\' && i+1 < len(v):
				i++
				switch v[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				default:
					b.WriteByte(v[i])
				}
			default:
				b.WriteByte(c)
			}
		}
		return "", fmt.Errorf("unterminated double quote")
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// supplementary keeps "not set" (nil: the user's groups) apart from "set
// to none" (empty).
func supplementary(g []string) []string {
	if g == nil {
		return nil
	}
	return append([]string{}, g...)
}
