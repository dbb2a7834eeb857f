// Package exec is the only package that starts, signals and waits for
// processes or runs service commands: the child environment, log files,
// process groups, pidfds and the graceful stop escalation live here.
package exec
