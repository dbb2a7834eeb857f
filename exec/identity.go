package exec

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/patrolhq/patrol/desired"
)

// Identity is who an app runs as, resolved at its start.
type Identity struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups
	// KeepGroups leaves the supplementary groups as Patrol's (no user and
	// no supplementary-groups given).
	KeepGroups bool
}

// ResolveIdentity resolves an app's user, group and supplementary groups
// (names or ids) against the user and group databases now. It returns nil
// when the app sets none of them. As non-root, another user or group than
// Patrol's own is an error: Patrol could not switch to it.
func ResolveIdentity(a *desired.App) (*Identity, error) {
	if a.User == "" && a.Group == "" && a.SupplementaryGroups == nil {
		return nil, nil
	}
	id := &Identity{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), KeepGroups: true}
	var u *user.User
	if a.User != "" {
		var err error
		if u, err = lookupUser(a.User); err != nil {
			return nil, err
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		id.UID, id.GID = uint32(uid), uint32(gid)
	}
	if a.Group != "" {
		gid, err := lookupGroup(a.Group)
		if err != nil {
			return nil, err
		}
		id.GID = gid
	}
	switch {
	case a.SupplementaryGroups != nil:
		id.KeepGroups = false
		for _, g := range a.SupplementaryGroups {
			gid, err := lookupGroup(g)
			if err != nil {
				return nil, fmt.Errorf("supplementary group: %w", err)
			}
			id.Groups = append(id.Groups, gid)
		}
	case u != nil:
		// The user's groups, as a login gets them.
		id.KeepGroups = false
		ids, err := u.GroupIds()
		if err != nil {
			return nil, fmt.Errorf("groups of user %s: %w", a.User, err)
		}
		for _, s := range ids {
			if n, err := strconv.ParseUint(s, 10, 32); err == nil && uint32(n) != id.GID {
				id.Groups = append(id.Groups, uint32(n))
			}
		}
	}
	if os.Geteuid() != 0 && (id.UID != uint32(os.Getuid()) || id.GID != uint32(os.Getgid()) || !id.KeepGroups && len(id.Groups) > 0) {
		return nil, fmt.Errorf("running as uid %d, not root: Patrol cannot start an app as uid %d gid %d (run Patrol as root, or remove user and group)",
			os.Getuid(), id.UID, id.GID)
	}
	return id, nil
}

func lookupUser(s string) (*user.User, error) {
	if _, err := strconv.ParseUint(s, 10, 32); err == nil {
		u, err := user.LookupId(s)
		if err != nil {
			// A numeric id needs no entry in the database.
			return &user.User{Uid: s, Gid: s, Username: s}, nil
		}
		return u, nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return nil, fmt.Errorf("no user %q on this host", s)
	}
	return u, nil
}

func lookupGroup(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return 0, fmt.Errorf("no group %q on this host", s)
	}
	n, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("group %q: gid %q", s, g.Gid)
	}
	return uint32(n), nil
}

// credential is the identity as fork's credential.
func (id *Identity) credential() *syscall.Credential {
	return &syscall.Credential{Uid: id.UID, Gid: id.GID, Groups: id.Groups, NoSetGroups: id.KeepGroups}
}

// The launcher: umask and resource limits cannot be set between fork and
// exec from Go, and setting them in Patrol would change Patrol (and race
// with other starts). An app that needs them is started through Patrol's
// own executable (/proc/self/exe, so an upgraded binary on disk does not
// matter) with LauncherArg: it sets them, then its identity, then execs
// the app, whose pid it already is. Programs embedding Patrol call
// Launcher first thing in main; without it such apps fail to start.

// LauncherArg is argv[1] of the launcher.
const LauncherArg = "patrol-launch"

// launcherEnabled is set by Launcher.
var launcherEnabled bool

// Launcher runs the launcher and does not return when this process was
// started as one; otherwise it enables the launcher for this Patrol. Call
// it first thing in main.
func Launcher() {
	if len(os.Args) > 1 && os.Args[1] == LauncherArg {
		err := launch(os.Args[2:])
		fmt.Fprintf(os.Stderr, "patrol launcher: %v\n", err)
		os.Exit(126)
	}
	launcherEnabled = true
}

// launcherArgs encodes what the launcher must do: "umask", "rlimits",
// "identity", then "--", the path and argv.
func launcherArgs(a *desired.App, id *Identity, path string, argv []string) []string {
	umask := "-"
	if a.Umask != "" {
		umask = a.Umask
	}
	var limits []string
	for _, r := range a.Rlimits {
		limits = append(limits, fmt.Sprintf("%s:%d:%d", r.Name, r.Soft, r.Hard))
	}
	ident := "-"
	if id != nil {
		groups := "keep"
		if !id.KeepGroups {
			gs := make([]string, len(id.Groups))
			for i, g := range id.Groups {
				gs[i] = strconv.FormatUint(uint64(g), 10)
			}
			groups = "[" + strings.Join(gs, ",") + "]"
		}
		ident = fmt.Sprintf("%d:%d:%s", id.UID, id.GID, groups)
	}
	out := []string{"/proc/self/exe", LauncherArg, umask, strings.Join(limits, ","), ident, "--", path}
	return append(out, argv...)
}

// rlimitResource maps a limit's name to its resource.
var rlimitResource = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
	"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
	"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
	"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
}

// launch is the launcher: it returns only on failure.
func launch(args []string) error {
	if len(args) < 5 || args[3] != "--" {
		return errors.New("usage: patrol-launch UMASK RLIMITS IDENTITY -- PATH ARGV")
	}
	if args[0] != "-" {
		m, err := strconv.ParseUint(args[0], 8, 32)
		if err != nil {
			return fmt.Errorf("umask %q", args[0])
		}
		unix.Umask(int(m))
	}
	if args[1] != "" {
		for _, l := range strings.Split(args[1], ",") {
			f := strings.Split(l, ":")
			res, ok := rlimitResource[f[0]]
			if len(f) != 3 || !ok {
				return fmt.Errorf("rlimit %q", l)
			}
			soft, err1 := strconv.ParseUint(f[1], 10, 64)
			hard, err2 := strconv.ParseUint(f[2], 10, 64)
			if err1 != nil || err2 != nil {
				return fmt.Errorf("rlimit %q", l)
			}
			// syscall's Setrlimit, not x/sys's: it tells the runtime that
			// RLIMIT_NOFILE was set on purpose, so that exec does not put
			// back the soft limit this process started with.
			if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: soft, Max: hard}); err != nil {
				return fmt.Errorf("rlimit %s %s:%s: %w", f[0], limitText(soft), limitText(hard), err)
			}
		}
	}
	if args[2] != "-" {
		f := strings.SplitN(args[2], ":", 3)
		if len(f) != 3 {
			return fmt.Errorf("identity %q", args[2])
		}
		uid, err1 := strconv.Atoi(f[0])
		gid, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("identity %q", args[2])
		}
		if f[2] != "keep" {
			var groups []int
			if list := strings.Trim(f[2], "[]"); list != "" {
				for _, g := range strings.Split(list, ",") {
					n, err := strconv.Atoi(g)
					if err != nil {
						return fmt.Errorf("identity %q", args[2])
					}
					groups = append(groups, n)
				}
			}
			if err := syscall.Setgroups(groups); err != nil {
				return fmt.Errorf("setgroups: %w", err)
			}
		}
		if err := syscall.Setgid(gid); err != nil {
			return fmt.Errorf("setgid %d: %w", gid, err)
		}
		if err := syscall.Setuid(uid); err != nil {
			return fmt.Errorf("setuid %d: %w", uid, err)
		}
	}
	return syscall.Exec(args[4], args[4:], os.Environ())
}

func limitText(n uint64) string {
	if n == desired.RlimInfinity {
		return "infinity"
	}
	return strconv.FormatUint(n, 10)
}
