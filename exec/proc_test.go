package exec

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestReadPIDFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string // "" with missing: no file
		missing bool
		want    int
		err     string
	}{
		{name: "plain", content: "123", want: 123},
		{name: "whitespace", content: " 123\n", want: 123},
		{name: "largest", content: "4194304", want: 4194304},
		{name: "above 65535", content: "70000", want: 70000},
		{name: "zero", content: "0", err: `"0" is not a process id`},
		{name: "negative", content: "-1", err: `"-1" is not a process id`},
		{name: "letters", content: "abc", err: `"abc" is not a process id`},
		{name: "trailing letter", content: "12a", err: `"12a" is not a process id`},
		{name: "plus sign", content: "+12", err: `"+12" is not a process id`},
		{name: "two numbers", content: "12 13", err: `"12 13" is not a process id`},
		{name: "empty", content: "", err: "empty"},
		{name: "blank", content: " \n", err: "empty"},
		{name: "too large", content: "4194305", err: `"4194305" is not a process id`},
		{name: "huge", content: "99999999999999999999", err: `"99999999999999999999" is not a process id`},
		{name: "too long", content: strings.Repeat(" ", 70) + "1", err: "71 bytes, too long"},
		{name: "missing", missing: true, err: "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".pid")
			if !tc.missing {
				if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadPIDFile(path)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Errorf("got %d, %v; want %d", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %d, want an error", got)
			}
			if want := "pid file " + path + ": "; !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %q, want %q...%q", err, want, tc.err)
			}
			if tc.missing && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("got %v, want it to wrap fs.ErrNotExist", err)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	tail := " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 4242 18 19 20"
	for _, tc := range []struct {
		name string
		stat string
		want procStat
		err  bool
	}{
		{name: "plain", stat: "77 (sleep) S 10 77" + tail, want: procStat{state: 'S', ppid: 10, pgid: 77, startTime: 4242}},
		{name: "parentheses and spaces", stat: "77 (a) b (c) Z 10 70" + tail, want: procStat{state: 'Z', ppid: 10, pgid: 70, startTime: 4242}},
		{name: "fake fields in comm", stat: "77 (x) R 1 2 3) S 10 70" + tail, want: procStat{state: 'S', ppid: 10, pgid: 70, startTime: 4242}},
		{name: "no comm", stat: "77 sleep S 10 77" + tail, err: true},
		{name: "truncated", stat: "77 (sleep) S 10 77 1 2", err: true},
		{name: "not a number", stat: "77 (sleep) S x 77" + tail, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tc.stat + "\n"))
			if tc.err {
				if err == nil {
					t.Errorf("got %+v, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestProcStatSelf(t *testing.T) {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The test binary's name has no spaces, so plain splitting works here.
	f := strings.Fields(string(raw))
	pgid, st, state, err := ProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{strconv.Itoa(pgid), strconv.FormatUint(st, 10), string(state)}; got[0] != f[4] || got[1] != f[21] || got[2] != f[2] {
		t.Errorf("got pgid, start time, state %q; want %q", got, []string{f[4], f[21], f[2]})
	}
}

// copyTestBinary copies the test binary to dir/name and returns its path.
func copyTestBinary(t *testing.T, dir, name string) string {
	t.Helper()
	src, err := os.Open(testBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(dir, name)
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestProcStatAndVerifyBinaryOddName(t *testing.T) {
	path := copyTestBinary(t, t.TempDir(), "a) b (c")
	tag, _ := subscribe(t)
	l := start(t, Spec{Path: path, Args: []string{helperArg, "sleep"}, Tag: tag})
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(l.PID) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "(a) b (c)") {
		t.Fatalf("comm is not the odd name: %s", raw)
	}
	pgid, st, state, err := ProcStat(l.PID)
	if err != nil {
		t.Fatal(err)
	}
	if pgid != l.PID || st != l.StartTime || st == 0 || !strings.ContainsRune("RSD", rune(state)) {
		t.Errorf("got pgid %d, start time %d, state %c; want %d, %d, running or sleeping", pgid, st, state, l.PID, l.StartTime)
	}
	if err := VerifyBinary(l.PID, path); err != nil {
		t.Errorf("VerifyBinary: %v", err)
	}
	// A binary replaced or removed while running is still the process's.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := VerifyBinary(l.PID, path); err != nil {
		t.Errorf("VerifyBinary of a deleted binary: %v", err)
	}
}

func TestVerifyBinary(t *testing.T) {
	tag, ch := subscribe(t)
	exe := testBinary(t)
	l := start(t, helperSpec(t, tag, "sleep"))
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	for _, binary := range []string{exe, link, "/elsewhere/" + filepath.Base(exe)} {
		if err := VerifyBinary(l.PID, binary); err != nil {
			t.Errorf("VerifyBinary(%s): %v", binary, err)
		}
	}
	err := VerifyBinary(l.PID, "/usr/bin/other")
	if err == nil {
		t.Fatal("VerifyBinary of another binary: got no error")
	}
	want := "verify process " + strconv.Itoa(l.PID) + " runs /usr/bin/other: found executable " + exe + `, argv[0] "` + exe + `"`
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}

	if err := SignalProcess(l.PID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	waitExit(t, ch)
	if err := VerifyBinary(l.PID, exe); !errors.Is(err, ErrNoProcess) {
		t.Errorf("VerifyBinary of a gone process: got %v, want ErrNoProcess", err)
	}
	if _, _, _, err := ProcStat(l.PID); !errors.Is(err, ErrNoProcess) {
		t.Errorf("ProcStat of a gone process: got %v, want ErrNoProcess", err)
	}
	if Alive(l.PID) {
		t.Errorf("Alive(%d) = true for a gone process", l.PID)
	}
}

// TestReadSmall: files below, at and above its 4 KiB buffer read whole, and
// a missing file's error wraps fs.ErrNotExist.
func TestReadSmall(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 4095, 4096, 4097, 10000} {
		want := strings.Repeat("x", n)
		p := filepath.Join(dir, strconv.Itoa(n))
		if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readSmall(p)
		if err != nil || string(got) != want {
			t.Errorf("%d bytes: got %d bytes, %v", n, len(got), err)
		}
	}
	if _, err := readSmall(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
}
