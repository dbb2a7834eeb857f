package desired_test

import (
	"slices"
	"testing"

	"github.com/patrolhq/patrol/desired"
)

func TestIdentityRules(t *testing.T) { runRuleCases(t, identityCases) }

var identityCases = []ruleCase{
	{"all of them", app(`"user": "nobody", "group": "65534", "supplementary-groups": ["adm", "4"], "umask": "027", "env-file": "web.env",
		"rlimits": {"nofile": 256, "core": "0", "nproc": "512:1024", "memlock": "infinity"}`), nil},
	{"bad user", app(`"user": "no body"`), []string{`apps.web.user: must be a user or group name (letters, digits, "_", "." and "-", at most 32) or a numeric id, got "no body"`}},
	{"bad group", app(`"group": "-x"`), []string{`apps.web.group: must be a user or group name (letters, digits, "_", "." and "-", at most 32) or a numeric id, got "-x"`}},
	{"bad supplementary group", app(`"supplementary-groups": ["ok", ""]`), []string{`apps.web.supplementary-groups[1]: must be a user or group name (letters, digits, "_", "." and "-", at most 32) or a numeric id, got ""`}},
	{"umask not octal", app(`"umask": "029"`), []string{`apps.web.umask: must be an octal umask such as "022" or "0027", got "029"`}},
	{"umask a number", app(`"umask": 27`), []string{`apps.web.umask: must be a string, got a number 27`}},
	{"unknown rlimit", app(`"rlimits": {"files": 10}`), []string{`apps.web.rlimits.files: unknown resource limit: want one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack`}},
	{"rlimit soft above hard", app(`"rlimits": {"nofile": "4096:1024"}`), []string{`apps.web.rlimits.nofile: the soft limit 4096 is above the hard limit 1024`}},
	{"rlimit garbage", app(`"rlimits": {"nofile": "lots"}`), []string{`apps.web.rlimits.nofile: must be "SOFT:HARD" or one value, each a number or "infinity", got "lots"`}},
	{"rlimit negative", app(`"rlimits": {"nofile": -1}`), []string{`apps.web.rlimits.nofile: must be "SOFT:HARD" or one value, each a number or "infinity", got "-1"`}},
	{"env-file not clean", app(`"env-file": "a/../b.env"`), []string{`apps.web.env-file: must be a clean path, got "a/../b.env" (clean form "b.env")`}},
}

// TestIdentityNormalised: the parsed values, and every identity key is a
// restart key.
func TestIdentityNormalised(t *testing.T) {
	st, err := desired.Parse([]byte(`{"apps": {"web": {"binary": "/bin/true", "working-directory": "/srv", "umask": "0027", "env-file": "web.env",
		"rlimits": {"nofile": 256, "nproc": "512:infinity"}, "supplementary-groups": []}, "db": {"binary": "/bin/true"}}}`), desired.Options{Dir: "/cfg"})
	if err != nil {
		t.Fatal(desired.Problems(err))
	}
	web, _ := st.App("web")
	if web.Umask != "027" || web.EnvFile != "/srv/web.env" || web.SupplementaryGroups == nil || len(web.SupplementaryGroups) != 0 {
		t.Errorf("web: umask %q, env-file %q, groups %#v", web.Umask, web.EnvFile, web.SupplementaryGroups)
	}
	if want := []desired.Rlimit{{"nofile", 256, 256}, {"nproc", 512, desired.RlimInfinity}}; !slices.Equal(web.Rlimits, want) {
		t.Errorf("rlimits %+v", web.Rlimits)
	}
	db, _ := st.App("db")
	if db.Umask != "" || db.SupplementaryGroups != nil || db.Rlimits != nil {
		t.Errorf("db defaults: %+v", db)
	}
	for _, k := range []string{"user", "group", "supplementary-groups", "umask", "rlimits", "env-file"} {
		if !slices.Contains(desired.RestartFields(), k) {
			t.Errorf("%s is not a restart key", k)
		}
	}
}
