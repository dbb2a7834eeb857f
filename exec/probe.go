package exec

import (
	"container/heap"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
)

// DefaultProbeWorkers bounds how many probes run at once.
const DefaultProbeWorkers = 64

// probeSlack is how early a probe may run to share a wakeup with others.
const probeSlack = 10 * time.Millisecond

// Prober runs apps' probes (exec, http, tcp) on their schedule, off the
// loop goroutine: one scheduler goroutine keeps every registered probe in
// a heap by due time and hands due ones to at most Workers goroutines at
// once. A probe never overlaps itself: the next run of a probe is due a
// period after its last one started, or at once if that one took longer.
// A probe that does not answer within its timeout is a failure (an exec
// probe's process group is killed). Each result goes to report.
type Prober struct {
	runner *Runner
	report func(observed.ProbeResult)
	slots  chan struct{} // one per worker
	jobs   chan *probeJob
	client *http.Client

	mu     sync.Mutex
	byTag  map[string][]*probeJob
	due    probeHeap
	wake   chan struct{}
	closed bool
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// probeJob is one registered probe of one instance.
type probeJob struct {
	tag     string
	p       *desired.Probe
	next    time.Time
	index   int // in the heap, -1 when not in it
	running bool
	removed bool
	// spread is set once the probe's schedule was given its phase.
	spread bool
}

// NewProber returns a Prober whose exec probes run through runner, with at
// most workers probes at once (DefaultProbeWorkers if 0). Close stops it.
func NewProber(runner *Runner, workers int, report func(observed.ProbeResult)) *Prober {
	if workers <= 0 {
		workers = DefaultProbeWorkers
	}
	pr := &Prober{
		runner: runner,
		report: report,
		slots:  make(chan struct{}, workers),
		jobs:   make(chan *probeJob),
		byTag:  map[string][]*probeJob{},
		wake:   make(chan struct{}, 1),
	}
	pr.client = &http.Client{
		// A redirect is followed on the same host only (as Kubernetes
		// does); one elsewhere is the answer (a 3xx, a success by default):
		// a probe never sends requests away from the app.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != via[0].URL.Host || len(via) >= 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
		Transport: &http.Transport{
			// A probe asks the app afresh each time, on a connection of its
			// own; the app is local, its certificate is not checked.
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a local app's self-signed certificate
			Proxy:             nil,
		},
	}
	pr.ctx, pr.cancel = context.WithCancel(context.Background())
	pr.wg.Go(pr.schedule)
	return pr
}

// Set replaces the probes run for tag (an instance id) with probes, each
// first due its initial delay from now; no probes stops them all. Results
// of a replaced probe still running are not reported.
func (pr *Prober) Set(tag string, probes []*desired.Probe, now time.Time) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.closed {
		return
	}
	for _, j := range pr.byTag[tag] {
		pr.drop(j)
	}
	delete(pr.byTag, tag)
	if len(probes) == 0 {
		return
	}
	jobs := make([]*probeJob, len(probes))
	for i, p := range probes {
		jobs[i] = &probeJob{tag: tag, p: p, next: now.Add(p.InitialDelay), index: -1}
		heap.Push(&pr.due, jobs[i])
	}
	pr.byTag[tag] = jobs
	pr.poke()
}

// Running returns how many instances have probes registered.
func (pr *Prober) Running() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return len(pr.byTag)
}

func (pr *Prober) drop(j *probeJob) {
	j.removed = true
	if j.index >= 0 {
		heap.Remove(&pr.due, j.index)
	}
}

func (pr *Prober) poke() {
	select {
	case pr.wake <- struct{}{}:
	default:
	}
}

// Close stops scheduling, kills the probes in flight and waits for them.
func (pr *Prober) Close() {
	pr.mu.Lock()
	pr.closed = true
	pr.mu.Unlock()
	pr.cancel()
	pr.poke()
	pr.wg.Wait()
}

// schedule starts due probes until Close.
func (pr *Prober) schedule() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		pr.mu.Lock()
		if pr.closed {
			pr.mu.Unlock()
			return
		}
		now := time.Now()
		var ready []*probeJob
		// Probes due within probeSlack go now with the due ones: a wakeup
		// of this goroutine (and of the loop, for their results) serves a
		// handful of probes rather than one, at the cost of running some a
		// few milliseconds early.
		for pr.due.Len() > 0 && !pr.due[0].next.After(now.Add(probeSlack)) {
			j := heap.Pop(&pr.due).(*probeJob)
			j.running = true
			ready = append(ready, j)
		}
		wait := time.Hour
		if pr.due.Len() > 0 {
			wait = pr.due[0].next.Sub(now)
		}
		pr.mu.Unlock()
		for _, j := range ready {
			if !pr.dispatch(j) {
				return
			}
		}
		if len(ready) > 0 {
			continue // more may have come due while slots were awaited
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-pr.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-pr.ctx.Done():
			return
		}
	}
}

// dispatch hands j to an idle worker, or to a new one while there are
// fewer than the maximum, or waits for one to be free. It reports false
// once the Prober is closed.
func (pr *Prober) dispatch(j *probeJob) bool {
	select {
	case pr.jobs <- j:
		return true
	default:
	}
	select {
	case pr.slots <- struct{}{}:
		pr.wg.Go(func() { pr.work(j) })
		return true
	case pr.jobs <- j:
		return true
	case <-pr.ctx.Done():
		return false
	}
}

// work runs probes until it has been idle for workerIdle (a worker's stack
// stays grown for the next probe: starting a goroutine per probe spends
// more on stack growth than on the probe).
func (pr *Prober) work(j *probeJob) {
	defer func() { <-pr.slots }()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		pr.run(j)
		idle.Reset(workerIdle)
		select {
		case j = <-pr.jobs:
		case <-idle.C:
			return
		case <-pr.ctx.Done():
			return
		}
	}
}

// workerIdle is how long a probe worker waits for work before it ends.
const workerIdle = 30 * time.Second

// run runs one probe, reports it and schedules its next run.
func (pr *Prober) run(j *probeJob) {
	start := time.Now()
	ok, msg := pr.probe(j.p)
	end := time.Now()
	pr.mu.Lock()
	j.running = false
	report := !j.removed && !pr.closed
	if report {
		j.next = start.Add(j.p.Period)
		if ok && !j.spread {
			// The first success moves the probe to a phase of its own
			// within the period: instances started together (Patrol's
			// start, a config with hundreds of apps) would otherwise probe
			// in one burst every period, and a crash's restart would wait
			// behind it. Probes that fail (an app still starting) keep
			// their pace.
			j.spread = true
			j.next = j.next.Add(phase(j.tag, j.p))
		}
		if j.next.Before(end) {
			j.next = end
		}
		heap.Push(&pr.due, j)
		pr.poke()
	}
	pr.mu.Unlock()
	if report {
		pr.report(observed.ProbeResult{Tag: j.tag, Kind: j.p.Kind, OK: ok, Message: msg, At: end})
	}
}

// phase is a probe's offset within its period, the same for the same
// instance and probe kind: [0, period).
func phase(tag string, p *desired.Probe) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(tag))
	h.Write([]byte(p.Kind))
	return time.Duration(h.Sum64() % uint64(max(p.Period, 1)))
}

// probe runs p once and says whether it succeeded and what it saw.
func (pr *Prober) probe(p *desired.Probe) (bool, string) {
	if len(p.Command) > 0 {
		return pr.probeExec(p) // RunCommand kills it at its timeout
	}
	ctx, cancel := context.WithTimeout(pr.ctx, p.Timeout)
	defer cancel()
	switch {
	case p.TCPAddr != "":
		return ProbeTCP(ctx, p.TCPAddr)
	case p.URL != "":
		return probeHTTP(ctx, pr.client, p.URL, p.StatusLo, p.StatusHi)
	}
	return false, "no probe"
}

// ProbeTCP connects to addr (an IPv4 or IPv6 "host:port") and closes
// the connection at once with a reset, so that a probe a second leaves no
// TIME_WAIT behind. It uses the socket directly, without the runtime's
// poller: on loopback the connection is made (or refused) at once, and a
// thousand probes a second cost half as much as through net.Dial. A
// connection that does not complete blocks its worker's thread in poll(2)
// until the timeout.
func ProbeTCP(ctx context.Context, addr string) (bool, string) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false, err.Error()
	}
	family := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, "socket: " + err.Error()
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, sa)
	for err == unix.EINTR {
		err = unix.Connect(fd, sa)
	}
	if err == unix.EINPROGRESS {
		err = awaitConnect(ctx, fd)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return false, "timed out"
		}
		return false, "connect: " + err.Error()
	}
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	return true, "connected to " + addr
}

// awaitConnect waits for a non-blocking connect on fd to finish until
// ctx's deadline, and returns its outcome.
func awaitConnect(ctx context.Context, fd int) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return context.DeadlineExceeded
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return context.DeadlineExceeded
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soErr != 0 {
			return unix.Errno(soErr)
		}
		return nil
	}
}

// probeHTTP GETs url and checks the status code; at most 4 KiB of the
// body are read (and the first line of it reported on failure).
func probeHTTP(ctx context.Context, client *http.Client, url string, lo, hi int) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "patrol-probe")
	resp, err := client.Do(req)
	if err != nil {
		return false, probeError(ctx, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < lo || resp.StatusCode > hi {
		msg := fmt.Sprintf("HTTP %d", resp.StatusCode)
		if line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n"); line != "" {
			msg += ": " + clipText(line, 120)
		}
		return false, msg
	}
	return true, fmt.Sprintf("HTTP %d", resp.StatusCode)
}

// probeExec runs an exec probe's command (looked up in PATH unless
// absolute) in the app's directory, with Patrol's environment and the
// app's env: exit code 0 is a success.
func (pr *Prober) probeExec(p *desired.Probe) (bool, string) {
	argv := append([]string(nil), p.Command...)
	path, err := LookPath(argv[0])
	if err != nil {
		return false, err.Error()
	}
	argv[0] = path
	res := pr.runner.RunCommand(pr.ctx, Command{Argv: argv, Dir: p.Dir, Env: append(os.Environ(), p.Env...),
		Timeout: p.Timeout, MaxOutput: 512})
	out := clipText(strings.TrimSpace(string(res.Output)), 120)
	switch {
	case res.TimedOut:
		return false, "timed out after " + p.Timeout.String() + " (killed)"
	case res.Err != nil:
		return false, res.Err.Error()
	case res.Code != 0:
		msg := fmt.Sprintf("exit code %d", res.Code)
		if out != "" {
			msg += ": " + out
		}
		return false, msg
	}
	if out == "" {
		out = "exit code 0"
	}
	return true, out
}

// probeError words a failed dial or request, naming a timeout as such.
func probeError(ctx context.Context, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// probeHeap orders probe jobs by due time.
type probeHeap []*probeJob

func (h probeHeap) Len() int           { return len(h) }
func (h probeHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h probeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *probeHeap) Push(x any) {
	j := x.(*probeJob)
	j.index = len(*h)
	*h = append(*h, j)
}
func (h *probeHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	j.index = -1
	*h = old[:len(old)-1]
	return j
}
