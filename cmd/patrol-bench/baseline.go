package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/patrolhq/patrol/schema"

	"github.com/patrolhq/patrol/internal/proctool"
)

// The baseline is the "minimal Go spawn+Wait loop" of issue 9: one
// goroutine per app that starts the process with os/exec and restarts it
// when cmd.Wait returns. For a keepalive 2 daemon it waits for the
// launcher, reads the pid file and waits on the daemon through a pidfd
// (os.FindProcess; the daemon is its child because the baseline is a child
// subreaper). It has just enough of Patrol's surface for the same
// measurements: the same config file (binary, args, env, keepalive,
// pid-path), GET /status/, GET and POST /api/ (pings), UDP pings, and a
// reload that restarts the apps whose argv changed when config.json is
// renamed over (inotify). It keeps no history, no logs, no backoff and no
// persistence.

// bapp is one app of the baseline.
type bapp struct {
	id        string
	keepalive schema.Keepalive
	dir       string
	argv      []string
	env       []string
	pidPath   string

	// Guarded by baseline.mu.
	pid      int
	pgid     int // the process group to signal (0: none)
	started  time.Time
	lastSeen time.Time
	starts   int
}

type baseline struct {
	cfgPath  string
	httpAddr string
	udpAddr  string

	mu       sync.Mutex
	apps     map[string]*bapp
	stopping bool
	wg       sync.WaitGroup
	log      *slog.Logger
}

// runBaseline is `patrol-bench baseline --config PATH --http ADDR --udp
// ADDR`.
func runBaseline(args []string) int {
	fs := flag.NewFlagSet("patrol-bench baseline", flag.ContinueOnError)
	cfg := fs.String("config", "config.json", "config `PATH`")
	httpAddr := fs.String("http", "127.0.0.1:0", "HTTP listen `ADDR`")
	udpAddr := fs.String("udp", "127.0.0.1:0", "UDP listen `ADDR`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	b := &baseline{cfgPath: *cfg, apps: map[string]*bapp{},
		log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if err := b.run(*httpAddr, *udpAddr); err != nil {
		b.log.Error("baseline stopped", "err", err)
		return 1
	}
	return 0
}

// loadApps reads the config's apps.
func (b *baseline) loadApps() (map[string]*bapp, error) {
	raw, err := os.ReadFile(b.cfgPath)
	if err != nil {
		return nil, err
	}
	var cfg schema.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	base := filepath.Dir(b.cfgPath)
	out := map[string]*bapp{}
	for id, a := range cfg.Apps {
		k := a.Keepalive
		if k == 0 {
			k = schema.Keepalive(1)
		}
		dir := a.WorkingDirectory
		if dir == "" {
			dir = base
		} else if !filepath.IsAbs(dir) {
			dir = filepath.Join(base, dir)
		}
		bin := a.Binary
		if !filepath.IsAbs(bin) {
			bin = filepath.Join(dir, bin)
		}
		pidPath := a.PIDPath
		if pidPath != "" && !filepath.IsAbs(pidPath) {
			pidPath = filepath.Join(dir, pidPath)
		}
		id = strings.ToLower(id)
		out[id] = &bapp{id: id, keepalive: k, dir: dir, argv: append([]string{bin}, a.Args...),
			env: slices.Clone(a.Env), pidPath: pidPath}
	}
	return out, nil
}

func (b *baseline) run(httpAddr, udpAddr string) error {
	if err := proctool.BecomeSubreaper(); err != nil {
		return fmt.Errorf("become a child subreaper: %w", err)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	apps, err := b.loadApps()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}
	uc, err := net.ListenPacket("udp", udpAddr)
	if err != nil {
		return err
	}
	b.httpAddr, b.udpAddr = ln.Addr().String(), uc.LocalAddr().String()
	b.mu.Lock()
	b.apps = apps
	for _, a := range apps {
		if a.keepalive == 1 || a.keepalive == 2 {
			b.wg.Add(1)
			go b.supervise(a)
		}
	}
	b.mu.Unlock()
	srv := &http.Server{Handler: b.handler()}
	go func() { _ = srv.Serve(ln) }()
	go b.serveUDP(uc)
	b.log.Info("http listening", "addr", b.httpAddr)
	b.log.Info("udp listening", "addr", b.udpAddr)
	go b.watch()
	<-sigs
	b.shutdown()
	_ = srv.Close()
	_ = uc.Close()
	return nil
}

// supervise is the spawn+Wait loop of one app.
func (b *baseline) supervise(a *bapp) {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		if b.stopping {
			b.mu.Unlock()
			return
		}
		argv := a.argv
		b.mu.Unlock()
		if a.keepalive == 2 {
			_ = os.Remove(a.pidPath)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = a.dir
		cmd.Env = append(slices.Clone(a.env), "PATROL_ID="+a.id, "PATROL_KEEPALIVE="+strconv.Itoa(int(a.keepalive)),
			"PATROL_PID="+a.pidPath, "PATROL_HTTP="+b.httpAddr, "PATROL_UDP="+b.udpAddr)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			b.log.Warn("start failed", "app", a.id, "err", err)
			time.Sleep(time.Second)
			continue
		}
		b.setPID(a, cmd.Process.Pid, cmd.Process.Pid)
		if a.keepalive == 1 {
			_ = cmd.Wait()
			b.setPID(a, 0, 0)
			continue
		}
		// Keepalive 2: the launcher exits after writing the pid file.
		_ = cmd.Wait()
		raw, err := os.ReadFile(a.pidPath)
		pid, perr := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || perr != nil || pid <= 0 {
			b.setPID(a, 0, 0)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		p, err := os.FindProcess(pid) // a pidfd on Linux
		if err != nil {
			b.setPID(a, 0, 0)
			continue
		}
		b.setPID(a, pid, pid) // the daemon called setsid: its group is its pid
		if _, err := p.Wait(); err != nil {
			// Not our child after all: poll until it is gone.
			for proctool.Alive(pid) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		b.setPID(a, 0, 0)
	}
}

func (b *baseline) setPID(a *bapp, pid, pgid int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a.pid, a.pgid = pid, pgid
	if pid > 0 && b.stopping {
		// Started while shutdown was signalling the others.
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
	}
	if pid > 0 {
		a.started = time.Now()
		a.starts++
	}
}

// shutdown stops every app: SIGTERM to each process group, SIGKILL after
// 10 s.
func (b *baseline) shutdown() {
	b.mu.Lock()
	b.stopping = true
	for _, a := range b.apps {
		if a.pgid > 0 {
			_ = syscall.Kill(-a.pgid, syscall.SIGTERM)
		}
	}
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		b.mu.Lock()
		for _, a := range b.apps {
			if a.pgid > 0 {
				_ = syscall.Kill(-a.pgid, syscall.SIGKILL)
			}
		}
		b.mu.Unlock()
		<-done
	}
}

// watch reloads the config when config.json is renamed over or written in
// its directory (inotify), restarting the apps whose argv changed.
func (b *baseline) watch() {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		b.log.Warn("inotify", "err", err)
		return
	}
	dir, name := filepath.Split(b.cfgPath)
	if _, err := syscall.InotifyAddWatch(fd, filepath.Clean(dir), syscall.IN_MOVED_TO|syscall.IN_CLOSE_WRITE); err != nil {
		b.log.Warn("inotify", "err", err)
		return
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(fd, buf)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		reload := false
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
			if string(bytes.TrimRight(nameBytes, "\x00")) == name {
				reload = true
			}
			off += syscall.SizeofInotifyEvent + int(ev.Len)
		}
		if reload {
			b.reload()
		}
	}
}

func (b *baseline) reload() {
	apps, err := b.loadApps()
	if err != nil {
		b.log.Warn("reload", "err", err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, na := range apps {
		a := b.apps[id]
		if a == nil || slices.Equal(a.argv, na.argv) {
			continue
		}
		a.argv = na.argv
		if a.pgid > 0 {
			_ = syscall.Kill(-a.pgid, syscall.SIGTERM)
		}
	}
}

// response describes one app as the API does.
func (b *baseline) response(a *bapp) *schema.Response {
	r := &schema.Response{ID: a.id, Group: "app", Name: a.id, PID: uint32(a.pid),
		State: schema.StateStopped, Restarts: max(a.starts-1, 0)}
	if a.pid > 0 || (a.keepalive >= 3 && !a.lastSeen.IsZero()) {
		r.State = schema.StateRunning
		r.Started = a.started.Format(time.RFC1123Z)
	}
	if !a.lastSeen.IsZero() {
		r.LastSeen = a.lastSeen.Format(time.RFC1123Z)
	}
	return r
}

// request applies an API request (only pings change anything).
func (b *baseline) request(req *schema.Request, transport string) (*schema.Response, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.apps[strings.ToLower(req.ID)]
	if a == nil || req.Group != "app" {
		return &schema.Response{Errors: []string{schema.ErrUnknownApp}}, http.StatusBadRequest
	}
	r := b.response(a)
	if req.Ping {
		ok := a.keepalive == 3 && transport == "http" || a.keepalive == 4 && transport == "udp"
		if !ok {
			return &schema.Response{Errors: []string{schema.ErrInvalidPingEndpoint}}, http.StatusBadRequest
		}
		if a.lastSeen.IsZero() {
			a.started = time.Now()
			a.starts++
		}
		a.lastSeen = time.Now()
	}
	return r, http.StatusOK
}

func (b *baseline) handler() http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, code int, v any) {
		body, _ := json.Marshal(v)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(body)
	}
	mux.HandleFunc("GET /status/", func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		st := &schema.Status{Apps: make(map[string]*schema.Response, len(b.apps))}
		for id, a := range b.apps {
			st.Apps[id] = b.response(a)
		}
		b.mu.Unlock()
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		var req schema.Request
		switch r.Method {
		case http.MethodGet:
			q := r.URL.Query()
			req.ID, req.Group = q.Get("id"), q.Get("group")
		case http.MethodPost:
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				writeJSON(w, http.StatusBadRequest, schema.ErrorResponse{Errors: []string{schema.ErrInvalidBody}})
				return
			}
		default:
			writeJSON(w, http.StatusBadRequest, schema.ErrorResponse{Errors: []string{schema.ErrInvalidMethod}})
			return
		}
		resp, code := b.request(&req, "http")
		writeJSON(w, code, resp)
	})
	// Prometheus text format, so that the bench reads goroutines the same
	// way from both supervisors.
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE go_goroutines gauge\ngo_goroutines %d\n", runtime.NumGoroutine())
	})
	return mux
}

// serveUDP answers UDP requests, one per datagram, not at all on errors.
func (b *baseline) serveUDP(c net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		var req schema.Request
		if json.Unmarshal(buf[:n], &req) != nil {
			continue
		}
		resp, code := b.request(&req, "udp")
		if code != http.StatusOK {
			continue
		}
		out, _ := json.Marshal(resp)
		_, _ = c.WriteTo(out, addr)
	}
}

// runHelper is `patrol-bench helper daemonize|sleep TAG`: the tiny apps of
// the benchmarks. daemonize starts `helper sleep TAG` in a new session,
// writes its pid to $PATROL_PID and exits, like a forking daemon; sleep
// sleeps until killed.
func runHelper(args []string) int {
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: patrol-bench helper daemonize|sleep [TAG]")
		return 2
	}
	switch args[0] {
	case "sleep":
		for {
			time.Sleep(time.Hour)
		}
	case "daemonize":
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cmd := exec.Command(self, append([]string{"helper", "sleep"}, args[1:]...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		path := os.Getenv("PATROL_PID")
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := os.Rename(tmp, path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "patrol-bench helper: unknown helper %q\n", args[0])
	return 2
}
