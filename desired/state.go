package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// State is a loaded, validated config: Patrol's desired state. It is
// immutable; callers must not modify what its methods return (slices and
// maps included).
type State struct {
	path     string
	revision string
	// source is the SHA-256 of the bytes Load read (zero otherwise):
	// LoadChanged skips parsing a file that still has those bytes.
	source   [32]byte
	settings Settings
	apps     map[string]*App
	services map[string]*Service
	appIDs   []string
	svcIDs   []string
	// overrides are the runtime overrides layered on by WithOverrides.
	overrides map[Key]*Override
	// dependents maps an app id to the ids of the apps that depend on it
	// (derived: see Dependents).
	dependents map[string][]string
	// replicaSets are the apps with "replicas", by replica 0's id.
	replicaSets map[string]*replicaSet
	// scheduled are the ids of the apps with "schedule", sorted.
	scheduled []string
}

// Settings are the config's top-level settings, with defaults applied.
type Settings struct {
	TickEvery time.Duration
	// History is the number of closed instances kept per entry.
	History int
	// TimestampLayout is the Go layout of API and GUI timestamps.
	TimestampLayout string
	PingTimeout     time.Duration
	// ListenHTTP and ListenUDP are the addresses given to apps in
	// PATROL_HTTP and PATROL_UDP. nil means the address the server is bound
	// to, which is known only once it runs.
	ListenHTTP []string
	ListenUDP  []string
	HTTPListen string
	HTTPToken  string
	// HTTPProtectReads makes reads need HTTPToken too.
	HTTPProtectReads bool
	// HTTPTLSCert and HTTPTLSKey are absolute paths, or "" for plain HTTP.
	HTTPTLSCert string
	HTTPTLSKey  string
	UDPListen   string
	// InitdDirectory is where management 2 finds init scripts.
	InitdDirectory string
	// CgroupRoot is the configured cgroup v2 directory of the apps'
	// cgroups, relative to the unified hierarchy ("": under Patrol's own).
	CgroupRoot string
	// LogRetentionDays and LogRetentionBytes bound app log files; 0 is no
	// bound.
	LogRetentionDays  int
	LogRetentionBytes int64
	// LogRetentionInstances caps the instances whose log files each app
	// keeps; 0 is no cap.
	LogRetentionInstances int
	// KeyValue bounds every entry's key/value data.
	KeyValue KeyValueLimits
	// Hooks are the top-level default hooks (already merged into every
	// entry's own Hooks).
	Hooks Hooks
	X     json.RawMessage
}

// App is one app of the desired state, normalised: ids lower-cased, paths
// absolute and clean, durations typed, defaults applied.
type App struct {
	ID        string
	Keepalive schema.Keepalive
	Name      string
	// Binary, WorkingDirectory, LogDirectory and PIDPath are absolute.
	Binary           string
	WorkingDirectory string
	LogDirectory     string
	PIDPath          string // "" when not set
	PIDVerify        bool
	Disabled         bool
	KeyValue         map[string]any
	KeyValueClear    bool
	Secret           string
	ExecuteTimeout   time.Duration // 0: no limit
	Args             []string
	Env              []string
	EnvParent        bool
	// EnvFile is absolute ("" when not set); it is read at each start.
	EnvFile string
	// User, Group and SupplementaryGroups are as written (names or ids),
	// resolved at each start; SupplementaryGroups is nil when not set
	// (the user's groups) and empty when set to none.
	User                string
	Group               string
	SupplementaryGroups []string
	Umask               string // three octal digits; "": Patrol's own
	Rlimits             []Rlimit
	// Limits are the app's cgroup limits (memory-max, memory-high,
	// cpu-max, pids-max).
	Limits Limits
	// ReplicaOf is the id of the app this entry is a replica of (replica
	// 0's own id) when the app has replicas, else ""; Replica is its
	// index, Replicas their number; Rolling restarts them one at a time.
	ReplicaOf string
	Replica   int
	Replicas  int
	Rolling   bool
	// Schedule makes the app a job run at its times (nil: kept running).
	Schedule      *Schedule
	StdMerge      bool
	StopSignal    string // canonical, such as "SIGTERM"
	StopTimeout   time.Duration
	RestartPolicy schema.RestartPolicy
	Backoff       Backoff
	StartTimeout  time.Duration
	DependsOn     []Dependency // sorted by id
	// Startup, Liveness and Readiness are the app's probes (nil: none).
	Startup   *Probe
	Liveness  *Probe
	Readiness *Probe
	// Ready is where readiness comes from besides a readiness probe;
	// ReadyLine the line pattern of ready "log-line".
	Ready     schema.ReadyMode
	ReadyLine string
	readyRE   *regexp.Regexp
	// Watchdog restarts an instance that sends no WATCHDOG=1 for this
	// long (0: none).
	Watchdog time.Duration
	Hooks    Hooks
	X        json.RawMessage
	// ListenHTTP and ListenUDP are the top-level listen-http and
	// listen-udp as given to a keepalive 3 or 4 app (nil for other apps,
	// and when the bound address is used): part of the app's config, so
	// that changing where it must ping restarts it.
	ListenHTTP []string
	ListenUDP  []string

	// logsShared says other apps of the config have the same LogDirectory
	// (derived, not part of the fingerprint).
	logsShared  bool
	fingerprint string
}

// Backoff is an app's crash-loop backoff.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	ResetAfter time.Duration
}

// Hooks are an entry's lifecycle hook commands, after top-level defaults
// were merged in. A nil command means no hook for that event.
type Hooks struct {
	OnStart   []string
	OnExit    []string
	OnCrash   []string
	OnBackoff []string
	OnStop    []string
	// OnReady and OnUnhealthy run on health transitions.
	OnReady     []string
	OnUnhealthy []string
	Timeout     time.Duration
}

// Service is one service of the desired state, normalised.
type Service struct {
	ID            string
	Name          string
	Service       string
	Start         Command
	Status        Command
	Stop          Command
	Restart       Command
	Disabled      bool
	KeyValue      map[string]any
	KeyValueClear bool
	Secret        string
	Hooks         Hooks
	X             json.RawMessage

	fingerprint string
}

// Command is how one service action is run.
type Command struct {
	Method schema.Management
	Verb   string
	// IgnoreExitCodes are non-zero exit codes that count as success, sorted.
	IgnoreExitCodes []int
}

// Path is the absolute path of the config file ("" when the state was parsed
// from bytes).
func (s *State) Path() string { return s.path }

// Revision is a hash of the normalised config: the same for configs that
// differ only in key order, whitespace or spelled-out defaults.
func (s *State) Revision() string { return s.revision }

// Settings returns the top-level settings.
func (s *State) Settings() Settings { return s.settings }

// App returns the app with the given id (any case).
func (s *State) App(id string) (*App, bool) {
	a, ok := s.apps[strings.ToLower(id)]
	return a, ok
}

// Apps returns the apps, sorted by id.
func (s *State) Apps() []*App {
	out := make([]*App, len(s.appIDs))
	for i, id := range s.appIDs {
		out[i] = s.apps[id]
	}
	return out
}

// Service returns the service with the given id (any case).
func (s *State) Service(id string) (*Service, bool) {
	v, ok := s.services[strings.ToLower(id)]
	return v, ok
}

// Services returns the services, sorted by id.
func (s *State) Services() []*Service {
	out := make([]*Service, len(s.svcIDs))
	for i, id := range s.svcIDs {
		out[i] = s.services[id]
	}
	return out
}

// Scheduled returns the ids of the apps with "schedule", sorted.
func (s *State) Scheduled() []string { return s.scheduled }

// Dependents returns the ids of the apps that depend on app id, sorted
// (nil when none does).
func (s *State) Dependents(id string) []string { return s.dependents[strings.ToLower(id)] }

// Fingerprint identifies the app's whole normalised config: two apps have
// the same fingerprint exactly when nothing about them differs.
func (a *App) Fingerprint() string { return a.fingerprint }

// Shape fingerprints only the keys whose change restarts a running
// instance: two configs with the same Shape run the same process, and
// differ at most in what is applied in place. It is computed when asked
// (for the saved state of a started or adopted instance), not at each
// load of the config.
func (a *App) Shape() string {
	h := sha256.New()
	for _, f := range appFields {
		if f.restart {
			b, err := json.Marshal(f.get(a))
			if err != nil {
				panic("desired: shape: " + err.Error()) // values from JSON always encode
			}
			h.Write([]byte(f.key))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// LogsShared reports whether other apps of its config write their logs to
// a's LogDirectory too.
func (a *App) LogsShared() bool { return a.logsShared }

// Fingerprint identifies the service's whole normalised config.
func (s *Service) Fingerprint() string { return s.fingerprint }

// fingerprint hashes the JSON encoding of v: struct fields in declaration
// order and map keys sorted, so it depends on the content only.
func fingerprint(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Every value here came from JSON; it cannot fail to encode.
		panic("desired: fingerprint: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// revisionOf hashes the whole normalised state.
func revisionOf(s *State) string {
	h := sha256.New()
	b, _ := json.Marshal(s.settings)
	h.Write(b)
	for _, id := range s.appIDs {
		h.Write([]byte("\x00app\x00" + id + "\x00" + s.apps[id].fingerprint))
	}
	for _, id := range s.svcIDs {
		h.Write([]byte("\x00service\x00" + id + "\x00" + s.services[id].fingerprint))
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func newState(path string, settings Settings, apps map[string]*App, services map[string]*Service) *State {
	s := &State{
		path:     path,
		settings: settings,
		apps:     apps,
		services: services,
		appIDs:   slices.Sorted(maps.Keys(apps)),
		svcIDs:   slices.Sorted(maps.Keys(services)),
	}
	byLogDir := make(map[string]int, len(apps))
	for _, a := range apps {
		a.fingerprint = fingerprint(a)
		byLogDir[a.LogDirectory]++
	}
	for _, id := range s.appIDs {
		if apps[id].Schedule != nil {
			s.scheduled = append(s.scheduled, id)
		}
	}
	for _, a := range apps {
		a.logsShared = byLogDir[a.LogDirectory] > 1
		for _, dep := range a.DependsOn {
			if s.dependents == nil {
				s.dependents = map[string][]string{}
			}
			s.dependents[dep.ID] = append(s.dependents[dep.ID], a.ID)
		}
	}
	for _, ids := range s.dependents {
		slices.Sort(ids)
	}
	for _, v := range services {
		v.fingerprint = fingerprint(v)
	}
	s.revision = revisionOf(s)
	return s
}
