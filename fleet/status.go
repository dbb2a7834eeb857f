package fleet

import (
	"context"
	"encoding/json"
	"maps"
	"path"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// HostLine is one host in the fleet's status table.
type HostLine struct {
	Host string `json:"host"`
	// DesiredRevision is the revision of the newest write to the host's
	// key or the common key; AppliedRevision the one its status reports
	// (0: no status, the host is down or not started).
	DesiredRevision int64 `json:"desired-revision"`
	AppliedRevision int64 `json:"applied-revision"`
	Up              bool  `json:"up"`
	// Running and Failing count its apps and services: running, and in
	// backoff or stopped with an error.
	Running int `json:"running"`
	Failing int `json:"failing"`
	// Unready counts instances that run but are not ready (health).
	Unready     int    `json:"unready"`
	Updated     string `json:"updated,omitempty"`
	ConfigError string `json:"config-error,omitempty"`
	// Converged is set when the host applied the desired revision and
	// reports no failing or unready entry and no config error.
	Converged bool `json:"converged"`
}

// FleetStatus reads every host's config revision and published status
// (for the operator's table: it lists the prefix, which hosts never do).
func FleetStatus(ctx context.Context, cli *clientv3.Client, prefix string) ([]HostLine, error) {
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpGet(path.Join("/", prefix, "hosts")+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(CommonKey(prefix), clientv3.WithKeysOnly()),
		clientv3.OpGet(path.Join("/", prefix, "status")+"/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, err
	}
	var common int64
	if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		common = kvs[0].ModRevision
	}
	hosts := map[string]*HostLine{}
	line := func(h string) *HostLine {
		if hosts[h] == nil {
			hosts[h] = &HostLine{Host: h, DesiredRevision: common}
		}
		return hosts[h]
	}
	for _, kv := range resp.Responses[0].GetResponseRange().GetKvs() {
		rest := strings.TrimPrefix(string(kv.Key), path.Join("/", prefix, "hosts")+"/")
		h, file, ok := strings.Cut(rest, "/")
		if !ok || file != "config.json" {
			continue
		}
		l := line(h)
		l.DesiredRevision = max(l.DesiredRevision, kv.ModRevision)
	}
	for _, kv := range resp.Responses[2].GetResponseRange().GetKvs() {
		h := path.Base(string(kv.Key))
		var hs HostStatus
		if json.Unmarshal(kv.Value, &hs) != nil {
			continue
		}
		l := line(h)
		l.Up, l.AppliedRevision, l.Updated, l.ConfigError = true, hs.Revision, hs.Updated, hs.ConfigError
		for _, group := range []map[string]EntryStatus{hs.Apps, hs.Services} {
			for _, e := range group {
				switch {
				case e.State == "running":
					l.Running++
					if e.Ready != nil && !*e.Ready {
						l.Unready++
					}
				case e.State == "starting":
					l.Unready++
				case e.State == "backoff", e.State == "stopped" && e.Error != "":
					l.Failing++
				}
			}
		}
	}
	out := make([]HostLine, 0, len(hosts))
	for _, h := range slices.Sorted(maps.Keys(hosts)) {
		l := hosts[h]
		l.Converged = l.Up && l.AppliedRevision >= l.DesiredRevision && l.Failing == 0 && l.Unready == 0 && l.ConfigError == ""
		out = append(out, *l)
	}
	return out, nil
}
