package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// ping is the keepalive message of modes 3 and 4.
type ping struct {
	ID     string `json:"id"`
	Group  string `json:"group"`
	Ping   bool   `json:"ping"`
	PID    int    `json:"pid"`
	Secret string `json:"secret,omitempty"`
}

// pingBody returns the JSON keepalive message for cfg.
func pingBody(cfg config) []byte {
	b, err := json.Marshal(ping{ID: cfg.id, Group: "app", Ping: true, PID: os.Getpid(), Secret: cfg.secret})
	if err != nil {
		panic(err) // cannot happen for this struct
	}
	return b
}

// dialAddr returns the address to send to for a Patrol listener address. A
// listener bound to all interfaces (":8421", "0.0.0.0:8421" or "[::]:8421")
// is reached through the loopback interface of the same family.
func dialAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	switch {
	case host == "":
		host = "127.0.0.1"
	case net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified():
		if net.ParseIP(host).To4() != nil {
			host = "127.0.0.1"
		} else {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// every calls f at once and then every interval until ctx is done.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// httpKeepalive posts a ping to the first PATROL_HTTP address every interval
// until ctx is done. Failures are logged to stderr and retried on the next
// interval.
func httpKeepalive(ctx context.Context, cfg config) {
	addr, err := dialAddr(cfg.httpAddrs[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: keepalive: bad PATROL_HTTP address %q: %v\n", cfg.prefix(), cfg.httpAddrs[0], err)
		return
	}
	url := "http://" + addr + "/api/"
	client := &http.Client{
		Timeout: 2 * time.Second,
		// No proxy from the environment and no redirects: the ping goes to
		// the configured address and nowhere else.
		Transport: &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	defer client.CloseIdleConnections()
	body := pingBody(cfg)

	every(ctx, cfg.interval, func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: keepalive: %v\n", cfg.prefix(), err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "%s: keepalive: %v\n", cfg.prefix(), err)
			}
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			fmt.Fprintf(os.Stderr, "%s: keepalive: POST %s: %s\n", cfg.prefix(), url, resp.Status)
		}
	})
}

// udpKeepalive sends a ping datagram to the first PATROL_UDP address every
// interval until ctx is done, and prints any reply that arrives shortly after.
func udpKeepalive(ctx context.Context, cfg config) {
	addr, err := dialAddr(cfg.udpAddrs[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: keepalive: bad PATROL_UDP address %q: %v\n", cfg.prefix(), cfg.udpAddrs[0], err)
		return
	}
	body := pingBody(cfg)
	replyWait := min(cfg.interval/2, 250*time.Millisecond)
	buf := make([]byte, 64<<10)

	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	every(ctx, cfg.interval, func() {
		if conn == nil {
			if conn, err = net.Dial("udp", addr); err != nil {
				conn = nil
				fmt.Fprintf(os.Stderr, "%s: keepalive: %v\n", cfg.prefix(), err)
				return
			}
		}
		if _, err := conn.Write(body); err != nil {
			fmt.Fprintf(os.Stderr, "%s: keepalive: %v\n", cfg.prefix(), err)
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(replyWait))
		n, err := conn.Read(buf)
		var nerr net.Error
		switch {
		case err == nil:
			fmt.Printf("%s: keepalive reply: %s\n", cfg.prefix(), strings.TrimSpace(string(buf[:n])))
		case errors.As(err, &nerr) && nerr.Timeout():
			// No reply is fine: Patrol does not have to answer.
		default:
			fmt.Fprintf(os.Stderr, "%s: keepalive: %v\n", cfg.prefix(), err)
		}
	})
}
