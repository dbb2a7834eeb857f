package reconcile_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/reconcile"
	"github.com/patrolhq/patrol/schema"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func state(t *testing.T, cfg string) *desired.State {
	t.Helper()
	st, err := desired.Parse([]byte(cfg), desired.Options{Dir: "/cfg"})
	if err != nil {
		t.Fatalf("config: %q", desired.Problems(err))
	}
	return st
}

func app(st *desired.State, id string) *desired.App {
	a, ok := st.App(id)
	if !ok {
		panic("no app " + id)
	}
	return a
}

// running returns an observed app running config a since t0.
func running(a *desired.App, pid int) *observed.App {
	return &observed.App{ID: a.ID, Starts: 1, Instance: &observed.Instance{
		ID: "inst-" + a.ID, App: a, PID: pid, PGID: pid, Started: t0, LastSeen: t0,
	}}
}

func snap(apps ...*observed.App) *observed.Snapshot {
	s := observed.NewSnapshot()
	for _, a := range apps {
		s.Apps[a.ID] = a
	}
	return s
}

// render writes actions compactly: "start web (added)", with changes.
func render(actions []reconcile.Action) string {
	var lines []string
	for _, a := range actions {
		l := fmt.Sprintf("%s %s (%s)", a.Kind, a.ID, a.Reason)
		for _, c := range a.Changes {
			kind := "in place"
			if c.Restart {
				kind = "restart"
			}
			l += fmt.Sprintf(" [%s: %s -> %s, %s]", c.Field, c.Old, c.New, kind)
		}
		if a.PID != 0 {
			l += fmt.Sprintf(" pid %d", a.PID)
		}
		if a.Note != "" {
			l += " note: " + a.Note
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

const twoApps = `{"apps": {"web": {"binary": "/bin/web", "args": ["-p", "80"]}, "db": {"binary": "/bin/db"}}}`

func TestPlan(t *testing.T) {
	base := state(t, twoApps)
	web, db := app(base, "web"), app(base, "db")

	changedArgs := state(t, `{"apps": {"web": {"binary": "/bin/web", "args": ["-p", "8080"]}, "db": {"binary": "/bin/db"}}}`)
	changedName := state(t, `{"apps": {"web": {"binary": "/bin/web", "args": ["-p", "80"], "name": "Web 2", "secret": "s3"}, "db": {"binary": "/bin/db"}}}`)
	changedBoth := state(t, `{"apps": {"web": {"binary": "/bin/web", "args": ["-p", "80"], "name": "Web 2", "env": ["A=1"]}, "db": {"binary": "/bin/db"}}}`)
	disabledWeb := state(t, `{"apps": {"web": {"binary": "/bin/web", "args": ["-p", "80"], "disabled": true}, "db": {"binary": "/bin/db"}}}`)
	onlyDB := state(t, `{"apps": {"db": {"binary": "/bin/db"}}}`)
	deps := state(t, `{"apps": {"web": {"binary": "/bin/web", "depends-on": ["db"]}, "db": {"binary": "/bin/db", "keepalive": 2, "pid-path": "db.pid"}}}`)
	policies := state(t, `{"apps": {"never": {"binary": "/x", "restart-policy": "never"}, "onfail": {"binary": "/x", "restart-policy": "on-failure"}, "always": {"binary": "/x"}}}`)
	pinged := state(t, `{"ping-timeout": 30, "apps": {"web": {"binary": "/bin/web", "keepalive": 3}}}`)
	timeouts := state(t, `{"apps": {"web": {"binary": "/bin/web", "execute-timeout": 5}, "db": {"binary": "/bin/db", "keepalive": 2, "pid-path": "db.pid", "start-timeout": 3}}}`)

	crashed := func(a *desired.App, code int, backoffUntil time.Time) *observed.App {
		reason := schema.ReasonCrashed
		if code == 0 {
			reason = schema.ReasonExited
		}
		return &observed.App{ID: a.ID, Starts: 1,
			LastEnd: &observed.End{Reason: reason, BySelf: true, Fingerprint: a.Fingerprint(), At: t0,
				Exit: &observed.Exit{Code: code}},
			Backoff: observed.Backoff{Crashes: 2, Until: backoffUntil, Fingerprint: a.Fingerprint()},
		}
	}
	stopping := func(a *observed.App, deadline time.Time, killed bool) *observed.App {
		a.Instance.Stopping = &observed.Stopping{Reason: schema.ReasonDisabled, Since: t0, Deadline: deadline, Killed: killed}
		return a
	}
	override := func(st *desired.State, id string, disabled *bool, runOnce bool) *desired.State {
		return st.WithOverrides(map[desired.Key]*desired.Override{
			{Group: schema.GroupApp, ID: id}: {Disabled: disabled, RunOnce: runOnce, Fingerprint: app(st, id).Fingerprint()},
		})
	}
	yes, no := true, false

	cases := []struct {
		name string
		d    *desired.State
		o    *observed.Snapshot
		now  time.Time
		want string
	}{
		{"added: everything starts", base, snap(), t0, "start db (added)\nstart web (added)"},
		{"steady state: nothing to do", base, snap(running(db, 10), running(web, 11)), t0, ""},
		{"removed: graceful stop", onlyDB, snap(running(db, 10), running(web, 11)), t0, "stop web (removed)"},
		{"removed and already gone: nothing", onlyDB, snap(running(db, 10), &observed.App{ID: "web"}), t0, ""},
		{"changed restart field: restart with the field", changedArgs, snap(running(db, 10), running(web, 11)), t0,
			`restart web (changed) [args: ["-p","80"] -> ["-p","8080"], restart]`},
		{"changed in-place fields: update, secret redacted", changedName, snap(running(db, 10), running(web, 11)), t0,
			`update web (changed) [name: "web" -> "Web 2", in place] [secret: "" -> "(redacted)", in place]`},
		{"restart and in-place fields together: restart lists both", changedBoth, snap(running(db, 10), running(web, 11)), t0,
			`restart web (changed) [env: null -> ["A=1"], restart] [name: "web" -> "Web 2", in place]`},
		{"disabled in the file: stop", disabledWeb, snap(running(db, 10), running(web, 11)), t0, "stop web (disabled)"},
		{"disabled and stopped: nothing", disabledWeb, snap(running(db, 10), &observed.App{ID: "web"}), t0, ""},
		{"disabled by override: stop", override(base, "web", &yes, false), snap(running(db, 10), running(web, 11)), t0, "stop web (override)"},
		{"override keeps it stopped: noted", override(base, "web", &yes, false), snap(running(db, 10)), t0,
			"keep web (override) note: kept stopped by override (config: enabled)"},
		{"enabled by override against the file: start", override(disabledWeb, "web", &no, false), snap(running(db, 10)), t0, "start web (added)"},
		{"crashed, backoff over: start", base, snap(running(db, 10), crashed(web, 1, t0.Add(-time.Second))), t0, "start web (crashed)"},
		{"crashed, in backoff: wait", base, snap(running(db, 10), crashed(web, 1, t0.Add(time.Second))), t0, ""},
		{"crashed, in backoff, config changed: start now", changedArgs, snap(running(db, 10), crashed(web, 1, t0.Add(time.Minute))), t0,
			"start web (changed)"},
		{"exited cleanly: start", base, snap(running(db, 10), crashed(web, 0, t0)), t0, "start web (exited)"},
		{"restart policy never: stays stopped", policies, snap(crashed(app(policies, "never"), 1, t0), running(app(policies, "onfail"), 1), running(app(policies, "always"), 2)), t0, ""},
		{"restart policy on-failure after success: stays stopped", policies, snap(running(app(policies, "never"), 1), crashed(app(policies, "onfail"), 0, t0), running(app(policies, "always"), 2)), t0, ""},
		{"restart policy on-failure after failure: start", policies, snap(running(app(policies, "never"), 1), crashed(app(policies, "onfail"), 2, t0), running(app(policies, "always"), 2)), t0, "start onfail (crashed)"},
		{"restart requested while running: restart", base, func() *observed.Snapshot {
			w := running(web, 11)
			w.RestartRequested = true
			return snap(running(db, 10), w)
		}(), t0, "restart web (restart)"},
		{"pending restart beats backoff", base, func() *observed.Snapshot {
			w := crashed(web, 1, t0.Add(time.Hour))
			w.Pending = &observed.Pending{Reason: schema.ReasonRestart}
			return snap(running(db, 10), w)
		}(), t0, "start web (restart)"},
		{"stopping within stop-timeout: wait", base, snap(running(db, 10), stopping(running(web, 11), t0.Add(time.Second), false)), t0, ""},
		{"stopping past stop-timeout: kill", base, snap(running(db, 10), stopping(running(web, 11), t0, false)), t0, "kill web (disabled)"},
		{"killed and still stopping: wait", base, snap(running(db, 10), stopping(running(web, 11), t0, true)), t0.Add(time.Minute), ""},
		{"leftover group: clean up, no new instance", base, snap(running(db, 10), &observed.App{ID: "web", Leftover: &observed.Leftover{PGID: 11}, LastEnd: &observed.End{Reason: schema.ReasonCrashed, BySelf: true}}), t0,
			"cleanup web (crashed)"},
		{"leftover past deadline: kill", base, snap(running(db, 10), &observed.App{ID: "web", Leftover: &observed.Leftover{PGID: 11, Deadline: t0}, LastEnd: &observed.End{Reason: schema.ReasonCrashed}}), t0,
			"kill web (crashed)"},
		{"shutdown: stop everything", base, func() *observed.Snapshot {
			s := snap(running(db, 10), running(web, 11))
			s.Shutdown = true
			return s
		}(), t0, "stop db (shutdown)\nstop web (shutdown)"},
		{"shutdown: nothing starts", base, func() *observed.Snapshot { s := snap(); s.Shutdown = true; return s }(), t0, ""},
		{"depends-on: dependency first", deps, snap(), t0, "start db (added)\nwait web (added) note: after db is started"},
		{"depends-on: dependency still starting", deps, snap(func() *observed.App {
			a := running(app(deps, "db"), 0)
			return a
		}()), t0, "wait web (added) note: after db is started"},
		{"depends-on: dependency running", deps, snap(running(app(deps, "db"), 10)), t0, "start web (added)"},
		{"adopt: a live daemon in the pid file", deps, snap(running(app(deps, "web"), 11), &observed.App{ID: "db", Candidate: &observed.Candidate{PID: 4242}}), t0,
			"adopt db (adopted) pid 4242"},
		{"execute-timeout reached: stop", timeouts, snap(running(app(timeouts, "web"), 11), running(app(timeouts, "db"), 10)), t0.Add(5 * time.Second),
			"stop web (execute-timeout)"},
		{"execute-timeout not reached: nothing", timeouts, snap(running(app(timeouts, "web"), 11), running(app(timeouts, "db"), 10)), t0.Add(4 * time.Second), ""},
		{"keepalive 2 without a pid after start-timeout: stop", timeouts, snap(running(app(timeouts, "web"), 11), running(app(timeouts, "db"), 0)), t0.Add(3 * time.Second),
			"stop db (start-failed) note: no live pid in /cfg/db.pid after start-timeout (3s)"},
		{"run-once consumed and ended: the entry is kept disabled", override(base, "web", &yes, false), snap(running(db, 10), &observed.App{ID: "web", LastEnd: &observed.End{Reason: schema.ReasonExited, BySelf: true}}), t0,
			"keep web (override) note: kept stopped by override (config: enabled)"},
		{"keepalive 3 pinged recently: nothing", pinged, snap(func() *observed.App {
			a := running(app(pinged, "web"), 11)
			a.Instance.LastSeen = t0.Add(20 * time.Second)
			return a
		}()), t0.Add(49 * time.Second), ""},
		{"keepalive 3 ping overdue: stop", pinged, snap(func() *observed.App {
			a := running(app(pinged, "web"), 11)
			a.Instance.LastSeen = t0.Add(20 * time.Second)
			return a
		}()), t0.Add(50 * time.Second), "stop web (ping-timeout) note: no ping for 30s"},
		{"keepalive 3 within the start-up grace: wait for a ping", pinged, func() *observed.Snapshot {
			s := snap()
			s.Started = t0
			return s
		}(), t0.Add(59 * time.Second), ""},
		{"keepalive 3 after the start-up grace: start", pinged, func() *observed.Snapshot {
			s := snap()
			s.Started = t0
			return s
		}(), t0.Add(60 * time.Second), "start web (added)"},
		{"run-once armed: it starts", override(base, "web", nil, true), snap(running(db, 10)), t0, "start web (added)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := render(reconcile.Plan(tc.d, tc.o, tc.now))
			if got != tc.want {
				t.Errorf("plan:\n got %s\nwant %s", got, tc.want)
			}
			// Plan is pure: the same input gives the same output.
			if again := render(reconcile.Plan(tc.d, tc.o, tc.now)); again != got {
				t.Errorf("second plan differs:\n%s", again)
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	b := desired.Backoff{Initial: time.Second, Max: 10 * time.Second}
	for n, want := range []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		if got := reconcile.BackoffDelay(b, n); got != want {
			t.Errorf("BackoffDelay(%d) = %v, want %v", n, got, want)
		}
	}
	if got := reconcile.BackoffDelay(b, 1000); got != 10*time.Second {
		t.Errorf("BackoffDelay(1000) = %v", got)
	}
}
