package desired_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/patrolhq/patrol/schema"
)

// jsonKeys lists the JSON keys of a schema struct type.
func jsonKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		k, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

const baseApps = `"web": {"binary": "/bin/web"%s}, "other": {"binary": "/bin/other", "keepalive": 2, "pid-path": "o.pid"}`

func TestFingerprintIgnoresFormatting(t *testing.T) {
	a, _ := parse(t, `{"apps": {"web": {"binary": "/bin/web", "args": ["-a"], "keyvalue": {"x": 1, "y": {"p": 1, "q": 2}}}, "db": {"binary": "/bin/db"}}, "tick-every": 5}`)
	b, _ := parse(t, "{\n\t\"tick-every\": 5,\n\t\"apps\": {\n\t\t\"db\": {\"binary\": \"/bin/db\"},\n\t\t\"web\": {\n\t\t\t\"keyvalue\": {\"y\": {\"q\": 2, \"p\": 1}, \"x\": 1},\n\t\t\t\"args\": [\"-a\"],\n\t\t\t\"binary\": \"/bin/web\"\n\t\t}\n\t}\n}\n")
	if a.Revision() != b.Revision() {
		t.Errorf("revision: got %s and %s for the same config reordered", a.Revision(), b.Revision())
	}
	for _, id := range []string{"web", "db"} {
		x, _ := a.App(id)
		y, _ := b.App(id)
		if x.Fingerprint() != y.Fingerprint() {
			t.Errorf("%s fingerprint differs for the same config reordered", id)
		}
	}
}

func TestFingerprintIgnoresSpelledOutDefaults(t *testing.T) {
	a, _ := parse(t, `{"apps": {"web": {"binary": "/bin/web"}}, "services": {"s": {"management": 1}}}`)
	b, _ := parse(t, `{
		"tick-every": 15, "history": 100, "ping-timeout": 30, "json-timestamp": "Mon, 02 Jan 2006 15:04:05 -0700",
		"http": {"listen": "127.0.0.1:8421"}, "udp": {"listen": "127.0.0.1:1248"},
		"initd-directory": "/etc/init.d", "log-retention": {"days": 14, "max-total-mb": 1024},
		"apps": {"WEB": {
			"binary": "/bin/web", "keepalive": 1, "name": "WEB", "working-directory": "/cfg", "log-directory": "logs/web",
			"stop-signal": "TERM", "stop-timeout": 10, "restart-policy": "always", "start-timeout": 10,
			"backoff": {"initial": 1, "max": 60, "reset-after": 60}, "args": [], "env": [], "keyvalue": {}, "depends-on": [],
			"hooks": {"timeout": 30}, "execute-timeout": 0, "disabled": false
		}},
		"services": {"s": {"management": 1, "name": "s", "service": "s", "management-start-parameter": "start", "ignore-exit-codes": []}}
	}`)
	wa, _ := a.App("web")
	wb, _ := b.App("web")
	// The name defaults to the id as written, so "WEB" vs "web" differ in
	// name only; compare everything else through a rename.
	if wa.Name != "web" || wb.Name != "WEB" {
		t.Fatalf("names: got %q and %q", wa.Name, wb.Name)
	}
	c, _ := parse(t, `{"apps": {"web": {"binary": "/bin/web", "name": "WEB"}}, "services": {"s": {"management": 1}}}`)
	wc, _ := c.App("web")
	if wb.Fingerprint() != wc.Fingerprint() {
		t.Error("app fingerprint changed by spelling out defaults")
	}
	sa, _ := a.Service("s")
	sb, _ := b.Service("s")
	if sa.Fingerprint() != sb.Fingerprint() {
		t.Error("service fingerprint changed by spelling out defaults")
	}
	if got, want := b.Revision(), c.Revision(); got != want {
		t.Errorf("revision changed by spelling out defaults: got %s, want %s", got, want)
	}
}

// TestFingerprintSeesEveryAppKey changes one app key at a time: that app's
// fingerprint and the revision change, and the other app's fingerprint
// does not. Every key of schema.App must have a case here.
func TestFingerprintSeesEveryAppKey(t *testing.T) {
	mutations := map[string]string{
		"keepalive":            `"keepalive": 3`,
		"name":                 `"name": "Web 2"`,
		"binary":               `"binary": "/bin/web2"`,
		"working-directory":    `"working-directory": "/srv"`,
		"log-directory":        `"log-directory": "var/log"`,
		"pid-path":             `"pid-path": "web.pid"`,
		"pid-verify":           `"pid-verify": true`,
		"disabled":             `"disabled": true`,
		"keyvalue":             `"keyvalue": {"a": 1}`,
		"keyvalue-clear":       `"keyvalue-clear": true`,
		"secret":               `"secret": "s"`,
		"execute-timeout":      `"execute-timeout": 5`,
		"args":                 `"args": ["-v"]`,
		"env":                  `"env": ["A=B"]`,
		"env-parent":           `"env-parent": true`,
		"env-file":             `"env-file": "app.env"`,
		"user":                 `"user": "nobody"`,
		"group":                `"group": "nogroup"`,
		"supplementary-groups": `"supplementary-groups": ["adm"]`,
		"umask":                `"umask": "027"`,
		"rlimits":              `"rlimits": {"nofile": 256}`,
		"replicas":             `"replicas": 2`,
		"rolling":              `"replicas": 1, "rolling": false`,
		"schedule":             `"schedule": "@hourly"`,
		"time-zone":            `"schedule": "@hourly", "time-zone": "UTC"`,
		"concurrency":          `"schedule": "@hourly", "concurrency": "replace"`,
		"run-on-start":         `"schedule": "@hourly", "run-on-start": true`,
		"catch-up":             `"schedule": "@hourly", "catch-up": true`,
		"memory-max":           `"memory-max": "64M"`,
		"memory-high":          `"memory-high": 33554432`,
		"cpu-max":              `"cpu-max": "50%"`,
		"pids-max":             `"pids-max": 10`,
		"std-merge":            `"std-merge": true`,
		"stop-signal":          `"stop-signal": "SIGUSR1"`,
		"stop-timeout":         `"stop-timeout": 3`,
		"restart-policy":       `"restart-policy": "never"`,
		"backoff":              `"backoff": {"reset-after": 5}`,
		"start-timeout":        `"start-timeout": 2`,
		"depends-on":           `"depends-on": ["other"]`,
		"liveness":             `"liveness": {"tcp": {"port": 1}}`,
		"readiness":            `"readiness": {"tcp": {"port": 1}}`,
		"startup":              `"startup": {"tcp": {"port": 1}}`,
		"ready":                `"ready": "notify"`,
		"ready-line":           `"ready": "log-line", "ready-line": "^up"`,
		"watchdog":             `"watchdog": 3`,
		"hooks":                `"hooks": {"on-exit": ["/bin/true"]}`,
		"x":                    `"x": {"a": 1}`,
	}
	assertCovers(t, mutations, reflect.TypeFor[schema.App]())
	base, _ := parse(t, `{"apps": {`+strings.Replace(baseApps, "%s", "", 1)+`}}`)
	bw, _ := base.App("web")
	bo, _ := base.App("other")
	for key, m := range mutations {
		t.Run(key, func(t *testing.T) {
			cfg := `{"apps": {` + strings.Replace(baseApps, "%s", ", "+m, 1) + `}}`
			if key == "binary" {
				cfg = `{"apps": {` + strings.Replace(strings.Replace(baseApps, `"binary": "/bin/web"`, m, 1), "%s", "", 1) + `}}`
			}
			st, problems := parse(t, cfg)
			if problems != nil {
				t.Fatalf("problems: %q", problems)
			}
			w, _ := st.App("web")
			o, _ := st.App("other")
			if w.Fingerprint() == bw.Fingerprint() {
				t.Error("web's fingerprint did not change")
			}
			if o.Fingerprint() != bo.Fingerprint() {
				t.Error("other's fingerprint changed")
			}
			if st.Revision() == base.Revision() {
				t.Error("revision did not change")
			}
		})
	}
}

// TestFingerprintSeesEveryServiceKey is the same for services.
func TestFingerprintSeesEveryServiceKey(t *testing.T) {
	const mgmt = `"management-start": 1, "management-status": 1, "management-stop": 1, "management-restart": 1`
	mutations := map[string]string{
		"management":                   `"management": 2`,
		"management-start":             strings.Replace(mgmt, `"management-start": 1`, `"management-start": 2`, 1),
		"management-status":            strings.Replace(mgmt, `"management-status": 1`, `"management-status": 2`, 1),
		"management-stop":              strings.Replace(mgmt, `"management-stop": 1`, `"management-stop": 2`, 1),
		"management-restart":           strings.Replace(mgmt, `"management-restart": 1`, `"management-restart": 2`, 1),
		"management-start-parameter":   `"management": 1, "management-start-parameter": "go"`,
		"management-status-parameter":  `"management": 1, "management-status-parameter": "check"`,
		"management-stop-parameter":    `"management": 1, "management-stop-parameter": "halt"`,
		"management-restart-parameter": `"management": 1, "management-restart-parameter": "force-reload"`,
		"name":                         `"management": 1, "name": "S"`,
		"service":                      `"management": 1, "service": "ssh"`,
		"ignore-exit-codes":            `"management": 1, "ignore-exit-codes": [1]`,
		"ignore-exit-codes-start":      `"management": 1, "ignore-exit-codes-start": [1]`,
		"ignore-exit-codes-status":     `"management": 1, "ignore-exit-codes-status": [3]`,
		"ignore-exit-codes-stop":       `"management": 1, "ignore-exit-codes-stop": [1]`,
		"ignore-exit-codes-restart":    `"management": 1, "ignore-exit-codes-restart": [1]`,
		"disabled":                     `"management": 1, "disabled": true`,
		"keyvalue":                     `"management": 1, "keyvalue": {"a": "b"}`,
		"keyvalue-clear":               `"management": 1, "keyvalue-clear": true`,
		"secret":                       `"management": 1, "secret": "s"`,
		"hooks":                        `"management": 1, "hooks": {"on-stop": ["logger"]}`,
		"x":                            `"management": 1, "x": [1]`,
	}
	assertCovers(t, mutations, reflect.TypeFor[schema.Service]())
	base, _ := parse(t, `{"services": {"svc": {"management": 1}, "other": {"management": 1}}}`)
	bs, _ := base.Service("svc")
	bo, _ := base.Service("other")
	for key, m := range mutations {
		t.Run(key, func(t *testing.T) {
			st, problems := parse(t, `{"services": {"svc": {`+m+`}, "other": {"management": 1}}}`)
			if problems != nil {
				t.Fatalf("problems: %q", problems)
			}
			s, _ := st.Service("svc")
			o, _ := st.Service("other")
			if s.Fingerprint() == bs.Fingerprint() {
				t.Error("svc's fingerprint did not change")
			}
			if o.Fingerprint() != bo.Fingerprint() {
				t.Error("other's fingerprint changed")
			}
		})
	}
}

// TestRevisionSeesEveryTopLevelKey changes one top-level key at a time.
func TestRevisionSeesEveryTopLevelKey(t *testing.T) {
	mutations := map[string]string{
		"apps":            `"apps": {"a": {"binary": "/a"}}`,
		"services":        `"services": {"s": {"management": 1}}`,
		"tick-every":      `"tick-every": 5`,
		"history":         `"history": 10`,
		"json-timestamp":  `"json-timestamp": "RFC3339"`,
		"ping-timeout":    `"ping-timeout": 5`,
		"listen-http":     `"listen-http": ["127.0.0.1:1"]`,
		"listen-udp":      `"listen-udp": ["127.0.0.1:1"]`,
		"http":            `"http": {"token": "t", "protect-reads": true, "tls-cert": "c.pem", "tls-key": "k.pem"}`,
		"udp":             `"udp": {"listen": "127.0.0.1:0"}`,
		"initd-directory": `"initd-directory": "/etc/rc.d"`,
		"cgroup-root":     `"cgroup-root": "/patrol/apps"`,
		"log-retention":   `"log-retention": {"days": 1}`,
		"keyvalue-limits": `"keyvalue-limits": {"max-keys": 3}`,
		"hooks":           `"hooks": {"on-crash": ["logger"]}`,
		"x":               `"x": "data"`,
	}
	assertCovers(t, mutations, reflect.TypeFor[schema.Config](), "$schema")
	base, _ := parse(t, `{}`)
	for key, m := range mutations {
		t.Run(key, func(t *testing.T) {
			st, problems := parse(t, `{`+m+`}`)
			if problems != nil {
				t.Fatalf("problems: %q", problems)
			}
			if st.Revision() == base.Revision() {
				t.Error("revision did not change")
			}
		})
	}
	t.Run("$schema is ignored", func(t *testing.T) {
		st, _ := parse(t, `{"$schema": "x.json"}`)
		if st.Revision() != base.Revision() {
			t.Error("revision changed by $schema")
		}
	})
}

// assertCovers fails unless mutations has a case for every JSON key of t,
// except those listed as skipped.
func assertCovers(t *testing.T, mutations map[string]string, typ reflect.Type, skip ...string) {
	t.Helper()
	for _, k := range jsonKeys(typ) {
		if _, ok := mutations[k]; !ok && !slices.Contains(skip, k) && k != "$schema" {
			t.Errorf("no mutation for %s key %q", typ.Name(), k)
		}
	}
}

// TestLogsShared: apps that write to the same log directory know it (the
// count cap of their log files then counts each app's own starts), and it
// is not part of their fingerprint.
func TestLogsShared(t *testing.T) {
	st, problems := parse(t, `{"apps": {
		"a": {"binary": "/a", "log-directory": "/var/log/pool"},
		"b": {"binary": "/b", "log-directory": "/var/log/pool"},
		"c": {"binary": "/c"}}}`)
	if problems != nil {
		t.Fatalf("problems: %q", problems)
	}
	for id, want := range map[string]bool{"a": true, "b": true, "c": false} {
		if a, _ := st.App(id); a.LogsShared() != want {
			t.Errorf("%s: LogsShared %v, want %v", id, a.LogsShared(), want)
		}
	}
	alone, _ := parse(t, `{"apps": {"a": {"binary": "/a", "log-directory": "/var/log/pool"}}}`)
	a1, _ := st.App("a")
	a2, _ := alone.App("a")
	if a2.LogsShared() || a1.Fingerprint() != a2.Fingerprint() {
		t.Errorf("alone: LogsShared %v; fingerprints equal %v", a2.LogsShared(), a1.Fingerprint() == a2.Fingerprint())
	}
}
