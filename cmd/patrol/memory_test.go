package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/testhelper"
)

// TestRunSettlesMemory: `patrol run` drops its start-up pages of the
// executable once the first pass has started every app (SettleMemory):
// the read-only mappings, nearly all resident after start-up, shrink to
// what an idle Patrol runs; and it keeps supervising.
func TestRunSettlesMemory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	apps := make([]string, 10)
	for i := range apps {
		apps[i] = fmt.Sprintf(`"a%d": %s`, i, helperApp("", "sleep"))
	}
	os.WriteFile(path, []byte(`{"tick-every": 60, "apps": {`+strings.Join(apps, ",")+`}}`), 0o644)
	p := startDaemon(t, path)
	pid := p.cmd.Process.Pid
	var resident, size int
	poll(t, "the executable's start-up pages released", 15*time.Second, func() bool {
		var err error
		if resident, size, err = testhelper.ImageResident(pid); err != nil {
			t.Fatal(err)
		}
		return size > 0 && resident < size*4/10
	})
	t.Logf("executable's read-only mappings: %d of %d KiB resident after settling", resident, size)
	if n := len(p.status(t).Apps); n != 10 {
		t.Errorf("status after settling: %d apps", n)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
