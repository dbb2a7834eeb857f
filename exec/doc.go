// Package exec is the only package of Patrol that starts, signals and reaps
// processes, and the only one that imports os/exec, syscall and
// golang.org/x/sys/unix.
//
// A Runner starts processes in their own process groups (Start, and StartApp
// for an app: argv, working directory, environment and log files), makes
// Patrol a child subreaper and reaps every child (Run) as soon as the
// process's one waiter, a goroutine blocked in waitid(P_ALL, WNOWAIT), sees
// an exited child, and watches processes it did not start through pidfds
// waited on by Go's runtime poller (Watch). No OS thread is parked per
// process: one is, for all children.
// Exits are delivered as observed.Exit values through a callback; the loop
// owns every decision, including the graceful stop escalation (stop signal,
// timer, SIGKILL), for which this package only sends the signals
// (SignalGroup).
//
// Because the Runner reaps every child of the Patrol process, every child
// Patrol ever runs must be started through the Runner: exec.Cmd.Wait and
// os.Process.Wait would race the reaper for exit statuses.
//
// The package also reads what Linux tells about processes: pid files
// (ReadPIDFile), /proc/PID/stat (ProcStat) and the binary a process runs
// (VerifyBinary).
package exec
