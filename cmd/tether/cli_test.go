package main

import (
	"flag"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestFlagsAnywhere: flags are read before, between and after the
// endpoint strings; "--" ends them.
func TestFlagsAnywhere(t *testing.T) {
	for _, args := range [][]string{
		{"describe", "tcp:example.com:80", "--client"},
		{"describe", "--client", "tcp:example.com:80"},
		{"describe", "--client", "--", "tcp:example.com:80"},
		{"describe", "-client=true", "tcp:example.com:80"},
	} {
		if code, out, errOut := runCmd(args...); code != exitOK || !strings.Contains(out, `"role":"client"`) {
			t.Errorf("%q = %d, %q, %q", args, code, out, errOut)
		}
	}
	// After "--" nothing is a flag.
	if code, _, errOut := runCmd("describe", "--", "--client"); code != exitUsage || !strings.Contains(errOut, `"--client"`) {
		t.Errorf("describe -- --client = %d, %q; want the string --client rejected", code, errOut)
	}
	// relay and serve read them after the strings: a bad value is found.
	for _, args := range [][]string{
		{"relay", "tcp:0", "tcp:127.0.0.1:1", "--log-format", "xml"},
		{"relay", "tcp:0", "--log-format", "xml", "tcp:127.0.0.1:1"},
		{"serve", "tcp:0", "echo", "--log-format=xml"},
	} {
		if code, _, errOut := runCmd(args...); code != exitUsage || errOut != "tether "+args[0]+`: --log-format "xml": want text or json`+"\n" {
			t.Errorf("%q = %d, %q", args, code, errOut)
		}
	}
	for _, args := range [][]string{
		{"relay", "tcp:0", "tcp:127.0.0.1:1", "--nosuch"},
		{"connect", "tcp:127.0.0.1:1", "--wait"}, // no value
		{"types", "--markdown", "extra"},
	} {
		if code, _, errOut := runCmd(args...); code != exitUsage || errOut == "" {
			t.Errorf("%q = %d, %q; want exit 2", args, code, errOut)
		}
	}
	if code, out, _ := runCmd("relay", "tcp:0", "tcp:127.0.0.1:1", "--help"); code != exitOK || !strings.Contains(out, "Usage: tether relay") {
		t.Errorf("relay A B --help = %d, %q", code, out)
	}
	// serve: everything after exec is COMMAND's, flags included.
	code, _, errOut := runCmd("serve", "tcp:0", "--quiet", "exec", "--no-such-program", "--quiet")
	if code != exitUsage || !strings.Contains(errOut, `"--no-such-program"`) || strings.Contains(errOut, "flag provided") {
		t.Errorf("serve ... exec --no-such-program = %d, %q; want the program looked up", code, errOut)
	}
}

// TestFlagsAnywhereBinary: relay and serve run with their flags after the
// endpoint strings (JSON logs prove them read), and serve's exec COMMAND
// gets its own flags.
func TestFlagsAnywhereBinary(t *testing.T) {
	ln, target := listenTest(t, "tcp")
	echoServer(ln)
	p := startTether(t, tetherBin, "relay", "tcp:0:interface=127.0.0.1", target, "--log-format", "json", "--max-conns", "3")
	addr := p.waitLog("listening", nil)["addr"].(string)
	c := dialAddr(t, "tcp", addr)
	c.Write([]byte("x"))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	s := startTether(t, tetherBin, "serve", "tcp:0:interface=127.0.0.1", "--log-format", "json", "exec", "--", "/bin/echo", "-n", "--log-format")
	c = dialAddr(t, "tcp", s.waitLog("listening", nil)["addr"].(string))
	var got strings.Builder
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if got.String() != "--log-format" {
		t.Errorf("serve ... exec -- /bin/echo -n --log-format sent %q", got.String())
	}
}

// TestParseFlagsTerminator: parseFlags itself, with a flag whose value
// is "--" or looks like a flag.
func TestParseFlagsTerminator(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // positional, joined by " "
		fmt  string
	}{
		{[]string{"a", "--fmt", "--", "b"}, "a b", "--"},
		{[]string{"a", "--fmt", "-x", "--", "-b"}, "a -b", "-x"},
		{[]string{"--fmt=y", "--", "--fmt", "z"}, "--fmt z", "y"},
		{[]string{"-", "a"}, "- a", ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f := fs.String("fmt", "", "")
		fs.Bool("b", false, "")
		pos, _, done := parseFlags(fs, tt.args, &env{stdout: &strings.Builder{}, stderr: &strings.Builder{}}, nil)
		if done || strings.Join(pos, " ") != tt.want || *f != tt.fmt {
			t.Errorf("parseFlags(%q) = %q, --fmt %q, done %v; want %q, %q", tt.args, pos, *f, done, tt.want, tt.fmt)
		}
	}
}

// TestHelpCommand: "tether help COMMAND" is the command's --help.
func TestHelpCommand(t *testing.T) {
	for _, cmd := range []string{"relay", "serve", "connect", "describe", "types", "version"} {
		code, out, errOut := runCmd("help", cmd)
		_, want, _ := runCmd(cmd, "--help")
		if code != exitOK || out != want || errOut != "" || !strings.Contains(out, "Usage: tether "+cmd) {
			t.Errorf("help %s = %d, %.60q, %q; want %s --help's text", cmd, code, out, errOut, cmd)
		}
	}
	if code, out, _ := runCmd("help"); code != exitOK || !strings.Contains(out, "tether help COMMAND") {
		t.Errorf("help = %d, %q", code, out)
	}
	if code, _, errOut := runCmd("help", "nosuch"); code != exitUsage || !strings.Contains(errOut, `unknown command "nosuch"`) {
		t.Errorf("help nosuch = %d, %q", code, errOut)
	}
}

// TestVersion: version and --version say the module version, the VCS
// revision and whether the tree had changes.
func TestVersion(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/tether-endpoints/tether", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionLine(bi), "tether v1.2.3, revision 0123abcd with uncommitted changes, built with go1.26.8"; got != want {
		t.Errorf("versionLine = %q, want %q", got, want)
	}
	bi.Settings[2].Value = "false"
	if got, want := versionLine(bi), "tether v1.2.3, revision 0123abcd, built with go1.26.8"; got != want {
		t.Errorf("versionLine = %q, want %q", got, want)
	}
	bi.Main.Version, bi.Settings = "(devel)", nil
	if got, want := versionLine(bi), "tether (devel), revision unknown, built with go1.26.8"; got != want {
		t.Errorf("versionLine = %q, want %q", got, want)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if code, out, _ := runCmd(args...); code != exitOK || !strings.HasPrefix(out, "tether ") || strings.Count(out, "\n") != 1 {
			t.Errorf("%q = %d, %q", args, code, out)
		}
	}
	if code, _, _ := runCmd("version", "extra"); code != exitUsage {
		t.Errorf("version extra = %d", code)
	}
	// Built in a git work tree with VCS stamping (which GOFLAGS may have
	// turned off for the tests' own build), tether knows its revision.
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Logf("no git revision to compare with: %v", err)
		return
	}
	bin := filepath.Join(t.TempDir(), "tether")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if rev := strings.TrimSpace(string(head)); err != nil || !strings.Contains(string(out), ", revision "+rev) {
		t.Errorf("tether --version = %q, %v; want revision %s", out, err, rev)
	}
}

// TestRelaySwapped: a LISTEN that is a client string, with a CONNECT that
// is a server string, is said to look swapped; other bad strings are not.
func TestRelaySwapped(t *testing.T) {
	const hint = "tether relay: the arguments look swapped: LISTEN comes first (tether relay LISTEN CONNECT)\n"
	code, _, errOut := runCmd("relay", "tcp:127.0.0.1:41081", "tcp:41130")
	if code != exitUsage || !strings.Contains(errOut, `port "127.0.0.1" is not a number`) || !strings.HasSuffix(errOut, hint) ||
		strings.Count(errOut, "\n") != 2 {
		t.Errorf("relay with swapped strings = %d, %q", code, errOut)
	}
	for _, args := range [][]string{
		{"relay", "tcp:127.0.0.1:41081", "tcp:127.0.0.1:41130"}, // CONNECT is no server string
		{"relay", "tcp:http", "tcp:41130"},                      // LISTEN is no client string either
		{"relay", "tcp:0", "tcp:41130"},                         // LISTEN is fine; CONNECT is bad
	} {
		if code, _, errOut := runCmd(args...); code != exitUsage || strings.Contains(errOut, "swapped") {
			t.Errorf("%q = %d, %q; want exit 2 without the hint", args, code, errOut)
		}
	}
}

// TestRelayWarnsInsecure: relay warns once on stderr when CONNECT turns
// off certificate checks, at any depth, and not otherwise.
func TestRelayWarnsInsecure(t *testing.T) {
	const warning = "tether relay: WARNING: insecureSkipVerify=1: the server's certificate is NOT verified"
	for _, tt := range []struct {
		target string
		warn   bool
	}{
		{"tls:127.0.0.1:1:insecureSkipVerify=1", true},
		{"haproxy:tls:127.0.0.1:1:insecureSkipVerify=1", true},
		{"tls:127.0.0.1:1", false},
	} {
		p := startTether(t, tetherBin, "relay", "--log-format", "json", "tcp:0:interface=127.0.0.1", tt.target)
		p.waitLog("listening", nil)
		p.mu.Lock()
		n := 0
		for _, l := range p.raw {
			if strings.HasPrefix(l, warning) {
				n++
			}
		}
		p.mu.Unlock()
		if (tt.warn && n != 1) || (!tt.warn && n != 0) {
			t.Errorf("relay to %q: %d warnings, want warn=%v", tt.target, n, tt.warn)
		}
	}
	if !clientInsecure("socks5:h:1:proxy="+`tls\:127.0.0.1\:1\:insecureSkipVerify\=1`, 0) {
		t.Error("clientInsecure misses a proxy= string's insecureSkipVerify=1")
	}
}
