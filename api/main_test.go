package api

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/testhelper"
)

// TestMain checks that the tests leave no goroutine or socket behind. The
// check is skipped while fuzzing, whose workers keep their own goroutines.
func TestMain(m *testing.M) {
	time.Local = time.UTC // the GUI shows local times: the golden files are in UTC
	fds, goroutines := testhelper.CountFDs(), runtime.NumGoroutine()
	code := m.Run()
	if code == 0 && !fuzzing() {
		for _, p := range testhelper.LeakCheck(fds, goroutines) {
			fmt.Fprintln(os.Stderr, "leak check:", p)
			code = 1
		}
	}
	os.Exit(code)
}

func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}
