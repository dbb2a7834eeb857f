package desired_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/patrolhq/patrol/desired"
)

// BenchmarkLoad1000 decodes, validates and normalises a config of 1,000
// apps (what every reload of such a file costs).
func BenchmarkLoad1000(b *testing.B) {
	apps := make([]string, 1000)
	for i := range apps {
		apps[i] = fmt.Sprintf(`"app-%d": {"binary": "/usr/bin/app", "args": ["-n", "%d"], "env": ["A=B"], "keepalive": %d, "pid-path": "app-%d.pid", "backoff": {"initial": 0.5}}`, i, i, 1+i%2, i)
	}
	data := []byte(`{"tick-every": 15, "apps": {` + strings.Join(apps, ",\n") + `}}`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := desired.Parse(data, desired.Options{Dir: "/cfg"}); err != nil {
			b.Fatal(err)
		}
	}
}
