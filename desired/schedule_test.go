package desired_test

import (
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/schema"
)

func TestScheduleRules(t *testing.T) { runRuleCases(t, scheduleCases) }

var scheduleCases = []ruleCase{
	{"five fields", app(`"schedule": "*/5 * * * 1-5", "concurrency": "replace", "run-on-start": true, "catch-up": true`), nil},
	{"descriptor", app(`"schedule": "@daily", "time-zone": "Europe/Paris"`), nil},
	{"every", app(`"schedule": "@every 10m"`), nil},
	{"TZ prefix", app(`"schedule": "TZ=America/New_York 30 2 * * *"`), nil},
	{"allow", app(`"schedule": "@hourly", "concurrency": "allow"`), nil},
	{"four fields", app(`"schedule": "* * * *"`), []string{`apps.web.schedule: not a cron expression: expected exactly 5 fields, found 4: [* * * *]`}},
	{"minute out of range", app(`"schedule": "61 * * * *"`), []string{`apps.web.schedule: not a cron expression: end of range (61) above maximum (59): 61`}},
	{"word", app(`"schedule": "@sometimes"`), []string{`apps.web.schedule: not a cron expression: unrecognized descriptor: @sometimes`}},
	{"every too short", app(`"schedule": "@every 500ms"`), []string{`apps.web.schedule: @every must be at least 1s, got 500ms`}},
	{"no such date", app(`"schedule": "0 0 30 2 *"`), []string{`apps.web.schedule: never runs (no such date)`}},
	{"unknown zone", app(`"schedule": "@daily", "time-zone": "Mars/Olympus"`), []string{`apps.web.time-zone: unknown time zone "Mars/Olympus"`}},
	{"two zones", app(`"schedule": "TZ=UTC @daily", "time-zone": "UTC"`), []string{`apps.web.time-zone: must be absent when schedule starts with TZ= (one time zone)`}},
	{"bad concurrency", app(`"schedule": "@daily", "concurrency": "queue"`), []string{`apps.web.concurrency: must be "forbid", "replace" or "allow", got "queue"`}},
	{"companions alone", app(`"run-on-start": true, "catch-up": true, "time-zone": "UTC"`), []string{
		`apps.web.catch-up: only applies with schedule`, `apps.web.run-on-start: only applies with schedule`, `apps.web.time-zone: only applies with schedule`}},
	{"keepalive", app(`"schedule": "@daily", "keepalive": 3`), []string{`apps.web.keepalive: must be 1 (Patrol starts each run and sees it end) with schedule, got 3`}},
	{"replicas", app(`"schedule": "@daily", "replicas": 2`), []string{`apps.web.replicas: must be absent or 1 with schedule (a job runs one process at a time, or several with concurrency "allow")`}},
}

// TestScheduleNext: the next run times of a parsed schedule, in its time
// zone, and "@every" counted from the time given.
func TestScheduleNext(t *testing.T) {
	st, err := desired.Parse([]byte(`{"apps": {
		"nightly": {"binary": "/bin/true", "schedule": "30 2 * * *", "time-zone": "Europe/Paris"},
		"often": {"binary": "/bin/true", "schedule": "@every 90s"},
		"plain": {"binary": "/bin/true"}}}`), desired.Options{Dir: "/cfg"})
	if err != nil {
		t.Fatal(desired.Problems(err))
	}
	from := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	n, _ := st.App("nightly")
	if got, want := n.Schedule.Next(from), time.Date(2026, 7, 2, 0, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("nightly after %v: %v, want %v (02:30 in Paris, summer time)", from, got, want)
	}
	if n.Schedule.Concurrency != schema.ConcurrencyForbid || n.Schedule.String() != "30 2 * * * (Europe/Paris)" {
		t.Errorf("nightly: %+v, %q", n.Schedule, n.Schedule.String())
	}
	o, _ := st.App("often")
	if got := o.Schedule.Next(from); !got.Equal(from.Add(90 * time.Second)) {
		t.Errorf("often after %v: %v", from, got)
	}
	if p, _ := st.App("plain"); p.Schedule != nil {
		t.Errorf("plain: schedule %+v", p.Schedule)
	}
}
