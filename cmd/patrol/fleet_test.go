package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/patrolhq/patrol/internal/etcdtest"
	"github.com/patrolhq/patrol/internal/testhelper"
)

// fleetHost runs `patrol run --source ... --host name` in its own
// directory (its apps' logs and its state go there).
func fleetHost(t testing.TB, c *etcdtest.Cluster, name, dir string, extra ...string) *proc {
	t.Helper()
	src := sourceURL(c)
	return startDaemonIn(t, dir, append([]string{"--source", src, "--host", name, "--state-dir", filepath.Join(dir, "state"), "--status-ttl", "2s"}, extra...)...)
}

// sourceURL is the --source of a cluster's fleet.
func sourceURL(c *etcdtest.Cluster) string {
	return "etcd://" + strings.ReplaceAll(strings.Join(c.Endpoints(), ","), "http://", "") + "/fleet"
}

// etcdClient connects to a cluster (closed at the end of the test).
func etcdClient(t testing.TB, c *etcdtest.Cluster) *clientv3.Client {
	t.Helper()
	return etcdClientAt(t, c.Endpoints())
}

// etcdClientAt connects to endpoints (closed at the end of the test).
func etcdClientAt(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// writer writes files of a fleet bundle under dir.
func writer(t *testing.T, dir string) func(name, content string) {
	return func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// putKey writes a key to etcd and returns the revision of the write.
func putKey(t testing.TB, cli *clientv3.Client, key, value string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := cli.Put(ctx, key, value)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// statusKey reads a host's status from etcd.
func statusKey(t testing.TB, cli *clientv3.Client, host string) (string, bool) {
	t.Helper()
	resp, err := cli.Get(t.Context(), "/fleet/status/"+host)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}

// TestFleetTwoHosts: two Patrol hosts on one 3-member etcd cluster. A
// write to hosts/a changes only host a; a change of common changes both;
// each applies only the difference (other pids kept) and its status key
// shows the new revision within a second; an invalid config in etcd keeps
// the last good one and shows the error in status and in the status key;
// a host killed with SIGKILL loses its status key when its lease runs out,
// and re-registers when it comes back, adopting its children.
func TestFleetTwoHosts(t *testing.T) {
	c := etcdtest.Start(t, 3)
	cli := etcdClient(t, c)
	app := func(arg string) string { return helperApp("", "sleep", arg) }
	put := func(key, value string) int64 { t.Helper(); return putKey(t, cli, key, value) }
	put("/fleet/common/config.json", fmt.Sprintf(`{"apps": {"shared": %s}}`, app("")))
	put("/fleet/hosts/a/config.json", fmt.Sprintf(`{"apps": {"only-a": %s}}`, app("")))
	put("/fleet/hosts/b/config.json", fmt.Sprintf(`{"apps": {"only-b": %s}}`, app("")))
	dirA := t.TempDir()
	a, b := fleetHost(t, c, "a", dirA), fleetHost(t, c, "b", t.TempDir())
	poll(t, "both hosts running", 15*time.Second, func() bool { return len(pids(a.status(t))) == 2 && len(pids(b.status(t))) == 2 })
	pa, pb := pids(a.status(t)), pids(b.status(t))
	if pa["shared"] == 0 || pa["only-a"] == 0 || pb["only-b"] == 0 || pa["only-b"] != 0 {
		t.Fatalf("pids a %v b %v", pa, pb)
	}
	if src := a.status(t).Config.Source; src == nil || !src.Connected || src.Key != "/fleet/hosts/a/config.json" {
		t.Errorf("a's source in status: %+v", src)
	}

	// The status key shows a revision within a second of a write.
	shows := func(host string, rev int64) func() bool {
		return func() bool {
			v, ok := statusKey(t, cli, host)
			return ok && strings.Contains(v, fmt.Sprintf(`"revision":%d,`, rev))
		}
	}
	rev := put("/fleet/hosts/a/config.json", fmt.Sprintf(`{"apps": {"only-a": %s}}`, app("2")))
	wrote := time.Now()
	poll(t, "a's status at the new revision", 5*time.Second, shows("a", rev))
	if took := time.Since(wrote); took > time.Second {
		t.Errorf("a's status key showed revision %d after %v", rev, took)
	}
	poll(t, "only-a restarted", 5*time.Second, func() bool { return pids(a.status(t))["only-a"] != pa["only-a"] })
	if now := pids(a.status(t)); now["shared"] != pa["shared"] {
		t.Errorf("a's shared app restarted: %v -> %v", pa, now)
	}
	if now := pids(b.status(t)); now["shared"] != pb["shared"] || now["only-b"] != pb["only-b"] {
		t.Errorf("host b changed on a write for a: %v -> %v", pb, now)
	}

	pa = pids(a.status(t))
	rev = put("/fleet/common/config.json", fmt.Sprintf(`{"apps": {"shared": %s}}`, app("3")))
	poll(t, "both at the common revision", 5*time.Second, func() bool { return shows("a", rev)() && shows("b", rev)() })
	poll(t, "shared restarted on both", 5*time.Second, func() bool {
		na, nb := pids(a.status(t)), pids(b.status(t))
		return na["shared"] != 0 && na["shared"] != pa["shared"] && nb["shared"] != 0 && nb["shared"] != pb["shared"]
	})
	if na, nb := pids(a.status(t)), pids(b.status(t)); na["only-a"] != pa["only-a"] || nb["only-b"] != pb["only-b"] {
		t.Errorf("a common change restarted host-only apps: a %v -> %v, b %v -> %v", pa, na, pb, nb)
	}

	// An invalid config for b: the last good stays, the error shows.
	pb = pids(b.status(t))
	put("/fleet/hosts/b/config.json", `{"apps": {"only-b": {"binary": "relative/../x"}}}`)
	poll(t, "b's config error", 5*time.Second, func() bool {
		st := b.status(t)
		v, _ := statusKey(t, cli, "b")
		return st.Config.Error != "" && strings.Contains(v, `"config-error":`)
	})
	if now := pids(b.status(t)); now["only-b"] != pb["only-b"] || now["shared"] != pb["shared"] {
		t.Errorf("b changed on an invalid config: %v -> %v", pb, now)
	}

	// kill -9 host a: its status key goes after the lease's TTL (2 s); a
	// new Patrol for a adopts its children and registers again.
	pa = pids(a.status(t))
	a.kill9(t)
	start := time.Now()
	poll(t, "a's status key to expire", 10*time.Second, func() bool { _, ok := statusKey(t, cli, "a"); return !ok })
	t.Logf("a's status key gone %v after its Patrol died (TTL 2 s)", time.Since(start))
	for id, pid := range pa {
		if !testhelper.Alive(int(pid)) {
			t.Errorf("%s (%d) died with its Patrol", id, pid)
		}
	}
	a = fleetHost(t, c, "a", dirA)
	poll(t, "a registered again", 10*time.Second, func() bool { _, ok := statusKey(t, cli, "a"); return ok })
	poll(t, "a's apps adopted", 10*time.Second, func() bool { return len(pids(a.status(t))) == 2 })
	if now := pids(a.status(t)); now["shared"] != pa["shared"] || now["only-a"] != pa["only-a"] {
		t.Errorf("after the restart: %v, want the adopted %v", now, pa)
	}
	shutdown(t, a)
	shutdown(t, b)
	testhelper.ReapOrphans()
}

// TestFleetDisconnected: with one etcd member down both hosts still get
// updates; with all down they keep supervising (a crash is restarted) and
// show the source disconnected; a Patrol restarted while etcd is down
// supervises on the last good config it saved. An update written while
// the hosts are cut off (the cluster restored on client ports they do not
// know, written to, and opened again) is applied when they reconnect,
// with no later write to wake them.
func TestFleetDisconnected(t *testing.T) {
	c := etcdtest.Start(t, 3)
	cli := etcdClient(t, c)
	put := func(cli *clientv3.Client, key, value string) { t.Helper(); putKey(t, cli, key, value) }
	web := helperApp(`"backoff": {"reset-after": 0}`, "sleep")
	apps := func(kv ...string) string {
		var b strings.Builder
		for i := 0; i < len(kv); i += 2 {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q: %s", kv[i], kv[i+1])
		}
		return `{"apps": {` + b.String() + `}}`
	}
	put(cli, "/fleet/hosts/a/config.json", apps("web", web))
	put(cli, "/fleet/hosts/b/config.json", apps("web-b", web))
	dirA := t.TempDir()
	a, b := fleetHost(t, c, "a", dirA), fleetHost(t, c, "b", t.TempDir())
	poll(t, "both hosts running", 15*time.Second, func() bool { return pids(a.status(t))["web"] != 0 && pids(b.status(t))["web-b"] != 0 })

	c.Stop(0)
	put(cli, "/fleet/common/config.json", apps("two", helperApp("", "sleep")))
	poll(t, "the update on both hosts with one member down", 10*time.Second, func() bool {
		return pids(a.status(t))["two"] != 0 && pids(b.status(t))["two"] != 0
	})

	c.Stop(1)
	c.Stop(2)
	for _, h := range []*proc{a, b} {
		poll(t, "the source disconnected", 10*time.Second, func() bool {
			src := h.status(t).Config.Source
			return src != nil && !src.Connected && src.DisconnectedSince != ""
		})
	}
	w := pids(a.status(t))["web"]
	syscall.Kill(int(w), syscall.SIGKILL)
	poll(t, "web restarted while etcd is down", 10*time.Second, func() bool { p := pids(a.status(t))["web"]; return p != 0 && p != w })

	// A restart of Patrol while etcd is down: the saved config serves.
	shutdown(t, a)
	a = fleetHost(t, c, "a", dirA)
	poll(t, "both apps running from the saved config", 15*time.Second, func() bool { return len(pids(a.status(t))) == 2 })

	// The update written meanwhile: the hosts cannot reach the cluster
	// while it takes it.
	hidden := etcdClientAt(t, c.RestartAllHidden())
	put(hidden, "/fleet/hosts/a/config.json", apps("web", web, "three", helperApp("", "sleep")))
	put(hidden, "/fleet/common/config.json", `{}`)
	hidden.Close()
	if src := a.status(t).Config.Source; src.Connected {
		t.Fatalf("a connected to the hidden cluster: %+v", src)
	}
	c.StopAll()
	c.RestartAll()
	poll(t, "the update written meanwhile applied on both", 20*time.Second, func() bool {
		pa, pb := pids(a.status(t)), pids(b.status(t))
		return pa["two"] == 0 && pa["three"] != 0 && pa["web"] != 0 && pb["two"] == 0 && pb["web-b"] != 0
	})
	for _, h := range []*proc{a, b} {
		if src := h.status(t).Config.Source; !src.Connected {
			t.Errorf("source after the cluster came back: %+v", src)
		}
	}
	shutdown(t, a)
	shutdown(t, b)
	testhelper.ReapOrphans()
}

// TestFleetApplyAndStatus: `patrol fleet apply DIR` validates every
// host's layered config first and writes nothing if one is invalid; with
// valid files it writes them all at one revision and prints each host's
// plan. `patrol fleet status` shows a running host converged at that
// revision and a host with no Patrol as down.
func TestFleetApplyAndStatus(t *testing.T) {
	c := etcdtest.Start(t, 3)
	etc := etcdClient(t, c)
	src := sourceURL(c)
	dir := t.TempDir()
	write := writer(t, dir)
	write("common.json", fmt.Sprintf(`{"apps": {"shared": %s}}`, helperApp("", "sleep")))
	write("hosts/a.json", fmt.Sprintf(`{"apps": {"web": %s}}`, helperApp("", "sleep")))
	write("hosts/b.json", `{"apps": {"db": {"binary": "/bin/db", "depends-on": ["nope"]}}}`)

	code, out, errOut := cli(t, "fleet", "apply", dir, "--source", src)
	if code != 1 || !strings.Contains(errOut, `hosts/b.json: apps.db.depends-on[0].app`) && !strings.Contains(errOut, `hosts/b.json: apps.db.depends-on[0]: unknown app "nope"`) {
		t.Fatalf("invalid apply: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if resp, _ := etc.Get(t.Context(), "/fleet/", clientv3.WithPrefix(), clientv3.WithCountOnly()); resp.Count != 0 {
		t.Fatalf("an invalid apply wrote %d keys", resp.Count)
	}

	write("hosts/b.json", fmt.Sprintf(`{"apps": {"db": %s}}`, helperApp("", "sleep")))
	code, out, errOut = cli(t, "fleet", "apply", dir, "--source", src)
	if code != 0 || !strings.Contains(out, "host a:\n+ app     shared  start    (added)\n+ app     web     start    (added)") ||
		!strings.Contains(out, "host b:\n+ app     db      start    (added)") {
		t.Fatalf("apply: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	resp, err := etc.Get(t.Context(), "/fleet/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 3 {
		t.Fatalf("keys after apply: %v %v", resp, err)
	}
	rev := resp.Kvs[0].ModRevision
	for _, kv := range resp.Kvs {
		if kv.ModRevision != rev {
			t.Errorf("%s written at revision %d, %s at %d: not one transaction", resp.Kvs[0].Key, rev, kv.Key, kv.ModRevision)
		}
	}
	if !strings.Contains(out, fmt.Sprintf("written at revision %d", rev)) {
		t.Errorf("apply output %q", out)
	}

	a := fleetHost(t, c, "a", t.TempDir())
	poll(t, "a converged", 15*time.Second, func() bool {
		code, out, _ := cli(t, "fleet", "status", "--json", "--source", src)
		var hosts []struct {
			Host      string
			Up        bool
			Converged bool
			Running   int
		}
		if code != 0 || json.Unmarshal([]byte(out), &hosts) != nil || len(hosts) != 2 {
			return false
		}
		return hosts[0].Host == "a" && hosts[0].Up && hosts[0].Converged && hosts[0].Running == 2 && hosts[1].Host == "b" && !hosts[1].Up
	})
	code, out, _ = cli(t, "fleet", "status", "--source", src)
	if code != 0 || !strings.Contains(out, "converged") || !strings.Contains(out, "down (no status)") {
		t.Errorf("fleet status: exit %d\n%s", code, out)
	}
	// A second apply with a change: a's plan shows the restart.
	write("hosts/a.json", fmt.Sprintf(`{"apps": {"web": %s}}`, helperApp("", "sleep", "x")))
	code, out, _ = cli(t, "fleet", "apply", "--dry-run", dir, "--source", src)
	if flat := strings.Join(strings.Fields(out), " "); code != 0 || !strings.Contains(flat, "~ app web restart (args:") ||
		!strings.Contains(flat, "host b: No changes.") || !strings.Contains(out, "dry run: nothing written") {
		t.Errorf("dry run: exit %d\n%s", code, out)
	}
	// plan --source --host: what a would do if the file were its key.
	code, out, errOut = cli(t, "plan", "--source", src, "--host", "a", filepath.Join(dir, "hosts/a.json"))
	if flat := strings.Join(strings.Fields(out), " "); code != 0 || !strings.Contains(flat, "~ app web restart (args:") || strings.Contains(flat, "shared") {
		t.Errorf("plan --source: exit %d\n%s%s", code, out, errOut)
	}
	write("bad.json", `{"apps": {"web": {"binary": "/x", "restart-policy": "sometimes"}}}`)
	code, _, errOut = cli(t, "plan", "--source", src, "--host", "a", filepath.Join(dir, "bad.json"))
	if code != 1 || !strings.Contains(errOut, "bad.json: apps.web.restart-policy: must be") {
		t.Errorf("plan --source with a bad file: exit %d\n%s", code, errOut)
	}
	shutdown(t, a)
}

// TestFleetAuth: with etcd's auth on and the roles the README gives (a
// host reads its own key and common, writes its status key), host a
// cannot read host b's config, and a Patrol logged in as a runs and
// publishes its status.
func TestFleetAuth(t *testing.T) {
	c := etcdtest.Start(t, 3)
	admin := etcdClient(t, c)
	ctx := t.Context()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(admin.Put(ctx, "/fleet/common/config.json", `{}`))
	must(admin.Put(ctx, "/fleet/hosts/a/config.json", fmt.Sprintf(`{"apps": {"web": %s}}`, helperApp("", "sleep"))))
	must(admin.Put(ctx, "/fleet/hosts/b/config.json", `{"apps": {"secret-of-b": {"binary": "/bin/b"}}}`))
	must(admin.UserAdd(ctx, "root", "root-pw"))
	must(admin.RoleAdd(ctx, "root"))
	must(admin.UserGrantRole(ctx, "root", "root"))
	for _, h := range []string{"a", "b"} {
		role := "patrol-host-" + h
		must(admin.RoleAdd(ctx, role))
		must(admin.RoleGrantPermission(ctx, role, "/fleet/hosts/"+h+"/config.json", "", clientv3.PermissionType(clientv3.PermRead)))
		must(admin.RoleGrantPermission(ctx, role, "/fleet/common/config.json", "", clientv3.PermissionType(clientv3.PermRead)))
		must(admin.RoleGrantPermission(ctx, role, "/fleet/status/"+h, "", clientv3.PermissionType(clientv3.PermReadWrite)))
		must(admin.UserAdd(ctx, h, "pw-"+h))
		must(admin.UserGrantRole(ctx, h, role))
	}
	must(admin.AuthEnable(ctx))

	asA, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(), Username: "a", Password: "pw-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer asA.Close()
	if _, err := asA.Get(ctx, "/fleet/hosts/b/config.json"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("host a read host b's config: %v", err)
	}
	if _, err := asA.Get(ctx, "/fleet/hosts/a/config.json"); err != nil {
		t.Errorf("host a cannot read its own config: %v", err)
	}
	if _, err := asA.Put(ctx, "/fleet/hosts/a/config.json", "{}"); err == nil {
		t.Error("host a may write its own config")
	}

	// The credentials from a bootstrap file (--source-config).
	hostDir := t.TempDir()
	os.WriteFile(filepath.Join(hostDir, "pw"), []byte("pw-a\n"), 0o600)
	os.WriteFile(filepath.Join(hostDir, "source.json"), []byte(`{"etcd-user": "a", "etcd-password-file": "pw"}`), 0o600)
	a := fleetHost(t, c, "a", hostDir, "--source-config", "source.json")
	poll(t, "a running", 15*time.Second, func() bool { return pids(a.status(t))["web"] != 0 })
	asRoot, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(), Username: "root", Password: "root-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer asRoot.Close()
	poll(t, "a's status key", 10*time.Second, func() bool {
		resp, err := asRoot.Get(ctx, "/fleet/status/a")
		return err == nil && len(resp.Kvs) == 1
	})
	shutdown(t, a)
}

// TestFleetRollout: `fleet apply --max-unavailable 1` changes one host at
// a time and waits for each to converge. A batch that does not converge
// stops the rollout with a report, and later hosts are not written; a host
// with no Patrol running is not waited for. A common.json change is rolled
// out too, host by host (staged host keys), ending with the directory as it
// is in etcd and no further change on any host; a host in etcd but not in
// the directory keeps its key and gets its plan.
func TestFleetRollout(t *testing.T) {
	c := etcdtest.Start(t, 3)
	etc := etcdClient(t, c)
	src := sourceURL(c)
	dir := t.TempDir()
	write := writer(t, dir)
	for _, h := range []string{"a", "b", "c"} {
		write("hosts/"+h+".json", fmt.Sprintf(`{"apps": {"web": %s}}`, helperApp("", "sleep")))
	}
	if code, out, errOut := cli(t, "fleet", "apply", dir, "--source", src); code != 0 {
		t.Fatalf("first apply: %d\n%s%s", code, out, errOut)
	}
	// d is in etcd only, a host the directory does not manage; its
	// config needs common's app agent.
	if _, err := etc.Put(t.Context(), "/fleet/hosts/d/config.json", fmt.Sprintf(`{"apps": {"d-only": %s}}`, helperApp(`"depends-on": ["agent"]`, "sleep"))); err != nil {
		t.Fatal(err)
	}
	a, b := fleetHost(t, c, "a", t.TempDir()), fleetHost(t, c, "b", t.TempDir())
	poll(t, "a and b running and registered", 15*time.Second, func() bool {
		_, okA := statusKey(t, etc, "a")
		_, okB := statusKey(t, etc, "b")
		return okA && okB && pids(a.status(t))["web"] != 0 && pids(b.status(t))["web"] != 0
	})

	// a: a change that converges; b: one that crash-loops; c: no Patrol.
	write("hosts/a.json", fmt.Sprintf(`{"apps": {"web": %s}}`, helperApp("", "sleep", "v2")))
	write("hosts/b.json", fmt.Sprintf(`{"apps": {"web": %s}}`, helperApp("", "exit", "1")))
	write("hosts/c.json", fmt.Sprintf(`{"apps": {"web": %s}}`, helperApp("", "sleep", "v2")))
	before, _ := etc.Get(t.Context(), "/fleet/hosts/c/config.json")
	code, out, errOut := cli(t, "fleet", "apply", dir, "--source", src, "--max-unavailable", "1", "--timeout", "3s")
	if code != 1 || !strings.Contains(out, "not waiting for c: no Patrol runs there") ||
		!strings.Contains(out, "batch 1/2 (a) written at revision") || !strings.Contains(out, "batch 1/2 (a) converged") ||
		!strings.Contains(out, "batch 2/2 (b) written") || !strings.Contains(errOut, "batch 2/2 (b) did not converge within 3s: b: ") ||
		!strings.Contains(errOut, "not written: c") || strings.Contains(out, "host d:") {
		t.Errorf("rollout: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	after, _ := etc.Get(t.Context(), "/fleet/hosts/c/config.json")
	if after.Kvs[0].ModRevision != before.Kvs[0].ModRevision {
		t.Error("c was written after the rollout stopped")
	}

	// A common change, rolled out: b is fixed back first.
	write("hosts/b.json", fmt.Sprintf(`{"apps": {"web": %s}}`, helperApp("", "sleep")))
	if code, out, errOut := cli(t, "fleet", "apply", dir, "--source", src); code != 0 {
		t.Fatalf("fix b: %d\n%s%s", code, out, errOut)
	}
	poll(t, "b converged", 10*time.Second, func() bool { return pids(b.status(t))["web"] != 0 })
	// An etcd-only host whose config the new common would break: refused.
	write("common.json", fmt.Sprintf(`{"apps": {"not-agent": %s}}`, helperApp("", "sleep")))
	if code, _, errOut := cli(t, "fleet", "apply", dir, "--source", src, "--max-unavailable", "1"); code != 1 ||
		!strings.Contains(errOut, "etcd hosts/d (not in the directory), with the new common.json: apps.d-only.depends-on[0]: ") {
		t.Errorf("a common.json that breaks d: exit %d\n%s", code, errOut)
	}
	write("common.json", fmt.Sprintf(`{"apps": {"agent": %s}}`, helperApp("", "sleep")))
	pa, pb := pids(a.status(t)), pids(b.status(t))
	dBefore, _ := etc.Get(t.Context(), "/fleet/hosts/d/config.json")
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		var o, e bytes.Buffer
		code := run(t.Context(), []string{"fleet", "apply", dir, "--source", src, "--max-unavailable", "1", "--timeout", "20s"}, &o, &e)
		done <- result{code, o.String(), e.String()}
	}()
	// When each host got the agent: never both in one batch.
	var gotA, gotB time.Time
	var res result
	for res.out == "" {
		select {
		case res = <-done:
		case <-time.After(20 * time.Millisecond):
		}
		if gotA.IsZero() && pids(a.status(t))["agent"] != 0 {
			gotA = time.Now()
		}
		if gotB.IsZero() && pids(b.status(t))["agent"] != 0 {
			gotB = time.Now()
		}
	}
	if res.code != 0 || !strings.Contains(res.out, "host d:\n+ app     agent ") || !strings.Contains(res.out, "the last write converged") {
		t.Fatalf("common rollout: exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.out, res.err)
	}
	t.Logf("agent on a at %v, on b %v later", gotA.Format("15:04:05.000"), gotB.Sub(gotA))
	if gotA.IsZero() || gotB.IsZero() || gotB.Sub(gotA) < 1500*time.Millisecond {
		t.Errorf("a got the agent at %v, b at %v: want b after a's batch settled (2 s)", gotA, gotB)
	}
	// The directory as it is, and nothing more changed on the hosts.
	for key, want := range map[string]string{"/fleet/common/config.json": "common.json", "/fleet/hosts/a/config.json": "hosts/a.json", "/fleet/hosts/b/config.json": "hosts/b.json"} {
		data, _ := os.ReadFile(filepath.Join(dir, want))
		resp, _ := etc.Get(t.Context(), key)
		if len(resp.Kvs) == 0 || string(resp.Kvs[0].Value) != string(data) {
			t.Errorf("%s after the rollout: %v, want %s", key, resp.Kvs, want)
		}
	}
	if dAfter, _ := etc.Get(t.Context(), "/fleet/hosts/d/config.json"); dAfter.Kvs[0].ModRevision != dBefore.Kvs[0].ModRevision {
		t.Error("d's key was written")
	}
	na, nb := pids(a.status(t)), pids(b.status(t))
	if na["web"] != pa["web"] || nb["web"] != pb["web"] || len(na) != 2 || len(nb) != 2 {
		t.Errorf("after the rollout: a %v -> %v, b %v -> %v (want web kept, agent added)", pa, na, pb, nb)
	}
	shutdown(t, a)
	shutdown(t, b)
}
