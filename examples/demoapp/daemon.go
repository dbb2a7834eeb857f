package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// launchTimeout is how long the mode 2 launcher waits for the daemon to write
// its pid file.
const launchTimeout = 5 * time.Second

// launch is the launcher half of mode 2. It re-executes the program with the
// same arguments in a new session, waits until the pid file names the new
// process, and returns the launcher's exit code.
func launch(cfg config) int {
	if cfg.pidPath == "" {
		fmt.Fprintln(os.Stderr, "demoapp: PATROL_PID is not set; keepalive mode 2 needs a pid file")
		return 1
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		fmt.Fprintf(os.Stderr, "demoapp: %v\n", err)
		return 1
	}
	defer devNull.Close()

	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, daemonEnv+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, daemonEnv+"=1")

	// /proc/self/exe works even if the binary was replaced or removed after
	// the launcher started.
	proc, err := os.StartProcess("/proc/self/exe", os.Args, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{devNull, os.Stdout, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "demoapp: starting daemon: %v\n", err)
		return 1
	}

	exited := make(chan string, 1)
	go func() {
		state, err := proc.Wait()
		if err != nil {
			exited <- err.Error()
			return
		}
		exited <- state.String()
	}()

	want := strconv.Itoa(proc.Pid)
	deadline := time.NewTimer(launchTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-poll.C:
			if got, _ := readPIDFile(cfg.pidPath); got == want {
				fmt.Printf("demoapp: daemon started with pid %s\n", want)
				return 0
			}
		case status := <-exited:
			fmt.Fprintf(os.Stderr, "demoapp: daemon exited before writing %s: %s\n", cfg.pidPath, status)
			return 1
		case <-deadline.C:
			// Do not leave a daemon behind that the supervisor does not know of.
			_ = proc.Signal(syscall.SIGKILL)
			fmt.Fprintf(os.Stderr, "demoapp: daemon pid %s did not appear in %s within %v\n", want, cfg.pidPath, launchTimeout)
			return 1
		}
	}
}

// readPIDFile returns the trimmed contents of the pid file at path.
func readPIDFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// writePIDFile atomically replaces the pid file at path with pid and a
// newline: it writes a temporary file in the same directory and renames it.
func writePIDFile(path string, pid int) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing pid file: %w", err)
	}
	tmp := f.Name()
	_, err = fmt.Fprintf(f, "%d\n", pid)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing pid file: %w", err)
	}
	return nil
}

// removePIDFile removes the pid file at path if it still holds pid, so that a
// pid file written by a newer instance is left alone.
func removePIDFile(path string, pid int) {
	got, err := readPIDFile(path)
	if err != nil || got != strconv.Itoa(pid) {
		return
	}
	if err := os.Remove(path); err != nil {
		fmt.Fprintf(os.Stderr, "demoapp: removing pid file: %v\n", err)
	}
}
