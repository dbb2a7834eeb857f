package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// imageResident returns how many KiB of pid's read-only mappings of its
// executable are resident, and how large they are.
func imageResident(t *testing.T, pid int) (resident, size int) {
	t.Helper()
	exe, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	ino := strconv.FormatUint(exe.Sys().(*syscall.Stat_t).Ino, 10)
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = fields[4] == ino && (fields[1] == "r-xp" || fields[1] == "r--p")
			continue
		}
		if !in || len(fields) < 2 {
			continue
		}
		n, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "Size:":
			size += n
		case "Rss:":
			resident += n
		}
	}
	return resident, size
}

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
		resident, size = imageResident(t, pid)
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
