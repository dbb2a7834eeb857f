package main

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHealth: -listen serves /health after -ready-after, 200 then 500
// after -unhealthy-after; -notify sends READY=1 with a STATUS= line and
// WATCHDOG=1 at half of WATCHDOG_USEC.
func TestHealth(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	startDemo(t, []string{"PATROL_ID=api", "NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"},
		"-interval", "1h", "-listen", addr, "-ready-after", "200ms", "-unhealthy-after", "700ms", "-notify")

	buf := make([]byte, 512)
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if msg := string(buf[:n]); !strings.HasPrefix(msg, "READY=1\nSTATUS=serving since ") || time.Since(start) < 200*time.Millisecond {
		t.Errorf("first datagram %q after %v", msg, time.Since(start))
	}
	get := func() int {
		resp, err := http.Get("http://" + addr + "/health")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != 200 {
		t.Errorf("/health: %d, want 200", code)
	}
	if n, err = conn.Read(buf); err != nil || string(buf[:n]) != "WATCHDOG=1" {
		t.Errorf("second datagram %q, %v; want WATCHDOG=1", buf[:n], err)
	}
	time.Sleep(time.Until(start.Add(800 * time.Millisecond)))
	if code := get(); code != 500 {
		t.Errorf("/health after -unhealthy-after: %d, want 500", code)
	}
}

// TestNotifyNeedsSocket: -notify without NOTIFY_SOCKET is a usage error.
func TestNotifyNeedsSocket(t *testing.T) {
	_, err := parseConfig([]string{"-notify"}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "NOTIFY_SOCKET") {
		t.Errorf("got %v", err)
	}
}
