package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patrolhq/patrol"
)

// sourceArgs are the flags that reach the fleet's etcd.
type sourceArgs struct {
	url    string
	config string
	opts   patrol.SourceOptions
}

// sourceConfig is --source-config's file: the same settings as the flags,
// which override it.
type sourceConfig struct {
	Source       string `json:"source"`
	Host         string `json:"host"`
	CA           string `json:"etcd-ca"`
	Cert         string `json:"etcd-cert"`
	Key          string `json:"etcd-key"`
	User         string `json:"etcd-user"`
	PasswordFile string `json:"etcd-password-file"`
}

// sourceFlags defines --source and the etcd connection flags on fs.
func sourceFlags(fs *flag.FlagSet, what string) *sourceArgs {
	s := &sourceArgs{}
	fs.StringVar(&s.url, "source", "", what+"`URL` etcd://HOST:PORT[,HOST:PORT...]/PREFIX (etcds:// for TLS)")
	fs.StringVar(&s.config, "source-config", "", "a JSON `FILE` with source, host, etcd-ca, etcd-cert, etcd-key, etcd-user and etcd-password-file (flags win)")
	fs.StringVar(&s.opts.CAFile, "etcd-ca", "", "CA certificate `PATH` of etcd's members")
	fs.StringVar(&s.opts.CertFile, "etcd-cert", "", "client certificate `PATH` for etcd")
	fs.StringVar(&s.opts.KeyFile, "etcd-key", "", "client key `PATH` for etcd")
	fs.StringVar(&s.opts.Username, "etcd-user", "", "etcd user `NAME` (the password is $PATROL_ETCD_PASSWORD)")
	return s
}

// options turns the flags (over --source-config's file) into
// SourceOptions.
func (s *sourceArgs) options() (*patrol.SourceOptions, error) {
	password := os.Getenv("PATROL_ETCD_PASSWORD")
	if s.config != "" {
		b, err := os.ReadFile(s.config)
		if err != nil {
			return nil, fmt.Errorf("--source-config: %w", err)
		}
		var c sourceConfig
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("--source-config %s: %w", s.config, err)
		}
		or := func(flag *string, v string) {
			if *flag == "" {
				*flag = v
			}
		}
		or(&s.url, c.Source)
		or(&s.opts.Host, c.Host)
		or(&s.opts.CAFile, c.CA)
		or(&s.opts.CertFile, c.Cert)
		or(&s.opts.KeyFile, c.Key)
		or(&s.opts.Username, c.User)
		if c.PasswordFile != "" && password == "" {
			p, err := os.ReadFile(c.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("--source-config: etcd-password-file: %w", err)
			}
			password = strings.TrimRight(string(p), "\r\n")
		}
	}
	if s.url == "" {
		return nil, errors.New("--source etcd://HOST:PORT/PREFIX (or --source-config) is required")
	}
	eps, prefix, err := patrol.ParseSourceURL(s.url)
	if err != nil {
		return nil, fmt.Errorf("--source: %w", err)
	}
	o := s.opts
	o.Endpoints, o.Prefix, o.Password = eps, prefix, password
	return &o, nil
}

// fleetCmd is `patrol fleet status` and `patrol fleet apply DIR`.
func fleetCmd(ctx context.Context, o io3, fs *flag.FlagSet, source *sourceArgs, args []string, asJSON *bool, ao *patrol.FleetApplyOptions) int {
	if len(args) == 0 {
		fmt.Fprintln(o.stderr, "patrol fleet: want status or apply DIR (patrol fleet --help)")
		return exitUsage
	}
	sub := args[0]
	if err := fs.Parse(args[1:]); err != nil { // flags may follow the subcommand
		return exitUsage
	}
	rest := fs.Args()
	src, err := source.options()
	if err != nil {
		fmt.Fprintf(o.stderr, "patrol fleet %s: %v\n", sub, err)
		return exitUsage
	}
	limit := 30 * time.Second
	if ao.MaxUnavailable > 0 {
		limit = 24 * time.Hour // the rollout's batches have --timeout each
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	switch {
	case sub == "status" && len(rest) == 0:
		hosts, err := patrol.FleetStatus(ctx, *src)
		if err != nil {
			fmt.Fprintf(o.stderr, "patrol fleet status: %v (is etcd at %v reachable?)\n", err, src.Endpoints)
			return exitFail
		}
		if *asJSON {
			if hosts == nil {
				hosts = []patrol.FleetHost{}
			}
			b, _ := json.MarshalIndent(hosts, "", "  ")
			fmt.Fprintf(o.stdout, "%s\n", b)
			return exitOK
		}
		tw := tabwriter.NewWriter(o.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tAPPLIED\tDESIRED\tRUNNING\tFAILING\tUNREADY\tLAST SEEN\tSTATE")
		for _, h := range hosts {
			state := "converged"
			switch {
			case !h.Up:
				state = "down (no status)"
			case h.ConfigError != "":
				state = "config error: " + h.ConfigError
			case h.AppliedRevision < h.DesiredRevision:
				state = "behind"
			case !h.Converged:
				state = "not converged"
			}
			seen := "-"
			if t, err := time.Parse(time.RFC3339Nano, h.Updated); err == nil {
				seen = time.Since(t).Round(time.Second).String() + " ago"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", h.Host, h.AppliedRevision, h.DesiredRevision, h.Running, h.Failing, h.Unready, seen, state)
		}
		tw.Flush()
		return exitOK
	case sub == "apply" && len(rest) == 1:
		opts := *ao
		opts.Progress = func(s string) { fmt.Fprintln(o.stdout, s) }
		res, err := patrol.FleetApply(ctx, *src, rest[0], opts)
		if err != nil {
			fmt.Fprintf(o.stderr, "patrol fleet apply: %v\n", err)
			return exitFail
		}
		if len(res.Problems) > 0 {
			for _, p := range res.Problems {
				fmt.Fprintf(o.stderr, "%s: %s\n", rest[0], p)
			}
			fmt.Fprintln(o.stderr, "patrol fleet apply: nothing written")
			return exitFail
		}
		if ao.MaxUnavailable == 0 || ao.DryRun {
			for _, h := range slices.Sorted(maps.Keys(res.Plans)) {
				fmt.Fprintf(o.stdout, "host %s:\n%s\n", h, res.Plans[h].Text())
			}
		}
		if ao.DryRun {
			fmt.Fprintln(o.stdout, "dry run: nothing written")
		} else {
			fmt.Fprintf(o.stdout, "written at revision %d\n", res.Revision)
		}
		return exitOK
	}
	fmt.Fprintf(o.stderr, "patrol fleet: want status or apply DIR, got %q\n", args)
	return exitUsage
}
