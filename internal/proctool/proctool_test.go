package proctool

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (my (odd) app) S 17 4242 4242 0 -1 4194560 1234 0 0 0 321 45 0 0 20 0 9 0 5555 1000000 300 18446744073709551615\n"
	st, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "my (odd) app" || st.State != 'S' || st.PPID != 17 || st.UTime != 321 || st.STime != 45 {
		t.Errorf("parseStat = %+v", st)
	}
	if !st.Alive() {
		t.Error("S is not alive")
	}
	st, err = ParseStat([]byte("7 (sleep) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 0\n"))
	if err != nil || st.Alive() {
		t.Errorf("zombie: %+v, %v", st, err)
	}
	for _, bad := range []string{"", "12 sleep S 1", "12 (sleep) S 1 2 3", "12 (sleep) S x 1 1 0 -1 0 0 0 0 0 1 1 0"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) succeeded", bad)
		}
	}
	// This process's own stat parses.
	self, err := ReadStat(os.Getpid())
	if err != nil || self.PPID != os.Getppid() {
		t.Errorf("ReadStat(self) = %+v, %v; ppid want %d", self, err, os.Getppid())
	}
}

func TestParseStatus(t *testing.T) {
	in := "Name:\tpatrol\nState:\tS (sleeping)\nVmRSS:\t   21764 kB\nThreads:\t9\n" +
		"voluntary_ctxt_switches:\t150\nnonvoluntary_ctxt_switches:\t7\n"
	st, err := ParseStatus([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Status{RSSKiB: 21764, Threads: 9, VolCtx: 150, NonVolCtx: 7}
	if st != want {
		t.Errorf("parseStatus = %+v, want %+v", st, want)
	}
	if _, err := ParseStatus([]byte("Threads:\tmany\n")); err == nil {
		t.Error("a bad Threads value parsed")
	}
	u, err := ReadUsage(os.Getpid())
	if err != nil || u.RSSKiB == 0 || u.Threads == 0 {
		t.Errorf("ReadUsage(self) = %+v, %v", u, err)
	}
}

func TestParsePSS(t *testing.T) {
	b := []byte("55d0c8a3e000-7ffd1b1f4000 ---p 00000000 00:00 0                          [rollup]\n" +
		"Rss:               21340 kB\nPss:               18712 kB\nPss_Dirty:          9000 kB\n")
	if got := ParsePSS(b); got != 18712 {
		t.Errorf("parsePSS = %d, want 18712", got)
	}
	if got := ParsePSS([]byte("Rss: 1 kB\n")); got != 0 {
		t.Errorf("parsePSS without Pss = %d, want 0", got)
	}
	if ReadPSS(os.Getpid()) == 0 {
		t.Error("readPSS of this process is 0")
	}
}

func TestLogField(t *testing.T) {
	line := `time=2026-01-02T03:04:05.000Z level=INFO msg="http listening" addr=127.0.0.1:4242 tls=false`
	if got := LogField(line, "addr"); got != "127.0.0.1:4242" {
		t.Errorf("addr = %q", got)
	}
	if got := LogField(`level=INFO msg="x" dir="/a b/c" n=1`, "dir"); got != "/a b/c" {
		t.Errorf("quoted = %q", got)
	}
	if got := LogField(line, "port"); got != "" {
		t.Errorf("missing key = %q", got)
	}
}
