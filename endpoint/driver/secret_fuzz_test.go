package driver_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/endpoint/driver"
)

// fuzzMark is the secret FuzzSecret puts in strings. Inputs that spell it
// themselves are skipped, and no way of putting it in can make it appear
// by joining what is around it (it ends in a digit, which "s3cr3t" does
// not begin with), so that any appearance in what is printed is the
// secret leaking.
const fuzzMark = "S3CR3Tq7"

// secretAssignment is the text that gives fuzzMark to a secret argument,
// in one of a few spellings, escaped level times as a value nested that
// deep is (tls:...:endpoint=socks5\:...\:password\=S3CR3Tq7).
func secretAssignment(variant, level uint8) string {
	a := [...]string{
		"password=" + fuzzMark,
		"PASSWORD=" + fuzzMark, // keys are read without regard to case
		"Password=" + fuzzMark,
		`pass\word=` + fuzzMark, // an escaped ordinary letter is the letter
		"[password=" + fuzzMark + "]",
		"xpassword =" + fuzzMark, // a key that ends in a secret name
	}[variant%6]
	for range level % 4 {
		a = endpoint.Quote(a)
	}
	return a
}

// FuzzSecret checks that a secret never leaves the package in anything it
// prints: the errors of every parse, Redact, the parsed endpoint printed
// with fmt, describe's JSON and the Args printed with fmt. The fuzzer
// gives any string and where in it (and how deep, and how spelt) to put a
// secret argument with the value fuzzMark, once or twice; the property
// holds wherever the secret lands, whether the string parses or not, as
// redaction hides the value of any key that looks like a secret
// argument's. It also checks that redacting a string that parses leaves
// one that parses.
func FuzzSecret(f *testing.F) {
	quote2 := func(s string) string { return endpoint.Quote(endpoint.Quote(s)) }
	seeds := []struct {
		before, after  string
		level, variant uint8
	}{
		// Each type with a secret argument, the secret last and not.
		{`socks5:h:1:proxy=tcp\:p\:1080:username=u:`, "", 0, 0},
		{`socks5:h:1:username=u:`, `:proxy=tcp\:p\:1080`, 0, 1},
		{`httpconnect:h:443:proxy=tcp\:p\:3128:username=u:`, "", 0, 0},
		{`httpconnect:h:443:username=u:`, `:timeout=5:proxy=tcp\:p\:3128`, 0, 3},
		// Nested: in tls's endpoint=, socks5's and httpconnect's proxy=.
		{"tls:h:443:endpoint=" + endpoint.Quote("socks5:h:443:proxy="+endpoint.Quote("tcp:p:1080")+":username=u:"), "", 1, 0},
		{"socks5:h:1:username=u:proxy=" + endpoint.Quote("httpconnect:p:1:proxy="+endpoint.Quote("tcp:q:3128")+":username=v:"), "", 1, 2},
		{"httpconnect:h:1:proxy=" + endpoint.Quote("socks5:p:1:username=v:"), endpoint.Quote(":proxy=tcp:q:1080"), 1, 0},
		// Two and three levels down.
		{"tls:h:443:endpoint=" + endpoint.Quote("socks5:h:1:username=u:proxy=") + quote2("httpconnect:p:1:username=v:"), quote2(":proxy=tcp:q:1"), 2, 0},
		{"tls:h:1:endpoint=" + endpoint.Quote("tls:h:1:endpoint=") + quote2("socks5:h:1:proxy=tcp\\:p\\:1:username=u:"), "", 2, 4},
		{"tls:h:1:endpoint=" + endpoint.Quote("tls:h:1:endpoint=") + quote2("tls:h:1:endpoint=") + endpoint.Quote(quote2("socks5:h:1:username=u:")), "", 3, 0},
		// Wrappers, within the nesting limit and beyond it.
		{`haproxy:haproxy:socks5:h:1:proxy=tcp\:p\:1:username=u:`, "", 0, 0},
		{strings.Repeat("haproxy:", 20) + `socks5:h:1:proxy=tcp\:p\:1:username=u:`, "", 0, 2},
		{"tls:h:1:endpoint=" + endpoint.Quote(strings.Repeat("haproxy:", 9)+"socks5:h:1:proxy=tcp\\:p\\:1:username=u:"), "", 1, 0},
		// Deeper than Redact takes apart.
		{strings.Repeat("x=", 40), "", 0, 0},
		{strings.Repeat(`a\=`, 40), "", 1, 5},
		// Strings that do not parse: a lone backslash, an unclosed '[', a
		// keyword given twice (the secret too: see twice below).
		{`socks5:h:1:proxy=tcp\:p\:1:username=u:`, `:timeout=5\`, 0, 0},
		{`socks5:h:1:proxy=tcp\:p\:1:username=u:`, `:host=[::1`, 0, 0},
		{`socks5:h:1:proxy=tcp\:p\:1:username=u:password=[`, "", 0, 0},
		{`socks5:h:1:proxy=tcp\:p\:1:username=u:password=a:`, "", 0, 0},
		{"tls:h:443:endpoint=" + endpoint.Quote("socks5:h:1:"), endpoint.Quote(`:x=\`), 1, 0},
		{"tls:h:443:endpoint=" + endpoint.Quote("socks5:h:1:"), endpoint.Quote(`:x=[`), 1, 0},
		// Where no type expects it: a positional value, the type, a key,
		// a bracket, a value that is not an endpoint string.
		{"tcp:h:1:", "", 1, 0},
		{"", ":1", 1, 0},
		{"tcp:h:1:", "=v", 1, 0},
		{"tcp:80:interface=[", "]", 0, 0},
		{"exec:sh:-c:", "", 2, 0},
		{"unix:/x:lockfile=", "", 0, 0},
		{"", "", 0, 0},
	}
	for _, s := range seeds {
		f.Add(s.before+s.after, uint(len(s.before)), s.level, s.variant, uint(0))
	}
	// The secret given twice, at the second's place.
	f.Add(`socks5:h:1:proxy=tcp\:p\:1:username=u::`, uint(38), uint8(0), uint8(0), uint(39))
	f.Add(`socks5:h:1:proxy=tcp\:p\:1:username=u:`, uint(38), uint8(0), uint8(0), uint(11))
	f.Fuzz(func(t *testing.T, s string, at uint, level, variant uint8, twice uint) {
		if strings.Contains(strings.ToLower(s), "s3cr3t") {
			return
		}
		first := secretAssignment(variant, level)
		if twice == 0 {
			checkNoSecret(t, insertAt(s, at, first))
			return
		}
		// Both go where the fuzzer says in s, the later one first: one
		// put inside the other would no longer be the text that gives
		// the secret to a key (password=[password=S3CR3Tq7]S3CR3Tq7 holds
		// the second outside any value).
		i, j := int(at%uint(len(s)+1)), int((twice-1)%uint(len(s)+1))
		second := secretAssignment(variant/6, level/4)
		if i > j {
			i, j, first, second = j, i, second, first
		}
		checkNoSecret(t, s[:i]+first+s[i:j]+second+s[j:])
	})
}

func insertAt(s string, at uint, what string) string {
	i := int(at % uint(len(s)+1))
	return s[:i] + what + s[i:]
}

// checkNoSecret fails t if anything this package prints about s shows
// fuzzMark.
func checkNoSecret(t *testing.T, s string) {
	t.Helper()
	check := func(what, out string) {
		t.Helper()
		if strings.Contains(strings.ToLower(out), strings.ToLower(fuzzMark)) {
			t.Fatalf("%s shows the secret\nstring: %q\n%s: %s", what, s, what, out)
		}
	}
	r := endpoint.Redact(s)
	check("Redact", r)
	if _, err := driver.Parse(s); err == nil {
		d, err := driver.Parse(r)
		if err != nil {
			t.Fatalf("Redact(%q) = %q, which does not parse: %v", s, r, err)
		}
		check("the Description of the redacted string", d.String())
	}
	checkErr := func(what string, err error) {
		t.Helper()
		var e *endpoint.Error
		if !errors.As(err, &e) {
			t.Fatalf("%s(%q): %v is not an *Error", what, s, err)
		}
		check(what+"'s error", err.Error())
	}
	if c, err := endpoint.ParseClient(s); err != nil {
		checkErr("ParseClient", err)
	} else {
		check("the Client printed", fmt.Sprintf("%v %s %+v %#v %q", c, c, c, c, c))
	}
	if srv, err := endpoint.ParseServer(s); err != nil {
		checkErr("ParseServer", err)
	} else {
		check("the Server printed", fmt.Sprintf("%v %s %+v %#v %q", srv, srv, srv, srv, srv))
	}
	for _, bind := range []func(string) (*driver.Args, error){driver.ClientArgs, driver.ServerArgs} {
		a, err := bind(s)
		if err != nil {
			checkErr("Args", err)
			continue
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("describe's JSON of %q: %v", s, err)
		}
		check("describe's JSON", string(b))
		check("the Args printed", fmt.Sprintf("%v %s %+v %#v", a, a, a, a))
	}
}

// TestSecretEverywhere runs the property of FuzzSecret over each of
// leakCases, and over each place in a few strings that the secret can be
// put at.
func TestSecretEverywhere(t *testing.T) {
	for _, tc := range leakCases {
		checkNoSecret(t, strings.ReplaceAll(tc.s, leakMark, fuzzMark))
	}
	for _, s := range []string{
		`socks5:h:1:proxy=tcp\:p\:1:username=u:`,
		"tls:h:443:endpoint=" + endpoint.Quote("socks5:h:1:proxy="+endpoint.Quote("tcp:p:1")+":username=u:x=[a]:"),
		`x:[a\]b]:c=[d:e]:f\`,
	} {
		for at := range len(s) + 1 {
			for level := range uint8(4) {
				for variant := range uint8(6) {
					checkNoSecret(t, insertAt(s, uint(at), secretAssignment(variant, level)))
				}
			}
		}
	}
}
