package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
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

// WriteHosts writes the given hosts' keys (not common) in one
// transaction and returns its revision.
func (b *Bundle) WriteHosts(ctx context.Context, cli *clientv3.Client, prefix string, hosts []string) (int64, error) {
	var ops []clientv3.Op
	for _, h := range hosts {
		ops = append(ops, clientv3.OpPut(HostKey(prefix, h), string(b.Hosts[h])))
	}
	resp, err := cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// Write writes the bundle's keys in one transaction (one revision):
// common (when the bundle has one) and each host's. It returns the
// revision written.
func (b *Bundle) Write(ctx context.Context, cli *clientv3.Client, prefix string) (int64, error) {
	var ops []clientv3.Op
	if b.Common != nil {
		ops = append(ops, clientv3.OpPut(CommonKey(prefix), string(b.Common)))
	}
	for _, h := range b.HostNames() {
		ops = append(ops, clientv3.OpPut(HostKey(prefix, h), string(b.Hosts[h])))
	}
	resp, err := cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}
