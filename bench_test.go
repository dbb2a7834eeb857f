package patrol_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/schema"
)

// sleepConfig is n apps running /bin/sleep (small real processes); app-0's
// args carry gen, so changing gen changes exactly one app.
func sleepConfig(n, gen int) map[string]any {
	apps := map[string]any{}
	for i := range n {
		args := []string{"100000"}
		if i == 0 {
			args = []string{fmt.Sprint(100000 + gen)}
		}
		apps[fmt.Sprintf("app-%d", i)] = map[string]any{"binary": "/bin/sleep", "args": args}
	}
	return map[string]any{"tick-every": 15, "apps": apps}
}

// BenchmarkEditApply measures a live config edit with 500 apps: from the
// file's rename until the changed app's new process runs (ns/op), and how
// many of the other 499 were restarted (must be 0).
func BenchmarkEditApply(b *testing.B) {
	if _, err := os.Stat("/bin/sleep"); err != nil {
		b.Skip("needs /bin/sleep")
	}
	const n = 500
	dir := b.TempDir()
	path := filepath.Join(dir, "config.json")
	writeConfig(b, path, sleepConfig(n, 0))
	p, err := patrol.New(patrol.Options{ConfigPath: path, HTTPAddr: "127.0.0.1:0", UDPAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(patrol.Problems(err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	<-p.Ready()
	pids := func() map[string]uint32 {
		st, err := p.Status(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		out := map[string]uint32{}
		for id, a := range st.Apps {
			if a.State == schema.StateRunning {
				out[id] = a.PID
			}
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(pids()) < n {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d apps running", len(pids()), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	others := 0
	b.ResetTimer()
	for i := range b.N {
		before := pids()
		b.StartTimer()
		writeConfig(b, path, sleepConfig(n, i+1))
		for {
			st, _ := p.Status(context.Background())
			if a := st.Apps["app-0"]; a.State == schema.StateRunning && a.PID != before["app-0"] {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		b.StopTimer()
		after := pids()
		for id, pid := range before {
			if id != "app-0" && after[id] != pid {
				others++
			}
		}
	}
	b.ReportMetric(float64(others)/float64(b.N), "others-restarted/op")
}
