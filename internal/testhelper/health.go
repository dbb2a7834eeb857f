package testhelper

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// TermLogEnv names a file to which health helpers append "ID armed
// NANOS" once they catch SIGTERM and "ID term NANOS" when it arrives,
// before they exit 0: shutdown order tests read the exit times from it.
const TermLogEnv = "HELPER_TERM_LOG"

// runHealth runs the health helper commands:
//
//	http-health PORT N         serve 127.0.0.1:PORT; /health answers 200 to
//	                           the first N requests and 500 after
//	listen-after DELAY PORT    sleep DELAY, then accept (and close)
//	                           connections on 127.0.0.1:PORT
//	notify DELAY MSG...        sleep DELAY, send each MSG as one datagram to
//	                           $NOTIFY_SOCKET, then sleep forever
//	watchdog N EVERY           send WATCHDOG=1 N times, EVERY apart, then
//	                           keep running silently
//	say DELAY LINE...          print each LINE to stdout, DELAY apart, then
//	                           sleep forever
//
// Each writes its pid to $PATROL_PID if set and honours TermLogEnv.
func runHealth(cmd string, args []string) (int, bool) {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch cmd {
	case "http-health", "listen-after", "notify", "watchdog", "say":
	default:
		return 0, false
	}
	onTerm()
	if f := os.Getenv("PATROL_PID"); f != "" {
		WritePID(f, os.Getpid())
	}
	switch cmd {
	case "http-health":
		n, _ := strconv.Atoi(arg(1))
		var served atomic.Int64
		mux := http.NewServeMux()
		mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
			if served.Add(1) > int64(n) {
				http.Error(w, "unhealthy", http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		ln, err := net.Listen("tcp", "127.0.0.1:"+arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3, true
		}
		http.Serve(ln, mux)
		return 3, true
	case "listen-after":
		d, _ := time.ParseDuration(arg(0))
		time.Sleep(d)
		ln, err := net.Listen("tcp", "127.0.0.1:"+arg(1))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3, true
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				return 3, true
			}
			c.Close()
		}
	case "notify":
		d, _ := time.ParseDuration(arg(0))
		time.Sleep(d)
		for _, m := range args[1:] {
			if err := Notify(m); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 3, true
			}
		}
		select {}
	case "say":
		d, _ := time.ParseDuration(arg(0))
		for _, line := range args[1:] {
			time.Sleep(d)
			fmt.Println(line)
		}
		select {}
	case "watchdog":
		n, _ := strconv.Atoi(arg(0))
		every, _ := time.ParseDuration(arg(1))
		for range n {
			// Like sd_notify clients, it carries on when nobody listens
			// (a Patrol restarting).
			if err := Notify("WATCHDOG=1"); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
			time.Sleep(every)
		}
		fmt.Println("watchdog: silent now")
		select {}
	}
	return 2, true
}

// Notify sends one sd_notify datagram to $NOTIFY_SOCKET.
func Notify(msg string) error {
	c, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(msg))
	return err
}

// onTerm makes SIGTERM exit 0, and logs to TermLogEnv's file "ID armed
// NANOS" once it is caught and "ID term NANOS" when it arrives.
func onTerm() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	termLog("armed")
	go func() {
		<-ch
		termLog("term")
		fmt.Println("sigterm")
		syscall.Exit(0)
	}()
}

func termLog(event string) {
	if f := os.Getenv(TermLogEnv); f != "" {
		if out, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(out, "%s %s %d\n", os.Getenv("PATROL_ID"), event, time.Now().UnixNano())
			out.Close()
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// an app (and its probe) that must know its port before it starts.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
