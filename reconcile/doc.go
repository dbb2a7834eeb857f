// Package reconcile compares the desired state with the observed state and
// acts on the difference.
//
// Plan(desired, observed, now) is a pure function that returns the actions
// (start, stop, restart, update, adopt), each with its reason and changed
// fields. The loop is the one goroutine that owns all mutable state; child
// exits, config reloads, API requests and ticks only wake it, and each pass
// executes exactly what Plan returns.
package reconcile
