package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patrolhq/patrol/internal/testhelper"
	"github.com/patrolhq/patrol/schema"
)

// apiPost sends one API request to the daemon and decodes the answer.
func (p *proc) apiPost(t *testing.T, req map[string]any) (*schema.Response, int) {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, err := http.Post("http://"+p.addr+"/api/", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r schema.Response
	json.NewDecoder(resp.Body).Decode(&r)
	return &r, resp.StatusCode
}

// kill9 SIGKILLs the daemon (not its apps) and waits for it.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("patrol did not die")
	}
}

// TestKill9Adopts: after kill -9 of Patrol its apps keep running, and the
// next Patrol adopts them (same pids, same instance ids), with history,
// key/value and overrides intact.
func TestKill9Adopts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, []byte(fmt.Sprintf(`{"apps": {"web": %s, "daemon": %s, "off": %s}}`,
		helperApp(`"backoff": {"reset-after": 0.05}`, "sleep", filepath.Join(dir, "web.pid")),
		helperApp(`"keepalive": 2, "pid-path": "daemon.pid"`, "daemonize"),
		helperApp("", "sleep"))), 0o644)
	p := startDaemon(t, path)
	poll(t, "running", 10*time.Second, func() bool { return len(pids(p.status(t))) == 3 })
	// A crash for history, key/value, and an override.
	first := p.status(t).Apps["web"]
	time.Sleep(60 * time.Millisecond)
	syscall.Kill(int(first.PID), syscall.SIGKILL)
	poll(t, "web restarted", 10*time.Second, func() bool {
		a := p.status(t).Apps["web"]
		return a.State == schema.StateRunning && a.PID != first.PID
	})
	if r, code := p.apiPost(t, map[string]any{"id": "web", "group": "app", "keyvalue": map[string]any{"owner": "ops"}}); code != 200 {
		t.Fatalf("keyvalue: %d %+v", code, r)
	}
	if r, code := p.apiPost(t, map[string]any{"id": "off", "group": "app", "toggle": 2, "ttl": 3600}); code != 200 {
		t.Fatalf("disable: %d %+v", code, r)
	}
	poll(t, "off stopped", 10*time.Second, func() bool { return p.status(t).Apps["off"].State == schema.StateDisabled })
	before := p.status(t)

	p.kill9(t)
	for id, a := range before.Apps {
		if a.PID != 0 && !testhelper.Alive(int(a.PID)) {
			t.Fatalf("%s (pid %d) died with patrol", id, a.PID)
		}
	}

	p2 := startDaemon(t, path)
	var after *schema.Status
	poll(t, "adopted", 10*time.Second, func() bool {
		after = p2.status(t)
		return after.Apps["web"].State == schema.StateRunning && after.Apps["daemon"].State == schema.StateRunning
	})
	for _, id := range []string{"web", "daemon"} {
		b, a := before.Apps[id], after.Apps[id]
		if a.PID != b.PID || a.InstanceID != b.InstanceID {
			t.Errorf("%s: pid %d/%s before, %d/%s after: not adopted", id, b.PID, b.InstanceID, a.PID, a.InstanceID)
		}
	}
	web := after.Apps["web"]
	if len(web.History) != 1 || web.History[0].ExitCode != 137 || web.KeyValue["owner"] != "ops" {
		t.Errorf("web after the restart: history %+v, keyvalue %v", web.History, web.KeyValue)
	}
	if off := after.Apps["off"]; off.State != schema.StateDisabled || off.Override == nil || off.Override.Expires == "" {
		t.Errorf("off after the restart: %+v", off)
	}
	if web.CAS <= before.Apps["web"].CAS {
		t.Errorf("CAS went back: %d -> %d", before.Apps["web"].CAS, web.CAS)
	}
	// Adopted apps are still stopped by a graceful shutdown.
	shutdown(t, p2)
	for _, id := range []string{"web", "daemon"} {
		if testhelper.Alive(int(after.Apps[id].PID)) {
			t.Errorf("%s survived the graceful shutdown", id)
		}
	}
	testhelper.ReapOrphans()
}

// TestReusedPIDNotAdopted: a saved pid that now names another process
// (same pid, different start time) is not adopted and not signalled.
func TestReusedPIDNotAdopted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, []byte(fmt.Sprintf(`{"apps": {"web": %s}}`, helperApp("", "sleep"))), 0o644)
	p := startDaemon(t, path)
	poll(t, "running", 10*time.Second, func() bool { return len(pids(p.status(t))) == 1 })
	old := p.status(t).Apps["web"]
	oldStart := testhelper.StartTime(int(old.PID))
	p.kill9(t)
	syscall.Kill(int(old.PID), syscall.SIGKILL)
	// Reaped, not just a zombie: a multi-threaded process shows "Z" before
	// its last thread is gone and it can be reaped.
	poll(t, "the app gone and reaped", 5*time.Second, func() bool {
		testhelper.ReapOrphans()
		_, err := os.Stat("/proc/" + strconv.Itoa(int(old.PID)))
		return err != nil
	})

	// An unrelated process, and the saved state rewritten so that the
	// instance's pid is that process's pid: a pid reused by the kernel,
	// with a start time that does not match.
	// Its start time must differ from the app's: start times count clock
	// ticks (10 ms), and on a fast machine both can fall in one.
	self, _ := os.Executable()
	var other *os.Process
	for deadline := time.Now().Add(5 * time.Second); ; {
		var err error
		other, err = os.StartProcess(self, []string{self, testhelper.Arg, "sleep"}, &os.ProcAttr{Files: []*os.File{nil, nil, nil}})
		if err != nil {
			t.Fatal(err)
		}
		if st := testhelper.StartTime(other.Pid); st != 0 && st != oldStart || time.Now().After(deadline) {
			break
		}
		other.Kill()
		other.Wait()
	}
	defer func() { other.Kill(); other.Wait() }()
	for _, f := range []string{"state.json", "journal.jsonl"} {
		f = filepath.Join(dir, ".patrol", f)
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		b = bytes.ReplaceAll(b, []byte(`"pid":`+strconv.Itoa(int(old.PID))), []byte(`"pid":`+strconv.Itoa(other.Pid)))
		os.WriteFile(f, b, 0o644)
	}
	p2 := startDaemon(t, path)
	var a *schema.Response
	poll(t, "a new instance", 10*time.Second, func() bool {
		a = p2.status(t).Apps["web"]
		return a.State == schema.StateRunning
	})
	if int(a.PID) == other.Pid || a.InstanceID == old.InstanceID {
		t.Errorf("the unrelated process %d was adopted: %+v", other.Pid, a)
	}
	if len(a.History) != 1 || a.History[0].Reason != schema.ReasonPIDGone {
		t.Errorf("history: %+v", a.History)
	}
	shutdown(t, p2)
	if !testhelper.Alive(other.Pid) {
		t.Error("the unrelated process was signalled")
	}
}

// TestCorruptStateIsSetAside: a damaged state file is renamed aside and
// Patrol starts with an empty state, never a crash loop.
func TestCorruptStateIsSetAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, []byte(fmt.Sprintf(`{"apps": {"web": %s}}`, helperApp("", "sleep"))), 0o644)
	os.Mkdir(filepath.Join(dir, ".patrol"), 0o700)
	os.WriteFile(filepath.Join(dir, ".patrol", "state.json"), []byte("{not json"), 0o644)
	p := startDaemon(t, path)
	poll(t, "running", 10*time.Second, func() bool { return len(pids(p.status(t))) == 1 })
	aside, _ := filepath.Glob(filepath.Join(dir, ".patrol", "state.json.corrupt-*"))
	if len(aside) != 1 {
		t.Errorf("damaged state not set aside: %v", aside)
	}
	shutdown(t, p)
}

// TestChaos: 20 apps (keepalive 1 and 2, some crashing every few hundred
// ms), API changes in flight, and Patrol killed with SIGKILL at random
// moments ten times: no app ever runs twice, every acknowledged change
// and history entry survives, and in the end every app has exactly one
// live process and no zombie is left.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos test takes about half a minute")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	var apps []string
	for i := range 20 {
		id := fmt.Sprintf("app%02d", i)
		marker := "chaos-" + id + "-" + filepath.Base(dir)
		var cfg string
		switch {
		case i < 5: // crash every few hundred ms
			cfg = helperApp(`"backoff": {"initial": 0.05, "max": 0.2, "reset-after": 10}`, "exit-after", fmt.Sprintf("%dms", 200+50*i), "1", marker)
		case i < 10: // forking daemons
			cfg = helperApp(fmt.Sprintf(`"keepalive": 2, "pid-path": "%s.pid"`, id), "daemonize", marker)
		default:
			cfg = helperApp("", "sleep", "", marker)
		}
		apps = append(apps, fmt.Sprintf("%q: %s", id, cfg))
	}
	os.WriteFile(path, []byte(`{"apps": {`+strings.Join(apps, ",")+`}}`), 0o644)

	// Count the live processes of each app by the marker in their command
	// line, every few milliseconds, for the whole test.
	var (
		mu         sync.Mutex
		duplicates []string
	)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(5 * time.Millisecond):
			}
			for id, n := range liveByMarker("chaos-", filepath.Base(dir)) {
				if n > 1 {
					mu.Lock()
					duplicates = append(duplicates, fmt.Sprintf("%s: %d copies", id, n))
					mu.Unlock()
				}
			}
		}
	}()
	defer func() { close(stopSampling); <-sampled }()

	acked := map[string]string{} // app -> key/value value acknowledged
	var history map[string][]string
	for round := range 10 {
		p := startDaemon(t, path)
		poll(t, "the steady apps running", 15*time.Second, func() bool {
			st := p.status(t)
			for i := 5; i < 20; i++ {
				if a := st.Apps[fmt.Sprintf("app%02d", i)]; a == nil || a.State != schema.StateRunning {
					return false
				}
			}
			return true
		})
		// Changes in flight: each acknowledged one must survive.
		id := fmt.Sprintf("app%02d", 10+round)
		if _, code := p.apiPost(t, map[string]any{"id": id, "group": "app", "keyvalue": map[string]any{"round": round}}); code == 200 {
			acked[id] = fmt.Sprint(round)
		}
		time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
		// History visible now was saved at the end of the pass that made it.
		history = map[string][]string{}
		for aid, a := range p.status(t).Apps {
			for _, h := range a.History {
				history[aid] = append(history[aid], h.InstanceID)
			}
		}
		p.kill9(t)
	}
	p := startDaemon(t, path)
	var st *schema.Status
	poll(t, "every app running once", 20*time.Second, func() bool {
		st = p.status(t)
		for i := range 20 {
			id := fmt.Sprintf("app%02d", i)
			if i >= 5 && st.Apps[id].State != schema.StateRunning {
				return false
			}
		}
		return true
	})
	for id, v := range acked {
		if got := fmt.Sprint(st.Apps[id].KeyValue["round"]); got != v {
			t.Errorf("%s: acknowledged keyvalue round=%s lost (now %s)", id, v, got)
		}
	}
	for id, ids := range history {
		have := map[string]bool{}
		for _, h := range st.Apps[id].History {
			have[h.InstanceID] = true
		}
		for _, iid := range ids {
			if !have[iid] && len(st.Apps[id].History) < 100 {
				t.Errorf("%s: history entry %s lost", id, iid)
			}
		}
	}
	live := liveByMarker("chaos-", filepath.Base(dir))
	for i := 5; i < 20; i++ {
		id := fmt.Sprintf("app%02d", i)
		if live[id] != 1 {
			t.Errorf("%s: %d live processes, want 1", id, live[id])
		}
	}
	mu.Lock()
	if len(duplicates) > 0 {
		t.Errorf("apps ran twice at sampled moments: %v", duplicates[:min(len(duplicates), 10)])
	}
	mu.Unlock()
	shutdown(t, p)
	poll(t, "every app stopped", 10*time.Second, func() bool { return len(liveByMarker("chaos-", filepath.Base(dir))) == 0 })
	testhelper.ReapOrphans()
	if kids := testhelper.Children(); len(kids) > 0 {
		t.Errorf("left behind: %v", kids)
	}
}

// liveByMarker counts live processes per app whose command line holds a
// "chaos-<id>-<suffix>" marker; keepalive 2 launchers ("daemonize") are
// not counted, only their daemons.
func liveByMarker(prefix, suffix string) map[string]int {
	out := map[string]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !testhelper.Alive(pid) {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 2 && args[2] == "daemonize" {
			continue
		}
		for _, a := range args {
			if rest, ok := strings.CutPrefix(a, prefix); ok && strings.HasSuffix(rest, "-"+suffix) {
				out[strings.TrimSuffix(rest, "-"+suffix)]++
			}
		}
	}
	return out
}

// TestKill9KeepsWatchdog: an app with a watchdog that Patrol re-adopts
// after a kill -9 gets its NOTIFY_SOCKET back (same name, same instance),
// so its WATCHDOG=1 keeps it alive: it is not restarted for the
// watchdog, although Patrol was gone for longer than the watchdog.
func TestKill9KeepsWatchdog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, []byte(fmt.Sprintf(`{"apps": {"dog": %s}}`,
		helperApp(`"watchdog": 0.5`, "watchdog", "1000000", "100ms"))), 0o644)
	p := startDaemon(t, path)
	poll(t, "running", 10*time.Second, func() bool { return len(pids(p.status(t))) == 1 })
	before := p.status(t).Apps["dog"]
	p.kill9(t)
	time.Sleep(time.Second) // twice the watchdog without anyone listening
	p = startDaemon(t, path)
	poll(t, "adopted", 10*time.Second, func() bool {
		a := p.status(t).Apps["dog"]
		return a != nil && a.PID == before.PID && a.WatchdogUntil != ""
	})
	time.Sleep(1500 * time.Millisecond) // three watchdog periods: it must still be fed
	after := p.status(t).Apps["dog"]
	if after.PID != before.PID || after.InstanceID != before.InstanceID || len(after.History) != 0 {
		t.Errorf("after adoption: pid %d -> %d, instance %s -> %s, history %+v", before.PID, after.PID, before.InstanceID, after.InstanceID, after.History)
	}
	shutdown(t, p)
	testhelper.ReapOrphans() // dog was ours since the first Patrol died
	if testhelper.Alive(int(before.PID)) {
		t.Errorf("dog (%d) survived the graceful shutdown", before.PID)
	}
}

// TestKill9AdoptsCgroup: after kill -9 of Patrol, the next Patrol adopts
// an app whose child left its process group (setsid) and finds the
// instance's cgroup again: stopping the app stops the child too.
func TestKill9AdoptsCgroup(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err != nil {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("no cgroup v2 hierarchy on this CI machine")
			}
			t.Skip("no cgroup v2 hierarchy mounted: the cgroup tracking cannot be tested here")
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	pidFile := filepath.Join(dir, "child.pid")
	os.WriteFile(path, []byte(fmt.Sprintf(`{"apps": {"escaper": %s}}`, helperApp(`"stop-timeout": 2`, "setsid-child", pidFile))), 0o644)
	p := startDaemon(t, path)
	poll(t, "escaper running", 10*time.Second, func() bool { return pids(p.status(t))["escaper"] != 0 })
	app := pids(p.status(t))["escaper"]
	var child int
	poll(t, "the child's pid", 10*time.Second, func() bool { child = testhelper.ReadPID(pidFile); return child != 0 })
	p.kill9(t)

	p2 := startDaemon(t, path)
	poll(t, "escaper adopted", 10*time.Second, func() bool { return pids(p2.status(t))["escaper"] == app })
	if code, _, e := cli(t, "toggle", "--server", p2.addr, "app", "escaper", "disable"); code != 0 {
		t.Fatalf("disable: %s", e)
	}
	start := time.Now()
	poll(t, "the app and its escaped child gone", 10*time.Second, func() bool {
		return !testhelper.Alive(int(app)) && !testhelper.Alive(child)
	})
	t.Logf("adopted app and its escaped child gone %v after the stop", time.Since(start).Round(time.Millisecond))
	shutdown(t, p2)
	testhelper.ReapOrphans()
}

// TestKill9KeepsLimits: after a kill -9 of Patrol the adopted instance is
// still in its cgroups with its limits in force; a limit changed in the
// file while Patrol was down is written at the adoption, and one changed
// afterwards in place, both to the same process.
func TestKill9KeepsLimits(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	write := func(mem string, pidsMax int) {
		cfg := fmt.Sprintf(`{"apps": {"capped": %s}}`, helperApp(fmt.Sprintf(`"memory-max": %q, "pids-max": %d`, mem, pidsMax), "sleep"))
		if err := os.WriteFile(path+".tmp", []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write("64M", 10)
	p := startDaemon(t, path)
	poll(t, "capped running", 10*time.Second, func() bool { return pids(p.status(t))["capped"] != 0 })
	if l := p.status(t).Apps["capped"].Limits; l != "enforced" {
		if os.Getenv("CI") != "" {
			t.Fatalf("limits on this CI machine: %s", l)
		}
		t.Skipf("this host cannot enforce the limits: %s", l)
	}
	app := int(pids(p.status(t))["capped"])
	pidsMax, err := testhelper.WaitCgroupFile(app, "pids", "pids.max", "pids.max", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	memMax, err := testhelper.WaitCgroupFile(app, "memory", "memory.max", "memory.limit_in_bytes", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	read := func(f string) string { b, _ := os.ReadFile(f); return strings.TrimSpace(string(b)) }
	p.kill9(t)
	write("96M", 10) // changed while Patrol is down

	p2 := startDaemon(t, path)
	t.Cleanup(func() {
		if t.Failed() {
			for len(p2.logs) > 0 {
				t.Log(<-p2.logs)
			}
		}
	})
	poll(t, "capped adopted", 10*time.Second, func() bool { return int(pids(p2.status(t))["capped"]) == app })
	if got := read(pidsMax); got != "10" {
		t.Errorf("pids.max after the adoption: %q", got)
	}
	poll(t, "memory-max 96M written at the adoption", 10*time.Second, func() bool { return read(memMax) == strconv.Itoa(96<<20) })
	write("96M", 20) // changed in place, on the adopted instance
	poll(t, "pids-max 20 in place", 10*time.Second, func() bool { return read(pidsMax) == "20" })
	if now := int(pids(p2.status(t))["capped"]); now != app {
		t.Errorf("pid %d -> %d", app, now)
	}
	shutdown(t, p2)
	testhelper.ReapOrphans()
}
