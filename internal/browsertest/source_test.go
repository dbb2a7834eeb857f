package browsertest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/patrolhq/patrol"
	"github.com/patrolhq/patrol/internal/etcdtest"
)

// TestSourceLine: a Patrol fed from etcd shows its source on the
// dashboard (endpoints, revision, connected), and says when etcd is gone.
func TestSourceLine(t *testing.T) {
	chromium(t)
	c := etcdtest.Start(t, 3)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(t.Context(), "/fleet/hosts/gui/config.json", `{"apps": {"clock": {"binary": "bin/demoapp"}}}`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	copyFile(t, demoapp, filepath.Join(dir, "bin", "demoapp"))
	p, err := patrol.New(patrol.Options{Source: &patrol.SourceOptions{Endpoints: c.Endpoints(), Prefix: "fleet", Host: "gui"},
		ConfigDir: dir, HTTPAddr: "127.0.0.1:0", UDPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("new: %q", patrol.Problems(err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-p.Ready()

	b := browser(t)
	do(t, b, 30*time.Second, chromedp.Navigate("http://"+p.HTTPAddr()+"/"))
	waitJS[bool](t, b, "the source line", `!document.getElementById("config-source").hidden && document.getElementById("config-source-text").textContent.startsWith("etcd http://127.0.0.1:") && document.getElementById("config-source-text").textContent.endsWith(", connected")`, 15*time.Second)
	for i := range 3 {
		c.Stop(i)
	}
	waitJS[bool](t, b, "disconnected", `document.getElementById("config-source-text").textContent.includes("disconnected since")`, 20*time.Second)
	screenshot(t, b, "dashboard-source.png")
}
