package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// headerTimeout is Patrol's http.Server ReadHeaderTimeout, and bodyTimeout
// the time a JSON route's body must arrive in (api package).
const (
	headerTimeout = 10 * time.Second
	bodyTimeout   = 30 * time.Second
)

// abuseConfig is a small Patrol for the connection and request checks.
func (h *harness) abuseConfig() map[string]any {
	apps := map[string]any{}
	for i := range 5 {
		bin, args := h.helper("sleep")
		apps[fmt.Sprintf("app-%d", i)] = map[string]any{"binary": bin, "args": args, "env": []string{h.marker()}}
	}
	bin, args := h.helper("sleep")
	apps["pinger"] = map[string]any{"binary": bin, "args": args, "env": []string{h.marker()}, "keepalive": 4}
	return map[string]any{"apps": apps}
}

// startAbused starts a Patrol on abuseConfig in dir name and waits until its
// apps run; it returns their pids.
func (h *harness) startAbused(ctx context.Context, name string) (*daemon, map[string]uint32, error) {
	dir, err := h.newDaemonDir(name, h.abuseConfig())
	if err != nil {
		return nil, nil, err
	}
	d, err := h.start(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	pids := map[string]uint32{}
	ok := waitFor(ctx, 20*time.Second, func() bool {
		st, err := d.status()
		if err != nil {
			return false
		}
		clear(pids)
		for id, a := range st.Apps {
			if strings.HasPrefix(id, "app-") {
				if a.State != schema.StateRunning {
					return false
				}
				pids[id] = a.PID
			}
		}
		return len(pids) == 5
	})
	if !ok {
		d.kill()
		return nil, nil, fmt.Errorf("the apps did not start")
	}
	return d, pids, nil
}

// undisturbed reports which apps no longer run with the pid they had.
func undisturbed(d *daemon, pids map[string]uint32) []string {
	st, err := d.status()
	if err != nil {
		return []string{"status: " + err.Error()}
	}
	var moved []string
	for id, pid := range pids {
		if a := st.Apps[id]; a == nil || a.PID != pid || a.State != schema.StateRunning {
			moved = append(moved, id)
		}
	}
	slices.Sort(moved)
	return moved
}

// latency times n sequential GET /status/ on one keep-alive connection and
// returns p50 and p99.
func latency(d *daemon, n int) (p50, p99 time.Duration, err error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer c.CloseIdleConnections()
	ds := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		resp, err := c.Get("http://" + d.addr + "/status/")
		if err != nil {
			return 0, 0, err
		}
		_, err = bufio.NewReader(resp.Body).WriteTo(discard{})
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("GET /status/: %d, %v", resp.StatusCode, err)
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[min(len(ds)-1, len(ds)*99/100)], nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// slowClient connects and sends what, then one byte every 500 ms, until
// the server closes the connection; it returns how long that took, or -1
// after limit.
func slowClient(addr, what string, limit time.Duration) time.Duration {
	t0 := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return -1
	}
	defer c.Close()
	if _, err := c.Write([]byte(what)); err != nil {
		return time.Since(t0)
	}
	closed := make(chan struct{})
	go func() {
		// The server closes (a 408 or nothing): the read ends.
		c.Read(make([]byte, 1024))
		close(closed)
	}()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for time.Since(t0) < limit {
		select {
		case <-closed:
			return time.Since(t0)
		case <-t.C:
			if _, err := c.Write([]byte("x")); err != nil {
				return time.Since(t0)
			}
		}
	}
	return -1
}

// connections holds idle connections and slow clients while it measures
// the /status/ latency, and checks that the server cuts them off.
func (h *harness) connections(ctx context.Context, o *options) []Check {
	name := fmt.Sprintf("/status/ with %d idle connections and slow clients", o.conns)
	d, pids, err := h.startAbused(ctx, "connections")
	if err != nil {
		return []Check{{Name: name, Detail: err.Error()}}
	}
	defer d.kill()
	b50, b99, err := latency(d, 200)
	if err != nil {
		return []Check{{Name: name, Detail: err.Error()}}
	}
	h.logf("connections: %d idle, 2 slow-header and 1 slow-body client", o.conns)
	t0 := time.Now()
	idle := make([]net.Conn, 0, o.conns)
	for range o.conns {
		c, err := net.Dial("tcp", d.addr)
		if err != nil {
			break
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	var (
		wg   sync.WaitGroup
		cuts = make([]time.Duration, 3)
	)
	slow := []struct {
		what  string
		limit time.Duration
	}{
		{"GET /status/ HTTP/1.1\r\nHost: x\r\nX-Slow: ", headerTimeout + 5*time.Second},
		{"GET /status/ HTTP/1.1\r\nHost: x\r\nX-Slow: ", headerTimeout + 5*time.Second},
		{"POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", bodyTimeout + 5*time.Second},
	}
	if o.short {
		slow = slow[:2] // the body timeout is 30 s
	}
	for i, s := range slow {
		wg.Go(func() { cuts[i] = slowClient(d.addr, s.what, s.limit) })
	}
	p50, p99, lerr := latency(d, 400)
	// Idle connections that never sent a request are cut off by the header
	// timeout too.
	cutIdle := 0
	for _, c := range idle {
		c.SetReadDeadline(t0.Add(headerTimeout + 5*time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				cutIdle++
			}
		}
	}
	wg.Wait()
	cuts = cuts[:len(slow)]
	moved := undisturbed(d, pids)
	c := Check{Name: name,
		OK: lerr == nil && p99 < 100*time.Millisecond && len(idle) == o.conns && cutIdle == len(idle) &&
			!slices.Contains(cuts, -1) && len(moved) == 0,
		Detail: fmt.Sprintf("p50/p99 %.2f/%.2f ms (alone %.2f/%.2f ms); %d of %d idle connections and the slow clients cut off after %v; apps disturbed: %d",
			ms(p50), ms(p99), ms(b50), ms(b99), cutIdle, len(idle), roundAll(cuts), len(moved)),
		Values: map[string]float64{"p50_ms": ms(p50), "p99_ms": ms(p99), "alone_p50_ms": ms(b50), "alone_p99_ms": ms(b99),
			"idle_cut": float64(cutIdle)},
	}
	if lerr != nil {
		c.Detail += "; " + lerr.Error()
	}
	return []Check{c}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(100 * time.Millisecond)
	}
	return out
}

// badRequest is one malformed or oversized request and what it must get.
type badRequest struct {
	name         string
	method, path string
	body         []byte
	header       map[string]string
	code         int    // HTTP: the status
	err          string // HTTP: the error string, when there is one
}

// udpCase is one malformed datagram: reply is the exact reply, "" for
// none.
type udpCase struct {
	name  string
	msg   []byte
	reply string
}

func deep(n int) string {
	return `{"id":"app-0","group":"app","keyvalue":{"k":` + strings.Repeat("[", n) + "1" + strings.Repeat("]", n) + `}}`
}

func badHTTP() []badRequest {
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i*131 + 7)
	}
	return []badRequest{
		{"truncated JSON", "POST", "/api/", []byte(`{"id":"app-0","group":`), nil, 400, schema.ErrInvalidRequest},
		{"binary junk", "POST", "/api/", junk, nil, 400, schema.ErrInvalidRequest},
		{"2 MiB body", "POST", "/api/", bytes.Repeat([]byte(" "), 2<<20), nil, 413, schema.ErrRequestEntityTooLarge},
		{"9000 levels of key/value", "POST", "/api/", []byte(deep(9000)), nil, 400, schema.ErrKeyValueTooDeep},
		{"20000 levels", "POST", "/api/", []byte(deep(20000)), nil, 400, schema.ErrInvalidRequest},
		{"a key/value of 100 KB", "POST", "/api/", []byte(`{"id":"app-0","group":"app","keyvalue":{"k":"` + strings.Repeat("x", 100000) + `"}}`), nil, 400, schema.ErrKeyValueTooLarge},
		{"10000 keys", "POST", "/api/", []byte(`{"id":"app-0","group":"app","keyvalue":{` + manyKeys(10000) + `}}`), nil, 400, schema.ErrKeyValueTooManyKeys},
		{"null", "POST", "/api/", []byte(`null`), nil, 400, schema.ErrUnknownGroup},
		{"wrong types", "POST", "/api/", []byte(`{"id":5,"group":["app"]}`), nil, 400, schema.ErrInvalidRequest},
		{"toggle 300", "POST", "/api/", []byte(`{"id":"app-0","group":"app","toggle":300}`), nil, 400, schema.ErrInvalidRequest},
		{"ping from the wrong transport", "POST", "/api/", []byte(`{"id":"pinger","group":"app","ping":true}`), nil, 400, schema.ErrInvalidPingEndpoint},
		{"bad toggle in a query", "GET", "/api/?group=app&id=app-0&toggle=abc", nil, nil, 400, schema.ErrInvalidToggle},
		{"100 query parameters", "GET", "/api/?" + strings.Repeat("a=1&", 100), nil, nil, 400, schema.ErrInvalidRequest},
		{"a 64 KB header", "GET", "/status/", nil, map[string]string{"X-Big": strings.Repeat("y", 64<<10)}, 200, ""},
		{"a 2 MiB header", "GET", "/status/", nil, map[string]string{"X-Big": strings.Repeat("y", 2<<20)}, 431, ""},
		{"a cross-origin toggle", "POST", "/api/", []byte(`{"id":"app-0","group":"app","toggle":3}`), map[string]string{"Origin": "http://evil.example"}, 403, schema.ErrForbiddenCrossOrigin},
		{"a config of junk to plan", "POST", "/api/plan", junk, nil, 400, ""},
		{"a 2 MiB config to plan", "POST", "/api/plan", bytes.Repeat([]byte("["), 2<<20), nil, 413, schema.ErrRequestEntityTooLarge},
		{"an unknown method", "DELETE", "/api/", nil, nil, 405, schema.ErrInvalidMethod},
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	return b.String()
}

func badUDP() []udpCase {
	junk := make([]byte, 1500)
	for i := range junk {
		junk[i] = byte(i*17 + 3)
	}
	return []udpCase{
		{"truncated JSON", []byte(`{"id":"pinger","group":`), ""},
		{"binary junk", junk, ""},
		{"3000 bytes", append([]byte(`{"id":"pinger","group":"app","ping":true}`), bytes.Repeat([]byte(" "), 3000)...), ""},
		{"null", []byte(`null`), ""},
		{"unknown app", []byte(`{"id":"nope","group":"app","ping":true}`), ""},
		{"ping from the wrong transport", []byte(`{"id":"app-0","group":"app","ping":true}`), ""},
		{"1000 levels of key/value", []byte(strings.Replace(deep(1000), "app-0", "pinger", 1)), `{"id":"pinger","group":"app","errors":["KeyValue Too Deep"]}`},
		{"empty datagram", []byte{}, ""},
	}
}

// malformed sends every bad request over HTTP and UDP and checks each
// answer, and that Patrol still answers and no app was disturbed.
func (h *harness) malformed(ctx context.Context, o *options) []Check {
	d, pids, err := h.startAbused(ctx, "malformed")
	if err != nil {
		return []Check{{Name: "malformed and oversized requests", Detail: err.Error()}}
	}
	defer d.kill()
	hc := Check{Name: fmt.Sprintf("malformed and oversized HTTP requests (%d kinds)", len(badHTTP()))}
	var wrong []string
	for _, c := range badHTTP() {
		req, _ := http.NewRequest(c.method, "http://"+d.addr+c.path, bytes.NewReader(c.body))
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		resp, err := d.client.Do(req)
		if err != nil {
			wrong = append(wrong, fmt.Sprintf("%s: %v", c.name, err))
			continue
		}
		var er schema.ErrorResponse
		b := new(bytes.Buffer)
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		json.Unmarshal(b.Bytes(), &er)
		if resp.StatusCode != c.code || (c.err != "" && !slices.Contains(er.Errors, c.err)) {
			wrong = append(wrong, fmt.Sprintf("%s: got %d %v, want %d %s", c.name, resp.StatusCode, er.Errors, c.code, c.err))
		}
	}
	uc := Check{Name: fmt.Sprintf("malformed and oversized UDP datagrams (%d kinds)", len(badUDP()))}
	var wrongUDP []string
	for _, c := range badUDP() {
		wait := 2 * time.Second
		if c.reply == "" {
			wait = 300 * time.Millisecond
		}
		reply, err := d.udpExchange(c.msg, wait)
		if err != nil || string(reply) != c.reply {
			wrongUDP = append(wrongUDP, fmt.Sprintf("%s: got %q (%v), want %q", c.name, reply, err, c.reply))
		}
	}
	// Still answering on both transports, nothing disturbed, the status
	// still small and readable.
	ok, _ := d.udpExchange([]byte(`{"id":"pinger","group":"app"}`), 2*time.Second)
	code, body, herr := d.do("GET", "/status/", nil)
	moved := undisturbed(d, pids)
	after := fmt.Sprintf("then /status/ %d (%d bytes, %v), UDP answers: %v; apps disturbed: %v", code, len(body), herr, ok != nil, moved)
	healthy := code == 200 && herr == nil && ok != nil && len(moved) == 0 && len(body) < 1<<20
	hc.OK = len(wrong) == 0 && healthy
	hc.Detail = fmt.Sprintf("%d of %d answered as expected; %s", len(badHTTP())-len(wrong), len(badHTTP()), after)
	if len(wrong) > 0 {
		hc.Detail += "\n" + strings.Join(wrong, "\n")
	}
	uc.OK = len(wrongUDP) == 0 && healthy
	uc.Detail = fmt.Sprintf("%d of %d answered (or dropped) as expected", len(badUDP())-len(wrongUDP), len(badUDP()))
	if len(wrongUDP) > 0 {
		uc.Detail += "\n" + strings.Join(wrongUDP, "\n")
	}
	if err := d.stop(); err != nil {
		hc.OK = false
		hc.Detail += "; " + err.Error()
	}
	return []Check{hc, uc}
}
