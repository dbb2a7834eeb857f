package desired

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patrolhq/patrol/schema"
)

// Dependency is one normalised entry of an app's depends-on.
type Dependency struct {
	ID        string           // lower-cased
	Condition schema.Condition // never empty
	// Restart restarts the dependent when the dependency gets a new
	// instance.
	Restart bool
}

// Describe says what the dependency waits for: "db is ready".
func (d Dependency) Describe() string {
	switch d.Condition {
	case schema.ConditionReady:
		return d.ID + " is ready"
	case schema.ConditionCompleted:
		return d.ID + " has completed"
	case schema.ConditionCompletedSuccessfully:
		return d.ID + " has completed successfully"
	}
	return d.ID + " is started"
}

// ProbeKind names an app's probe.
type ProbeKind string

// The probe kinds.
const (
	ProbeStartup   ProbeKind = "startup"
	ProbeLiveness  ProbeKind = "liveness"
	ProbeReadiness ProbeKind = "readiness"
)

// Probe is one normalised probe of an app: exactly one of Command, URL and
// TCPAddr is set.
type Probe struct {
	Kind ProbeKind
	// Command is an exec probe's argv, run in Dir with Env.
	Command []string
	Dir     string   `json:"-"` // the app's working directory
	Env     []string `json:"-"` // the app's env
	// URL is an http probe's address; StatusLo and StatusHi bound the
	// status codes that are a success.
	URL                string
	StatusLo, StatusHi int
	// TCPAddr is a tcp probe's "127.0.0.1:port".
	TCPAddr string

	InitialDelay     time.Duration
	Period           time.Duration
	Timeout          time.Duration
	SuccessThreshold int
	FailureThreshold int
}

// Describe names the probe for messages: "http GET http://...".
func (p *Probe) Describe() string {
	switch {
	case p.URL != "":
		return "http GET " + p.URL
	case p.TCPAddr != "":
		return "tcp " + p.TCPAddr
	}
	return "exec " + strings.Join(p.Command, " ")
}

// HasReadiness reports whether the app's instances become ready by a
// check (a readiness probe or READY=1) rather than at once.
func (a *App) HasReadiness() bool {
	return a.Readiness != nil || a.Ready != ""
}

// ReadyLineRE is the compiled ReadyLine (nil without one).
func (a *App) ReadyLineRE() *regexp.Regexp { return a.readyRE }

// Notify reports whether the app's instances get a NOTIFY_SOCKET.
func (a *App) Notify() bool {
	return a.Ready == schema.ReadyNotify || a.Watchdog > 0
}

// dependencies normalises depends-on: ids lower-cased, conditions
// defaulted, sorted by id.
func dependencies(deps []schema.Dependency) []Dependency {
	if len(deps) == 0 {
		return nil
	}
	out := make([]Dependency, len(deps))
	for i, d := range deps {
		out[i] = Dependency{ID: strings.ToLower(d.App), Condition: d.Condition, Restart: d.Restart}
		if out[i].Condition == "" {
			out[i].Condition = schema.ConditionStarted
		}
	}
	slices.SortFunc(out, func(a, b Dependency) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// probe normalises one probe (defaults already applied); env is the app's
// own environment, given to exec probes.
func probe(kind ProbeKind, p *schema.Probe, wd string, env []string) *Probe {
	if p == nil {
		return nil
	}
	out := &Probe{
		Kind:             kind,
		InitialDelay:     seconds(p.InitialDelay),
		Period:           seconds(p.Period),
		Timeout:          seconds(p.Timeout),
		SuccessThreshold: p.SuccessThreshold,
		FailureThreshold: p.FailureThreshold,
	}
	switch {
	case p.Exec != nil:
		out.Command, out.Dir, out.Env = slices.Clone(p.Exec.Command), wd, env
	case p.HTTP != nil:
		out.URL = p.HTTP.URL
		if out.URL == "" {
			u := url.URL{Scheme: or(p.HTTP.Scheme, "http"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p.HTTP.Port)), Path: or(p.HTTP.Path, "/")}
			out.URL = u.String()
		}
		out.StatusLo, out.StatusHi = 200, 399
		if len(p.HTTP.Status) == 2 {
			out.StatusLo, out.StatusHi = p.HTTP.Status[0], p.HTTP.Status[1]
		}
	case p.TCP != nil:
		out.TCPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.TCP.Port))
	}
	return out
}

// checkHealth validates an app's probes, ready mode, watchdog and
// depends-on beyond what the tag rules say.
func checkHealth(id string, a *schema.App, p string, appIDs map[string]bool, errs *problems) {
	for _, pr := range []struct {
		key string
		p   *schema.Probe
	}{{"startup", a.Startup}, {"liveness", a.Liveness}, {"readiness", a.Readiness}} {
		if pr.p != nil {
			checkProbe(pr.p, p+"."+pr.key, errs)
		}
	}
	switch {
	case a.Ready == schema.ReadyLogLine && a.ReadyLine == "":
		errs.add(p+".ready-line", `required with "ready": "log-line": the regular expression of the line that makes the app ready`)
	case a.ReadyLine != "" && a.Ready != schema.ReadyLogLine:
		errs.add(p+".ready-line", `only with "ready": "log-line"`)
	case a.ReadyLine != "":
		if _, err := regexp.Compile(a.ReadyLine); err != nil {
			errs.add(p+".ready-line", "not a regular expression: "+strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
	}
	if a.Watchdog != 0 && a.Watchdog < 0.1 {
		errs.add(p+".watchdog", "must be 0 (no watchdog) or at least 0.1 seconds, got "+fmtNum(float64(a.Watchdog)))
	}
	self := strings.ToLower(id)
	seen := map[string]bool{}
	for i, dep := range a.DependsOn {
		dp := joinIndex(p+".depends-on", i)
		low := strings.ToLower(dep.App)
		switch {
		case !idPattern.MatchString(dep.App):
			// Reported by the id tag rule.
		case low == self:
			errs.add(dp, "an app cannot depend on itself")
		case seen[low]:
			errs.add(dp, fmt.Sprintf("lists %q more than once", dep.App))
		case !appIDs[low]:
			errs.add(dp, fmt.Sprintf("unknown app %q%s", dep.App, suggestID(low, appIDs)))
		}
		seen[low] = true
	}
}

// checkProbe validates one probe: exactly one form, a timeout within the
// period, a sane status range and url.
func checkProbe(pr *schema.Probe, p string, errs *problems) {
	n := 0
	for _, set := range []bool{pr.Exec != nil, pr.HTTP != nil, pr.TCP != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		errs.add(p, fmt.Sprintf(`must have exactly one of "exec", "http" and "tcp", got %d`, n))
	}
	if pr.Timeout != nil && pr.Period != nil && *pr.Period >= 0.1 && *pr.Timeout > *pr.Period {
		errs.add(p+".timeout", fmt.Sprintf("must not exceed period (%s), got %s", fmtNum(float64(*pr.Period)), fmtNum(float64(*pr.Timeout))))
	}
	h := pr.HTTP
	if h == nil {
		return
	}
	hp := p + ".http"
	switch {
	case h.URL != "" && (h.Port != 0 || h.Path != "" || h.Scheme != ""):
		errs.add(hp, `give either "url" or "port" (with "path" and "scheme"), not both`)
	case h.URL == "" && h.Port == 0:
		errs.add(hp, `needs "url" or "port"`)
	case h.URL != "":
		if why := probeURLProblem(h.URL); why != "" {
			errs.add(hp+".url", why)
		}
	case h.Path != "" && !strings.HasPrefix(h.Path, "/"):
		errs.add(hp+".path", "must start with /, got "+strconv.Quote(h.Path))
	}
	if h.Status != nil {
		switch {
		case len(h.Status) != 2:
			errs.add(hp+".status", fmt.Sprintf("must be [lowest, highest], got %d numbers", len(h.Status)))
		case h.Status[0] < 100 || h.Status[1] > 599 || h.Status[0] > h.Status[1]:
			errs.add(hp+".status", fmt.Sprintf("must be a range of status codes within 100..599, lowest first, got [%d, %d]", h.Status[0], h.Status[1]))
		}
	}
}

// probeURLProblem says what is wrong with an http probe's url.
func probeURLProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "is not a url: " + err.Error()
	case u.Scheme != "http" && u.Scheme != "https":
		return `must start with "http://" or "https://", got ` + strconv.Quote(s)
	case u.Host == "" || u.Hostname() == "":
		return "has no host: " + strconv.Quote(s)
	case u.User != nil:
		return "must not hold a user or password"
	}
	return ""
}

// MarshalJSON writes a dependency as config.json does: the id alone when
// it waits for a start and does not restart with it.
func (d Dependency) MarshalJSON() ([]byte, error) {
	return json.Marshal(schema.Dependency{App: d.ID, Condition: d.Condition, Restart: d.Restart})
}

// MarshalJSON writes a probe in config.json's form, defaults spelled out
// (plan changes show it; fingerprints hash it).
func (p *Probe) MarshalJSON() ([]byte, error) {
	type (
		execForm struct {
			Command []string `json:"command"`
		}
		httpForm struct {
			URL    string `json:"url"`
			Status [2]int `json:"status"`
		}
		tcpForm struct {
			Port int `json:"port"`
		}
		form struct {
			Exec             *execForm `json:"exec,omitempty"`
			HTTP             *httpForm `json:"http,omitempty"`
			TCP              *tcpForm  `json:"tcp,omitempty"`
			InitialDelay     float64   `json:"initial-delay"`
			Period           float64   `json:"period"`
			Timeout          float64   `json:"timeout"`
			SuccessThreshold int       `json:"success-threshold"`
			FailureThreshold int       `json:"failure-threshold"`
		}
	)
	f := form{InitialDelay: p.InitialDelay.Seconds(), Period: p.Period.Seconds(), Timeout: p.Timeout.Seconds(),
		SuccessThreshold: p.SuccessThreshold, FailureThreshold: p.FailureThreshold}
	switch {
	case p.URL != "":
		f.HTTP = &httpForm{URL: p.URL, Status: [2]int{p.StatusLo, p.StatusHi}}
	case p.TCPAddr != "":
		_, port, _ := net.SplitHostPort(p.TCPAddr)
		n, _ := strconv.Atoi(port)
		f.TCP = &tcpForm{Port: n}
	default:
		f.Exec = &execForm{Command: p.Command}
	}
	return json.Marshal(f)
}

// compileValid compiles a validated regular expression ("": nil).
func compileValid(re string) *regexp.Regexp {
	if re == "" {
		return nil
	}
	c, err := regexp.Compile(re)
	if err != nil {
		return nil // reported by checkHealth
	}
	return c
}
