package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGeneratedFilesAreCurrent fails when schema/config.schema.json or the
// README's config reference no longer match the Go types.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	g, err := newGenerator("../../schema")
	if err != nil {
		t.Fatal(err)
	}
	js, err := g.jsonSchema()
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("../../schema/config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, js) {
		t.Error("schema/config.schema.json is stale: run go generate ./schema")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := spliceReference(readme, g.markdown())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readme, want) {
		t.Error("README.md's config reference is stale: run go generate ./schema")
	}
}

func TestDescribe(t *testing.T) {
	for _, c := range []struct{ name, doc, want string }{
		{"TickEvery", "TickEvery is how often Patrol ticks.", "How often Patrol ticks."},
		{"Args", "Args are the arguments.", "The arguments."},
		{"Disabled", "Disabled keeps the app stopped.", "Keeps the app stopped."},
		{"X", "Free-form data.", "Free-form data."},
		{"X", "X", "X"},
	} {
		if got := describe(c.name, c.doc); got != c.want {
			t.Errorf("describe(%q, %q) = %q, want %q", c.name, c.doc, got, c.want)
		}
	}
}

func TestSpliceReference(t *testing.T) {
	in := []byte("a\n" + beginMarker + "\nold\n" + endMarker + "\nb\n")
	out, err := spliceReference(in, []byte("new\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "a\n" + beginMarker + "\nnew\n" + endMarker + "\nb\n"; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
	if _, err := spliceReference([]byte("no markers"), nil); err == nil {
		t.Error("no error without markers")
	}
}
