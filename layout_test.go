package patrol_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/patrolhq/patrol"

// allowedImports is the import direction of DESIGN §1: for each package
// directory, the module's packages it may import. schema is the root of the
// graph; desired builds on it, observed on both (an instance remembers the
// config it runs); reconcile and exec build on those; api
// knows only schema and reaches the loop through an interface; the root
// package wires everything; cmd/patrol is a thin CLI over the root package.
var allowedImports = map[string][]string{
	"schema":     {},
	"desired":    {"schema"},
	"observed":   {"schema", "desired"},
	"reconcile":  {"schema", "desired", "observed"},
	"exec":       {"schema", "desired", "observed"},
	"api":        {"schema"},
	".":          {"schema", "desired", "observed", "reconcile", "exec", "api", "fleet"},
	"cmd/patrol": {".", "schema"},
	// The benchmark command drives a real `patrol run` from outside and
	// carries its own baseline supervisor: it is not Patrol, so it may start
	// processes itself.
	"cmd/patrol-bench": {"schema", "internal/proctool"},
	// The chaos suite kills a real `patrol run` and checks what it left.
	"cmd/patrol-chaos": {"schema", "internal/proctool"},
	// /proc readers and clean-up for those two commands.
	"internal/proctool":  {},
	"internal/schemagen": {"schema", "desired"},
	// Test support: helper commands run by test binaries; only tests import it.
	"internal/testhelper": {},
	// Browser tests of the web GUI against a real Patrol (tests only).
	"internal/browsertest": {".", "schema"},
	// A real etcd cluster for the fleet's tests (tests only).
	"internal/etcdtest": {},
	// The fleet's etcd wiring: a source of the desired state.
	"fleet": {"schema", "desired"},
}

// processImports may only be imported by exec, the one package that starts
// and signals processes (demo programs under examples/ are not Patrol).
var processImports = []string{"os/exec", "syscall", "golang.org/x/sys/unix"}

// processDirs may import processImports: exec, and the tools and test
// support that are not Patrol.
var processDirs = map[string]bool{
	"exec": true, "internal/testhelper": true, "internal/proctool": true,
	"cmd/patrol-bench": true, "cmd/patrol-chaos": true, "internal/etcdtest": true,
}

func TestImportDirection(t *testing.T) {
	fset := token.NewFileSet()
	seen := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		isTest := strings.HasSuffix(path, "_test.go")
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		example := dir == "examples" || strings.HasPrefix(dir, "examples/")
		allowed, known := allowedImports[dir]
		if !known && !example {
			t.Errorf("%s: package directory %q has no import rule; add it to allowedImports", path, dir)
		}
		seen[dir] = true
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if slices.Contains(processImports, p) && !processDirs[dir] && !example && !isTest {
				t.Errorf("%s imports %s: only package exec may", path, p)
			}
			rel, ok := strings.CutPrefix(p, module)
			if !ok {
				continue
			}
			rel = strings.TrimPrefix(rel, "/")
			if rel == "" {
				rel = "."
			}
			if (rel == "internal/testhelper" || rel == "internal/etcdtest") && !isTest {
				t.Errorf("%s imports %s: only tests may", path, p)
			}
			if rel == dir || example {
				continue
			}
			if isTest && (rel == "internal/testhelper" || rel == "internal/etcdtest") {
				continue
			}
			if !slices.Contains(allowed, rel) {
				t.Errorf("%s imports %s: %s may import only %v", path, p, dir, allowed)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir := range allowedImports {
		if !seen[dir] {
			t.Errorf("package directory %q in allowedImports has no Go files", dir)
		}
	}
}

// TestLayout checks the required top-level layout of DESIGN §1.
func TestLayout(t *testing.T) {
	for _, p := range []string{
		"patrol.go", "go.mod", "README.md", "Makefile", "LICENSE", ".ci/run",
		"cmd/patrol", "reconcile", "desired", "observed", "exec", "api", "schema", "examples",
		"schema/config.schema.json", "examples/config.json", "examples/demoapp",
	} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("required path missing: %v", err)
		}
	}
}

// TestPackageDocs checks that every package has a package doc comment
// ("Package name ..." or, for commands, "Command name ...").
func TestPackageDocs(t *testing.T) {
	fset := token.NewFileSet()
	docs := map[string]bool{}
	names := map[string]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		names[dir] = f.Name.Name
		if f.Doc == nil {
			return nil
		}
		text := f.Doc.Text()
		if strings.HasPrefix(text, "Package "+f.Name.Name+" ") || (f.Name.Name == "main" && strings.HasPrefix(text, "Command ")) {
			docs[dir] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir, name := range names {
		if !docs[dir] {
			t.Errorf("package %s (%s) has no package doc comment", name, dir)
		}
	}
}
