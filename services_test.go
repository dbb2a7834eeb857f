package patrol_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// fakeServiceScript manages fake services as files in $FAKE_STATE and
// records its argv in $FAKE_STATE/log. A service NAME runs while
// $FAKE_STATE/NAME exists; $FAKE_STATE/NAME.hang makes status hang.
const fakeServiceScript = `#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE_STATE/log"
case "$(basename "$0")" in
systemctl) verb=$1; name=$2 ;;
service) name=$1; verb=$2 ;;
*) name=$(basename "$0"); verb=$1 ;;
esac
case "$verb" in
start|go) touch "$FAKE_STATE/$name" ;;
stop) rm -f "$FAKE_STATE/$name" ;;
restart|force-reload) touch "$FAKE_STATE/$name" ;;
status)
	[ -e "$FAKE_STATE/$name.hang" ] && exec sleep 1000
	[ -e "$FAKE_STATE/$name" ] && exit 0
	echo "$name is stopped"
	exit 3 ;;
esac
exit 0
`

// fakeServices puts fake service and systemctl commands first on PATH and
// returns the state directory and a fake init.d directory holding
// scripts.
func fakeServices(t *testing.T, scripts ...string) (state, initd string) {
	dir := t.TempDir()
	bin, state, initd := filepath.Join(dir, "bin"), filepath.Join(dir, "state"), filepath.Join(dir, "initd")
	for _, d := range []string{bin, state, initd} {
		os.Mkdir(d, 0o755)
	}
	for _, name := range []string{"service", "systemctl"} {
		os.WriteFile(filepath.Join(bin, name), []byte(fakeServiceScript), 0o755)
	}
	for _, name := range scripts {
		os.WriteFile(filepath.Join(initd, name), []byte(fakeServiceScript), 0o755)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	t.Setenv("FAKE_STATE", state)
	return state, initd
}

func fakeLog(state string) []string {
	b, _ := os.ReadFile(filepath.Join(state, "log"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (d *daemon) service(t *testing.T, id string) *schema.Response {
	t.Helper()
	st, err := d.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.Services[id]
}

// TestServices: fake `service`, `systemctl` and init.d scripts first on
// PATH: a stopped service is started at once; disable runs stop, enable
// start; restart runs the configured restart verb once and records
// history with restart: true; verbs and per-action methods are used
// exactly as configured; an ignored status code counts as running.
func TestServices(t *testing.T) {
	state, initd := fakeServices(t, "demo")
	d := startPatrol(t, map[string]any{
		"tick-every":      60,
		"initd-directory": initd,
		"services": map[string]any{
			"web":  map[string]any{"management": 1, "service": "nginx"},
			"cron": map[string]any{"management": 3, "service": "cron.service"},
			"demo": map[string]any{"management": 2},
			"mixed": map[string]any{"management-start": 2, "management-status": 3, "management-stop": 1, "management-restart": 1,
				"service": "demo", "management-restart-parameter": "force-reload"},
			"lenient": map[string]any{"management": 1, "ignore-exit-codes-status": []int{3}},
		},
	})
	waitFor(t, "services running", 5*time.Second, func() bool {
		for _, id := range []string{"web", "cron", "demo", "mixed"} {
			if s := d.service(t, id); s.State != schema.StateRunning {
				return false
			}
		}
		return true
	})
	log := fakeLog(state)
	for _, want := range []string{"service nginx status", "service nginx start", "systemctl status cron.service", "systemctl start cron.service", "demo status", "demo start"} {
		if !slices.Contains(log, want) {
			t.Errorf("fake log lacks %q: %q", want, log)
		}
	}
	if s := d.service(t, "lenient"); s.State != schema.StateRunning || slices.Contains(log, "service lenient start") {
		t.Errorf("status code 3 is ignored for lenient: it counts as running and is never started: %+v, log %q", s, log)
	}

	os.Remove(filepath.Join(state, "log"))
	if r, code := d.post(t, map[string]any{"id": "web", "group": "service", "toggle": 2}); code != 200 || len(r.Errors) > 0 {
		t.Fatalf("disable: %d %+v", code, r)
	}
	waitFor(t, "web disabled", 5*time.Second, func() bool { return d.service(t, "web").State == schema.StateDisabled })
	if log := fakeLog(state); !slices.Equal(log, []string{"service nginx stop"}) {
		t.Errorf("disable ran %q", log)
	}
	os.Remove(filepath.Join(state, "log"))
	d.post(t, map[string]any{"id": "web", "group": "service", "toggle": 1})
	waitFor(t, "web running", 5*time.Second, func() bool { return d.service(t, "web").State == schema.StateRunning })
	if log := fakeLog(state); !slices.Equal(log, []string{"service nginx start"}) {
		t.Errorf("enable ran %q", log)
	}

	os.Remove(filepath.Join(state, "log"))
	d.post(t, map[string]any{"id": "mixed", "group": "service", "toggle": 3})
	waitFor(t, "mixed restarted", 5*time.Second, func() bool {
		s := d.service(t, "mixed")
		return len(s.History) == 1 && s.State == schema.StateRunning && s.InstanceID != ""
	})
	if log := fakeLog(state); !slices.Equal(log, []string{"service demo force-reload", "systemctl status demo"}) {
		t.Errorf("restart ran %q, want the restart verb once (method 1), then the status (method 3)", log)
	}
	if h := d.service(t, "mixed").History[0]; !h.Restart || h.PID != 0 || h.ExitCode != 0 {
		t.Errorf("restart history: %+v", h)
	}
}

// TestServiceStatusHangs: a status command that hangs is killed after its
// timeout, and the API keeps answering meanwhile.
func TestServiceStatusHangs(t *testing.T) {
	state, _ := fakeServices(t)
	os.WriteFile(filepath.Join(state, "stuck.hang"), nil, 0o644)
	d := startPatrolWith(t, map[string]any{
		"services": map[string]any{"stuck": map[string]any{"management": 1}},
	}, patrol.Options{ServiceStatusTimeout: time.Second})
	waitFor(t, "the status command running", 5*time.Second, func() bool {
		return slices.Contains(fakeLog(state), "service stuck status")
	})
	for range 5 {
		start := time.Now()
		resp, err := http.Get("http://" + d.HTTPAddr() + "/status/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if took := time.Since(start); took > 100*time.Millisecond {
			t.Errorf("/status/ took %v during a hanging status command", took)
		}
	}
	// After the timeout the status command is killed and counts as "not
	// running", so Patrol starts the service (as the original did).
	waitFor(t, "a start after the timed-out status", 5*time.Second, func() bool {
		return slices.Contains(fakeLog(state), "service stuck start")
	})
	waitFor(t, "the start to finish", 5*time.Second, func() bool { return d.service(t, "stuck").State == schema.StateRunning })
	if kids := testhelper.Children(); len(kids) > 0 {
		t.Errorf("the hung status command was not killed: children %v", kids)
	}
	os.Remove(filepath.Join(state, "stuck.hang"))
}
