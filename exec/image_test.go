package exec

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/patrolhq/patrol/internal/testhelper"
)

func TestImageMappings(t *testing.T) {
	maps := []byte(`00400000-00a54000 r-xp 00000000 fe:00 9979653                            /work/bin/patrol
00a54000-0115a000 r--p 00654000 fe:00 9979653                            /work/bin/patrol
0115a000-011d5000 rw-p 00d5a000 fe:00 9979653                            /work/bin/patrol
011d5000-0321b000 rw-p 00000000 00:00 0
7f6da0e28000-7f6da0e4e000 r--p 00000000 fe:00 1234                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f6da0e4e000-7f6da0fa4000 r-xp 00026000 fe:00 1234                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f6da1000000-7f6da1001000 r-xp 00000000 fe:01 9979653                    /other/device/same/inode
bad line
`)
	got := imageMappings(maps, 9979653, 0xfe, 0)
	want := []mapping{{0x400000, 0xa54000}, {0xa54000, 0x115a000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %x, want %x", got, want)
	}
}

// exeRSS sums the resident kilobytes of this process's read-only mappings
// of its executable.
func exeRSS(t *testing.T) int {
	t.Helper()
	resident, _, err := testhelper.ImageResident(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return resident
}

// TestReleaseImagePages: the read-only mappings of the test binary shrink
// to what runs afterwards, and the code keeps working.
func TestReleaseImagePages(t *testing.T) {
	before := exeRSS(t)
	n, err := ReleaseImagePages()
	if err != nil {
		t.Fatal(err)
	}
	after := exeRSS(t)
	t.Logf("released mappings of %d KiB; resident %d -> %d KiB", n>>10, before, after)
	if n == 0 || after >= before {
		t.Errorf("released %d bytes; resident %d -> %d KiB", n, before, after)
	}
	// Code and read-only data come back as used.
	b, err := json.Marshal(map[string]any{"still": []int{1, 2, 3}})
	if err != nil || string(b) != `{"still":[1,2,3]}` {
		t.Errorf("after release: %s, %v", b, err)
	}
}
