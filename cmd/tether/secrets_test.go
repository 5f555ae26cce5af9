package main

import (
	"strings"
	"testing"
)

// TestArgumentsShownRedacted: an endpoint string with a secret, given
// where tether expected something else (a flag's value, a command, a
// service), is quoted back redacted in the error, whichever part of tether
// (Go's flag package included) writes it; and a hint that proposes the
// string written otherwise redacts it too.
func TestArgumentsShownRedacted(t *testing.T) {
	const mark = "s3cr3tPW"
	secret := `socks5:h:1:proxy=tcp\:127.0.0.1\:1:username=u:password=` + mark
	for _, args := range [][]string{
		{"connect", "--wait", secret},
		{"connect", "--wait=" + secret, "tcp:127.0.0.1:1"},
		{"relay", "--max-conns", secret, "tcp:0", "tcp:127.0.0.1:1"},
		{"relay", "--proxy-protocol", secret, "tcp:0", "tcp:127.0.0.1:1"},
		{"relay", "--log-format", secret, "tcp:0", "tcp:127.0.0.1:1"},
		{"serve", "--log-format", secret, "tcp:0", "echo"},
		{secret},
		{"help", secret},
		{"serve", "tcp:0", secret},
		{"serve", "tcp:0", "echo", secret},
		{"relay", "--dev-cert", secret, "tcp:127.0.0.1:1"},
		// The hint for a value cut at a ':' proposes it in brackets.
		{"connect", `socks5:example.com:443:proxy=socks5\:example.org\:1080\:proxy\=tcp\\\:127.0.0.1\\\:1\:username\=u\:password\=ab,` + mark + ":extra"},
	} {
		code, out, errOut := runCmd(args...)
		if code == exitOK || strings.Contains(out+errOut, mark) || errOut == "" {
			t.Errorf("%q = %d, stdout %q, stderr %q; want a failure that does not show the password", args, code, out, errOut)
		}
	}
}
