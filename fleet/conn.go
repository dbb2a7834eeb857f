package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Options say how to reach the fleet's etcd and which host this is.
type Options struct {
	// Endpoints are the members' client URLs ("http://10.0.0.1:2379"; with
	// CAFile, "https://").
	Endpoints []string
	// Prefix is the fleet's key prefix; Host this host's name.
	Prefix string
	Host   string
	// CertFile and KeyFile are a client certificate for TLS client
	// authentication; CAFile the CA that signed the members' certificates.
	CertFile, KeyFile, CAFile string
	// Username and Password authenticate with etcd's own users (roles
	// limit what a host may read and write; see the README).
	Username, Password string
	// DialTimeout bounds one connection attempt (default 5 s).
	DialTimeout time.Duration
	// StatusTTL is the lease of the host's status key: how long it stays
	// after the host died (default 10 s).
	StatusTTL time.Duration
}

// ParseURL reads a source URL, etcd://HOST:PORT[,HOST:PORT...]/PREFIX
// (etcds:// for TLS), into endpoints and a prefix.
func ParseURL(s string) (endpoints []string, prefix string, err error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "etcd" && scheme != "etcds") {
		return nil, "", fmt.Errorf("source %q: want etcd://HOST:PORT[,HOST:PORT...]/PREFIX (etcds:// for TLS)", s)
	}
	hosts, prefix, _ := strings.Cut(rest, "/")
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return nil, "", fmt.Errorf("source %q: a key prefix is required (etcd://HOST:PORT/PREFIX)", s)
	}
	if _, err := url.PathUnescape(prefix); err != nil || strings.ContainsAny(prefix, "?#") {
		return nil, "", fmt.Errorf("source %q: bad prefix %q", s, prefix)
	}
	web := "http://"
	if scheme == "etcds" {
		web = "https://"
	}
	for h := range strings.SplitSeq(hosts, ",") {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return nil, "", fmt.Errorf("source %q: endpoint %q: want HOST:PORT", s, h)
		}
		endpoints = append(endpoints, web+h)
	}
	return endpoints, prefix, nil
}

// CheckHost says what is wrong with a host name, if anything: it is one
// path segment of the keys.
func CheckHost(h string) error {
	switch {
	case h == "":
		return errors.New("a host name is required (--host NAME)")
	case len(h) > 253 || strings.ContainsAny(h, "/\\ \t\n") || h == "." || h == "..":
		return fmt.Errorf("host name %q: at most 253 characters, no slashes or spaces", h)
	}
	return nil
}

// Connect returns a client for o's endpoints. It does not wait for a
// connection: the client connects, and reconnects, in the background.
func Connect(o Options) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: o.DialTimeout,
		Username:    o.Username,
		Password:    o.Password,
		Logger:      zap.NewNop(),
		// Keepalives notice a dead member of an idle connection.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if o.CAFile != "" || o.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("etcd CA: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("etcd CA %s: no certificate in it", o.CAFile)
			}
		}
		if o.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("etcd client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		cfg.TLS = tc
	}
	return clientv3.New(cfg)
}
