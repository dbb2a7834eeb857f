package exec

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// noteHub hands notify messages to the test that owns their tag.
type noteHub struct {
	mu    sync.Mutex
	chans map[string]chan observed.NotifyMessage
}

var notes = &noteHub{chans: map[string]chan observed.NotifyMessage{}}

func (h *noteHub) deliver(m observed.NotifyMessage) {
	h.mu.Lock()
	ch := h.chans[m.Tag]
	h.mu.Unlock()
	if ch != nil {
		ch <- m
	}
}

func (h *noteHub) subscribe(t *testing.T, tag string) chan observed.NotifyMessage {
	ch := make(chan observed.NotifyMessage, 64)
	h.mu.Lock()
	h.chans[tag] = ch
	h.mu.Unlock()
	t.Cleanup(func() {
		h.mu.Lock()
		delete(h.chans, tag)
		h.mu.Unlock()
	})
	return ch
}

func newProber(t *testing.T, workers int) (*Prober, chan observed.ProbeResult) {
	ch := make(chan observed.ProbeResult, 1024)
	pr := NewProber(testRunner, workers, func(r observed.ProbeResult) { ch <- r })
	t.Cleanup(pr.Close)
	return pr, ch
}

func next(t *testing.T, ch chan observed.ProbeResult) observed.ProbeResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		t.Fatal("no probe result")
	}
	return observed.ProbeResult{}
}

func tcpProbe(addr string, period time.Duration) *desired.Probe {
	return &desired.Probe{Kind: desired.ProbeReadiness, TCPAddr: addr, Period: period, Timeout: time.Second,
		SuccessThreshold: 1, FailureThreshold: 1}
}

func TestProberTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	pr, ch := newProber(t, 0)
	pr.Set("a", []*desired.Probe{tcpProbe(ln.Addr().String(), 20*time.Millisecond)}, time.Now())
	if r := next(t, ch); !r.OK || r.Tag != "a" || r.Kind != desired.ProbeReadiness || !strings.HasPrefix(r.Message, "connected") {
		t.Fatalf("got %+v, want a success", r)
	}
	ln.Close()
	for {
		r := next(t, ch)
		if !r.OK {
			if !strings.Contains(r.Message, "refused") {
				t.Errorf("failure message %q, want connection refused", r.Message)
			}
			break
		}
	}
	pr.Set("a", nil, time.Now())
	drainFor(ch, 60*time.Millisecond)
	select {
	case r := <-ch:
		t.Fatalf("a result after the probes were stopped: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
	if n := pr.Running(); n != 0 {
		t.Errorf("%d instances still probed", n)
	}
}

// drainFor drops results for d (the ones in flight when probes changed).
func drainFor(ch chan observed.ProbeResult, d time.Duration) {
	end := time.After(d)
	for {
		select {
		case <-ch:
		case <-end:
			return
		}
	}
}

func TestProberHTTP(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 2 {
			http.Error(w, "database gone\nmore", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	pr, ch := newProber(t, 0)
	p := &desired.Probe{Kind: desired.ProbeLiveness, URL: srv.URL + "/health", StatusLo: 200, StatusHi: 299,
		Period: 10 * time.Millisecond, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 1}
	pr.Set("h", []*desired.Probe{p}, time.Now())
	for i, want := range []string{"HTTP 200", "HTTP 200", "HTTP 500: database gone"} {
		r := next(t, ch)
		if r.Message != want || r.OK != (i < 2) {
			t.Errorf("probe %d: got ok=%v %q, want %q", i, r.OK, r.Message, want)
		}
	}
}

// TestProberTimeoutKillsExec: an exec probe that hangs is a failure at its
// timeout, and its process is killed.
func TestProberTimeoutKillsExec(t *testing.T) {
	dir := t.TempDir()
	pidFile := dir + "/pid"
	p := &desired.Probe{Kind: desired.ProbeLiveness, Command: []string{testBinary(t), helperArg, "write-pid-sleep", pidFile},
		Dir: dir, Period: time.Hour, Timeout: 300 * time.Millisecond, SuccessThreshold: 1, FailureThreshold: 1}
	pr, ch := newProber(t, 0)
	start := time.Now()
	pr.Set("x", []*desired.Probe{p}, start)
	r := next(t, ch)
	if r.OK || !strings.Contains(r.Message, "timed out") {
		t.Fatalf("got %+v, want a timeout", r)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the timeout took %v", took)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	if Alive(pid) {
		t.Errorf("the hung probe %d is still alive", pid)
	}
}

// TestProberBounded: no more probes run at once than the workers.
func TestProberBounded(t *testing.T) {
	var cur, peak atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := cur.Add(1)
		for {
			p := peak.Load()
			if c <= p || peak.CompareAndSwap(p, c) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		cur.Add(-1)
	}))
	defer srv.Close()
	pr, ch := newProber(t, 3)
	now := time.Now()
	for i := range 12 {
		pr.Set(fmt.Sprint("i", i), []*desired.Probe{{Kind: desired.ProbeReadiness, URL: srv.URL, StatusLo: 200, StatusHi: 299,
			Period: time.Hour, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 1}}, now)
	}
	for range 12 {
		if r := next(t, ch); !r.OK {
			t.Fatalf("probe failed: %+v", r)
		}
	}
	if p := peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak concurrency %d, want at most 3 (and the pool used)", p)
	}
}

// TestNotifySocket: an app with ready "notify" gets NOTIFY_SOCKET (and
// WATCHDOG_USEC); its datagrams arrive with its pid; a datagram from a
// process that is not the app's is dropped.
func TestNotifySocket(t *testing.T) {
	a := helperApp(t, "notify", "STATUS=warming up", "READY=1\nSTATUS=serving\nMAINPID=1\nERRNO=0", "WATCHDOG=1")
	a.Ready, a.Watchdog = schema.ReadyNotify, 1500*time.Millisecond
	tag, _ := subscribe(t)
	ch := notes.subscribe(t, tag)
	l, err := testRunner.StartApp(a, AppContext{}, tag, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	killGroupAtCleanup(t, l.PGID)
	env := procEnv(t, l.PID)
	if env["NOTIFY_SOCKET"] != NotifyName(tag) || env["WATCHDOG_USEC"] != "1500000" {
		t.Errorf("NOTIFY_SOCKET=%q WATCHDOG_USEC=%q", env["NOTIFY_SOCKET"], env["WATCHDOG_USEC"])
	}
	want := []observed.NotifyMessage{
		{Status: "warming up", HasStatus: true},
		{Ready: true, Status: "serving", HasStatus: true, MainPID: 1},
		{Watchdog: true},
	}
	for i, w := range want {
		select {
		case m := <-ch:
			if m.PID != l.PID || m.Tag != tag {
				t.Errorf("message %d from pid %d tag %s, want %d %s", i, m.PID, m.Tag, l.PID, tag)
			}
			m.PID, m.Tag, m.At = 0, "", time.Time{}
			if m != w {
				t.Errorf("message %d: got %+v, want %+v", i, m, w)
			}
		case <-time.After(timeout):
			t.Fatalf("message %d did not arrive", i)
		}
	}
	// A foreign process (this test) writes to the socket: dropped.
	c, err := net.Dial("unixgram", NotifyName(tag))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("READY=1")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		t.Fatalf("a foreign datagram was delivered: %+v", m)
	case <-time.After(200 * time.Millisecond):
	}
	// Forgetting the instance closes its socket: its name is free.
	testRunner.Forget(tag)
	if c2, err := net.Dial("unixgram", NotifyName(tag)); err == nil {
		c2.Close()
		t.Error("the socket is still bound after Forget")
	}
}

// procEnv reads a process's environment.
func procEnv(t *testing.T, pid int) map[string]string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for kv := range strings.SplitSeq(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

func TestParseNotify(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want observed.NotifyMessage
		err  string
	}{
		{"READY=1", observed.NotifyMessage{Ready: true}, ""},
		{"READY=1\n", observed.NotifyMessage{Ready: true}, ""},
		{"STOPPING=1\nSTATUS=bye", observed.NotifyMessage{Stopping: true, Status: "bye", HasStatus: true}, ""},
		{"RELOADING=1\nMONOTONIC_USEC=12", observed.NotifyMessage{Reloading: true}, ""},
		{"WATCHDOG=trigger", observed.NotifyMessage{WatchdogTrigger: true}, ""},
		{"WATCHDOG_USEC=2000000", observed.NotifyMessage{WatchdogUSec: 2000000}, ""},
		{"STATUS=" + strings.Repeat("x", 600), observed.NotifyMessage{Status: strings.Repeat("x", 512) + "...", HasStatus: true}, ""},
		{"STATUS=a\xffb", observed.NotifyMessage{Status: "a?b", HasStatus: true}, ""},
		{"", observed.NotifyMessage{}, "empty datagram"},
		{"READY", observed.NotifyMessage{}, `not an assignment: "READY"`},
		{"=1", observed.NotifyMessage{}, `not an assignment: "=1"`},
		{"MAINPID=-4", observed.NotifyMessage{}, "MAINPID=-4: not a pid"},
		{"WATCHDOG_USEC=0", observed.NotifyMessage{}, "WATCHDOG_USEC=0: not a number of microseconds up to a day"},
	} {
		got, err := ParseNotify([]byte(tc.in))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseNotify: no datagram makes the parser panic, and what it
// accepts is within bounds.
func FuzzParseNotify(f *testing.F) {
	for _, s := range []string{"READY=1", "STATUS=x\nWATCHDOG=1", "MAINPID=12", "WATCHDOG_USEC=5", "\n\n", "=", "A=B=C"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseNotify(b)
		if err != nil {
			return
		}
		if len(m.Status) > 515 || m.MainPID < 0 || m.WatchdogUSec < 0 {
			t.Errorf("out of bounds: %+v", m)
		}
	})
}

// TestLineWatcher: a line matching the pattern, written in pieces and
// after other lines, is reported once; a stopped watch reports nothing.
func TestLineWatcher(t *testing.T) {
	ch := make(chan observed.NotifyMessage, 8)
	w := NewLineWatcher(func(m observed.NotifyMessage) { ch <- m })
	defer w.Close()
	dir := t.TempDir()
	out, errPath := dir+"/out.log", dir+"/err.log"
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("starting\nlistening on :80")
	w.Watch("a", []string{out, errPath}, regexp.MustCompile(`^listening on :(\d+)$`))
	w.Watch("b", []string{out}, regexp.MustCompile(`listening`))
	w.Stop("b")
	select {
	case m := <-ch:
		t.Fatalf("reported before the line was complete: %+v", m)
	case <-time.After(150 * time.Millisecond):
	}
	f.WriteString("80\r\nlistening on :9\n")
	select {
	case m := <-ch:
		if m.Tag != "a" || m.LogLine != "listening on :8080" {
			t.Errorf("got %+v", m)
		}
	case <-time.After(timeout):
		t.Fatal("the line was not reported")
	}
	select {
	case m := <-ch:
		t.Fatalf("a second report: %+v", m)
	case <-time.After(150 * time.Millisecond):
	}
}

// TestProberHTTPRedirect: a redirect on the same host is followed; one to
// another host is not (the 302 is the answer).
func TestProberHTTPRedirect(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the probe followed a redirect to another host")
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/here":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/away":
			http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+"/x", http.StatusFound)
		default:
			fmt.Fprintln(w, "ok")
		}
	}))
	defer srv.Close()
	pr, ch := newProber(t, 0)
	for path, want := range map[string]string{"/here": "HTTP 200", "/away": "HTTP 302"} {
		pr.Set(path, []*desired.Probe{{Kind: desired.ProbeLiveness, URL: srv.URL + path, StatusLo: 200, StatusHi: 399,
			Period: time.Hour, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 1}}, time.Now())
		if r := next(t, ch); !r.OK || r.Message != want {
			t.Errorf("%s: got %+v, want %s", path, r, want)
		}
	}
}
