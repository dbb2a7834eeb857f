package desired

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/patrolhq/patrol/schema"
)

// Schedule is a scheduled app's "schedule" and its companions (issue 19):
// the app runs as a job at the expression's times instead of being kept
// running. The expression is parsed by robfig/cron's standard parser
// (five fields, descriptors, "@every", a "TZ=" prefix).
type Schedule struct {
	// Spec is the expression as written; TimeZone the "time-zone" key
	// ("" for the host's, or the zone a "TZ=" prefix names).
	Spec        string
	TimeZone    string
	Concurrency schema.Concurrency
	RunOnStart  bool
	CatchUp     bool

	cron cron.Schedule
}

// Next returns the first run time after t ("@every" counts from t); the
// zero time when there is none within five years.
func (s *Schedule) Next(t time.Time) time.Time { return s.cron.Next(t) }

// String is the expression with its time zone, as status shows it.
func (s *Schedule) String() string {
	if s.TimeZone != "" {
		return s.Spec + " (" + s.TimeZone + ")"
	}
	return s.Spec
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// scheduleEpoch is where validation looks for a first run time: a fixed
// time, so that a config validates the same on every day.
var scheduleEpoch = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// parseSchedule parses an app's schedule with its time zone; the error is
// worded for the config's "schedule" key.
func parseSchedule(spec, zone string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if zone != "" {
		spec = "CRON_TZ=" + zone + " " + spec
	}
	sc, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("not a cron expression: %v", err)
	}
	if _, every, ok := strings.Cut(spec, "@every "); ok {
		// The parser rounds a shorter delay up to 1s; say so instead.
		if d, err := time.ParseDuration(strings.TrimSpace(every)); err == nil && d < time.Second {
			return nil, fmt.Errorf("@every must be at least 1s, got %s", d)
		}
	}
	if sc.Next(scheduleEpoch).IsZero() {
		return nil, fmt.Errorf("never runs (no such date)")
	}
	return sc, nil
}

// schedule returns the app's Schedule (nil without "schedule"), checking
// the keys that go with it; problems go to errs with their paths.
func schedule(a *schema.App, p string, errs *problems) *Schedule {
	if a.Schedule == "" {
		for _, k := range []struct {
			key string
			set bool
		}{{"time-zone", a.TimeZone != ""}, {"run-on-start", a.RunOnStart}, {"catch-up", a.CatchUp}} {
			if k.set {
				errs.add(p+"."+k.key, "only applies with schedule")
			}
		}
		return nil
	}
	s := &Schedule{Spec: strings.TrimSpace(a.Schedule), TimeZone: a.TimeZone, Concurrency: a.Concurrency,
		RunOnStart: a.RunOnStart, CatchUp: a.CatchUp}
	if s.Concurrency == "" {
		s.Concurrency = schema.ConcurrencyForbid
	}
	ok := true
	if a.TimeZone != "" {
		if strings.HasPrefix(s.Spec, "TZ=") || strings.HasPrefix(s.Spec, "CRON_TZ=") {
			errs.add(p+".time-zone", "must be absent when schedule starts with TZ= (one time zone)")
			ok = false
		} else if _, err := time.LoadLocation(a.TimeZone); err != nil {
			errs.add(p+".time-zone", fmt.Sprintf("unknown time zone %q", a.TimeZone))
			ok = false
		}
	}
	if ok {
		sc, err := parseSchedule(s.Spec, a.TimeZone)
		if err != nil {
			errs.add(p+".schedule", err.Error())
		}
		s.cron = sc
	}
	if k := a.Keepalive; k != 0 && k != schema.KeepalivePIDPatrol {
		errs.add(p+".keepalive", fmt.Sprintf("must be 1 (Patrol starts each run and sees it end) with schedule, got %d", k))
	}
	if a.Replicas > 1 {
		errs.add(p+".replicas", "must be absent or 1 with schedule (a job runs one process at a time, or several with concurrency \"allow\")")
	}
	return s
}

// scheduleField is one key of a's schedule for the diff, nil without one.
func scheduleField(a *App, get func(*Schedule) any) any {
	if a.Schedule == nil {
		return nil
	}
	return get(a.Schedule)
}
