package desired

import (
	"regexp"
	"testing"
)

// plainKeyPattern is what plainKey implements.
var plainKeyPattern = regexp.MustCompile(`^[A-Za-z0-9$][A-Za-z0-9_$-]*$`)

func TestPlainKey(t *testing.T) {
	for _, k := range []string{"", "a", "web", "app-1", "app_1", "$x", "-x", "_x", "a b", "a.b", "ä", "A9$_-", "x\n", "1"} {
		if got, want := plainKey(k), plainKeyPattern.MatchString(k); got != want {
			t.Errorf("plainKey(%q) = %v, want %v", k, got, want)
		}
	}
}

func FuzzPlainKey(f *testing.F) {
	for _, k := range []string{"", "web", "a b", "-x", "x-", "ä"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if got, want := plainKey(k), plainKeyPattern.MatchString(k); got != want {
			t.Errorf("plainKey(%q) = %v, want %v", k, got, want)
		}
	})
}
