package exec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxPID is the largest process id Linux can hand out (the maximum of
// /proc/sys/kernel/pid_max on 64-bit systems).
const maxPID = 4194304

// maxPIDFile is the most ReadPIDFile reads of a pid file.
const maxPIDFile = 64

// ReadPIDFile reads a pid file: surrounding whitespace trimmed, a positive
// decimal integer no larger than 4194304 (the largest pid_max of Linux).
// Anything else is an error that says what was found; a missing file's
// error wraps fs.ErrNotExist. At most 64 bytes are read; a longer file is an
// error.
func ReadPIDFile(path string) (int, error) {
	pid, err := readPIDFile(path)
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", path, err)
	}
	return pid, nil
}

// readPIDFile is ReadPIDFile without the error subject.
func readPIDFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, pathErr(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPIDFile))
	if err != nil {
		return 0, pathErr(err)
	}
	if len(b) == maxPIDFile {
		if fi, err := f.Stat(); err == nil && fi.Size() > maxPIDFile {
			return 0, fmt.Errorf("%d bytes, too long for a process id", fi.Size())
		}
	}
	s := string(bytes.TrimSpace(b))
	if s == "" {
		return 0, errors.New("empty, no process id")
	}
	return parsePID(s)
}

// parsePID parses a process id written in decimal digits.
func parsePID(s string) (int, error) {
	bad := fmt.Errorf("%q is not a process id (want an integer from 1 to %d)", s, maxPID)
	if len(s) > len(strconv.Itoa(maxPID)) {
		return 0, bad
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, bad
		}
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid < 1 || pid > maxPID {
		return 0, bad
	}
	return pid, nil
}

// procStat holds the fields of /proc/PID/stat that Patrol uses.
type procStat struct {
	state     byte
	ppid      int
	pgid      int
	startTime uint64
}

// ProcStat returns fields of /proc/PID/stat: the process group (field 5),
// the start time in clock ticks since boot (field 22; with the pid it
// identifies a process) and the state (field 3, such as 'S', 'R' or 'Z').
// The error wraps ErrNoProcess when the process does not exist.
func ProcStat(pid int) (pgid int, startTime uint64, state byte, err error) {
	st, err := readProcStat(pid)
	if err != nil {
		return 0, 0, 0, err
	}
	return st.pgid, st.startTime, st.state, nil
}

// readProcStat reads and parses /proc/PID/stat.
func readProcStat(pid int) (procStat, error) {
	if pid <= 0 {
		return procStat{}, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	}
	b, err := readSmall("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return procStat{}, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
		}
		return procStat{}, fmt.Errorf("process %d: %w", pid, err)
	}
	st, err := parseProcStat(b)
	if err != nil {
		return procStat{}, fmt.Errorf("process %d: /proc/%d/stat: %w", pid, pid, err)
	}
	return st, nil
}

// readSmall reads a small /proc file with three system calls, where
// os.ReadFile takes eight (it registers the file with the poller and
// stats it); ProcStat runs after every fork. A file of 4 KiB or more is
// read by os.ReadFile.
func readSmall(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var buf [4096]byte
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			return append([]byte(nil), buf[:n]...), nil
		}
		n += m
	}
	return os.ReadFile(path)
}

// parseProcStat parses the content of /proc/PID/stat. The command name
// (field 2) is in parentheses and may itself contain spaces and
// parentheses, so the fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("no command name")
	}
	// fields[0] is field 3 (state), fields[k] is field k+3.
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 || len(fields[0]) != 1 {
		return procStat{}, fmt.Errorf("malformed: %q", b)
	}
	ppid, err1 := strconv.Atoi(fields[1])
	pgid, err2 := strconv.Atoi(fields[2])
	start, err3 := strconv.ParseUint(fields[19], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return procStat{}, fmt.Errorf("malformed: %w", err)
	}
	return procStat{state: fields[0][0], ppid: ppid, pgid: pgid, startTime: start}, nil
}

// VerifyBinary checks that process pid runs binary: /proc/PID/exe resolves
// to binary (after resolving binary's symbolic links; a " (deleted)" suffix
// of a replaced binary is ignored), or the process's argv[0] equals binary
// or has the same base name. The error says what was found; it wraps
// ErrNoProcess when the process does not exist.
func VerifyBinary(pid int, binary string) error {
	if err := verifyBinary(pid, binary); err != nil {
		return fmt.Errorf("verify process %d runs %s: %w", pid, binary, err)
	}
	return nil
}

// verifyBinary is VerifyBinary without the error subject.
func verifyBinary(pid int, binary string) error {
	if pid <= 0 {
		return ErrNoProcess
	}
	want := filepath.Clean(binary)
	if resolved, err := filepath.EvalSymlinks(want); err == nil {
		want = resolved
	}
	dir := "/proc/" + strconv.Itoa(pid)
	exe, exeErr := os.Readlink(dir + "/exe")
	exe = strings.TrimSuffix(exe, " (deleted)")
	if exeErr == nil && (exe == want || exe == filepath.Clean(binary)) {
		return nil
	}
	cmdline, err := os.ReadFile(dir + "/cmdline")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return ErrNoProcess
		}
		return err
	}
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	if argv0 != "" && (argv0 == binary || filepath.Base(argv0) == filepath.Base(binary)) {
		return nil
	}
	found := "executable unknown"
	if exeErr == nil {
		found = "executable " + exe
	}
	return fmt.Errorf("found %s, argv[0] %q", found, argv0)
}
