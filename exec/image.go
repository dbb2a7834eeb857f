package exec

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ReleaseImagePages drops this process's page mappings of its own
// executable's read-only segments (code and read-only data), once start-up
// is over, and returns how many bytes of mappings it released them from.
//
// Why: at start-up Go's runtime, every package's init and Patrol's
// config loader touch code and tables all over a binary of 14 MB, and the
// kernel maps 64 KB around every page touched, so nearly the whole binary
// stays mapped: about 12 of an idle Patrol's 19 MB (PSS). Most of it is
// never run again. Dropping the mappings (madvise MADV_DONTNEED) leaves the
// pages in the page cache, as clean file pages: whatever runs later faults
// its pages back in from there (a minor fault, no disk read while the
// kernel keeps them cached), and the idle process holds only what it uses.
//
// It is safe because the segments are read-only private file mappings
// that can hold no data of their own (no page of them is ever written),
// and an executable cannot be written while it runs (ETXTBSY), so the
// pages come back with the same contents. Writable segments and anything
// else are left alone.
func ReleaseImagePages() (int64, error) {
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &self); err != nil {
		return 0, fmt.Errorf("release image pages: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("release image pages: %w", err)
	}
	var released int64
	for _, m := range imageMappings(maps, self.Ino, unix.Major(self.Dev), unix.Minor(self.Dev)) {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("release image pages: madvise %#x-%#x: %w", m.start, m.end, errno)
		}
		released += int64(m.end - m.start)
	}
	return released, nil
}

// mapping is an address range of /proc/self/maps.
type mapping struct{ start, end uintptr }

// imageMappings returns the read-only private mappings ("r-xp" and "r--p")
// of the file with inode ino on device major:minor in a /proc/PID/maps
// text.
func imageMappings(maps []byte, ino uint64, major, minor uint32) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// start-end perms offset major:minor inode path
		f := bytes.Fields(sc.Bytes())
		if len(f) < 6 {
			continue
		}
		if perms := string(f[1]); perms != "r-xp" && perms != "r--p" {
			continue
		}
		if n, err := strconv.ParseUint(string(f[4]), 10, 64); err != nil || n != ino {
			continue
		}
		maj, min, ok := bytes.Cut(f[3], []byte(":"))
		a, err1 := strconv.ParseUint(string(maj), 16, 32)
		b, err2 := strconv.ParseUint(string(min), 16, 32)
		if !ok || err1 != nil || err2 != nil || uint32(a) != major || uint32(b) != minor {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, mapping{start: uintptr(start), end: uintptr(end)})
	}
	return out
}
