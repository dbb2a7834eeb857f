// Package patrol is Patrol's embedding API: the daemon that `patrol run`
// runs, usable from Go programs. It assembles the packages of the module
// (desired, observed, reconcile, exec, api) into one supervisor; cmd/patrol
// is a thin command line over it.
package patrol

import (
	"runtime/debug"

	"github.com/patrolhq/patrol/desired"
)

// version is set at link time with
// -ldflags "-X github.com/patrolhq/patrol.version=v1.2.3".
var version string

// Version returns Patrol's version: the link-time version, else the module
// version from the build information, else "devel".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// LoadConfig loads and validates the config file at path: the same pipeline
// `patrol run` uses, minus starting anything. Its error lists every problem
// (see desired.Problems).
func LoadConfig(path string) (*desired.State, error) {
	return desired.Load(path)
}

// Problems flattens a config error into one line per problem, each
// "json.path: message".
func Problems(err error) []string { return desired.Problems(err) }
