package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/patrolhq/patrol/internal/etcdtest"
)

// cpuTicks is a process's user+system time in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

func cpuOf(pids []int) int64 {
	var n int64
	for _, p := range pids {
		n += cpuTicks(p)
	}
	return n
}

func percentiles(d []time.Duration) (p50, p99 float64) {
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
	return ms(d[len(d)/2]), ms(d[min(len(d)-1, len(d)*99/100)])
}

// BenchmarkFleetPutToLive: an etcd put of a host's key until the changed
// app runs again with its new config (a new pid in /status/), with the
// 3-member cluster on loopback. Reports p50 and p99 over b.N puts.
//
//	go test -run '^$' -bench FleetPutToLive -benchtime 50x ./cmd/patrol
func BenchmarkFleetPutToLive(b *testing.B) {
	c := etcdtest.Start(b, 3)
	etc := etcdClient(b, c)
	cfg := func(arg string) string { return fmt.Sprintf(`{"apps": {"web": %s}}`, helperApp("", "sleep", arg)) }
	if _, err := etc.Put(b.Context(), "/fleet/hosts/a/config.json", cfg("0")); err != nil {
		b.Fatal(err)
	}
	h := fleetHost(b, c, "a", b.TempDir())
	poll(b, "web", 15*time.Second, func() bool { return pids(h.status(b))["web"] != 0 })
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		old := pids(h.status(b))["web"]
		start := time.Now()
		if _, err := etc.Put(b.Context(), "/fleet/hosts/a/config.json", cfg(strconv.Itoa(i+1))); err != nil {
			b.Fatal(err)
		}
		for p := pids(h.status(b))["web"]; p == 0 || p == old; p = pids(h.status(b))["web"] {
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	p50, p99 := percentiles(lat)
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	shutdown(b, h)
}

// BenchmarkFleet50Hosts: 50 Patrol hosts (50 processes, one app each) on
// one 3-member cluster; a change of common until all 50 status keys
// report it applied. Reports p50 and p99 over b.N changes, and the CPU
// of etcd (three members together) and of the 50 Patrols, idle and
// during the changes.
//
//	go test -run '^$' -bench Fleet50Hosts -benchtime 10x ./cmd/patrol
func BenchmarkFleet50Hosts(b *testing.B) {
	const hosts = 50
	c := etcdtest.Start(b, 3)
	etc := etcdClient(b, c)
	common := func(arg string) string {
		return fmt.Sprintf(`{"tick-every": 60, "apps": {"shared": %s}}`, helperApp("", "sleep", arg))
	}
	if _, err := etc.Put(b.Context(), "/fleet/common/config.json", common("0")); err != nil {
		b.Fatal(err)
	}
	procs := make([]*proc, hosts)
	var wg sync.WaitGroup
	for i := range hosts {
		if _, err := etc.Put(b.Context(), fmt.Sprintf("/fleet/hosts/h%02d/config.json", i), `{}`); err != nil {
			b.Fatal(err)
		}
	}
	for i := range hosts {
		wg.Go(func() { procs[i] = fleetHost(b, c, fmt.Sprintf("h%02d", i), b.TempDir()) })
	}
	wg.Wait()
	applied := func(rev int64) int {
		resp, err := etc.Get(b.Context(), "/fleet/status/", clientv3.WithPrefix())
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, kv := range resp.Kvs {
			var st struct{ Revision int64 }
			if json.Unmarshal(kv.Value, &st) == nil && st.Revision >= rev {
				n++
			}
		}
		return n
	}
	first, _ := etc.Get(b.Context(), "/fleet/common/config.json")
	poll(b, "50 hosts up", 60*time.Second, func() bool { return applied(first.Kvs[0].ModRevision) == hosts })
	var patrolPIDs []int
	for _, p := range procs {
		patrolPIDs = append(patrolPIDs, p.cmd.Process.Pid)
	}
	etcdPIDs := c.PIDs()
	idle := 10 * time.Second
	e0, p0 := cpuOf(etcdPIDs), cpuOf(patrolPIDs)
	time.Sleep(idle)
	e1, p1 := cpuOf(etcdPIDs), cpuOf(patrolPIDs)
	pct := func(ticks int64, d time.Duration) float64 { return float64(ticks) / 100 / d.Seconds() * 100 }
	etcdIdle, patrolsIdle := pct(e1-e0, idle), pct(p1-p0, idle)

	var lat []time.Duration
	b.ResetTimer()
	busy := time.Duration(0)
	e0, p0 = cpuOf(etcdPIDs), cpuOf(patrolPIDs)
	for i := range b.N {
		start := time.Now()
		resp, err := etc.Put(b.Context(), "/fleet/common/config.json", common(strconv.Itoa(i+1)))
		if err != nil {
			b.Fatal(err)
		}
		for applied(resp.Header.Revision) < hosts {
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		busy += time.Since(start)
	}
	b.StopTimer()
	e1, p1 = cpuOf(etcdPIDs), cpuOf(patrolPIDs)
	p50, p99 := percentiles(lat)
	b.ReportMetric(p50, "all-50-p50-ms")
	b.ReportMetric(p99, "all-50-p99-ms")
	b.ReportMetric(pct(e1-e0, busy), "etcd-busy-%core")
	b.ReportMetric(pct(p1-p0, busy), "patrols-busy-%core")
	b.ReportMetric(etcdIdle, "etcd-idle-%core")
	b.ReportMetric(patrolsIdle, "patrols-idle-%core")
	for _, p := range procs {
		wg.Go(func() { shutdown(b, p) })
	}
	wg.Wait()
}
