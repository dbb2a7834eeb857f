package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/patrolhq/patrol/desired"
)

// Bundle is a directory of a fleet's configs: common.json (optional) and
// hosts/NAME.json, one per host.
type Bundle struct {
	Common []byte            // nil: no common.json
	Hosts  map[string][]byte // by host name
}

// ReadBundle reads dir's common.json and hosts/*.json.
func ReadBundle(dir string) (*Bundle, error) {
	b := &Bundle{Hosts: map[string][]byte{}}
	common, err := os.ReadFile(filepath.Join(dir, "common.json"))
	switch {
	case err == nil:
		b.Common = common
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	paths, err := filepath.Glob(filepath.Join(dir, "hosts", "*.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		host := strings.TrimSuffix(filepath.Base(p), ".json")
		if err := CheckHost(host); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		b.Hosts[host] = data
	}
	if len(b.Hosts) == 0 {
		return nil, fmt.Errorf("%s: no hosts/NAME.json", dir)
	}
	return b, nil
}

// HostNames are the bundle's hosts, sorted.
func (b *Bundle) HostNames() []string {
	out := make([]string, 0, len(b.Hosts))
	for h := range b.Hosts {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// Validate checks every host's layered config with the file's rules and
// returns every problem as "hosts/NAME.json: path: message"; dir resolves
// relative paths as a host's Patrol would (its working directory).
func (b *Bundle) Validate(dir string) []string {
	var out []string
	for _, h := range b.HostNames() {
		data, err := desired.Layer(b.Common, b.Hosts[h])
		if err == nil {
			_, err = desired.Parse(data, desired.Options{Dir: dir})
		}
		for _, p := range desired.Problems(err) {
			out = append(out, "hosts/"+h+".json: "+p)
		}
	}
	return out
}

// Current is what a fleet has in etcd, read at one revision (by the
// operator's commands, which list the prefix; hosts never do).
type Current struct {
	Revision int64
	Common   []byte            // nil: no common key
	Hosts    map[string][]byte // the host keys, by host name
	Up       map[string]bool   // the hosts with a status key
}

// ReadCurrent reads the common key, every host key and which hosts have a
// status key, in one transaction.
func ReadCurrent(ctx context.Context, cli *clientv3.Client, prefix string) (*Current, error) {
	hostsDir := path.Join("/", prefix, "hosts") + "/"
	statusDir := path.Join("/", prefix, "status") + "/"
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpGet(CommonKey(prefix)),
		clientv3.OpGet(hostsDir, clientv3.WithPrefix()),
		clientv3.OpGet(statusDir, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return nil, err
	}
	c := &Current{Revision: resp.Header.Revision, Hosts: map[string][]byte{}, Up: map[string]bool{}}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		c.Common = kvs[0].Value
	}
	for _, kv := range resp.Responses[1].GetResponseRange().GetKvs() {
		h, file, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), hostsDir), "/")
		if file == "config.json" && CheckHost(h) == nil {
			c.Hosts[h] = kv.Value
		}
	}
	for _, kv := range resp.Responses[2].GetResponseRange().GetKvs() {
		if h := strings.TrimPrefix(string(kv.Key), statusDir); CheckHost(h) == nil {
			c.Up[h] = true
		}
	}
	return c, nil
}

// Write writes keys in one transaction and returns its revision: common
// when not nil, and each host's key (deleted when its value is nil).
func Write(ctx context.Context, cli *clientv3.Client, prefix string, common []byte, hosts map[string][]byte) (int64, error) {
	var ops []clientv3.Op
	if common != nil {
		ops = append(ops, clientv3.OpPut(CommonKey(prefix), string(common)))
	}
	for _, h := range slices.Sorted(maps.Keys(hosts)) {
		if hosts[h] == nil {
			ops = append(ops, clientv3.OpDelete(HostKey(prefix, h)))
		} else {
			ops = append(ops, clientv3.OpPut(HostKey(prefix, h), string(hosts[h])))
		}
	}
	resp, err := cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}
