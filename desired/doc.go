// Package desired turns config.json into Patrol's desired state.
//
// Loading is one pipeline, shared by `patrol run`, `patrol validate`,
// `patrol plan` and the config watcher: read the file, decode it strictly
// (unknown keys, duplicate keys, wrong types and trailing data are errors,
// with a "did you mean" hint for near misses), apply defaults, validate
// every rule (validator/v10 struct tags from package schema plus the
// cross-field rules here), and normalise into an immutable State: ids
// lower-cased, paths absolute, durations typed, and a fingerprint per app
// and service that changes exactly when the entry's meaning changes.
//
// Every problem is reported, never just the first, each as
// "json.path: message" (for example "apps.web.binary: required"),
// aggregated with go-multierror.
//
// Paths are checked for form, not existence: a config is often validated in
// CI on another machine, so a missing binary or directory is a run-time
// error, shown in status, not a load error.
package desired
