// Package observed holds the actual state of every app and service: the
// running instance (pid, process start time, instance id, started, last
// seen), the facts of the last exit, backoff, pings and service status, and
// the history of closed instances. It is plain data, filled by the loop
// from events and read by reconcile.Plan.
package observed
