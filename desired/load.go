package desired

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/patrolhq/patrol/schema"
)

// Options control how a config is turned into a desired state.
type Options struct {
	// Dir is the directory that relative working-directories are resolved
	// against: the directory holding the config file. Load sets it; for
	// Parse, empty means the current directory.
	Dir string
	// Home returns the directory "~/" stands for. Default: os.UserHomeDir.
	Home func() (string, error)
}

// Load reads, decodes, validates and normalises the config file at path.
// It is the one code path of `patrol run`, `patrol validate`, `patrol plan`
// and the watcher. On failure the error lists every problem (see Problems).
func Load(path string) (*State, error) { return LoadChanged(path, nil) }

// LoadChanged is Load for a reload: when the file at path holds the very
// bytes prev was loaded from (same path), it returns prev itself without
// parsing. A config's meaning depends only on its bytes, its directory and
// the home directory, so the result is the one Load would give; a reload
// of an unchanged file (a touch, the re-read after a watch is set up, a
// SIGHUP) costs a read and a hash instead of a parse and a validation
// (16 ms for 1,000 apps). A nil prev always parses.
func LoadChanged(path string, prev *State) (*State, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config path: %w", err)
	}
	data, err := ReadFile(abs)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	if prev != nil && prev.path == abs && prev.source == sum {
		return prev, nil
	}
	st, err := Parse(data, Options{Dir: filepath.Dir(abs)})
	if err != nil {
		return nil, err
	}
	st.path, st.source = abs, sum
	return st, nil
}

// ReadFile reads a config file, refusing files larger than MaxConfigSize
// and things that are not regular files.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read config: %s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("read config: larger than %d MiB", MaxConfigSize>>20)
	}
	return data, nil
}

// Parse decodes, validates and normalises config bytes. Unknown keys,
// duplicate keys, wrong types and every rule violation are all reported,
// each with its JSON path; the error is a *multierror.Error of
// *FieldError.
func Parse(data []byte, opts Options) (*State, error) {
	cfg, err := Decode(data)
	if err != nil {
		return nil, err
	}
	return fromConfig(cfg, opts, &problems{})
}

// Decode strictly decodes config bytes into the wire type, with defaults
// applied and every rule checked, without normalising it.
func Decode(data []byte) (*schema.Config, error) {
	errs := &problems{}
	cfg, err := decodeConfig(data, errs)
	if err != nil {
		return nil, err
	}
	check(cfg, errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// FromConfig validates and normalises a config built in code (the embedding
// API's path), with the same rules as Parse.
func FromConfig(c *schema.Config, opts Options) (*State, error) {
	// Round-trip through JSON so that a config built in code gets exactly
	// the checks and normalisation a file gets, and the caller's value is
	// never shared with the state.
	data, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return Parse(data, opts)
}

func decodeConfig(data []byte, errs *problems) (*schema.Config, error) {
	if len(data) > MaxConfigSize {
		return nil, single("", fmt.Sprintf("config is larger than %d MiB", MaxConfigSize>>20))
	}
	root, err := parse(data, errs)
	if err != nil {
		return nil, single("", err.Error())
	}
	if root.kind != kindObject {
		return nil, single("", "config must be a JSON object, got "+kindNames[root.kind])
	}
	cfg := &schema.Config{}
	(&decoder{errs: errs}).decode(root, reflect.ValueOf(cfg).Elem(), "")
	inheritHooks(cfg)
	schema.ApplyDefaults(cfg)
	return cfg, nil
}

func single(path, msg string) error {
	return &multierror.Error{Errors: []error{&FieldError{Path: path, Msg: msg}}, ErrorFormat: listFormat}
}

// inheritHooks gives every entry the top-level hooks for the events it does
// not name itself. It runs before defaults, so that an entry without its
// own timeout inherits the top-level one.
func inheritHooks(c *schema.Config) {
	top := c.Hooks
	if top == nil {
		return
	}
	merge := func(h *schema.Hooks) *schema.Hooks {
		out := *top
		if h != nil {
			out = *h
			if out.OnStart == nil {
				out.OnStart = top.OnStart
			}
			if out.OnExit == nil {
				out.OnExit = top.OnExit
			}
			if out.OnCrash == nil {
				out.OnCrash = top.OnCrash
			}
			if out.OnBackoff == nil {
				out.OnBackoff = top.OnBackoff
			}
			if out.OnStop == nil {
				out.OnStop = top.OnStop
			}
			if out.OnReady == nil {
				out.OnReady = top.OnReady
			}
			if out.OnUnhealthy == nil {
				out.OnUnhealthy = top.OnUnhealthy
			}
			if out.Timeout == nil {
				out.Timeout = top.Timeout
			}
		}
		return &out
	}
	for _, a := range c.Apps {
		if a != nil {
			a.Hooks = merge(a.Hooks)
		}
	}
	for _, s := range c.Services {
		if s != nil {
			s.Hooks = merge(s.Hooks)
		}
	}
}

// kvLimits is the keyvalue-limits block, defaulted, as KeyValueLimits.
func kvLimits(l *schema.KeyValueLimits) KeyValueLimits {
	return KeyValueLimits{MaxDepth: l.MaxDepth, MaxBytes: l.MaxBytes, MaxKeys: l.MaxKeys}
}

// fromConfig normalises a decoded, defaulted config into a State.
func fromConfig(c *schema.Config, opts Options, errs *problems) (*State, error) {
	dir := opts.Dir
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("current directory: %w", err)
		}
		dir = wd
	}
	home := opts.Home
	if home == nil {
		home = os.UserHomeDir
	}

	settings := Settings{
		TickEvery:         time.Duration(c.TickEvery) * time.Second,
		History:           c.History,
		TimestampLayout:   schema.TimestampLayout(c.JSONTimestamp),
		PingTimeout:       time.Duration(c.PingTimeout) * time.Second,
		ListenHTTP:        slices.Clone(c.ListenHTTP),
		ListenUDP:         slices.Clone(c.ListenUDP),
		HTTPListen:        c.HTTP.Listen,
		HTTPToken:         c.HTTP.Token,
		HTTPProtectReads:  c.HTTP.ProtectReads,
		HTTPTLSCert:       belowOpt(dir, c.HTTP.TLSCert),
		HTTPTLSKey:        belowOpt(dir, c.HTTP.TLSKey),
		UDPListen:         c.UDP.Listen,
		InitdDirectory:    below(dir, c.InitdDirectory),
		CgroupRoot:        c.CgroupRoot,
		LogRetentionDays:  *c.LogRetention.Days,
		LogRetentionBytes: int64(*c.LogRetention.MaxTotalMB) << 20,
		KeyValue:          kvLimits(c.KeyValueLimits),
		Hooks:             hooks(c.Hooks),
		X:                 nonEmpty(c.X),
	}

	// Absent, the count cap on log files is the history length: the
	// files of the instances history shows.
	settings.LogRetentionInstances = c.History
	if n := c.LogRetention.MaxInstances; n != nil {
		settings.LogRetentionInstances = *n
	}

	apps := make(map[string]*App, len(c.Apps))
	for key, a := range c.Apps {
		if a == nil {
			continue
		}
		p := joinKey("apps", key)
		id := strings.ToLower(key)
		wd, err := workingDirectory(a.WorkingDirectory, dir, home)
		if err != nil {
			errs.add(p+".working-directory", err.Error())
			continue
		}
		var listenHTTP, listenUDP []string
		if a.Keepalive.Pinged() {
			listenHTTP, listenUDP = settings.ListenHTTP, settings.ListenUDP
		}
		apps[id] = &App{
			ListenHTTP:          listenHTTP,
			ListenUDP:           listenUDP,
			ID:                  id,
			Keepalive:           a.Keepalive,
			Name:                or(a.Name, key),
			Binary:              below(wd, a.Binary),
			WorkingDirectory:    wd,
			LogDirectory:        below(wd, or(a.LogDirectory, schema.DefaultLogDirectory+"/"+id)),
			PIDPath:             belowOpt(wd, a.PIDPath),
			PIDVerify:           a.PIDVerify,
			Disabled:            a.Disabled,
			KeyValue:            nonEmptyMap(a.KeyValue),
			KeyValueClear:       a.KeyValueClear,
			Secret:              a.Secret,
			ExecuteTimeout:      time.Duration(a.ExecuteTimeout) * time.Second,
			Args:                nonEmptySlice(a.Args),
			Env:                 nonEmptySlice(a.Env),
			EnvParent:           a.EnvParent,
			EnvFile:             belowOpt(wd, a.EnvFile),
			User:                a.User,
			Group:               a.Group,
			SupplementaryGroups: supplementary(a.SupplementaryGroups),
			Umask:               normalUmask(a.Umask),
			Rlimits:             rlimits(a.Rlimits, p+".rlimits", errs),
			Limits:              limits(a, p, errs),
			Schedule:            schedule(a, p, errs),
			StdMerge:            a.StdMerge,
			StopSignal:          canonicalSignal(a.StopSignal),
			StopTimeout:         seconds(a.StopTimeout),
			RestartPolicy:       a.RestartPolicy,
			Backoff: Backoff{
				Initial:    seconds(a.Backoff.Initial),
				Max:        seconds(a.Backoff.Max),
				ResetAfter: seconds(a.Backoff.ResetAfter),
			},
			StartTimeout: seconds(a.StartTimeout),
			DependsOn:    dependencies(a.DependsOn),
			Startup:      probe(ProbeStartup, a.Startup, wd, a.Env),
			Liveness:     probe(ProbeLiveness, a.Liveness, wd, a.Env),
			Readiness:    probe(ProbeReadiness, a.Readiness, wd, a.Env),
			Ready:        a.Ready,
			ReadyLine:    a.ReadyLine,
			readyRE:      compileValid(a.ReadyLine),
			Watchdog:     time.Duration(float64(a.Watchdog) * float64(time.Second)),
			Hooks:        hooks(a.Hooks),
			X:            nonEmpty(a.X),
		}
	}

	sets := expandReplicas(c, apps, errs)

	services := make(map[string]*Service, len(c.Services))
	for key, s := range c.Services {
		if s == nil {
			continue
		}
		id := strings.ToLower(key)
		method := func(m schema.Management) schema.Management {
			if s.Management != 0 {
				return s.Management
			}
			return m
		}
		command := func(m schema.Management, verb, def string, codes []int) Command {
			return Command{Method: method(m), Verb: or(verb, def), IgnoreExitCodes: union(s.IgnoreExitCodes, codes)}
		}
		services[id] = &Service{
			ID:            id,
			Name:          or(s.Name, key),
			Service:       or(s.Service, key),
			Start:         command(s.ManagementStart, s.ManagementStartParameter, "start", s.IgnoreExitCodesStart),
			Status:        command(s.ManagementStatus, s.ManagementStatusParameter, "status", s.IgnoreExitCodesStatus),
			Stop:          command(s.ManagementStop, s.ManagementStopParameter, "stop", s.IgnoreExitCodesStop),
			Restart:       command(s.ManagementRestart, s.ManagementRestartParameter, "restart", s.IgnoreExitCodesRestart),
			Disabled:      s.Disabled,
			KeyValue:      nonEmptyMap(s.KeyValue),
			KeyValueClear: s.KeyValueClear,
			Secret:        s.Secret,
			Hooks:         hooks(s.Hooks),
			X:             nonEmpty(s.X),
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	s := newState("", settings, apps, services)
	s.replicaSets = sets
	return s, nil
}

// workingDirectory resolves a working-directory: "~/" is the home
// directory, a relative path is below dir, and absent means dir.
func workingDirectory(wd, dir string, home func() (string, error)) (string, error) {
	switch {
	case wd == "":
		return filepath.Clean(dir), nil
	case strings.HasPrefix(wd, "~/"):
		h, err := home()
		if err != nil || !filepath.IsAbs(h) {
			return "", errors.New(`cannot expand "~/": the home directory of the user running Patrol is unknown`)
		}
		return filepath.Join(h, wd[2:]), nil
	case filepath.IsAbs(wd):
		return filepath.Clean(wd), nil
	}
	return filepath.Join(dir, wd), nil
}

// below resolves p against base unless it is absolute.
func below(base, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

func belowOpt(base, p string) string {
	if p == "" {
		return ""
	}
	return below(base, p)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func seconds(s *schema.Seconds) time.Duration {
	return time.Duration(float64(*s) * float64(time.Second))
}

func canonicalSignal(s string) string {
	c, _ := schema.CanonicalSignal(s)
	return c
}

func hooks(h *schema.Hooks) Hooks {
	if h == nil {
		return Hooks{}
	}
	return Hooks{
		OnStart:     nonEmptySlice(h.OnStart),
		OnExit:      nonEmptySlice(h.OnExit),
		OnCrash:     nonEmptySlice(h.OnCrash),
		OnBackoff:   nonEmptySlice(h.OnBackoff),
		OnStop:      nonEmptySlice(h.OnStop),
		OnReady:     nonEmptySlice(h.OnReady),
		OnUnhealthy: nonEmptySlice(h.OnUnhealthy),
		Timeout:     seconds(h.Timeout),
	}
}

func nonEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	return slices.Clone(raw)
}

func nonEmptySlice(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

func nonEmptyMap(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	return m
}

// union merges exit-code lists into one sorted list without duplicates.
func union(lists ...[]int) []int {
	var out []int
	for _, l := range lists {
		out = append(out, l...)
	}
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}
