package exec

import (
	"encoding/binary"
	"errors"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The si_code values of SIGCHLD (asm-generic/siginfo.h); x/sys/unix does not
// define them.
const (
	cldExited = 1 // the child called exit
	cldKilled = 2 // the child was killed by a signal
	cldDumped = 3 // the child was killed by a signal and dumped core
)

// childInfo is what waitid reports about a child.
type childInfo struct {
	pid    int // 0 when no child was waitable
	code   int32
	status int32
}

// exit returns the exit code and signal of a child's exit: death by signal N
// is code 128+N.
func (c childInfo) exit() (code, sig int) {
	switch c.code {
	case cldKilled, cldDumped:
		return 128 + int(c.status), int(c.status)
	default:
		return int(c.status), 0
	}
}

// sigchldFields is the offset of the SIGCHLD fields (si_pid, si_uid,
// si_status) in siginfo_t: after three ints, aligned to a pointer.
const sigchldFields = (12 + unsafe.Sizeof(uintptr(0)) - 1) &^ (unsafe.Sizeof(uintptr(0)) - 1)

// childOf decodes the SIGCHLD fields of info, which x/sys/unix leaves as
// padding.
func childOf(info *unix.Siginfo) childInfo {
	b := (*[unsafe.Sizeof(unix.Siginfo{})]byte)(unsafe.Pointer(info))[sigchldFields:]
	return childInfo{
		pid:    int(int32(binary.NativeEndian.Uint32(b[0:]))),
		code:   info.Code,
		status: int32(binary.NativeEndian.Uint32(b[8:])),
	}
}

// waitid is waitid(2), retried on EINTR.
func waitid(idType, id, options int) (childInfo, error) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(idType, id, &info, options, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return childInfo{}, err
		}
		return childOf(&info), nil
	}
}

// exitedChild returns the pid of an exited child without reaping it; 0 if
// no child has exited. The error wraps ECHILD when there is no child.
func exitedChild() (int, error) {
	c, err := waitid(unix.P_ALL, 0, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT)
	return c.pid, err
}

// wait4 reaps the exited child pid, retrying on EINTR.
func wait4(pid int, ws *syscall.WaitStatus) (int, error) {
	for {
		got, err := syscall.Wait4(pid, ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		return got, err
	}
}

// waitStatusExit returns the exit code and signal of a wait status: death by
// signal N is code 128+N.
func waitStatusExit(ws syscall.WaitStatus) (code, sig int) {
	if ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return ws.ExitStatus(), 0
}

// waitPidfd is waitid(P_PIDFD) on the process of pidfd. It fails with ECHILD
// when the process is not a child of Patrol (or was already reaped).
func waitPidfd(pidfd *os.File, options int) (childInfo, error) {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return childInfo{}, err
	}
	var c childInfo
	var werr error
	// Control, unlike Fd, leaves the descriptor non-blocking and registered
	// with the poller.
	err = rc.Control(func(fd uintptr) {
		c, werr = waitid(unix.P_PIDFD, int(fd), options)
	})
	return c, errors.Join(err, werr)
}

// isExitedChild reports whether the process of pidfd is an exited child of
// Patrol that was not reaped yet.
func isExitedChild(pidfd *os.File) bool {
	c, err := waitPidfd(pidfd, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT)
	return err == nil && c.pid != 0
}

// pidfdReadable reports whether the process of pidfd has exited.
func pidfdReadable(pidfd *os.File) bool {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return false
	}
	readable := false
	if err := rc.Control(func(fd uintptr) { readable = pollReadable(int(fd)) }); err != nil {
		return false
	}
	return readable
}

// pollReadable reports, without waiting, whether fd is readable. A pidfd is
// readable once its process exited, and hangs up once it was reaped.
func pollReadable(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0
	}
}
