package schema

import "encoding/json"

// Config is the whole config.json document. Its keys are the original
// Patrol's, plus optional new keys; unknown keys are errors.
type Config struct {
	// Schema is the URL of this JSON Schema, for editors; Patrol ignores it.
	Schema string `json:"$schema,omitempty"`

	// Apps maps an app id to the app. Ids are 1-63 characters of A-Z, a-z,
	// 0-9 and "-", not starting or ending with "-", unique ignoring case, and
	// lower-cased by Patrol (the API, PATROL_ID and the GUI use the lower-case
	// form).
	Apps map[string]*App `json:"apps,omitempty" validate:"-"`

	// Services maps a service id to an operating-system service that Patrol
	// keeps running. Ids follow the same rules as app ids, in their own
	// namespace.
	Services map[string]*Service `json:"services,omitempty" validate:"-"`

	// TickEvery is how often, in seconds, Patrol re-checks every app and
	// service even when nothing happened (service status, pid files, ping
	// timeouts). Exits of apps are seen at once, not at the next tick.
	// 0 means the default.
	TickEvery int `json:"tick-every,omitempty" validate:"rng=1:120" default:"15"`

	// History is how many closed instances Patrol keeps per app and service,
	// oldest dropped first. 0 means the default.
	History int `json:"history,omitempty" validate:"rng=5:1000" default:"100"`

	// JSONTimestamp is the Go time layout used for timestamps in the API and
	// the GUI (for example "2006-01-02T15:04:05Z07:00"), or the name of one of
	// Go's layout constants ("RFC3339", "RFC3339Nano", "RFC1123Z", "RFC1123",
	// "RFC822Z", "RFC850", "UnixDate", "ANSIC", "Kitchen", "DateTime",
	// "Stamp", ...). The default is RFC1123Z, as the original Patrol binary
	// used.
	JSONTimestamp string `json:"json-timestamp,omitempty" validate:"layout" default:"RFC1123Z"`

	// PingTimeout is how long, in seconds, a keepalive 3 (HTTP) or 4 (UDP)
	// app counts as running after its last ping. 0 means the default.
	PingTimeout int `json:"ping-timeout,omitempty" validate:"rng=1:180" default:"30"`

	// ListenHTTP lists the HTTP addresses (host:port) given to apps in
	// PATROL_HTTP; keepalive 3 apps ping one of them. Absent means the
	// address Patrol's HTTP server is bound to (http.listen, or --http).
	ListenHTTP []string `json:"listen-http,omitempty" validate:"dive,hostport=advertise"`

	// ListenUDP lists the UDP addresses (host:port) given to apps in
	// PATROL_UDP; keepalive 4 apps ping one of them. Absent means the
	// address Patrol's UDP server is bound to (udp.listen, or --udp).
	ListenUDP []string `json:"listen-udp,omitempty" validate:"dive,hostport=advertise"`

	// HTTP configures Patrol's HTTP server: the API, the status JSON and the
	// web GUI.
	HTTP *HTTP `json:"http,omitempty"`

	// UDP configures Patrol's UDP API server.
	UDP *UDP `json:"udp,omitempty"`

	// InitdDirectory is the directory of init scripts used by services with
	// management 2: absolute, or relative to the directory holding
	// config.json. Must be a clean path.
	InitdDirectory string `json:"initd-directory,omitempty" validate:"nonul,cleanpath" default:"/etc/init.d"`

	// CgroupRoot is the cgroup v2 directory, relative to the unified
	// hierarchy's mount ("/patrol.service/apps"), under which Patrol puts
	// a cgroup per app instance; Patrol creates it and enables the memory,
	// cpu and pids controllers on the way when it may. Default: a
	// directory under Patrol's own cgroup. Read at Patrol's start: a
	// change takes effect at the next start.
	CgroupRoot string `json:"cgroup-root,omitempty" validate:"omitempty,nonul,cleanpath"`

	// LogRetention bounds the log files Patrol keeps for its apps.
	LogRetention *LogRetention `json:"log-retention,omitempty"`

	// KeyValueLimits bound the key/value data of each app and service: the
	// config's keyvalue, every API write (a write whose result would break
	// a limit is refused whole) and what a restart reads back from the saved
	// state (trimmed, with a log line).
	KeyValueLimits *KeyValueLimits `json:"keyvalue-limits,omitempty"`

	// Hooks are the default lifecycle hooks of every app and service; an
	// entry's own hooks replace these event by event.
	Hooks *Hooks `json:"hooks,omitempty"`

	// X is free-form data kept with the config and never interpreted.
	X json.RawMessage `json:"x,omitempty"`
}

// HTTP is the "http" block of the config.
type HTTP struct {
	// Listen is the address (host:port) the HTTP server binds to. Port 0
	// picks a free port; the bound address is logged and shown in status.
	// The --http flag overrides it.
	Listen string `json:"listen,omitempty" validate:"hostport=bind" default:"127.0.0.1:8421"`

	// Token is the token that, when set, every API request that writes (a
	// toggle, clear, ttl or key/value write) and POST /api/reload must
	// carry: over HTTP as "Authorization: Bearer TOKEN" (or a "token" field
	// in the POST body), over UDP as the datagram's "token" field. Pings
	// and reads need none, on either transport. 1-256 characters of A-Z,
	// a-z, 0-9 and "-._~+/", optionally ending in "=" padding.
	Token string `json:"token,omitempty" validate:"omitempty,token"`

	// ProtectReads, with token set, makes reads need the token too: the
	// status, the API's reads, events, logs, plans and metrics (the web
	// GUI asks for the token). Without it reads stay open, as in the
	// original Patrol; /healthz is always open.
	ProtectReads bool `json:"protect-reads,omitempty"`

	// TLSCert is a PEM certificate file (absolute, or relative to the
	// directory holding config.json); with TLSKey, the HTTP server speaks
	// HTTPS only. Both or neither. The files are read again when they
	// change (certificate renewal needs no restart).
	TLSCert string `json:"tls-cert,omitempty" validate:"omitempty,nonul,cleanpath"`

	// TLSKey is the PEM private key file of TLSCert.
	TLSKey string `json:"tls-key,omitempty" validate:"omitempty,nonul,cleanpath"`

	// X is free-form data, never interpreted.
	X json.RawMessage `json:"x,omitempty"`
}

// UDP is the "udp" block of the config.
type UDP struct {
	// Listen is the address (host:port) the UDP API binds to. Port 0 picks a
	// free port. The --udp flag overrides it.
	Listen string `json:"listen,omitempty" validate:"hostport=bind" default:"127.0.0.1:1248"`

	// X is free-form data, never interpreted.
	X json.RawMessage `json:"x,omitempty"`
}

// LogRetention is the "log-retention" block of the config.
type LogRetention struct {
	// Days is how many days of app log files are kept; 0 keeps them
	// regardless of age.
	Days *int `json:"days,omitempty" validate:"rng=0:36500" default:"14"`

	// MaxTotalMB caps the total size of app log files, in MiB, oldest pruned
	// first; 0 means no size cap. Files of running instances are never
	// removed.
	MaxTotalMB *int `json:"max-total-mb,omitempty" validate:"rng=0:16777216" default:"1024"`

	// MaxInstances caps how many instances' log files each app keeps
	// (one or two files per start), newest kept: a start over the cap
	// removes the oldest instances' files at once, so a crash loop cannot
	// fill the disk with inodes; apps that share a log directory share this
	// cap in the hourly pass. Absent means the "history" setting (100 by
	// default); 0 means no count cap. Files of running instances are never
	// removed.
	MaxInstances *int `json:"max-instances,omitempty" validate:"omitempty,rng=0:1000000"`
}

// KeyValueLimits is the "keyvalue-limits" block of the config. The
// defaults keep the status readable: without limits, one request could
// store a value nested thousands of levels deep, whose indented status
// grows with the square of its depth. A change applies to the next write
// and restarts nothing; data entries hold already is not rewritten.
type KeyValueLimits struct {
	// MaxDepth is how deeply an entry's key/value data may nest, the data
	// itself counting as one level: {"k": 1} is 1 deep, {"k": [1]} 2,
	// {"k": {"a": [1]}} 3. 0 means the default.
	MaxDepth int `json:"max-depth,omitempty" validate:"rng=1:64" default:"10"`

	// MaxBytes caps the size of an entry's key/value data encoded as
	// compact JSON, in bytes. History entries keep a copy each, so the
	// status of an entry can hold history times this. 0 means the default.
	MaxBytes int `json:"max-bytes,omitempty" validate:"rng=64:1048576" default:"16384"`

	// MaxKeys caps the number of keys at the top of an entry's key/value
	// data. 0 means the default.
	MaxKeys int `json:"max-keys,omitempty" validate:"rng=1:65536" default:"256"`
}

// App is one supervised process ("apps.<id>" in the config).
type App struct {
	// Keepalive is how Patrol knows the app is alive: 1 PID_PATROL (Patrol
	// starts the process and waits on it), 2 PID_APP (the app forks and
	// writes its pid to pid-path), 3 HTTP (the app pings the HTTP API),
	// 4 UDP (the app pings the UDP API).
	Keepalive Keepalive `json:"keepalive,omitempty" validate:"oneof=1 2 3 4" default:"1"`

	// Name is the display name, at most 255 bytes. Default: the app's id.
	Name string `json:"name,omitempty" validate:"maxbytes=255"`

	// Binary is the executable: an absolute path, or a path relative to
	// working-directory. It is run directly, with no shell and no PATH
	// lookup. Must be a clean path.
	Binary string `json:"binary" validate:"required,nonul,cleanpath"`

	// WorkingDirectory is the app's current directory: an absolute path, a
	// path starting with "~/" (the home directory of the user running
	// Patrol), or a path relative to the directory holding config.json.
	// Default: the directory holding config.json. Must be a clean path.
	WorkingDirectory string `json:"working-directory,omitempty" validate:"omitempty,nonul,workdir"`

	// LogDirectory is where the app's stdout and stderr files go, in
	// <log-directory>/<YYYY>/<month>/<day>/<unixnano>.stdout.log (and
	// .stderr.log, or one .stdmerge.log with std-merge); absolute or
	// relative to working-directory. Default: "logs/<id>". Must be a clean
	// path.
	LogDirectory string `json:"log-directory,omitempty" validate:"omitempty,nonul,cleanpath"`

	// PIDPath is the pid file, absolute or relative to working-directory.
	// Required for keepalive 2, where the app writes its current PID into
	// it; with any keepalive it is passed to the app as PATROL_PID. Must be
	// a clean path.
	PIDPath string `json:"pid-path,omitempty" validate:"omitempty,nonul,cleanpath"`

	// PIDVerify makes Patrol check that a pid read from pid-path or learned
	// from a ping belongs to binary (by /proc/PID/exe or argv[0]) before
	// trusting it.
	PIDVerify bool `json:"pid-verify,omitempty"`

	// Disabled keeps the app stopped until it is enabled (by the file or by
	// an API override).
	Disabled bool `json:"disabled,omitempty"`

	// KeyValue is the app's initial key/value data, readable and writable
	// through the API.
	KeyValue map[string]any `json:"keyvalue,omitempty"`

	// KeyValueClear empties the key/value data whenever an instance of the
	// app ends (after it is copied into the history entry).
	KeyValueClear bool `json:"keyvalue-clear,omitempty"`

	// Secret is a password that, when set, every API request changing the app
	// must carry (toggles, key/value, pings). At most 128 bytes.
	Secret string `json:"secret,omitempty" validate:"maxbytes=128"`

	// ExecuteTimeout is the maximum run time of one instance, in seconds;
	// when reached the instance is stopped gracefully (stop-signal, then
	// SIGKILL after stop-timeout). 0 means no limit.
	ExecuteTimeout int `json:"execute-timeout,omitempty" validate:"rng=0:31536000"`

	// Args are the arguments passed after the binary, exactly as written
	// (no shell, no quoting).
	Args []string `json:"args,omitempty" validate:"dive,nonul"`

	// Env lists "KEY=VALUE" entries for the app's environment. Patrol's own
	// PATROL_* variables are added after these and win on duplicates.
	Env []string `json:"env,omitempty" validate:"dive,envvar"`

	// EnvParent starts the app's environment from Patrol's own environment
	// (env and the PATROL_* variables are added after it). Without it the
	// app sees only env and the PATROL_* variables, as in the original
	// Patrol.
	EnvParent bool `json:"env-parent,omitempty"`

	// User runs the app as this user: a name or a numeric id, resolved at
	// each start (a user that does not exist fails the start, with the
	// reason). Default: Patrol's own user. Patrol must run as root to use
	// another user.
	User string `json:"user,omitempty" validate:"omitempty,account"`

	// Group is the app's primary group (a name or a numeric id). Default:
	// the user's primary group, or Patrol's own group without user.
	Group string `json:"group,omitempty" validate:"omitempty,account"`

	// SupplementaryGroups are the app's other groups (names or numeric
	// ids). Default: with user, the user's groups from the group database
	// (as login and systemd's User= give them); without user, Patrol's own.
	// An empty list means none.
	SupplementaryGroups []string `json:"supplementary-groups,omitempty" validate:"dive,account"`

	// Umask is the app's file mode creation mask, in octal ("027": files
	// it creates are not group-writable and not readable by others).
	// Default: Patrol's own.
	Umask string `json:"umask,omitempty" validate:"omitempty,umask"`

	// Rlimits sets resource limits (setrlimit) by name: as, core, cpu,
	// data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss,
	// rtprio, rttime, sigpending, stack. A value is "SOFT:HARD", or one
	// value for both, each a number or "infinity" (systemd's syntax; a
	// JSON number is a value for both): {"nofile": "1024:4096", "core": 0}.
	// Limits not named are Patrol's own.
	Rlimits map[string]RlimitSpec `json:"rlimits,omitempty"`

	// EnvFile is a file of KEY=VALUE lines (dotenv: blank lines and "#"
	// comments skipped, an optional "export ", values optionally in single
	// or double quotes) added to the environment after env, absolute or
	// relative to working-directory. It is read at each start: changing
	// the file is not a config change (it takes effect at the next start),
	// and a file that cannot be read fails the start.
	EnvFile string `json:"env-file,omitempty" validate:"omitempty,nonul,cleanpath"`

	// Replicas runs this many instances of the app, each an entry of its
	// own: replica 0 keeps the app's id, replica i is "ID-i" (so going from
	// 1 to N keeps the running one). Each has its own process group, log
	// files, history and pid, PATROL_REPLICA=i and PATROL_REPLICAS=N in its
	// environment (N as when it started), and "{replica}" replaced by i in
	// args, env, pid-path and log-directory. Changing it starts or stops
	// the highest replicas only. Default 1.
	Replicas int `json:"replicas,omitempty" validate:"omitempty,rng=1:1000"`

	// Rolling restarts replicas one at a time when a change needs a
	// restart: the next once the previous is running again and ready.
	// false restarts them all at once. Default true.
	Rolling *bool `json:"rolling,omitempty"`

	// Schedule runs the app as a job at the times of a cron expression
	// instead of keeping it running: five fields (minute, hour, day of
	// month, month, day of week, as in crontab(5)), or @yearly, @monthly,
	// @weekly, @daily, @hourly or "@every DURATION" (at least 1s), after
	// an optional "TZ=ZONE " (or use time-zone). A run that ends is not
	// restarted (restart-policy and backoff do not apply): its history
	// record says "completed" (exit code 0) or "failed", with the exit
	// code and the duration. Needs keepalive 1; execute-timeout bounds a
	// run. Changing it applies in place: the next run time is computed
	// again.
	Schedule string `json:"schedule,omitempty" validate:"omitempty,nonul"`

	// TimeZone is the IANA time zone of schedule, such as "Europe/Paris".
	// Default: the host's.
	TimeZone string `json:"time-zone,omitempty" validate:"omitempty,nonul"`

	// Concurrency says what happens when a run is due while the last one
	// still runs: "forbid" skips it (the skip is recorded in history),
	// "replace" stops the last run (gracefully, as a stop) and then starts
	// the new one, "allow" starts the new one alongside. Default "forbid".
	Concurrency Concurrency `json:"concurrency,omitempty" validate:"omitempty,oneof=forbid replace allow" default:"forbid"`

	// RunOnStart runs the job once when Patrol starts, or when the app is
	// added to the config, besides its schedule.
	RunOnStart bool `json:"run-on-start,omitempty"`

	// CatchUp runs the job once when Patrol starts if a run was due while
	// Patrol was down (after the last run the app's history records).
	CatchUp bool `json:"catch-up,omitempty"`

	// MemoryMax caps the memory the app's processes use together (its
	// cgroup's memory.max; memory.limit_in_bytes on cgroup v1): bytes, or
	// a number with K, M, G or T (powers of 1024: "512M"; "MiB" and "MB"
	// read the same), or "max" for none. Beyond it the kernel reclaims,
	// then kills a process of the app: the history says "oom-killed".
	// Changing it applies to the running instance in place.
	MemoryMax Quantity `json:"memory-max,omitempty" validate:"omitempty,bytesize"`

	// MemoryHigh throttles the app's processes and reclaims their memory
	// hard above this much (memory.high; cgroup v2 only: v1 has no such
	// limit). Same units as memory-max; at most memory-max. In place.
	MemoryHigh Quantity `json:"memory-high,omitempty" validate:"omitempty,bytesize"`

	// CPUMax caps the app's CPU time: "50%" of one CPU ("200%": two), or
	// "QUOTA PERIOD" in microseconds ("50000 100000", cgroup v2's cpu.max),
	// or "max" for none. In place.
	CPUMax Quantity `json:"cpu-max,omitempty" validate:"omitempty,cpumax"`

	// PIDsMax caps the app's processes and threads together (pids.max): a
	// fork beyond it fails in the app, nothing else on the host is
	// affected. A number (at least 1) or "max". In place.
	PIDsMax Quantity `json:"pids-max,omitempty" validate:"omitempty,pidsmax"`

	// StdMerge writes stdout and stderr into one .stdmerge.log file.
	StdMerge bool `json:"std-merge,omitempty"`

	// StopSignal is the signal sent to the app's process group to stop it
	// gracefully:
	// SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGABRT, SIGALRM,
	// SIGWINCH or SIGKILL ("SIG" may be left out). Apps written for the
	// original Patrol expect SIGUSR1.
	StopSignal string `json:"stop-signal,omitempty" validate:"signal" default:"SIGTERM"`

	// StopTimeout is how long, in seconds, Patrol waits after stop-signal
	// before it sends SIGKILL to the process group. 0 sends SIGKILL at once.
	StopTimeout *Seconds `json:"stop-timeout,omitempty" validate:"rng=0:3600" default:"10"`

	// RestartPolicy says when an instance that ended by itself is started
	// again: "always", "on-failure" (only after a non-zero exit code or a
	// death by signal) or "never".
	RestartPolicy RestartPolicy `json:"restart-policy,omitempty" validate:"oneof=always on-failure never" default:"always"`

	// Backoff spaces out restarts of a crash-looping app.
	Backoff *Backoff `json:"backoff,omitempty"`

	// StartTimeout is how long, in seconds, a keepalive 2 app has after it
	// is started to write its pid file before it counts as failed.
	StartTimeout *Seconds `json:"start-timeout,omitempty" validate:"rng=0.1:3600" default:"10"`

	// DependsOn lists the apps this app waits for before it starts, each an
	// app id (waits until it is started) or an object {"app", "condition",
	// "restart"} (see Dependency). Start order follows the graph, shutdown
	// stops dependents first; cycles are errors.
	DependsOn []Dependency `json:"depends-on,omitempty" validate:"dive"`

	// Liveness is a probe whose failure (failure-threshold times in a row)
	// restarts the app gracefully, with reason liveness-failed; restarts
	// count for backoff like crashes. Changing it applies in place.
	Liveness *Probe `json:"liveness,omitempty" block:"optional"`

	// Readiness is a probe that decides whether the app is ready (status
	// "ready", dependents waiting for "ready"); it keeps running, so
	// readiness can be lost and regained. Changing it applies in place.
	Readiness *Probe `json:"readiness,omitempty" block:"optional"`

	// Startup is a probe that must pass before liveness and readiness
	// probes run; its failure restarts the app with reason
	// startup-failed. Changing it applies in place.
	Startup *Probe `json:"startup,omitempty" block:"optional"`

	// Ready "notify" makes the app ready only once it sends READY=1 to the
	// unix datagram socket named in its NOTIFY_SOCKET (systemd's
	// sd_notify protocol; STATUS=, STOPPING=, RELOADING=, WATCHDOG= and
	// MAINPID= are understood too). Only the instance's own processes may
	// send.
	// "log-line" makes it ready once it writes a line matching
	// ready-line to its stdout or stderr log file.
	Ready ReadyMode `json:"ready,omitempty" validate:"omitempty,oneof=notify log-line"`

	// ReadyLine is the regular expression (RE2 syntax, matched against
	// each line without its newline) of the line that makes an app with
	// ready "log-line" ready. Changing it applies in place, to an instance
	// not ready yet too. At most 1024 bytes.
	ReadyLine string `json:"ready-line,omitempty" validate:"maxbytes=1024"`

	// Watchdog, in seconds, restarts the app (reason watchdog) when it
	// goes that long without sending WATCHDOG=1 to its NOTIFY_SOCKET
	// (given to the app with WATCHDOG_USEC). 0 means no watchdog.
	Watchdog Seconds `json:"watchdog,omitempty" validate:"rng=0:86400"`

	// Hooks are commands run on the app's lifecycle events; each event
	// given here replaces the top-level default for that event.
	Hooks *Hooks `json:"hooks,omitempty"`

	// X is free-form data, never interpreted.
	X json.RawMessage `json:"x,omitempty"`
}

// Quantity is a limit written as a JSON number or a string ("512M",
// "50%", "max").
type Quantity string

// RlimitSpec is one resource limit of an app: "SOFT:HARD" or one value
// for both, each a non-negative number or "infinity" (or "unlimited").
type RlimitSpec string

// Backoff is the "backoff" block of an app. The first restart after an
// instance that stayed up at least reset-after seconds is immediate; each
// further crash of a shorter-lived instance waits initial seconds, doubling
// each time up to max.
type Backoff struct {
	// Initial is the first delay, in seconds (fractions allowed).
	Initial *Seconds `json:"initial,omitempty" validate:"rng=0.01:86400" default:"1"`

	// Max caps the delay, in seconds; it must not be less than initial.
	Max *Seconds `json:"max,omitempty" validate:"rng=0.01:86400" default:"60"`

	// ResetAfter is how long, in seconds, an instance must stay up for the
	// next restart to be immediate and the delay to start again from
	// initial.
	ResetAfter *Seconds `json:"reset-after,omitempty" validate:"rng=0:86400" default:"60"`
}

// Hooks are commands Patrol runs on lifecycle events, each an argv list
// (no shell): the first element is an absolute path or a command name
// looked up in Patrol's PATH. They run with PATROL_EVENT, PATROL_ID,
// PATROL_GROUP, PATROL_PID, PATROL_EXIT_CODE, PATROL_REASON and
// PATROL_INSTANCE_ID in their environment; a failing hook never affects the
// entry.
type Hooks struct {
	// OnStart runs after an instance started.
	OnStart []string `json:"on-start,omitempty" validate:"omitempty,argv"`

	// OnExit runs after an instance ended, for any reason.
	OnExit []string `json:"on-exit,omitempty" validate:"omitempty,argv"`

	// OnCrash runs after an instance ended unexpectedly (not stopped by
	// Patrol).
	OnCrash []string `json:"on-crash,omitempty" validate:"omitempty,argv"`

	// OnBackoff runs when a restart is delayed by backoff.
	OnBackoff []string `json:"on-backoff,omitempty" validate:"omitempty,argv"`

	// OnStop runs after Patrol stopped an instance (disable, config change,
	// restart, shutdown).
	OnStop []string `json:"on-stop,omitempty" validate:"omitempty,argv"`

	// OnReady runs when an instance becomes ready (readiness passed, or
	// READY=1), also after it was unready.
	OnReady []string `json:"on-ready,omitempty" validate:"omitempty,argv"`

	// OnUnhealthy runs when an instance turns unready, or fails its
	// liveness, startup probe or watchdog.
	OnUnhealthy []string `json:"on-unhealthy,omitempty" validate:"omitempty,argv"`

	// Timeout is how long, in seconds, a hook may run before it is killed.
	Timeout *Seconds `json:"timeout,omitempty" validate:"rng=0.1:3600" default:"30"`
}

// Service is one operating-system service that Patrol keeps running
// ("services.<id>" in the config).
type Service struct {
	// Management is how the service is controlled: 1 "service NAME VERB",
	// 2 "<initd-directory>/NAME VERB", 3 "systemctl VERB NAME". 0 (or
	// absent) means each action names its own method with
	// management-start, -status, -stop and -restart, which are then all
	// required; with management set they must be absent.
	Management Management `json:"management,omitempty" validate:"omitempty,oneof=1 2 3"`

	// ManagementStart is the method of the start action when management is 0.
	ManagementStart Management `json:"management-start,omitempty" validate:"omitempty,oneof=1 2 3"`

	// ManagementStatus is the method of the status action when management is 0.
	ManagementStatus Management `json:"management-status,omitempty" validate:"omitempty,oneof=1 2 3"`

	// ManagementStop is the method of the stop action when management is 0.
	ManagementStop Management `json:"management-stop,omitempty" validate:"omitempty,oneof=1 2 3"`

	// ManagementRestart is the method of the restart action when management is 0.
	ManagementRestart Management `json:"management-restart,omitempty" validate:"omitempty,oneof=1 2 3"`

	// ManagementStartParameter replaces the verb "start".
	ManagementStartParameter string `json:"management-start-parameter,omitempty" validate:"omitempty,verb"`

	// ManagementStatusParameter replaces the verb "status".
	ManagementStatusParameter string `json:"management-status-parameter,omitempty" validate:"omitempty,verb"`

	// ManagementStopParameter replaces the verb "stop".
	ManagementStopParameter string `json:"management-stop-parameter,omitempty" validate:"omitempty,verb"`

	// ManagementRestartParameter replaces the verb "restart" (for example
	// "force-reload").
	ManagementRestartParameter string `json:"management-restart-parameter,omitempty" validate:"omitempty,verb"`

	// Name is the display name, at most 255 bytes. Default: the service's id.
	Name string `json:"name,omitempty" validate:"maxbytes=255"`

	// Service is the service, unit or init script name, at most 63 bytes of
	// A-Z, a-z, 0-9 and "_.:@-", not starting with "-" or "." (so it can
	// never reach outside initd-directory). Default: the service's id.
	Service string `json:"service,omitempty" validate:"omitempty,servicename"`

	// IgnoreExitCodes lists non-zero exit codes that count as success for all
	// four actions (the original Patrol README's shorthand). 1-255, no
	// duplicates.
	IgnoreExitCodes []int `json:"ignore-exit-codes,omitempty" validate:"exitcodes"`

	// IgnoreExitCodesStart lists non-zero exit codes of start that count as
	// success.
	IgnoreExitCodesStart []int `json:"ignore-exit-codes-start,omitempty" validate:"exitcodes"`

	// IgnoreExitCodesStatus lists non-zero exit codes of status that count as
	// running. Beware: most init scripts exit 3 for "stopped".
	IgnoreExitCodesStatus []int `json:"ignore-exit-codes-status,omitempty" validate:"exitcodes"`

	// IgnoreExitCodesStop lists non-zero exit codes of stop that count as
	// success.
	IgnoreExitCodesStop []int `json:"ignore-exit-codes-stop,omitempty" validate:"exitcodes"`

	// IgnoreExitCodesRestart lists non-zero exit codes of restart that count
	// as success.
	IgnoreExitCodesRestart []int `json:"ignore-exit-codes-restart,omitempty" validate:"exitcodes"`

	// Disabled keeps the service stopped until it is enabled.
	Disabled bool `json:"disabled,omitempty"`

	// KeyValue is the service's initial key/value data.
	KeyValue map[string]any `json:"keyvalue,omitempty"`

	// KeyValueClear empties the key/value data whenever an instance of the
	// service ends.
	KeyValueClear bool `json:"keyvalue-clear,omitempty"`

	// Secret is a password that, when set, every API request changing the
	// service must carry. At most 128 bytes.
	Secret string `json:"secret,omitempty" validate:"maxbytes=128"`

	// Hooks are commands run on the service's lifecycle events.
	Hooks *Hooks `json:"hooks,omitempty"`

	// X is free-form data, never interpreted.
	X json.RawMessage `json:"x,omitempty"`
}

// Seconds is a duration in seconds; fractions are allowed.
type Seconds float64

// Ptr returns a pointer to s, for building configs in code.
func (s Seconds) Ptr() *Seconds { return &s }
