package desired

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-playground/validator/v10"

	"github.com/patrolhq/patrol/schema"
)

// Shorthands for the schema types, used by hints and rules.
type (
	configType    = schema.Config
	appType       = schema.App
	serviceType   = schema.Service
	httpType      = schema.HTTP
	udpType       = schema.UDP
	backoffType   = schema.Backoff
	hooksType     = schema.Hooks
	retentionType = schema.LogRetention
	kvLimitsType  = schema.KeyValueLimits
)

var (
	idPattern          = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	tokenPattern       = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)
	verbPattern        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$`)
	servicePattern     = regexp.MustCompile(`^[A-Za-z0-9_:@][A-Za-z0-9_.:@-]{0,62}$`)
	hostnamePattern    = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)
	commandNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.+-][A-Za-z0-9_.+@:-]*$`)
)

// IDPattern is the regular expression every app and service id must match
// (ids are also unique ignoring case).
const IDPattern = `^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`

// validate returns the shared validator with Patrol's rules registered.
var validate = sync.OnceValue(func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	rules := map[string]func(validator.FieldLevel) bool{
		"rng":       ruleRange,
		"maxbytes":  func(fl validator.FieldLevel) bool { return len(fl.Field().String()) <= atoi(fl.Param()) },
		"nonul":     func(fl validator.FieldLevel) bool { return !strings.ContainsRune(fl.Field().String(), 0) },
		"cleanpath": func(fl validator.FieldLevel) bool { return isCleanPath(fl.Field().String()) },
		"workdir":   func(fl validator.FieldLevel) bool { return workdirProblem(fl.Field().String()) == "" },
		"signal":    func(fl validator.FieldLevel) bool { _, ok := schema.CanonicalSignal(fl.Field().String()); return ok },
		"layout":    func(fl validator.FieldLevel) bool { return layoutProblem(fl.Field().String()) == "" },
		"hostport":  func(fl validator.FieldLevel) bool { return hostPortProblem(fl.Field().String(), fl.Param()) == "" },
		"token": func(fl validator.FieldLevel) bool {
			s := fl.Field().String()
			return len(s) <= 256 && tokenPattern.MatchString(s)
		},
		"envvar":      func(fl validator.FieldLevel) bool { return envProblem(fl.Field().String()) == "" },
		"argv":        func(fl validator.FieldLevel) bool { return argvProblem(fl.Field().Interface().([]string)) == "" },
		"id":          func(fl validator.FieldLevel) bool { return idPattern.MatchString(fl.Field().String()) },
		"verb":        func(fl validator.FieldLevel) bool { return verbPattern.MatchString(fl.Field().String()) },
		"servicename": func(fl validator.FieldLevel) bool { return servicePattern.MatchString(fl.Field().String()) },
		"exitcodes":   func(fl validator.FieldLevel) bool { return exitCodesProblem(fl.Field().Interface().([]int)) == "" },
		"account":     func(fl validator.FieldLevel) bool { return accountProblem(fl.Field().String()) == "" },
		"umask":       func(fl validator.FieldLevel) bool { return umaskProblem(fl.Field().String()) == "" },
		"bytesize":    func(fl validator.FieldLevel) bool { _, err := ParseBytes(fl.Field().String()); return err == nil },
		"cpumax":      func(fl validator.FieldLevel) bool { _, _, err := ParseCPUMax(fl.Field().String()); return err == nil },
		"pidsmax":     func(fl validator.FieldLevel) bool { _, err := ParsePIDsMax(fl.Field().String()); return err == nil },
	}
	for tag, fn := range rules {
		if err := v.RegisterValidation(tag, fn); err != nil {
			panic("desired: register rule " + tag + ": " + err.Error())
		}
	}
	return v
})

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic("desired: bad rule parameter " + strconv.Quote(s))
	}
	return n
}

// rangeParam parses a rng parameter "lo:hi".
func rangeParam(p string) (lo, hi float64) {
	a, b, ok := strings.Cut(p, ":")
	lo, err1 := strconv.ParseFloat(a, 64)
	hi, err2 := strconv.ParseFloat(b, 64)
	if !ok || err1 != nil || err2 != nil {
		panic("desired: bad rng parameter " + strconv.Quote(p))
	}
	return lo, hi
}

func ruleRange(fl validator.FieldLevel) bool {
	lo, hi := rangeParam(fl.Param())
	f, ok := number(fl.Field())
	return ok && f >= lo && f <= hi
}

func number(v reflect.Value) (float64, bool) {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(v.Uint()), true
	case reflect.Float32, reflect.Float64:
		return v.Float(), true
	}
	return 0, false
}

// isCleanPath is the original Patrol's clean-path rule: the path equals its
// lexically cleaned form, a single trailing "/" is allowed, and "" and "."
// are not paths.
func isCleanPath(p string) bool {
	if p == "/" {
		return true
	}
	q := strings.TrimSuffix(p, "/")
	if q == "" || q == "." || strings.HasSuffix(q, "/") {
		return false
	}
	return filepath.Clean(q) == q
}

// workdirProblem checks a working-directory's form: absolute, "~/"-prefixed
// or relative to the config's directory ("." is that directory itself), and
// clean.
func workdirProblem(p string) string {
	switch {
	case p == "." || p == "~/":
		return ""
	case strings.HasPrefix(p, "~/"):
		if !isCleanPath(p[2:]) || strings.HasPrefix(p[2:], "/") || strings.HasPrefix(p[2:], "../") || p[2:] == ".." {
			return fmt.Sprintf("must be a clean path below ~/, got %q", p)
		}
		return ""
	case strings.HasPrefix(p, "~"):
		return fmt.Sprintf(`only a leading "~/" is expanded (to the home directory of the user running Patrol), got %q`, p)
	case !isCleanPath(p):
		return cleanMessage(p)
	}
	return ""
}

func cleanMessage(p string) string {
	q := strings.TrimSuffix(p, "/")
	if q == "" || q == "." {
		return fmt.Sprintf("must be a clean path naming a file or directory, got %q", p)
	}
	return fmt.Sprintf("must be a clean path, got %q (clean form %q)", p, filepath.Clean(q))
}

// layoutProblem checks a json-timestamp value.
func layoutProblem(s string) string {
	if strings.TrimSpace(s) == "" {
		return "must not be empty"
	}
	layout := schema.TimestampLayout(s)
	t := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	if t.Format(layout) == layout {
		return fmt.Sprintf("is not a Go time layout (it contains no time fields, such as 2006, 01, 02, 15, 04, 05): %q", s)
	}
	return ""
}

// hostPortProblem checks a host:port address. mode "bind" allows port 0
// (pick a free port); "advertise" needs a real port.
func hostPortProblem(s, mode string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("must be host:port, got %q", s)
	}
	n, err := strconv.Atoi(port)
	lo := 1
	if mode == "bind" {
		lo = 0
	}
	if err != nil || n < lo || n > 65535 {
		return fmt.Sprintf("port must be a number from %d to 65535, got %q", lo, port)
	}
	if host != "" && net.ParseIP(host) == nil && !hostnamePattern.MatchString(host) {
		return fmt.Sprintf("host must be an IP address or a host name, got %q", host)
	}
	return ""
}

func envProblem(s string) string {
	k, _, ok := strings.Cut(s, "=")
	switch {
	case !ok:
		return fmt.Sprintf(`must be "KEY=VALUE", got %q`, s)
	case k == "":
		return fmt.Sprintf(`must be "KEY=VALUE" with a non-empty KEY, got %q`, s)
	case strings.ContainsRune(s, 0):
		return "must not contain a NUL byte"
	}
	return ""
}

func argvProblem(argv []string) string {
	if len(argv) == 0 {
		return "must hold a command: [\"/path/to/command\", \"arg\", ...]"
	}
	for i, a := range argv {
		if strings.ContainsRune(a, 0) {
			return fmt.Sprintf("element %d must not contain a NUL byte", i)
		}
	}
	c := argv[0]
	switch {
	case filepath.IsAbs(c):
		if !isCleanPath(c) || strings.HasSuffix(c, "/") {
			return fmt.Sprintf("command must be a clean path, got %q", c)
		}
	case !commandNamePattern.MatchString(c):
		return fmt.Sprintf("command must be an absolute path or a command name looked up in PATH (no shell), got %q", c)
	}
	return ""
}

func exitCodesProblem(codes []int) string {
	seen := map[int]bool{}
	for _, c := range codes {
		if c < 1 || c > 255 {
			return fmt.Sprintf("exit codes must be between 1 and 255 (0 always means success), got %d", c)
		}
		if seen[c] {
			return fmt.Sprintf("lists exit code %d more than once", c)
		}
		seen[c] = true
	}
	return ""
}

// message turns a validator error into Patrol's wording.
func message(fe validator.FieldError) string {
	v := fe.Value()
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		v = rv.Elem().Interface()
	}
	s := fmt.Sprint(v)
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		s = strconv.FormatInt(rv.Int(), 10) // not the String method of an enum
	case reflect.Float32, reflect.Float64:
		s = fmtNum(rv.Float())
	}
	switch fe.Tag() {
	case "required":
		return "required"
	case "rng":
		lo, hi := rangeParam(fe.Param())
		return fmt.Sprintf("must be between %s and %s, got %s", fmtNum(lo), fmtNum(hi), s)
	case "maxbytes":
		return fmt.Sprintf("must be at most %s bytes, got %d", fe.Param(), len(s))
	case "nonul":
		return "must not contain a NUL byte"
	case "cleanpath":
		return cleanMessage(s)
	case "workdir":
		return workdirProblem(s)
	case "signal":
		return fmt.Sprintf("must be one of %s, got %q", strings.Join(schema.StopSignals(), ", "), s)
	case "layout":
		return layoutProblem(s)
	case "hostport":
		return hostPortProblem(s, fe.Param())
	case "token":
		return `must be 1-256 characters of A-Z, a-z, 0-9 and "-._~+/", optionally ending in "="`
	case "envvar":
		return envProblem(s)
	case "argv":
		return argvProblem(v.([]string))
	case "id":
		return idProblem(s)
	case "verb":
		return fmt.Sprintf(`must be a verb of 1-63 characters of A-Z, a-z, 0-9 and "._:-", got %q`, s)
	case "servicename":
		return fmt.Sprintf(`must be a service name of 1-63 bytes of A-Z, a-z, 0-9 and "_.:@-", not starting with "-" or "." (no "/"), got %q`, s)
	case "exitcodes":
		return exitCodesProblem(v.([]int))
	case "account":
		return accountProblem(s)
	case "umask":
		return umaskProblem(s)
	case "bytesize":
		_, err := ParseBytes(s)
		return errText(err)
	case "cpumax":
		_, _, err := ParseCPUMax(s)
		return errText(err)
	case "pidsmax":
		_, err := ParsePIDsMax(s)
		return errText(err)
	case "oneof":
		return oneOfMessage(fe, s)
	}
	return fmt.Sprintf("fails rule %s=%s", fe.Tag(), fe.Param())
}

func oneOfMessage(fe validator.FieldError, s string) string {
	opts := strings.Fields(fe.Param())
	switch fe.Kind() {
	case reflect.Int:
		named := make([]string, len(opts))
		for i, o := range opts {
			n := atoi(o)
			switch fe.Type() {
			case reflect.TypeFor[schema.Keepalive]():
				named[i] = fmt.Sprintf("%d (%s)", n, schema.Keepalive(n))
			case reflect.TypeFor[schema.Management]():
				named[i] = fmt.Sprintf("%d (%s)", n, schema.Management(n))
			default:
				named[i] = o
			}
		}
		return fmt.Sprintf("must be %s, got %s", orList(named), s)
	}
	quoted := make([]string, len(opts))
	for i, o := range opts {
		quoted[i] = strconv.Quote(o)
	}
	return fmt.Sprintf("must be %s, got %q", orList(quoted), s)
}

func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func idProblem(id string) string {
	switch {
	case id == "":
		return "invalid id: must not be empty"
	case len(id) > 63:
		return fmt.Sprintf("invalid id: must be at most 63 characters, got %d", len(id))
	case strings.HasPrefix(id, "-") || strings.HasSuffix(id, "-"):
		return fmt.Sprintf("invalid id %q: must not start or end with \"-\"", id)
	case !idPattern.MatchString(id):
		return fmt.Sprintf("invalid id %q: only A-Z, a-z, 0-9 and \"-\" are allowed", id)
	}
	return ""
}

// checkStruct runs the tag rules on one struct and records each failure at
// prefix + the field's JSON path.
func checkStruct(s any, prefix string, errs *problems) {
	err := validate().Struct(s)
	if err == nil {
		return
	}
	var ves validator.ValidationErrors
	if !errors.As(err, &ves) {
		errs.add(prefix, err.Error())
		return
	}
	for _, fe := range ves {
		// The namespace starts with the struct's type name: "App.args[2]".
		_, rel, _ := strings.Cut(fe.Namespace(), ".")
		path := rel
		if prefix != "" {
			path = prefix + "." + rel
		}
		errs.add(path, message(fe))
	}
}

// check runs every rule over a decoded, defaulted config.
func check(c *schema.Config, errs *problems) {
	checkStruct(c, "", errs)

	appIDs := checkIDs("apps", keysOf(c.Apps), errs)
	checkIDs("services", keysOf(c.Services), errs)

	for _, id := range sortedKeys(c.Apps) {
		a := c.Apps[id]
		if a == nil {
			continue
		}
		p := joinKey("apps", id)
		checkStruct(a, p, errs)
		checkApp(c, id, a, p, appIDs, errs)
		checkKeyValue(c, a.KeyValue, p, errs)
	}
	for _, id := range sortedKeys(c.Services) {
		s := c.Services[id]
		if s == nil {
			continue
		}
		p := joinKey("services", id)
		checkStruct(s, p, errs)
		checkService(s, p, errs)
		checkKeyValue(c, s.KeyValue, p, errs)
	}
	checkListeners(c, errs)
	checkDependencies(c, errs)
	if c.HTTP.ProtectReads && c.HTTP.Token == "" {
		errs.add("http.protect-reads", "needs http.token: it is the token that reads would need")
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		errs.add("http", "tls-cert and tls-key go together: set both for HTTPS, or neither")
	}
}

// checkKeyValue checks an entry's keyvalue against the config's own
// keyvalue-limits (when those are valid: a bad limit is reported on its
// own).
func checkKeyValue(c *schema.Config, kv map[string]any, prefix string, errs *problems) {
	if len(kv) == 0 || validate().Struct(c.KeyValueLimits) != nil {
		return
	}
	if apiErr, detail := kvLimits(c.KeyValueLimits).Problem(kv); apiErr != "" {
		errs.add(prefix+".keyvalue", detail)
	}
}

// checkIDs checks id syntax and case-insensitive uniqueness, and returns the
// lower-cased ids.
func checkIDs(group string, ids []string, errs *problems) map[string]bool {
	slices.Sort(ids)
	seen := map[string]string{}
	out := map[string]bool{}
	for _, id := range ids {
		p := joinKey(group, id)
		if msg := idProblem(id); msg != "" {
			errs.add(p, msg)
			continue
		}
		low := strings.ToLower(id)
		if first, dup := seen[low]; dup {
			errs.add(p, fmt.Sprintf("duplicate id: %q and %q are the same id (ids are case-insensitive)", first, id))
			continue
		}
		seen[low] = id
		out[low] = true
	}
	return out
}

func checkApp(c *schema.Config, id string, a *schema.App, p string, appIDs map[string]bool, errs *problems) {
	if a.Keepalive == schema.KeepalivePIDApp && a.PIDPath == "" {
		errs.add(p+".pid-path", "required for keepalive 2 (PID_APP): the app writes its pid there")
	}
	if a.Backoff != nil && a.Backoff.Initial != nil && a.Backoff.Max != nil && *a.Backoff.Max < *a.Backoff.Initial {
		errs.add(p+".backoff.max", fmt.Sprintf("must not be less than backoff.initial (%s), got %s",
			fmtNum(float64(*a.Backoff.Initial)), fmtNum(float64(*a.Backoff.Max))))
	}
	checkHealth(id, a, p, appIDs, errs)
}

func suggestID(id string, ids map[string]bool) string {
	known := make([]string, 0, len(ids))
	for k := range ids {
		known = append(known, k)
	}
	slices.Sort(known)
	if best := closest(id, known); best != "" {
		return fmt.Sprintf(", did you mean %q?", best)
	}
	return ""
}

// checkService applies the management rules: with management set, the
// per-action methods must be absent; without it, all four are required
// (the original Patrol ignored management-restart here, a bug).
func checkService(s *schema.Service, p string, errs *problems) {
	perAction := []struct {
		key string
		m   schema.Management
	}{
		{"management-start", s.ManagementStart},
		{"management-status", s.ManagementStatus},
		{"management-stop", s.ManagementStop},
		{"management-restart", s.ManagementRestart},
	}
	if s.Management != 0 {
		for _, a := range perAction {
			if a.m != 0 {
				errs.add(p+"."+a.key, "must be absent when management is set (management applies to every action)")
			}
		}
		return
	}
	any := false
	for _, a := range perAction {
		any = any || a.m != 0
	}
	if !any {
		errs.add(p+".management", "required: 1 (service NAME VERB), 2 (init.d script) or 3 (systemctl), or set management-start, -status, -stop and -restart")
		return
	}
	for _, a := range perAction {
		if a.m == 0 {
			errs.add(p+"."+a.key, "required when management is not set (each action needs its method)")
		}
	}
}

// checkListeners makes sure keepalive 3 and 4 apps have somewhere to ping.
func checkListeners(c *schema.Config, errs *problems) {
	var needHTTP, needUDP []string
	for _, id := range sortedKeys(c.Apps) {
		if a := c.Apps[id]; a != nil {
			switch a.Keepalive {
			case schema.KeepaliveHTTP:
				needHTTP = append(needHTTP, id)
			case schema.KeepaliveUDP:
				needUDP = append(needUDP, id)
			}
		}
	}
	if len(needHTTP) > 0 && c.ListenHTTP != nil && len(c.ListenHTTP) == 0 {
		errs.add("listen-http", fmt.Sprintf("must list at least one address: apps with keepalive 3 (HTTP) ping it (%s)", strings.Join(needHTTP, ", ")))
	}
	if len(needUDP) > 0 && c.ListenUDP != nil && len(c.ListenUDP) == 0 {
		errs.add("listen-udp", fmt.Sprintf("must list at least one address: apps with keepalive 4 (UDP) ping it (%s)", strings.Join(needUDP, ", ")))
	}
}

// checkDependencies reports each dependency cycle once.
func checkDependencies(c *schema.Config, errs *problems) {
	deps := map[string][]string{}
	orig := map[string]string{}
	for id, a := range c.Apps {
		if a == nil {
			continue
		}
		low := strings.ToLower(id)
		orig[low] = id
		for _, d := range a.DependsOn {
			deps[low] = append(deps[low], strings.ToLower(d.App))
		}
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(string)
	visit = func(n string) {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range deps[n] {
			if _, known := orig[d]; !known || d == n {
				continue // reported by checkApp
			}
			switch color[d] {
			case white:
				visit(d)
			case grey:
				i := slices.Index(stack, d)
				cycle := append(slices.Clone(stack[i:]), d)
				errs.add(joinKey("apps", orig[d])+".depends-on", "cycle "+strings.Join(cycle, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	for _, id := range sortedKeys(deps) {
		if color[id] == white {
			visit(id)
		}
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := keysOf(m)
	slices.Sort(out)
	return out
}
