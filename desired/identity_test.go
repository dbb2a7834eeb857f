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
