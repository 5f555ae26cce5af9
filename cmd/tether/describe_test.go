package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tether-endpoints/tether/endpoint"
)

// runCmd runs tether in-process and returns its exit code and output.
func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(&env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut}, args)
	return code, out.String(), errOut.String()
}

func TestDescribe(t *testing.T) {
	code, out, errOut := runCmd("describe", "tcp:80")
	want := `{"role":"server","type":"tcp","args":{"port":80,"interface":"","backlog":50,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true,"reusePort":false,"ipv6Only":null}}` + "\n"
	if code != exitOK || out != want || errOut != "" {
		t.Fatalf("describe tcp:80 = %d, %q, %q", code, out, errOut)
	}
	code, out, _ = runCmd("describe", "--client", "unix:/run/x.sock:lockfile=1")
	var v map[string]any
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || v["role"] != "client" {
		t.Fatalf("describe --client = %d, %q", code, out)
	}
}

func TestDescribeRejects(t *testing.T) {
	for _, args := range [][]string{
		{"describe", "tcp:http"},
		{"describe", "nosuch:1"},
		{"describe", `tcp:80\`},
		{"describe", "--client", "tcp:localhost"},
	} {
		code, out, errOut := runCmd(args...)
		if code != exitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, args[len(args)-1]) {
			t.Errorf("%q = %d, stdout %q, stderr %q; want exit 2 and one line naming the string", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"describe"}, {"describe", "a", "b"}, {"describe", "--nosuch", "tcp:80"}, {"nosuch"}, {}} {
		if code, _, _ := runCmd(args...); code != exitUsage {
			t.Errorf("%q = %d, want %d", args, code, exitUsage)
		}
	}
	for _, cmd := range []string{"describe", "types", "relay", "serve", "connect"} {
		code, out, errOut := runCmd(cmd, "--help")
		if code != exitOK || strings.Count(out, "Usage: tether "+cmd) != 1 || errOut != "" {
			t.Errorf("%s --help = %d, stdout %q, stderr %q; want the usage once, on stdout", cmd, code, out, errOut)
		}
	}
	if code, _, errOut := runCmd("describe", "--nosuch"); code != exitUsage || strings.Count(errOut, "Usage: tether describe") != 1 {
		t.Errorf("describe --nosuch = %d, stderr %q; want exit 2 and the usage once", code, errOut)
	}
}

func TestTypes(t *testing.T) {
	code, out, _ := runCmd("types")
	if code != exitOK {
		t.Fatalf("types = %d", code)
	}
	for _, want := range []string{"tcp:PORT[:INTERFACE[:BACKLOG]]", "tcp6:PORT[:BACKLOG[:INTERFACE]]",
		"unix:ADDRESS[:MODE[:BACKLOG[:LOCKFILE]]]", "tcp:HOST:PORT", "checkPID (or lockfile)", "default 50"} {
		if !strings.Contains(out, want) {
			t.Errorf("tether types lacks %q", want)
		}
	}
}

// TestReferenceIsCurrent fails when docs/reference.md no longer matches
// the argument declarations it is generated from.
func TestReferenceIsCurrent(t *testing.T) {
	code, out, _ := runCmd("types", "--markdown")
	if code != exitOK {
		t.Fatalf("types --markdown = %d", code)
	}
	have, err := os.ReadFile("../../docs/reference.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(have) != out {
		t.Fatal("docs/reference.md is stale: run go run ./cmd/tether types --markdown > docs/reference.md")
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := runCmd("--help")
	if code != exitOK || !strings.Contains(out, "describe") || !strings.Contains(out, "Exit codes") {
		t.Fatalf("--help = %d, %q", code, out)
	}
}

// TestDescribeHidesSecrets: describe shows no secret, in its JSON (nested
// strings included) or in its error, at any depth, whether the string
// parses or not.
func TestDescribeHidesSecrets(t *testing.T) {
	const secret = "S3CR3Tz9"
	socks := "socks5:h:1:proxy=" + endpoint.Quote("tcp:p:1080") + ":username=u:password=" + secret
	for _, tt := range []struct {
		s    string
		code int // for --client
	}{
		{socks, exitOK},
		{"tls:h:443:endpoint=" + endpoint.Quote(socks), exitOK},
		{"socks5:h:1:proxy=" + endpoint.Quote(socks), exitOK},
		{"socks5:h:1:proxy=" + endpoint.Quote("httpconnect:p:1:proxy=tcp\\:q\\:1:username=v:password="+secret), exitOK},
		{strings.Repeat("haproxy:", 12) + socks, exitOK},
		{"tls:h:443:endpoint=" + endpoint.Quote(strings.Repeat("haproxy:", 9)+socks), exitOK},
		{socks + `:timeout=5\`, exitUsage},
		{socks + ":host=[::1", exitUsage},
		{socks + ":password=" + secret + "x", exitUsage},
		// A nested string is parsed when the endpoint is made, as
		// describe makes it; its error hides the secret too. With
		// --syntax-only it is shown, not parsed (TestDescribeSyntaxOnly).
		{"tls:h:443:endpoint=" + endpoint.Quote(socks+`:x=\`), exitUsage},
		{"tls:h:443:endpoint=" + endpoint.Quote("socks5:h:x:password="+secret), exitUsage},
		{strings.Repeat("haproxy:", 40) + socks, exitUsage},
		{"tcp:h:1:" + endpoint.Quote(socks), exitUsage},
	} {
		for _, args := range [][]string{{"describe", "--client", tt.s}, {"describe", tt.s}} {
			code, out, errOut := runCmd(args...)
			if strings.Contains(out+errOut, secret) {
				t.Errorf("%q shows the secret: stdout %q, stderr %q", args, out, errOut)
			}
			if args[1] == "--client" && code != tt.code {
				t.Errorf("%q = %d (stderr %q), want %d", args, code, errOut, tt.code)
			}
			if code == exitOK && !strings.Contains(out, "xxxxx") {
				t.Errorf("%q = %q, which does not show where the secret was", args, out)
			}
		}
	}
}

// TestDescribeTooDeep: a string nested deeper than endpoint.MaxNesting is
// a rejected string, exit 2 with one line saying so, however deep; the
// JSON of one within the limit is printed.
func TestDescribeTooDeep(t *testing.T) {
	limit := endpoint.MaxNesting
	if code, out, errOut := runCmd("describe", strings.Repeat("haproxy:", limit-1)+"tcp:80"); code != exitOK ||
		strings.Count(out, `"inner"`) != limit-1 {
		t.Errorf("describe of %d levels = %d, %q, %q", limit, code, out, errOut)
	}
	for _, s := range []string{
		strings.Repeat("haproxy:", limit) + "tcp:80",
		strings.Repeat("haproxy:", 125_000) + "tcp:80",
	} {
		for _, args := range [][]string{{"describe", s}, {"describe", "--client", s}} {
			code, out, errOut := runCmd(args...)
			if code != exitUsage || out != "" || strings.Count(errOut, "\n") != 1 ||
				!strings.Contains(errOut, fmt.Sprintf("nest more than %d deep", limit)) || len(errOut) > 4096 {
				t.Errorf("describe of %d bytes of wrappers = %d, stdout %.100q, stderr %.300q; want exit 2 and one short line",
					len(s), code, out, errOut)
			}
		}
	}
}

// TestListeningLineHidesDeepSecrets: relay's "listening" line shows its
// target redacted however deep the secret is in it.
func TestListeningLineHidesDeepSecrets(t *testing.T) {
	target := strings.Repeat("haproxy:", 10) + "socks5:db:5432:username=u:password=hunter2:proxy=" + endpoint.Quote("tcp:127.0.0.1:1")
	p := startTether(t, tetherBin, "relay", "--log-format", "json", "tcp:0:interface=127.0.0.1", target)
	l := p.waitLog("listening", nil)
	if got, _ := l["target"].(string); !strings.Contains(got, "password=xxxxx") {
		t.Errorf("listening line's target = %q", got)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.raw {
		if strings.Contains(l, "hunter2") {
			t.Errorf("a log line shows the password: %s", l)
		}
	}
}
