package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// health demonstrates Patrol's health checks: after -ready-after it
// serves GET /health on -listen (200, or 500 once -unhealthy-after has
// passed) and, with -notify, tells NOTIFY_SOCKET READY=1 with a STATUS=
// line, then sends WATCHDOG=1 at half the watchdog interval.
func health(ctx context.Context, cfg config) {
	start := time.Now()
	select {
	case <-time.After(cfg.readyAfter):
	case <-ctx.Done():
		return
	}
	if cfg.listen != "" {
		ln, err := net.Listen("tcp", cfg.listen)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: listen: %v\n", cfg.prefix(), err)
			return
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/health" {
				http.NotFound(w, r)
				return
			}
			if cfg.unhealthyAfter > 0 && time.Since(start) > cfg.unhealthyAfter {
				http.Error(w, "unhealthy on purpose (-unhealthy-after)", http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, "ok")
		})}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Printf("%s: listening on %s\n", cfg.prefix(), ln.Addr())
	}
	if !cfg.notify {
		<-ctx.Done()
		return
	}
	send(cfg, fmt.Sprintf("READY=1\nSTATUS=serving since %s", time.Now().Format(time.Kitchen)))
	if cfg.watchdog <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(cfg.watchdog / 2)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			send(cfg, "WATCHDOG=1")
		case <-ctx.Done():
			send(cfg, "STOPPING=1")
			return
		}
	}
}

// send writes one sd_notify datagram to NOTIFY_SOCKET ("@name" is the
// abstract namespace, which Go's net package understands as is).
func send(cfg config, msg string) {
	c, err := net.Dial("unixgram", cfg.notifySocket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: notify: %v\n", cfg.prefix(), err)
		return
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		fmt.Fprintf(os.Stderr, "%s: notify: %v\n", cfg.prefix(), err)
	}
}
