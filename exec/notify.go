package exec

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/patrolhq/patrol/observed"
)

// notifyMax is the largest notify datagram read whole (systemd reads at
// most a pipe buffer, 4 KiB, too); larger ones are dropped.
const notifyMax = 4096

// notifySockets are the NOTIFY_SOCKETs of running instances, by tag.
type notifySockets struct {
	mu      sync.Mutex
	byTag   map[string]*notifySocket
	handler func(observed.NotifyMessage)
	wg      sync.WaitGroup
}

// notifySocket is one instance's NOTIFY_SOCKET: a unix datagram socket in
// the abstract namespace ("@patrol/<instance id>": nothing on disk to
// clean up, no path length to exceed), with SO_PASSCRED so that every
// datagram carries the sender's pid as the kernel saw it.
type notifySocket struct {
	tag  string
	conn *net.UnixConn
	// pgid and pid are the instance's process group and leader: only
	// processes of that group (or the leader) may send. Set before its
	// reader starts.
	pgid int
	pid  int
}

// NotifyName is the NOTIFY_SOCKET value of the instance with tag.
func NotifyName(tag string) string { return "@patrol/" + tag }

// OnNotify sets the function that receives the sd_notify messages of
// instances (from a goroutine per socket; it must not block). Call it
// before the first start.
func (r *Runner) OnNotify(fn func(observed.NotifyMessage)) {
	r.notifySocks.mu.Lock()
	r.notifySocks.handler = fn
	r.notifySocks.mu.Unlock()
}

// openNotify binds the NOTIFY_SOCKET of the instance with tag; its reader
// starts once serveNotify names the instance's processes.
func (r *Runner) openNotify(tag string) (*notifySocket, error) {
	name := NotifyName(tag)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket %s: %w", name, err)
	}
	raw, err := conn.SyscallConn()
	if err == nil {
		cerr := raw.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		})
		err = errors.Join(err, cerr)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("notify socket %s: SO_PASSCRED: %w", name, err)
	}
	return &notifySocket{tag: tag, conn: conn}, nil
}

// serveNotify records s for its tag and reads it until it is closed,
// accepting datagrams only from processes of process group pgid or from
// pid.
func (r *Runner) serveNotify(s *notifySocket, pgid, pid int) {
	s.pgid, s.pid = pgid, pid
	ns := &r.notifySocks
	ns.mu.Lock()
	if ns.byTag == nil {
		ns.byTag = map[string]*notifySocket{}
	}
	if old := ns.byTag[s.tag]; old != nil {
		old.conn.Close()
	}
	ns.byTag[s.tag] = s
	handler := ns.handler
	ns.mu.Unlock()
	ns.wg.Go(func() { r.readNotify(s, handler) })
}

// AdoptNotify binds the NOTIFY_SOCKET of an instance that outlived a
// Patrol (its socket died with that Patrol; the name is the same), so
// that its READY=1 and WATCHDOG=1 reach this one.
func (r *Runner) AdoptNotify(tag string, pgid, pid int) error {
	s, err := r.openNotify(tag)
	if err != nil {
		return err
	}
	r.serveNotify(s, pgid, pid)
	return nil
}

// closeNotify closes the NOTIFY_SOCKET of tag, if it has one.
func (r *Runner) closeNotify(tag string) {
	ns := &r.notifySocks
	ns.mu.Lock()
	s := ns.byTag[tag]
	delete(ns.byTag, tag)
	ns.mu.Unlock()
	if s != nil {
		s.conn.Close()
	}
}

// closeAllNotify closes every NOTIFY_SOCKET and waits for the readers.
func (r *Runner) closeAllNotify() {
	ns := &r.notifySocks
	ns.mu.Lock()
	for tag, s := range ns.byTag {
		s.conn.Close()
		delete(ns.byTag, tag)
	}
	ns.mu.Unlock()
	ns.wg.Wait()
}

// readNotify reads datagrams until the socket is closed.
func (r *Runner) readNotify(s *notifySocket, handler func(observed.NotifyMessage)) {
	buf := make([]byte, notifyMax+1)
	oob := make([]byte, 512)
	for {
		n, oobn, flags, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.log.Debug("notify socket read", "instance", s.tag, "err", err)
			}
			return
		}
		pid, ok := credentials(oob[:oobn])
		switch {
		case !ok:
			r.log.Warn("notify datagram without sender credentials ignored", "instance", s.tag)
			continue
		case n > notifyMax || flags&unix.MSG_TRUNC != 0 || flags&unix.MSG_CTRUNC != 0:
			r.log.Warn("notify datagram too large, ignored", "instance", s.tag, "pid", pid)
			continue
		case !s.owns(pid):
			r.log.Warn("notify datagram from a process that is not the instance's, ignored", "instance", s.tag, "pid", pid)
			continue
		}
		m, err := ParseNotify(buf[:n])
		if err != nil {
			r.log.Warn("notify datagram ignored", "instance", s.tag, "pid", pid, "err", err)
			continue
		}
		m.Tag, m.PID, m.At = s.tag, pid, time.Now()
		if handler != nil {
			handler(m)
		}
	}
}

// owns reports whether pid may speak for the instance: its leader, or a
// live (or not yet reaped) member of its process group.
func (s *notifySocket) owns(pid int) bool {
	if pid <= 0 {
		return false
	}
	if pid == s.pid {
		return true
	}
	st, err := readProcStat(pid)
	return err == nil && s.pgid > 0 && st.pgid == s.pgid
}

// credentials returns the sender pid of a datagram's SCM_CREDENTIALS and
// closes any descriptors it was sent (FDSTORE=1 is not supported: a
// descriptor kept would leak).
func credentials(oob []byte) (int, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	pid, ok := 0, false
	for i := range msgs {
		m := &msgs[i]
		if fds, err := unix.ParseUnixRights(m); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			continue
		}
		if c, err := unix.ParseUnixCredentials(m); err == nil {
			pid, ok = int(c.Pid), true
		}
	}
	return pid, ok
}

// ParseNotify parses an sd_notify datagram: newline-separated
// VARIABLE=VALUE assignments. READY=1, STOPPING=1, RELOADING=1,
// WATCHDOG=1, WATCHDOG=trigger, STATUS=, MAINPID= and WATCHDOG_USEC= are
// understood; other variables (ERRNO=, EXTEND_TIMEOUT_USEC=, FDSTORE=,
// ...) are ignored, as is an empty line. A datagram with a line that is
// not an assignment, a bad MAINPID= or WATCHDOG_USEC=, or that sets
// nothing at all, is an error.
func ParseNotify(b []byte) (observed.NotifyMessage, error) {
	var m observed.NotifyMessage
	if len(b) == 0 {
		return m, errors.New("empty datagram")
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return observed.NotifyMessage{}, fmt.Errorf("not an assignment: %q", clipText(line, 40))
		}
		switch k {
		case "READY":
			m.Ready = v == "1"
		case "STOPPING":
			m.Stopping = v == "1"
		case "RELOADING":
			m.Reloading = v == "1"
		case "WATCHDOG":
			m.Watchdog = v == "1"
			m.WatchdogTrigger = v == "trigger"
		case "STATUS":
			m.Status, m.HasStatus = clipText(strings.ToValidUTF8(v, "?"), 512), true
		case "MAINPID":
			pid, err := strconv.Atoi(v)
			if err != nil || pid <= 0 {
				return observed.NotifyMessage{}, fmt.Errorf("MAINPID=%s: not a pid", clipText(v, 20))
			}
			m.MainPID = pid
		case "WATCHDOG_USEC":
			us, err := strconv.ParseInt(v, 10, 64)
			if err != nil || us <= 0 || us > int64(24*time.Hour/time.Microsecond) {
				return observed.NotifyMessage{}, fmt.Errorf("WATCHDOG_USEC=%s: not a number of microseconds up to a day", clipText(v, 20))
			}
			m.WatchdogUSec = us
		}
	}
	return m, nil
}
