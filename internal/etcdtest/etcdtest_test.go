package etcdtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// gateway calls etcd's JSON gateway (/v3/...) on one member.
func gateway(t *testing.T, url, path string, req, resp any) error {
	t.Helper()
	body, _ := json.Marshal(req)
	r, err := (&http.Client{Timeout: 5 * time.Second}).Post(url+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer r.Body.Close()
	return json.NewDecoder(r.Body).Decode(resp)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestCluster: three members replicate a write (made on one member, read
// on another), and the cluster keeps accepting writes with one member
// down, and catches the member up when it returns.
func TestCluster(t *testing.T) {
	c := Start(t, 3)
	eps := c.Endpoints()
	if len(eps) != 3 {
		t.Fatalf("endpoints %v", eps)
	}
	var put map[string]any
	if err := gateway(t, eps[0], "/v3/kv/put", map[string]string{"key": b64("k"), "value": b64("v1")}, &put); err != nil {
		t.Fatal(err)
	}
	read := func(member int) string {
		var got struct {
			KVs []struct{ Value string } `json:"kvs"`
		}
		if err := gateway(t, eps[member], "/v3/kv/range", map[string]any{"key": b64("k")}, &got); err != nil || len(got.KVs) == 0 {
			return ""
		}
		v, _ := base64.StdEncoding.DecodeString(got.KVs[0].Value)
		return string(v)
	}
	if got := read(2); got != "v1" {
		t.Fatalf("member 2 reads %q, want v1", got)
	}
	c.Stop(1)
	if err := gateway(t, eps[2], "/v3/kv/put", map[string]string{"key": b64("k"), "value": b64("v2")}, &put); err != nil {
		t.Fatal(err)
	}
	if got := read(0); got != "v2" {
		t.Fatalf("with one member down, member 0 reads %q", got)
	}
	c.Restart(1)
	deadline := time.Now().Add(10 * time.Second)
	for read(1) != "v2" {
		if time.Now().After(deadline) {
			t.Fatal("member 1 did not catch up after its restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
