package reconcile

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/observed"
	"github.com/patrolhq/patrol/schema"
)

// BenchmarkStatus builds and renders the status JSON of 100 and 1,000
// running apps with a few history entries each (the /status/ path minus
// HTTP: the loop's part, then the encoding off the loop).
func BenchmarkStatus(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			apps := make([]string, n)
			for i := range apps {
				apps[i] = fmt.Sprintf(`"app-%d": {"binary": "/usr/bin/app", "keyvalue": {"k": %d}}`, i, i)
			}
			st, err := desired.Parse([]byte(`{"apps": {`+strings.Join(apps, ",")+`}}`), desired.Options{Dir: "/cfg"})
			if err != nil {
				b.Fatal(err)
			}
			l := New(Options{}, st)
			now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
			for i, a := range st.Apps() {
				oa := l.app(a.ID)
				oa.Instance = &observed.Instance{ID: a.ID, App: a, PID: 1000 + i, PGID: 1000 + i, Started: now, LastSeen: now}
				for h := range 5 {
					oa.History = append(oa.History, observed.Record{InstanceID: fmt.Sprint(h), PID: 900 + h, Started: now, Stopped: now, ExitCode: 1})
				}
			}
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = schema.AppendStatusJSON(buf[:0], l.status(now)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
