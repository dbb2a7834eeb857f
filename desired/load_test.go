package desired_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patrolhq/patrol/desired"
	"github.com/patrolhq/patrol/schema"
)

// opts resolves relative working directories against /cfg and "~/" against
// /home/op, so results don't depend on the machine.
var opts = desired.Options{
	Dir:  "/cfg",
	Home: func() (string, error) { return "/home/op", nil },
}

func parse(t *testing.T, cfg string) (*desired.State, []string) {
	t.Helper()
	st, err := desired.Parse([]byte(cfg), opts)
	problems := desired.Problems(err)
	if (st == nil) == (err == nil) {
		t.Fatalf("Parse returned state %v and error %v: want exactly one", st != nil, err)
	}
	return st, problems
}

// app is a config with one app "web" holding the given extra keys.
func app(extra string) string {
	if extra != "" {
		extra = ", " + extra
	}
	return `{"apps": {"web": {"binary": "/bin/true"` + extra + `}}}`
}

// service is a config with one service "svc" holding the given keys.
func service(keys string) string {
	return `{"services": {"svc": {` + keys + `}}}`
}

// ruleCase is one config and the exact problems it must produce (none for a
// valid config).
type ruleCase struct {
	name string
	cfg  string
	want []string
}

func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, got := parse(t, tc.cfg)
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestDecodeRules(t *testing.T) { runRuleCases(t, decodeCases) }

var decodeCases = []ruleCase{
	{"empty config is valid", `{}`, nil},
	{"whitespace and $schema", " \n{\"$schema\": \"https://example.com/s.json\"}\n\t", nil},
	{"not an object", `[]`, []string{"config must be a JSON object, got an array"}},
	{"null document", `null`, []string{"config must be a JSON object, got null"}},
	{"empty file", ``, []string{"invalid JSON: unexpected end of file"}},
	{"truncated", `{"apps": {"web": {"binary": "/x"`, []string{"invalid JSON: unexpected end of file"}},
	{"syntax error position", "{\n  \"tick-every\": 5,,\n}", []string{"invalid JSON at line 2, column 19: invalid character ',' looking for beginning of object key string"}},
	{"trailing object", `{} {}`, []string{"unexpected data after the end of the config at line 1, column 5"}},
	{"trailing garbage", "{}\nx", []string{"unexpected data after the end of the config at line 2, column 1"}},
	{"unknown top-level key with hint", `{"tick-evry": 5}`, []string{`tick-evry: unknown key, did you mean "tick-every"?`}},
	{"unknown key with underscore hint", `{"ping_timeout": 5}`, []string{`ping_timeout: unknown key, did you mean "ping-timeout"?`}},
	{"unknown key with case hint", `{"Apps": {}}`, []string{`Apps: unknown key, did you mean "apps"?`}},
	{"unknown key without hint", `{"frobnicate": 1}`, []string{"frobnicate: unknown key"}},
	{"app key at top level", `{"keepalive": 1}`, []string{`keepalive: unknown key ("keepalive" is an app key: it goes inside "apps": {"<id>": {...}})`}},
	{"service key in an app", app(`"management": 1`), []string{`apps.web.management: unknown key ("management" is a service key: it goes inside "services": {"<id>": {...}})`}},
	{"typo hides the required error", `{"apps": {"web": {"binnary": "/x"}}}`, []string{`apps.web.binnary: unknown key, did you mean "binary"?`}},
	{"unknown key in http", `{"http": {"lisen": "127.0.0.1:1"}}`, []string{`http.lisen: unknown key, did you mean "listen"?`}},
	{"unknown key in backoff", app(`"backoff": {"intial": 1}`), []string{`apps.web.backoff.intial: unknown key, did you mean "initial"?`}},
	{"unknown key in hooks", app(`"hooks": {"on-crsh": ["/bin/true"]}`), []string{`apps.web.hooks.on-crsh: unknown key, did you mean "on-crash"?`}},
	{"duplicate key", `{"apps": {"web": {"binary": "/a", "binary": "/b"}}}`, []string{"apps.web.binary: duplicate key (the last one would silently win)"}},
	{"string for integer", `{"tick-every": "5"}`, []string{`tick-every: must be an integer, got a string "5"`}},
	{"fraction for integer", `{"tick-every": 1.5}`, []string{"tick-every: must be an integer, got 1.5"}},
	{"integral float is an integer", `{"tick-every": 15.0}`, nil},
	{"number for string", app(`"name": 5`), []string{"apps.web.name: must be a string, got a number 5"}},
	{"array element type", app(`"args": ["-a", 5]`), []string{"apps.web.args[1]: must be a string, got a number 5"}},
	{"string for array", app(`"args": "-a"`), []string{`apps.web.args: must be an array of strings, got a string "-a"`}},
	{"bool type", app(`"disabled": "yes"`), []string{`apps.web.disabled: must be true or false, got a string "yes"`}},
	{"object type", `{"http": "127.0.0.1:1"}`, []string{`http: must be an object, got a string "127.0.0.1:1"`}},
	{"null app", `{"apps": {"web": null}}`, []string{"apps.web: must be an object, got null"}},
	{"null is not a value", app(`"name": null, "args": null, "backoff": null, "stop-timeout": null`), []string{
		"apps.web.args: must be an array of strings, got null",
		"apps.web.backoff: must be an object, got null",
		"apps.web.name: must be a string, got null",
		"apps.web.stop-timeout: must be a number, got null",
	}},
	{"null in free-form data", app(`"x": null, "keyvalue": {"a": null}`), nil},
	{"quoted path for odd keys", `{"apps": {"my app": {"binary": 5}}}`, []string{
		`apps["my app"]: invalid id "my app": only A-Z, a-z, 0-9 and "-" are allowed`,
		`apps["my app"].binary: must be a string, got a number 5`,
	}},
	{"too deep", `{"x": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, []string{"x" + strings.Repeat("[0]", 64) + ": nested more than 64 levels deep"}},
	{"x keeps anything", `{"x": {"b": [1, {"c": null}], "a": "z"}, "apps": {"web": {"binary": "/x", "x": 5}}}`, nil},
	{"keyvalue keeps anything", app(`"keyvalue": {"a": 1, "b": {"c": [true]}}`), nil},
	{"big integer out of range", `{"tick-every": 1e30}`, []string{"tick-every: must be an integer, got 1e30"}},
}

var long = strings.Repeat("a", 63)

func TestIDRules(t *testing.T) { runRuleCases(t, idCases) }

var idCases = []ruleCase{
	{"simple", `{"apps": {"web": {"binary": "/x"}}}`, nil},
	{"single character", `{"apps": {"a": {"binary": "/x"}}}`, nil},
	{"dashes and digits", `{"apps": {"a--1-B": {"binary": "/x"}}}`, nil},
	{"63 characters", `{"apps": {"` + long + `": {"binary": "/x"}}}`, nil},
	{"64 characters", `{"apps": {"` + long + `b": {"binary": "/x"}}}`, []string{"apps." + long + "b: invalid id: must be at most 63 characters, got 64"}},
	{"empty", `{"apps": {"": {"binary": "/x"}}}`, []string{`apps[""]: invalid id: must not be empty`}},
	{"leading dash", `{"apps": {"-web": {"binary": "/x"}}}`, []string{`apps["-web"]: invalid id "-web": must not start or end with "-"`}},
	{"trailing dash", `{"apps": {"web-": {"binary": "/x"}}}`, []string{`apps.web-: invalid id "web-": must not start or end with "-"`}},
	{"underscore", `{"apps": {"web_1": {"binary": "/x"}}}`, []string{`apps.web_1: invalid id "web_1": only A-Z, a-z, 0-9 and "-" are allowed`}},
	{"dot", `{"apps": {"a.b": {"binary": "/x"}}}`, []string{`apps["a.b"]: invalid id "a.b": only A-Z, a-z, 0-9 and "-" are allowed`}},
	{"non-ASCII", `{"apps": {"café": {"binary": "/x"}}}`, []string{`apps["café"]: invalid id "café": only A-Z, a-z, 0-9 and "-" are allowed`}},
	{"duplicate ignoring case", `{"apps": {"Web": {"binary": "/x"}, "web": {"binary": "/y"}}}`, []string{`apps.web: duplicate id: "Web" and "web" are the same id (ids are case-insensitive)`}},
	{"service duplicate ignoring case", `{"services": {"SSH": {"management": 1}, "ssh": {"management": 1}}}`, []string{`services.ssh: duplicate id: "SSH" and "ssh" are the same id (ids are case-insensitive)`}},
	{"apps and services have separate ids", `{"apps": {"x": {"binary": "/x"}}, "services": {"x": {"management": 1}}}`, nil},
	{"bad service id", `{"services": {"s_1": {"management": 1}}}`, []string{`services.s_1: invalid id "s_1": only A-Z, a-z, 0-9 and "-" are allowed`}},
}

func TestAppRules(t *testing.T) { runRuleCases(t, appCases) }

var appCases = []ruleCase{
	// binary
	{"binary required", `{"apps": {"web": {}}}`, []string{"apps.web.binary: required"}},
	{"binary relative path", `{"apps": {"web": {"binary": "bin/web"}}}`, nil},
	{"binary escaping the working directory", `{"apps": {"web": {"binary": "../bin/web"}}}`, nil},
	{"binary unclean", `{"apps": {"web": {"binary": "bin/../web"}}}`, []string{`apps.web.binary: must be a clean path, got "bin/../web" (clean form "web")`}},
	{"binary double slash", `{"apps": {"web": {"binary": "/usr//bin/x"}}}`, []string{`apps.web.binary: must be a clean path, got "/usr//bin/x" (clean form "/usr/bin/x")`}},
	{"binary dot", `{"apps": {"web": {"binary": "."}}}`, []string{`apps.web.binary: must be a clean path naming a file or directory, got "."`}},
	{"binary NUL", `{"apps": {"web": {"binary": "/x\u0000y"}}}`, []string{"apps.web.binary: must not contain a NUL byte"}},
	// keepalive
	{"keepalive default", app(""), nil},
	{"keepalive 4", app(`"keepalive": 4`), nil},
	{"keepalive 5", app(`"keepalive": 5`), []string{"apps.web.keepalive: must be 1 (PID_PATROL), 2 (PID_APP), 3 (HTTP) or 4 (UDP), got 5"}},
	{"keepalive negative", app(`"keepalive": -1`), []string{"apps.web.keepalive: must be 1 (PID_PATROL), 2 (PID_APP), 3 (HTTP) or 4 (UDP), got -1"}},
	// name
	{"name 255 bytes", app(`"name": "` + strings.Repeat("n", 255) + `"`), nil},
	{"name 256 bytes", app(`"name": "` + strings.Repeat("n", 256) + `"`), []string{"apps.web.name: must be at most 255 bytes, got 256"}},
	{"name counts bytes not characters", app(`"name": "` + strings.Repeat("é", 128) + `"`), []string{"apps.web.name: must be at most 255 bytes, got 256"}},
	// secret
	{"secret 128 bytes", app(`"secret": "` + strings.Repeat("s", 128) + `"`), nil},
	{"secret 129 bytes", app(`"secret": "` + strings.Repeat("s", 129) + `"`), []string{"apps.web.secret: must be at most 128 bytes, got 129"}},
	// working-directory
	{"working-directory absolute", app(`"working-directory": "/srv/web"`), nil},
	{"working-directory trailing slash", app(`"working-directory": "/srv/web/"`), nil},
	{"working-directory home", app(`"working-directory": "~/web"`), nil},
	{"working-directory relative", app(`"working-directory": "web/current"`), nil},
	{"working-directory dot", app(`"working-directory": "."`), nil},
	{"working-directory parent", app(`"working-directory": "../web"`), nil},
	{"working-directory unclean", app(`"working-directory": "/srv/./web"`), []string{`apps.web.working-directory: must be a clean path, got "/srv/./web" (clean form "/srv/web")`}},
	{"working-directory tilde user", app(`"working-directory": "~op/web"`), []string{`apps.web.working-directory: only a leading "~/" is expanded (to the home directory of the user running Patrol), got "~op/web"`}},
	{"working-directory bare tilde", app(`"working-directory": "~"`), []string{`apps.web.working-directory: only a leading "~/" is expanded (to the home directory of the user running Patrol), got "~"`}},
	{"working-directory home unclean", app(`"working-directory": "~/../etc"`), []string{`apps.web.working-directory: must be a clean path below ~/, got "~/../etc"`}},
	// log-directory
	{"log-directory relative", app(`"log-directory": "logs"`), nil},
	{"log-directory absolute", app(`"log-directory": "/var/log/web"`), nil},
	{"log-directory unclean", app(`"log-directory": "logs/"`), nil},
	{"log-directory dot", app(`"log-directory": "./logs"`), []string{`apps.web.log-directory: must be a clean path, got "./logs" (clean form "logs")`}},
	// pid-path
	{"pid-path required for keepalive 2", app(`"keepalive": 2`), []string{"apps.web.pid-path: required for keepalive 2 (PID_APP): the app writes its pid there"}},
	{"pid-path given for keepalive 2", app(`"keepalive": 2, "pid-path": "run/web.pid"`), nil},
	{"pid-path optional for keepalive 1", app(`"keepalive": 1`), nil},
	{"pid-path optional for keepalive 3", app(`"keepalive": 3, "pid-path": "web.pid"`), nil},
	{"pid-path unclean", app(`"keepalive": 2, "pid-path": "run//web.pid"`), []string{`apps.web.pid-path: must be a clean path, got "run//web.pid" (clean form "run/web.pid")`}},
	// execute-timeout
	{"execute-timeout", app(`"execute-timeout": 60`), nil},
	{"execute-timeout negative", app(`"execute-timeout": -1`), []string{"apps.web.execute-timeout: must be between 0 and 31536000, got -1"}},
	// args, env
	{"args", app(`"args": ["-config", "\"config.json\"", ""]`), nil},
	{"args NUL", app(`"args": ["a\u0000"]`), []string{"apps.web.args[0]: must not contain a NUL byte"}},
	{"env", app(`"env": ["A=B", "C=", "D=E=F"]`), nil},
	{"env without =", app(`"env": ["A=B", "AB"]`), []string{`apps.web.env[1]: must be "KEY=VALUE", got "AB"`}},
	{"env empty key", app(`"env": ["=B"]`), []string{`apps.web.env[0]: must be "KEY=VALUE" with a non-empty KEY, got "=B"`}},
	// stop-signal, stop-timeout
	{"stop-signal SIGUSR1", app(`"stop-signal": "SIGUSR1"`), nil},
	{"stop-signal without SIG", app(`"stop-signal": "INT"`), nil},
	{"stop-signal unknown", app(`"stop-signal": "SIGFOO"`), []string{`apps.web.stop-signal: must be one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGABRT, SIGALRM, SIGWINCH, SIGKILL, got "SIGFOO"`}},
	{"stop-signal lower case", app(`"stop-signal": "sigterm"`), []string{`apps.web.stop-signal: must be one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGABRT, SIGALRM, SIGWINCH, SIGKILL, got "sigterm"`}},
	{"stop-timeout fraction", app(`"stop-timeout": 0.5`), nil},
	{"stop-timeout zero", app(`"stop-timeout": 0`), nil},
	{"stop-timeout too long", app(`"stop-timeout": 3601`), []string{"apps.web.stop-timeout: must be between 0 and 3600, got 3601"}},
	// restart-policy
	{"restart-policy on-failure", app(`"restart-policy": "on-failure"`), nil},
	{"restart-policy unknown", app(`"restart-policy": "sometimes"`), []string{`apps.web.restart-policy: must be "always", "on-failure" or "never", got "sometimes"`}},
	// backoff
	{"backoff", app(`"backoff": {"initial": 0.5, "max": 30, "reset-after": 10}`), nil},
	{"backoff max below initial", app(`"backoff": {"initial": 5, "max": 1}`), []string{"apps.web.backoff.max: must not be less than backoff.initial (5), got 1"}},
	{"backoff max below default initial", app(`"backoff": {"max": 0.5}`), []string{"apps.web.backoff.max: must not be less than backoff.initial (1), got 0.5"}},
	{"backoff initial zero", app(`"backoff": {"initial": 0}`), []string{"apps.web.backoff.initial: must be between 0.01 and 86400, got 0"}},
	// start-timeout
	{"start-timeout", app(`"keepalive": 2, "pid-path": "p", "start-timeout": 30`), nil},
	{"start-timeout zero", app(`"start-timeout": 0`), []string{"apps.web.start-timeout: must be between 0.1 and 3600, got 0"}},
	// hooks
	{"hooks", app(`"hooks": {"on-crash": ["/usr/bin/logger", "crashed"], "on-start": ["notify-send", "up"]}`), nil},
	{"hooks empty argv", app(`"hooks": {"on-exit": []}`), []string{`apps.web.hooks.on-exit: must hold a command: ["/path/to/command", "arg", ...]`}},
	{"hooks relative command", app(`"hooks": {"on-stop": ["bin/hook"]}`), []string{`apps.web.hooks.on-stop: command must be an absolute path or a command name looked up in PATH (no shell), got "bin/hook"`}},
	{"hooks shell line", app(`"hooks": {"on-stop": ["echo hi > /tmp/x"]}`), []string{`apps.web.hooks.on-stop: command must be an absolute path or a command name looked up in PATH (no shell), got "echo hi > /tmp/x"`}},
	{"hooks timeout", app(`"hooks": {"timeout": 0}`), []string{"apps.web.hooks.timeout: must be between 0.1 and 3600, got 0"}},
}

func TestDependsOnRules(t *testing.T) { runRuleCases(t, dependsOnCases) }

var dependsOnCases = []ruleCase{
	{"dependency", `{"apps": {"a": {"binary": "/x", "depends-on": ["b"]}, "b": {"binary": "/x"}}}`, nil},
	{"dependency ignoring case", `{"apps": {"a": {"binary": "/x", "depends-on": ["B"]}, "b": {"binary": "/x"}}}`, nil},
	{"unknown dependency", `{"apps": {"a": {"binary": "/x", "depends-on": ["db"]}, "dbs": {"binary": "/x"}}}`, []string{`apps.a.depends-on[0]: unknown app "db", did you mean "dbs"?`}},
	{"self dependency", `{"apps": {"a": {"binary": "/x", "depends-on": ["A"]}}}`, []string{"apps.a.depends-on[0]: an app cannot depend on itself"}},
	{"repeated dependency", `{"apps": {"a": {"binary": "/x", "depends-on": ["b", "b"]}, "b": {"binary": "/x"}}}`, []string{`apps.a.depends-on[1]: lists "b" more than once`}},
	{"invalid dependency id", `{"apps": {"a": {"binary": "/x", "depends-on": ["b_c"]}}}`, []string{`apps.a.depends-on[0].app: invalid id "b_c": only A-Z, a-z, 0-9 and "-" are allowed`}},
	{"cycle", `{"apps": {"a": {"binary": "/x", "depends-on": ["b"]}, "b": {"binary": "/x", "depends-on": ["c"]}, "c": {"binary": "/x", "depends-on": ["a"]}}}`, []string{"apps.a.depends-on: cycle a -> b -> c -> a"}},
	{"cycle through objects", `{"apps": {"a": {"binary": "/x", "depends-on": [{"app": "b", "condition": "ready"}]}, "b": {"binary": "/x", "depends-on": [{"app": "a"}]}}}`, []string{"apps.a.depends-on: cycle a -> b -> a"}},
	{"conditions", `{"apps": {"a": {"binary": "/x", "depends-on": [{"app": "b", "condition": "ready", "restart": true}, {"app": "c", "condition": "completed-successfully"}, "d"]}, "b": {"binary": "/x"}, "c": {"binary": "/x"}, "d": {"binary": "/x"}}}`, nil},
	{"bad condition", `{"apps": {"a": {"binary": "/x", "depends-on": [{"app": "b", "condition": "healthy"}]}, "b": {"binary": "/x"}}}`, []string{`apps.a.depends-on[0].condition: must be "started", "ready", "completed" or "completed-successfully", got "healthy"`}},
	{"dependency without app", `{"apps": {"a": {"binary": "/x", "depends-on": [{"condition": "ready"}]}, "b": {"binary": "/x"}}}`, []string{`apps.a.depends-on[0].app: required`}},
	{"dependency unknown key", `{"apps": {"a": {"binary": "/x", "depends-on": [{"app": "b", "conditon": "ready"}]}, "b": {"binary": "/x"}}}`, []string{`apps.a.depends-on[0].conditon: unknown key, did you mean "condition"?`}},
	{"dependency a number", `{"apps": {"a": {"binary": "/x", "depends-on": [7]}, "b": {"binary": "/x"}}}`, []string{`apps.a.depends-on[0]: must be an app id or an object, got a number 7`}},
}

func TestHealthRules(t *testing.T) { runRuleCases(t, healthCases) }

var healthCases = []ruleCase{
	{"tcp probe", app(`"readiness": {"tcp": {"port": 8080}, "period": 1}`), nil},
	{"http probe url", app(`"liveness": {"http": {"url": "http://127.0.0.1:8080/health", "status": [200, 299]}, "failure-threshold": 2}`), nil},
	{"http probe port", app(`"liveness": {"http": {"port": 8080, "path": "/health", "scheme": "https"}}`), nil},
	{"exec probe", app(`"startup": {"exec": {"command": ["/bin/true"]}, "success-threshold": 2}`), nil},
	{"notify and watchdog", app(`"ready": "notify", "watchdog": 2.5`), nil},
	{"probe without form", app(`"liveness": {"period": 1}`), []string{`apps.web.liveness: must have exactly one of "exec", "http" and "tcp", got 0`}},
	{"probe with two forms", app(`"liveness": {"tcp": {"port": 1}, "exec": {"command": ["/bin/true"]}}`), []string{`apps.web.liveness: must have exactly one of "exec", "http" and "tcp", got 2`}},
	{"probe period", app(`"readiness": {"tcp": {"port": 1}, "period": 0}`), []string{"apps.web.readiness.period: must be between 0.1 and 3600, got 0"}},
	{"probe timeout over period", app(`"readiness": {"tcp": {"port": 1}, "period": 1, "timeout": 2}`), []string{"apps.web.readiness.timeout: must not exceed period (1), got 2"}},
	{"probe thresholds", app(`"readiness": {"tcp": {"port": 1}, "failure-threshold": 5000, "success-threshold": -1}`), []string{"apps.web.readiness.failure-threshold: must be between 1 and 1000, got 5000", "apps.web.readiness.success-threshold: must be between 1 and 1000, got -1"}},
	{"tcp port", app(`"readiness": {"tcp": {"port": 70000}}`), []string{"apps.web.readiness.tcp.port: must be between 1 and 65535, got 70000"}},
	{"tcp without port", app(`"readiness": {"tcp": {}}`), []string{"apps.web.readiness.tcp.port: required"}},
	{"http url and port", app(`"liveness": {"http": {"url": "http://127.0.0.1:1/", "port": 1}}`), []string{`apps.web.liveness.http: give either "url" or "port" (with "path" and "scheme"), not both`}},
	{"http neither", app(`"liveness": {"http": {"path": "/x"}}`), []string{`apps.web.liveness.http: needs "url" or "port"`}},
	{"http bad scheme", app(`"liveness": {"http": {"url": "ftp://127.0.0.1/"}}`), []string{`apps.web.liveness.http.url: must start with "http://" or "https://", got "ftp://127.0.0.1/"`}},
	{"http path", app(`"liveness": {"http": {"port": 1, "path": "health"}}`), []string{`apps.web.liveness.http.path: must start with /, got "health"`}},
	{"http status", app(`"liveness": {"http": {"port": 1, "status": [299, 200]}}`), []string{"apps.web.liveness.http.status: must be a range of status codes within 100..599, lowest first, got [299, 200]"}},
	{"http status length", app(`"liveness": {"http": {"port": 1, "status": [200]}}`), []string{"apps.web.liveness.http.status: must be [lowest, highest], got 1 numbers"}},
	{"exec empty", app(`"liveness": {"exec": {"command": []}}`), []string{`apps.web.liveness.exec.command: must hold a command: ["/path/to/command", "arg", ...]`}},
	{"ready mode", app(`"ready": "log"`), []string{`apps.web.ready: must be "notify" or "log-line", got "log"`}},
	{"ready log-line", app(`"ready": "log-line", "ready-line": "^listening on :[0-9]+$"`), nil},
	{"ready log-line without a line", app(`"ready": "log-line"`), []string{`apps.web.ready-line: required with "ready": "log-line": the regular expression of the line that makes the app ready`}},
	{"ready-line without log-line", app(`"ready-line": "up"`), []string{`apps.web.ready-line: only with "ready": "log-line"`}},
	{"ready-line not a regexp", app(`"ready": "log-line", "ready-line": "up("`), []string{"apps.web.ready-line: not a regular expression: missing closing ): `up(`"}},
	{"watchdog", app(`"watchdog": 0.01`), []string{"apps.web.watchdog: must be 0 (no watchdog) or at least 0.1 seconds, got 0.01"}},
	{"probe typo", app(`"liveness": {"tcp": {"port": 1}, "perod": 1}`), []string{`apps.web.liveness.perod: unknown key, did you mean "period"?`}},
}

func TestServiceRules(t *testing.T) { runRuleCases(t, serviceCases) }

var serviceCases = []ruleCase{
	{"management 1", service(`"management": 1`), nil},
	{"management 3", service(`"management": 3, "service": "ssh.service"`), nil},
	{"management 4", service(`"management": 4`), []string{"services.svc.management: must be 1 (SERVICE), 2 (INITD) or 3 (SYSTEMD), got 4"}},
	{"management missing", service(`"name": "S"`), []string{"services.svc.management: required: 1 (service NAME VERB), 2 (init.d script) or 3 (systemctl), or set management-start, -status, -stop and -restart"}},
	{"per-action methods", service(`"management-start": 1, "management-status": 3, "management-stop": 2, "management-restart": 1`), nil},
	{"per-action method missing", service(`"management-start": 1, "management-status": 3, "management-stop": 2`), []string{"services.svc.management-restart: required when management is not set (each action needs its method)"}},
	{"only restart set (the seed ignored it)", service(`"management-restart": 2`), []string{
		"services.svc.management-start: required when management is not set (each action needs its method)",
		"services.svc.management-status: required when management is not set (each action needs its method)",
		"services.svc.management-stop: required when management is not set (each action needs its method)",
	}},
	{"management with per-action method", service(`"management": 1, "management-stop": 2`), []string{"services.svc.management-stop: must be absent when management is set (management applies to every action)"}},
	{"per-action method out of range", service(`"management-start": 9, "management-status": 1, "management-stop": 1, "management-restart": 1`), []string{"services.svc.management-start: must be 1 (SERVICE), 2 (INITD) or 3 (SYSTEMD), got 9"}},
	{"verb override", service(`"management": 2, "management-restart-parameter": "force-reload"`), nil},
	{"verb with a space", service(`"management": 2, "management-stop-parameter": "stop now"`), []string{`services.svc.management-stop-parameter: must be a verb of 1-63 characters of A-Z, a-z, 0-9 and "._:-", got "stop now"`}},
	{"verb like a flag", service(`"management": 2, "management-stop-parameter": "--force"`), []string{`services.svc.management-stop-parameter: must be a verb of 1-63 characters of A-Z, a-z, 0-9 and "._:-", got "--force"`}},
	// service name
	{"service name 63 bytes", service(`"management": 1, "service": "` + strings.Repeat("s", 63) + `"`), nil},
	{"service name 64 bytes", service(`"management": 1, "service": "` + strings.Repeat("s", 64) + `"`), []string{`services.svc.service: must be a service name of 1-63 bytes of A-Z, a-z, 0-9 and "_.:@-", not starting with "-" or "." (no "/"), got "` + strings.Repeat("s", 64) + `"`}},
	{"service name with slash", service(`"management": 2, "service": "../../bin/sh"`), []string{`services.svc.service: must be a service name of 1-63 bytes of A-Z, a-z, 0-9 and "_.:@-", not starting with "-" or "." (no "/"), got "../../bin/sh"`}},
	{"service name dot dot", service(`"management": 2, "service": ".."`), []string{`services.svc.service: must be a service name of 1-63 bytes of A-Z, a-z, 0-9 and "_.:@-", not starting with "-" or "." (no "/"), got ".."`}},
	{"service name like a flag", service(`"management": 3, "service": "-H"`), []string{`services.svc.service: must be a service name of 1-63 bytes of A-Z, a-z, 0-9 and "_.:@-", not starting with "-" or "." (no "/"), got "-H"`}},
	{"systemd template unit", service(`"management": 3, "service": "getty@tty1.service"`), nil},
	{"service name 255", service(`"management": 1, "name": "` + strings.Repeat("n", 256) + `"`), []string{"services.svc.name: must be at most 255 bytes, got 256"}},
	{"service secret", service(`"management": 1, "secret": "` + strings.Repeat("s", 129) + `"`), []string{"services.svc.secret: must be at most 128 bytes, got 129"}},
	// exit codes
	{"exit codes", service(`"management": 1, "ignore-exit-codes": [127], "ignore-exit-codes-status": [3, 4], "ignore-exit-codes-start": [1], "ignore-exit-codes-stop": [255], "ignore-exit-codes-restart": [2]`), nil},
	{"exit code 0", service(`"management": 1, "ignore-exit-codes-start": [0]`), []string{"services.svc.ignore-exit-codes-start: exit codes must be between 1 and 255 (0 always means success), got 0"}},
	{"exit code 256", service(`"management": 1, "ignore-exit-codes-status": [256]`), []string{"services.svc.ignore-exit-codes-status: exit codes must be between 1 and 255 (0 always means success), got 256"}},
	{"exit code duplicate", service(`"management": 1, "ignore-exit-codes-stop": [3, 4, 3]`), []string{"services.svc.ignore-exit-codes-stop: lists exit code 3 more than once"}},
	{"exit code duplicate in shorthand", service(`"management": 1, "ignore-exit-codes": [5, 5]`), []string{"services.svc.ignore-exit-codes: lists exit code 5 more than once"}},
	{"exit code negative in restart", service(`"management": 1, "ignore-exit-codes-restart": [-1]`), []string{"services.svc.ignore-exit-codes-restart: exit codes must be between 1 and 255 (0 always means success), got -1"}},
}

func TestTopLevelRules(t *testing.T) { runRuleCases(t, topLevelCases) }

var topLevelCases = []ruleCase{
	{"tick-every default", `{"tick-every": 0}`, nil},
	{"tick-every 1", `{"tick-every": 1}`, nil},
	{"tick-every 120", `{"tick-every": 120}`, nil},
	{"tick-every 600", `{"tick-every": 600}`, []string{"tick-every: must be between 1 and 120, got 600"}},
	{"tick-every negative", `{"tick-every": -5}`, []string{"tick-every: must be between 1 and 120, got -5"}},
	{"history 5", `{"history": 5}`, nil},
	{"history 4", `{"history": 4}`, []string{"history: must be between 5 and 1000, got 4"}},
	{"history 1001", `{"history": 1001}`, []string{"history: must be between 5 and 1000, got 1001"}},
	{"ping-timeout 180", `{"ping-timeout": 180}`, nil},
	{"ping-timeout 181 (the seed kept up to 1000)", `{"ping-timeout": 181}`, []string{"ping-timeout: must be between 1 and 180, got 181"}},
	{"json-timestamp name", `{"json-timestamp": "RFC3339Nano"}`, nil},
	{"json-timestamp layout", `{"json-timestamp": "2006-01-02 15:04"}`, nil},
	{"json-timestamp without fields", `{"json-timestamp": "hello"}`, []string{`json-timestamp: is not a Go time layout (it contains no time fields, such as 2006, 01, 02, 15, 04, 05): "hello"`}},
	{"json-timestamp blank", `{"json-timestamp": " "}`, []string{"json-timestamp: must not be empty"}},
	{"listen", `{"http": {"listen": "127.0.0.1:0"}, "udp": {"listen": "[::1]:1248"}}`, nil},
	{"listen host name", `{"http": {"listen": "localhost:8421"}}`, nil},
	{"listen without port", `{"http": {"listen": "127.0.0.1"}}`, []string{`http.listen: must be host:port, got "127.0.0.1"`}},
	{"listen port too big", `{"udp": {"listen": "127.0.0.1:70000"}}`, []string{`udp.listen: port must be a number from 0 to 65535, got "70000"`}},
	{"listen bad host", `{"http": {"listen": "a b:80"}}`, []string{`http.listen: host must be an IP address or a host name, got "a b"`}},
	{"listen-http", `{"listen-http": ["127.0.0.1:8421", "localhost:9000"]}`, nil},
	{"listen-http port 0", `{"listen-http": ["127.0.0.1:0"]}`, []string{`listen-http[0]: port must be a number from 1 to 65535, got "0"`}},
	{"listen-udp bad", `{"listen-udp": ["nope"]}`, []string{`listen-udp[0]: must be host:port, got "nope"`}},
	{"keepalive 3 with the default listener", app(`"keepalive": 3`), nil},
	{"keepalive 3 with no HTTP listener", `{"listen-http": [], "apps": {"web": {"binary": "/x", "keepalive": 3}}}`, []string{"listen-http: must list at least one address: apps with keepalive 3 (HTTP) ping it (web)"}},
	{"keepalive 4 with no UDP listener", `{"listen-udp": [], "apps": {"a": {"binary": "/x", "keepalive": 4}, "b": {"binary": "/x", "keepalive": 4}}}`, []string{"listen-udp: must list at least one address: apps with keepalive 4 (UDP) ping it (a, b)"}},
	{"empty listener list without pinging apps", `{"listen-http": [], "listen-udp": []}`, nil},
	{"token", `{"http": {"token": "s3cr3t-T0ken_with.chars~+/=="}}`, nil},
	{"protect-reads", `{"http": {"token": "t", "protect-reads": true}}`, nil},
	{"protect-reads without a token", `{"http": {"protect-reads": true}}`, []string{"http.protect-reads: needs http.token: it is the token that reads would need"}},
	{"tls", `{"http": {"tls-cert": "tls/cert.pem", "tls-key": "/etc/patrol/key.pem"}}`, nil},
	{"tls cert without key", `{"http": {"tls-cert": "cert.pem"}}`, []string{"http: tls-cert and tls-key go together: set both for HTTPS, or neither"}},
	{"token with space", `{"http": {"token": "a b"}}`, []string{`http.token: must be 1-256 characters of A-Z, a-z, 0-9 and "-._~+/", optionally ending in "="`}},
	{"initd-directory relative", `{"initd-directory": "initd"}`, nil},
	{"initd-directory unclean", `{"initd-directory": "/etc/init.d/../rc.d"}`, []string{`initd-directory: must be a clean path, got "/etc/init.d/../rc.d" (clean form "/etc/rc.d")`}},
	{"log-retention", `{"log-retention": {"days": 0, "max-total-mb": 10}}`, nil},
	{"log-retention negative", `{"log-retention": {"days": -1}}`, []string{"log-retention.days: must be between 0 and 36500, got -1"}},
	{"keyvalue-limits", `{"keyvalue-limits": {"max-depth": 64, "max-bytes": 64, "max-keys": 1}}`, nil},
	{"keyvalue-limits out of range", `{"keyvalue-limits": {"max-depth": 65, "max-bytes": 63, "max-keys": -1}}`, []string{
		"keyvalue-limits.max-bytes: must be between 64 and 1048576, got 63",
		"keyvalue-limits.max-depth: must be between 1 and 64, got 65",
		"keyvalue-limits.max-keys: must be between 1 and 65536, got -1",
	}},
	{"keyvalue too deep by default", app(`"keyvalue": {"k": [[[[[[[[[[1]]]]]]]]]]}`), []string{
		"apps.web.keyvalue: nests more than 10 levels deep (keyvalue-limits.max-depth)",
	}},
	{"keyvalue at the default depth", app(`"keyvalue": {"k": [[[[[[[[[1]]]]]]]]]}`), nil},
	{"keyvalue over the config's limits", `{"keyvalue-limits": {"max-keys": 1, "max-bytes": 64},
		"apps": {"web": {"binary": "/x", "keyvalue": {"a": 1, "b": 2}}},
		"services": {"s": {"management": 1, "keyvalue": {"long": "` + strings.Repeat("x", 60) + `"}}}}`, []string{
		"apps.web.keyvalue: has 2 keys, more than keyvalue-limits.max-keys 1",
		"services.s.keyvalue: is 71 bytes as JSON, more than keyvalue-limits.max-bytes 64",
	}},
	{"keyvalue with bad limits is not checked against them", `{"keyvalue-limits": {"max-keys": -1},
		"apps": {"web": {"binary": "/x", "keyvalue": {"a": 1, "b": 2}}}}`, []string{
		"keyvalue-limits.max-keys: must be between 1 and 65536, got -1",
	}},
	{"top-level hooks", `{"hooks": {"on-crash": ["/usr/bin/logger"]}}`, nil},
	{"top-level hooks bad", `{"hooks": {"on-crash": ["./hook"]}}`, []string{`hooks.on-crash: command must be an absolute path or a command name looked up in PATH (no shell), got "./hook"`}},
}

// TestEveryProblemReported checks that independent mistakes are all
// reported, in one pass.
func TestEveryProblemReported(t *testing.T) {
	_, got := parse(t, `{
		"tick-evry": 5,
		"apps": {
			"web_1": {"binary": "/bin/web"},
			"api": {"keepalive": 1},
			"db": {"binary": "/bin/db", "keepalive": 2, "stop-signal": "SIGFOO"}
		},
		"services": {"ssh": {"management": 7, "ignore-exit-codes-status": [0]}}
	}`)
	want := []string{
		"apps.api.binary: required",
		"apps.db.pid-path: required for keepalive 2 (PID_APP): the app writes its pid there",
		`apps.db.stop-signal: must be one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGABRT, SIGALRM, SIGWINCH, SIGKILL, got "SIGFOO"`,
		`apps.web_1: invalid id "web_1": only A-Z, a-z, 0-9 and "-" are allowed`,
		"services.ssh.ignore-exit-codes-status: exit codes must be between 1 and 255 (0 always means success), got 0",
		"services.ssh.management: must be 1 (SERVICE), 2 (INITD) or 3 (SYSTEMD), got 7",
		`tick-evry: unknown key, did you mean "tick-every"?`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n got %q\nwant %q", got, want)
	}
}

func TestNormalise(t *testing.T) {
	st, problems := parse(t, `{
		"tick-every": 5, "ping-timeout": 7, "history": 50, "json-timestamp": "RFC3339",
		"listen-http": ["127.0.0.1:9000"],
		"http": {"listen": "127.0.0.1:0", "token": "tok"},
		"initd-directory": "initd",
		"log-retention": {"days": 0},
		"hooks": {"on-crash": ["/bin/crash"], "timeout": 5},
		"apps": {
			"Web": {
				"binary": "bin/web", "working-directory": "srv", "pid-path": "/run/web.pid",
				"keepalive": 2, "args": [], "env": ["A=B"], "depends-on": ["DB"],
				"stop-signal": "USR1", "stop-timeout": 1.5,
				"backoff": {"initial": 0.25},
				"hooks": {"on-start": ["/bin/start"]}
			},
			"db": {"binary": "/usr/bin/db", "working-directory": "~/db", "log-directory": "/var/log/db", "name": "Database"}
		},
		"services": {"SSH": {"management": 3, "ignore-exit-codes": [9, 3], "ignore-exit-codes-status": [3], "management-stop-parameter": "kill"}}
	}`)
	if problems != nil {
		t.Fatalf("problems: %q", problems)
	}
	s := st.Settings()
	if s.TickEvery != 5*time.Second || s.PingTimeout != 7*time.Second || s.History != 50 {
		t.Errorf("settings durations: got %v %v %v", s.TickEvery, s.PingTimeout, s.History)
	}
	if s.TimestampLayout != time.RFC3339 {
		t.Errorf("layout: got %q, want %q", s.TimestampLayout, time.RFC3339)
	}
	if !slices.Equal(s.ListenHTTP, []string{"127.0.0.1:9000"}) || s.ListenUDP != nil {
		t.Errorf("listen: got %q %q", s.ListenHTTP, s.ListenUDP)
	}
	if s.HTTPListen != "127.0.0.1:0" || s.HTTPToken != "tok" || s.UDPListen != schema.DefaultUDPListen {
		t.Errorf("listeners: got %q %q %q", s.HTTPListen, s.HTTPToken, s.UDPListen)
	}
	if s.InitdDirectory != "/cfg/initd" {
		t.Errorf("initd-directory: got %q", s.InitdDirectory)
	}
	if s.LogRetentionDays != 0 || s.LogRetentionBytes != 1024<<20 {
		t.Errorf("log retention: got %d days %d bytes", s.LogRetentionDays, s.LogRetentionBytes)
	}

	web, ok := st.App("WEB")
	if !ok {
		t.Fatal("app web not found by upper-case id")
	}
	checks := []struct {
		field    string
		got, exp any
	}{
		{"ID", web.ID, "web"},
		{"Name", web.Name, "Web"},
		{"WorkingDirectory", web.WorkingDirectory, "/cfg/srv"},
		{"Binary", web.Binary, "/cfg/srv/bin/web"},
		{"LogDirectory", web.LogDirectory, "/cfg/srv/logs/web"},
		{"PIDPath", web.PIDPath, "/run/web.pid"},
		{"Args", fmt.Sprint(web.Args == nil), "true"},
		{"Env", fmt.Sprint(web.Env), "[A=B]"},
		{"DependsOn", fmt.Sprint(web.DependsOn), "[{db started false}]"},
		{"StopSignal", web.StopSignal, "SIGUSR1"},
		{"StopTimeout", web.StopTimeout, 1500 * time.Millisecond},
		{"RestartPolicy", web.RestartPolicy, schema.RestartAlways},
		{"Backoff", web.Backoff, desired.Backoff{Initial: 250 * time.Millisecond, Max: time.Minute, ResetAfter: time.Minute}},
		{"StartTimeout", web.StartTimeout, 10 * time.Second},
		{"Hooks.OnStart", fmt.Sprint(web.Hooks.OnStart), "[/bin/start]"},
		{"Hooks.OnCrash (inherited)", fmt.Sprint(web.Hooks.OnCrash), "[/bin/crash]"},
		{"Hooks.Timeout (inherited)", web.Hooks.Timeout, 5 * time.Second},
	}
	db, _ := st.App("db")
	checks = append(checks, []struct {
		field    string
		got, exp any
	}{
		{"db.Name", db.Name, "Database"},
		{"db.WorkingDirectory", db.WorkingDirectory, "/home/op/db"},
		{"db.Binary (absolute, not joined)", db.Binary, "/usr/bin/db"},
		{"db.LogDirectory", db.LogDirectory, "/var/log/db"},
		{"db.Keepalive", db.Keepalive, schema.KeepalivePIDPatrol},
		{"db.PIDPath", db.PIDPath, ""},
		{"db.Hooks.OnCrash", fmt.Sprint(db.Hooks.OnCrash), "[/bin/crash]"},
	}...)
	ssh, ok := st.Service("ssh")
	if !ok {
		t.Fatal("service ssh not found")
	}
	checks = append(checks, []struct {
		field    string
		got, exp any
	}{
		{"ssh.ID", ssh.ID, "ssh"},
		{"ssh.Name", ssh.Name, "SSH"},
		{"ssh.Service", ssh.Service, "SSH"},
		{"ssh.Status", fmt.Sprint(ssh.Status), "{SYSTEMD status [3 9]}"},
		{"ssh.Stop", fmt.Sprint(ssh.Stop), "{SYSTEMD kill [3 9]}"},
		{"ssh.Start", fmt.Sprint(ssh.Start), "{SYSTEMD start [3 9]}"},
	}...)
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.exp) {
			t.Errorf("%s: got %v, want %v", c.field, c.got, c.exp)
		}
	}
	if ids := []string{st.Apps()[0].ID, st.Apps()[1].ID}; !slices.Equal(ids, []string{"db", "web"}) {
		t.Errorf("Apps order: got %q", ids)
	}
}

func TestParseWithoutDirUsesCurrentDirectory(t *testing.T) {
	st, err := desired.Parse([]byte(`{"apps": {"a": {"binary": "x", "working-directory": "w"}}}`), desired.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	a, _ := st.App("a")
	if want := filepath.Join(wd, "w", "x"); a.Binary != want {
		t.Errorf("binary: got %q, want %q", a.Binary, want)
	}
}

func TestHomeUnknown(t *testing.T) {
	_, err := desired.Parse([]byte(app(`"working-directory": "~/x"`)), desired.Options{
		Dir:  "/cfg",
		Home: func() (string, error) { return "", os.ErrNotExist },
	})
	want := []string{`apps.web.working-directory: cannot expand "~/": the home directory of the user running Patrol is unknown`}
	if got := desired.Problems(err); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(`{"apps": {"a": {"binary": "bin/a"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := desired.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Path() != path {
		t.Errorf("Path: got %q, want %q", st.Path(), path)
	}
	a, _ := st.App("a")
	if want := filepath.Join(dir, "bin/a"); a.Binary != want {
		t.Errorf("binary relative to the config's directory: got %q, want %q", a.Binary, want)
	}

	if _, err := desired.Load(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: got %v", err)
	}
	if _, err := desired.Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: got %v", err)
	}
	big := filepath.Join(dir, "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(desired.MaxConfigSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := desired.Load(big); err == nil || !strings.Contains(err.Error(), "larger than 16 MiB") {
		t.Errorf("big file: got %v", err)
	}
}

// TestSeedReadmeConfig loads the original Patrol README's sample config,
// including its "ignore-exit-codes" key that the original silently
// ignored.
func TestSeedReadmeConfig(t *testing.T) {
	st, err := desired.Load("testdata/seed-readme.json")
	if err != nil {
		t.Fatalf("problems: %q", desired.Problems(err))
	}
	ssh, _ := st.Service("ssh")
	if !slices.Equal(ssh.Status.IgnoreExitCodes, []int{127}) {
		t.Errorf("ignore-exit-codes not applied to status: got %v", ssh.Status.IgnoreExitCodes)
	}
	a, _ := st.App("testapp")
	if !strings.HasSuffix(a.WorkingDirectory, "/go/src/sabey.co/patrol/unittest/testapp") || !filepath.IsAbs(a.WorkingDirectory) {
		t.Errorf("working-directory: got %q", a.WorkingDirectory)
	}
	if !slices.Equal(a.Args, []string{"-config", `"config.json"`}) {
		t.Errorf("args: got %q", a.Args)
	}
}

func TestExamplesLoad(t *testing.T) {
	paths, err := filepath.Glob("../examples/*.json")
	if err != nil || len(paths) < 6 {
		t.Fatalf("examples: %v %v", paths, err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			if _, err := desired.Load(p); err != nil {
				t.Errorf("problems: %q", desired.Problems(err))
			}
		})
	}
}

// TestLoadChanged checks that a reload of a file with the same bytes at the
// same path gives back the previous state without parsing, and that any
// other reload parses.
func TestLoadChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(path, app(`"args": ["1"]`))
	first, err := desired.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	same, err := desired.LoadChanged(path, first)
	if err != nil || same != first {
		t.Fatalf("LoadChanged of the same bytes = %p, %v; want the previous state %p", same, err, first)
	}
	// The same normalised config in other bytes is parsed (and has the
	// same revision).
	write(path, app(`"args": [ "1" ]`))
	spaced, err := desired.LoadChanged(path, first)
	if err != nil || spaced == first || spaced.Revision() != first.Revision() {
		t.Fatalf("LoadChanged of reformatted bytes = %p (revision %s), %v; want a new state with revision %s",
			spaced, spaced.Revision(), err, first.Revision())
	}
	write(path, app(`"args": ["2"]`))
	changed, err := desired.LoadChanged(path, spaced)
	if err != nil || changed == spaced || changed.Revision() == spaced.Revision() {
		t.Fatalf("LoadChanged of changed bytes = %v, %v; want a new revision", changed, err)
	}
	// The same bytes elsewhere: relative paths resolve differently.
	other := filepath.Join(dir, "sub", "config.json")
	if err := os.MkdirAll(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	write(other, app(`"args": ["2"]`))
	moved, err := desired.LoadChanged(other, changed)
	if err != nil || moved == changed {
		t.Fatalf("LoadChanged of the same bytes at another path = %p, %v; want a new state", moved, err)
	}
	// An invalid file is an error, not the previous state.
	write(path, `{"apps": `)
	if st, err := desired.LoadChanged(path, changed); err == nil {
		t.Fatalf("LoadChanged of an invalid file = %v, nil; want an error", st)
	}
	// A nil previous state always parses.
	if st, err := desired.LoadChanged(other, nil); err != nil || st == moved {
		t.Fatalf("LoadChanged(nil) = %p, %v; want a freshly parsed state", st, err)
	}
}
