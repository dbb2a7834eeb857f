package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// scaleConfig is web with n replicas, and a plain app.
func scaleConfig(n int) string {
	return fmt.Sprintf(`{"tick-every": 60, "apps": {"web": %s, "plain": %s}}`,
		helperApp(fmt.Sprintf(`"replicas": %d`, n), "sleep"), helperApp("", "sleep"))
}

// running are the ids of the running apps of st, sorted.
func running(st *schema.Status) []string {
	var ids []string
	for id, a := range st.Apps {
		if a.State == schema.StateRunning {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestScale: `patrol scale web 4 --ttl 5s` runs a fourth replica and, once
// the TTL is over, stops it again (the file's 3); a scale without TTL is
// kept across a restart of Patrol and superseded by an edit of the app in
// the file; a scale the app cannot
// take is refused with the reason, and changes nothing.
func TestScale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, []byte(scaleConfig(3)), 0o644)
	p := startDaemon(t, path)
	three := []string{"plain", "web", "web-1", "web-2"}
	poll(t, "three replicas", 10*time.Second, func() bool { return slices.Equal(running(p.status(t)), three) })
	old := pids(p.status(t))

	scaled := time.Now()
	code, out, errOut := cli(t, "scale", "--server", p.addr, "web", "4", "--ttl", "5s")
	if code != 0 || !strings.HasPrefix(out, "app web: scaled to 4 replicas until ") {
		t.Fatalf("scale: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	four := []string{"plain", "web", "web-1", "web-2", "web-3"}
	poll(t, "four replicas", 10*time.Second, func() bool { return slices.Equal(running(p.status(t)), four) })
	st := p.status(t)
	if ov := st.Apps["web"].Override; ov == nil || ov.Replicas != 4 || ov.Expires == "" {
		t.Errorf("web's override: %+v, want replicas 4 with an expiry", ov)
	}
	for _, id := range three {
		if st.Apps[id].PID != old[id] {
			t.Errorf("%s restarted by the scale: pid %d -> %d", id, old[id], st.Apps[id].PID)
		}
	}
	// The TTL ends: back to the file's three, the others untouched.
	poll(t, "back to three", 15*time.Second, func() bool {
		st = p.status(t)
		return slices.Equal(running(st), three) && st.Apps["web"].Override == nil
	})
	if took := time.Since(scaled); took < 5*time.Second {
		t.Errorf("back to three after %v, before the 5 s TTL", took)
	}
	if got := pids(st); fmt.Sprint(got) != fmt.Sprint(old) {
		t.Errorf("after the TTL: %v, want %v", got, old)
	}

	// A scale without TTL, then the file says 2: the file wins.
	if code, out, errOut := cli(t, "scale", "--server", p.addr, "web", "5"); code != 0 {
		t.Fatalf("scale 5: exit %d, %q %q", code, out, errOut)
	}
	poll(t, "five replicas", 10*time.Second, func() bool { return len(running(p.status(t))) == 6 })
	// The scale is persisted: a Patrol killed and started again adopts the
	// five replicas, the two the scale added included.
	five := pids(p.status(t))
	p.kill9(t)
	p = startDaemon(t, path)
	poll(t, "five replicas adopted", 10*time.Second, func() bool { return len(running(p.status(t))) == 6 })
	if got := pids(p.status(t)); fmt.Sprint(got) != fmt.Sprint(five) {
		t.Errorf("after a restart of Patrol: %v, want %v", got, five)
	}
	if ov := p.status(t).Apps["web"].Override; ov == nil || ov.Replicas != 5 {
		t.Errorf("web's override after a restart of Patrol: %+v", ov)
	}
	replaceFile(t, path, scaleConfig(2))
	poll(t, "the file's two", 10*time.Second, func() bool {
		st = p.status(t)
		return slices.Equal(running(st), []string{"plain", "web", "web-1"}) && st.Apps["web"].Override == nil
	})
	if st.Apps["web"].PID != old["web"] || st.Apps["web-1"].PID != old["web-1"] {
		t.Errorf("replicas 0 and 1 restarted: %v, were %v", pids(st), old)
	}

	// Refused: an app without "replicas", a replica, a bad count.
	for _, c := range []struct{ args, want []string }{
		{[]string{"plain", "2"}, []string{"Invalid Replicas", `plain has no "replicas" in the config`}},
		{[]string{"web-1", "2"}, []string{"Invalid Replicas", "web-1 is replica 1 of web: scale web"}},
		{[]string{"web", "1001"}, []string{"Invalid Replicas", "from 1 to 1000"}},
	} {
		code, out, errOut := cli(t, append([]string{"scale", "--server", p.addr}, c.args...)...)
		if code != exitFail || out != "" {
			t.Errorf("scale %q: exit %d, stdout %q", c.args, code, out)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("scale %q: stderr %q, want %q in it", c.args, errOut, w)
			}
		}
	}
	if got := running(p.status(t)); !slices.Equal(got, []string{"plain", "web", "web-1"}) {
		t.Errorf("after refused scales: %v", got)
	}
	shutdown(t, p)
	testhelper.ReapOrphans() // the replicas the second Patrol adopted
}
