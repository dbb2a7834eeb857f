package main

import (
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// runHelper is the chaos binary re-executed as an app (`patrol-chaos
// helper ROLE ARGS...`):
//
//	sleep                 runs until it is signalled
//	crash MIN MAX         runs MIN to MAX milliseconds, then exits 3, or
//	                      one time in four kills itself with SIGKILL
//	daemonize PIDFILE     starts a daemon (a new session) that writes its
//	                      pid to PIDFILE and sleeps, and exits 0
//	daemon PIDFILE        that daemon
func runHelper(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: patrol-chaos helper sleep|crash MIN MAX|daemonize PIDFILE")
		return 2
	}
	switch args[0] {
	case "sleep":
		select {}
	case "crash":
		if len(args) != 3 {
			return 2
		}
		lo, _ := strconv.Atoi(args[1])
		hi, _ := strconv.Atoi(args[2])
		time.Sleep(time.Duration(lo+mrand.IntN(max(hi-lo, 1))) * time.Millisecond)
		if mrand.IntN(4) == 0 {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		return 3
	case "daemonize":
		if len(args) != 2 {
			return 2
		}
		self, err := os.Executable()
		if err != nil {
			return 1
		}
		cmd := exec.Command(self, "helper", "daemon", args[1])
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0 // the daemon is re-parented to Patrol, a subreaper
	case "daemon":
		if len(args) != 2 {
			return 2
		}
		tmp := args[1] + ".tmp"
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return 1
		}
		if err := os.Rename(tmp, args[1]); err != nil {
			return 1
		}
		select {}
	}
	fmt.Fprintf(os.Stderr, "patrol-chaos helper: unknown role %q\n", args[0])
	return 2
}
