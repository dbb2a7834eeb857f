package desired

import (
	"slices"
	"strings"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	got, err := ParseEnvFile([]byte("# comment\n\nA=1\nexport B = two words  # trailing\nC='single #quoted'\nD=\"line\\nbreak \\\"q\\\"\"\nE=\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=two words", "C=single #quoted", "D=line\nbreak \"q\"", "E="}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for _, c := range []struct{ in, want string }{
		{"NOEQUALS\n", "line 1: want KEY=VALUE"},
		{"A=1\n1B=2\n", "line 2: want KEY=VALUE"},
		{"A='open\n", "line 1: A: unterminated single quote"},
		{"A=\"x\" y\n", "line 1: A: text after the closing quote"},
	} {
		if _, err := ParseEnvFile([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
	}
}

// FuzzEnvFile: no input makes ParseEnvFile panic, and what it accepts is
// KEY=VALUE pairs with valid keys and no NUL.
func FuzzEnvFile(f *testing.F) {
	f.Add([]byte("A=1\nexport B=\"x\\\"y\"\n# c\nC='z'\n"))
	f.Add([]byte("A=\"\\"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := ParseEnvFile(data)
		if err != nil {
			return
		}
		for _, v := range vars {
			k, _, ok := strings.Cut(v, "=")
			if !ok || envKeyProblem(k) != "" || strings.ContainsRune(v, 0) {
				t.Errorf("accepted %q", v)
			}
		}
	})
}

// FuzzLimits: no input makes the limit parsers panic; what they accept is
// in the kernel's range, and a memory limit reads back the same from its
// text.
func FuzzLimits(f *testing.F) {
	for _, s := range []string{"512M", "1GiB", "33554432", "max", "50%", "0.1%", "50000 100000", "10", "4T", "9999999999999999999T", " 7 k ", "1e3%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseBytes(s); err == nil && n != 0 {
			if n < minMemory {
				t.Errorf("%q: %d bytes accepted", s, n)
			}
			if back, err := ParseBytes(bytesText(n)); err != nil || back != n {
				t.Errorf("%q: %d -> %q -> %d, %v", s, n, bytesText(n), back, err)
			}
		}
		if q, p, err := ParseCPUMax(s); err == nil && q != 0 && (p < 1000 || p > 1000000 || q < 100) {
			t.Errorf("%q: quota %d period %d accepted", s, q, p)
		}
		if n, err := ParsePIDsMax(s); err == nil && n > 1<<22 {
			t.Errorf("%q: %d pids accepted", s, n)
		}
	})
}
