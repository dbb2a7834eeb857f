package exec

import (
	"container/heap"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
)

// DefaultProbeWorkers bounds how many probes run at once.
const DefaultProbeWorkers = 64

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
	slots  chan struct{}
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
		byTag:  map[string][]*probeJob{},
		wake:   make(chan struct{}, 1),
	}
	pr.client = &http.Client{
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
		for pr.due.Len() > 0 && !pr.due[0].next.After(now) {
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
			select {
			case pr.slots <- struct{}{}:
			case <-pr.ctx.Done():
				return
			}
			pr.wg.Go(func() { pr.run(j) })
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

// run runs one probe, reports it and schedules its next run.
func (pr *Prober) run(j *probeJob) {
	start := time.Now()
	ok, msg := pr.probe(j.p)
	<-pr.slots
	end := time.Now()
	pr.mu.Lock()
	j.running = false
	report := !j.removed && !pr.closed
	if report {
		j.next = start.Add(j.p.Period)
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

// ProbeTCP connects to addr and closes the connection at once with a
// reset (no TIME_WAIT left behind by a probe every second).
func ProbeTCP(ctx context.Context, addr string) (bool, string) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, probeError(ctx, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
	return true, "connected to " + addr
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
