package desired

import (
	"testing"
	"time"
)

// FuzzSchedule: any schedule and time zone either parse into a schedule
// whose next run is after the time given (or never), or fail with an
// error; nothing panics (robfig/cron's parser is fed straight from the
// config).
func FuzzSchedule(f *testing.F) {
	for _, s := range []string{"* * * * *", "*/5 1-3 * * MON-FRI", "@every 1m30s", "@hourly", "TZ=Europe/Paris 0 3 * * *",
		"CRON_TZ=Nope 0 3 * * *", "0 0 30 2 *", "@every -1s", "@every 0s", "1-0 * * * *", "*/0 * * * *", "? ? ? ? ?", "L W # * *"} {
		f.Add(s, "")
		f.Add(s, "UTC")
	}
	f.Add("@daily", "America/New_York")
	from := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC) // a DST change in Europe
	f.Fuzz(func(t *testing.T, spec, zone string) {
		if len(zone) > 64 {
			return // time.LoadLocation reads files named by the zone
		}
		sc, err := parseSchedule(spec, zone)
		if err != nil {
			return
		}
		next := sc.Next(from)
		if !next.IsZero() && !next.After(from) {
			t.Errorf("%q in %q: next run %v is not after %v", spec, zone, next, from)
		}
	})
}
