package interop

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// An entry is one string of the differential corpus. For a string that
// tether and Twisted read alike only role and s are set; for a difference,
// why says which one, and twisted and tether say what each side makes of
// it: "rejects", or `TYPE {JSON arguments}` as `tether describe` prints
// them (tether's attemptDelay left out).
type entry struct {
	role    string
	s       string
	why     why
	twisted string
	tether  string
}

func srv(s string) entry { return entry{role: "server", s: s} }
func cli(s string) entry { return entry{role: "client", s: s} }

// differs marks e as a difference: Twisted's reading, tether's, and why.
func (e entry) differs(w why, twisted, tether string) entry {
	e.why, e.twisted, e.tether = w, twisted, tether
	return e
}

// Strings both accept, with the same meaning.
var agreeValid = []entry{
	// tcp server: positional, keyword, interleaved.
	srv("tcp:80"),
	srv("tcp:0"),
	srv("tcp:65535"),
	srv("tcp:80:127.0.0.1"),
	srv("tcp:80:127.0.0.1:10"),
	srv("tcp:80::10"),
	srv("unix:/tmp/s:600:50:99999999999999999999"), // bool(int(...)) of any size
	cli("unix:/tmp/s:lockfile=99999999999999999999"),
	srv("tcp:80:"),
	srv("tcp:port=80"),
	srv("tcp:port=80:interface=127.0.0.1:backlog=5"),
	srv("tcp:80:interface=127.0.0.1"),
	srv("tcp:80:backlog=7"),
	srv("tcp:interface=127.0.0.1:80"),
	srv("tcp:backlog=5:80:127.0.0.1"),
	srv("tcp:interface=127.0.0.1:80:backlog=5"),
	srv("tcp:80:127.0.0.1:backlog=5"),
	srv("tcp:80:interface=localhost"),
	srv("tcp:80:interface="),
	srv(`tcp:80:interface=\:\:1`),
	srv(`tcp:80:interface=\:\:ffff\:127.0.0.1`),
	srv("tcp:80:interface=0.0.0.0"),
	// Numbers as Python's int() reads them.
	srv("tcp: 80 "),
	srv("tcp:\t80\n"),
	srv("tcp:\v80\f\r"),
	srv("tcp:+80"),
	srv("tcp:-0"),
	srv("tcp:0080"),
	srv("tcp:8_0"),
	srv("tcp:0_8_0"),
	srv("tcp:80:backlog= 5"),
	srv("tcp:80:backlog=+5"),
	srv("tcp:80:backlog=1_0"),
	srv("tcp:80:backlog=0"),
	srv("tcp:80:backlog=1048576"),
	// Escapes.
	srv(`t\cp:80`),
	srv(`tc\p:8\0`),
	srv(`tcp:\8\0`),
	srv(`tcp:80:\i\nterface=127.0.0.1`),
	srv(`tcp:80:inter\face=127.0.0.1`),
	// tcp6 server: note its order, port, backlog, interface.
	srv("tcp6:80"),
	srv("tcp6:80:10"),
	srv(`tcp6:80:10:\:\:1`),
	srv(`tcp6:80:interface=\:\:1`),
	srv(`tcp6:port=80:backlog=5:interface=\:\:`),
	srv("tcp6:80:interface=localhost"),
	srv("tcp6:80:5:"),
	srv(`tcp6:interface=\:\:1:80:5`),
	srv("tcp6:80:backlog=0"),
	srv("tcp6: +80 :0_5"),
	srv("TCP6:80"), // Twisted matches its tcp6 plugin without case
	srv("Tcp6:80"),
	// unix server.
	srv("unix:/tmp/s"),
	srv("unix:/tmp/s:600"),
	srv("unix:/tmp/s:600:10"),
	srv("unix:/tmp/s:600:10:0"),
	srv("unix:/tmp/s:600:10:1"),
	srv("unix:address=/tmp/s"),
	srv("unix:/tmp/s:mode=600"),
	srv("unix:/tmp/s:mode=0600"),
	srv("unix:/tmp/s:mode=0o600"),
	srv("unix:/tmp/s:mode=0O600"),
	srv("unix:/tmp/s:mode=0o_6_0_0"),
	srv("unix:/tmp/s:mode= 644 "),
	srv("unix:/tmp/s:mode=+7777"),
	srv("unix:/tmp/s:mode=-0"),
	srv("unix:/tmp/s:mode=0"),
	srv("unix:/tmp/s:mode=7"),
	srv("unix:/tmp/s:lockfile=0"),
	srv("unix:/tmp/s:lockfile=1"),
	srv("unix:/tmp/s:lockfile=2"),
	srv("unix:/tmp/s:lockfile=-1"),
	srv("unix:/tmp/s:lockfile= 0 "),
	srv("unix:/tmp/s:lockfile=00"),
	srv("unix:/tmp/s:lockfile=0_0"),
	srv("unix:/tmp/s:backlog=3:mode=640:lockfile=0"),
	srv("unix:mode=640:/tmp/s"),
	srv("unix:lockfile=0:/tmp/s:640"),
	srv(`unix:/tmp/a\:b`),
	srv(`unix:/tmp/a\=b`),
	srv(`unix:/tmp/a\\b`),
	srv(`unix:/tmp/a\\`),
	srv(`unix:\/tmp\/s`),
	srv("unix:address=/tmp/a=b"),
	srv(`unix:address=/tmp/a\=b`),
	srv("unix:address=/tmp/a=b=c"),
	srv("unix:/tmp/é"),
	srv("unix:@abstract"),
	srv("unix:relative.sock"),
	srv("unix:/tmp/s]"),
	srv("unix:/tmp/[x]"),
	srv("unix:a[b:600"),
	srv(`unix:/tmp/s:6\00`),
	srv(`unix:/tmp/s:\6\0\0`),
	srv("unix:/tmp/s with space"),

	// tcp client.
	cli("tcp:h:80"),
	cli("tcp:example.com:443"),
	cli("tcp:host=h:port=80"),
	cli("tcp:port=80:host=h"),
	cli("tcp:host=h:80"), // a positional fills what the keywords left
	cli("tcp:80:host=h"),
	cli("tcp:h:port=80"),
	cli("tcp:port=80:h"),
	cli("tcp:h:80:timeout=10"),
	cli("tcp:h:80:timeout= 7 "),
	cli("tcp:h:80:timeout=+1_0"),
	cli("tcp:h:80:timeout=1"),
	cli("tcp:h:80:bindAddress=127.0.0.1"),
	cli("tcp:h:80:bindAddress="),
	cli("tcp:h:80:bindAddress=localhost"),
	cli(`tcp:h:80:bindAddress=\:\:1`),
	cli(`tcp:\:\:1:80`),
	cli(`tcp:host=\:\:1:port=80:timeout=3:bindAddress=\:\:1`),
	cli("tcp:h:0"),
	cli("tcp:h:65535"),
	cli("tcp:h: 80"),
	cli("tcp:h:0080"),
	cli("tcp:h:8_0"),
	cli("tcp:127.0.0.1:80:timeout=1"),
	cli(`tcp:\h:\8\0`),
	cli("TCP:h:80"), // Twisted's client types are matched without case
	cli("Tcp:h:80"),
	// unix client.
	cli("unix:/tmp/s"),
	cli("unix:path=/tmp/s"),
	cli("unix:/tmp/s:timeout=9"),
	cli("unix:/tmp/s:lockfile=1"),
	cli("unix:/tmp/s:lockfile=0"),
	cli("unix:/tmp/s:lockfile=5"),
	cli("unix:/tmp/s:lockfile= 1 "),
	cli("unix:/tmp/s:checkPID=1"), // "1" is true on both sides
	cli("unix:/tmp/s:checkPID=7"),
	cli("UNIX:/tmp/s"),
	cli("Unix:/tmp/s"),
	cli("unix:timeout=9:/tmp/s"),
	cli("unix:lockfile=1:timeout=9:path=/tmp/s"),
	cli(`unix:/tmp/a\:b`),
	cli(`unix:/tmp/a\=b`),
	cli("unix:path=/tmp/a=b"),
	cli("unix:@abstract"),
}

// Strings both reject.
var agreeInvalid = []entry{
	// Missing or bad arguments, unknown types, grammar.
	srv(""),
	srv("tcp"),
	srv("tcp:"),
	srv("tcp::"),
	srv("tcp:http"),
	srv("tcp:80x"),
	srv("tcp:8 0"),
	srv("tcp:8__0"),
	srv("tcp:_80"),
	srv("tcp:80_"),
	srv("tcp:0x50"),
	srv("tcp:0o120"),
	srv("tcp:80.0"),
	srv("tcp:1e3"),
	srv("tcp:+-80"),
	srv("tcp:- 80"),
	srv("tcp:80:127.0.0.1:10:extra"), // too many positional
	srv("tcp:80:backlog=x"),
	srv("tcp:80:backlog="),
	srv("tcp:80:127.0.0.1:"),
	srv("tcp:80:Interface=127.0.0.1"), // keywords are case-sensitive on both sides
	srv("tcp:80:foo=1"),
	srv("tcp:80:port=81"),       // Python call semantics: port twice
	srv("tcp:interface=x:80:y"), // interface twice
	srv("tcp:80:\\"),            // trailing backslash
	srv("tcp:80\\"),             // trailing backslash
	srv("tcp:=80"),              // empty keyword name
	srv("tcp:80:="),             // empty keyword name
	srv("tcp=1:80"),             // Twisted: type "80"
	srv("foo:80"),
	srv("tcp4:80"),
	srv("udp:53"),
	srv(":80"),
	srv("80"),
	srv(`tcp\:80`),
	srv("tcp6"),
	srv("tcp6:"),
	srv("tcp6:x"),
	srv("tcp6:80::"),
	srv(`tcp6:80:5:\:\:1:x`),
	srv("tcp6:80:foo=1"),
	srv("tcp6:80:5:backlog=6"),
	srv("tcp6:80:interface=[::1"),
	srv("unix"),
	srv("unix:/tmp/s:8"),
	srv("unix:/tmp/s:mode=9"),
	srv("unix:/tmp/s:mode=0x1ff"),
	srv("unix:/tmp/s:mode=0b1"),
	srv("unix:/tmp/s:mode="),
	srv("unix:/tmp/s:mode=[600]"),
	srv("unix:/tmp/s:mode=6 4 4"),
	srv("unix:/tmp/s::10"),
	srv("unix:/tmp/s:lockfile=yes"),
	srv("unix:/tmp/s:lockfile="),
	srv("unix:/tmp/s:lockfile=1.0"),
	srv("unix:/tmp/s:600:10:1:x"),
	srv("unix:/tmp/s=x"),
	srv("unix:/tmp/s:path=/x"),
	srv("unix:/tmp/s:backlog="),
	srv("unix:address=/tmp/s:600"),
	srv("unix:/tmp/s:mode=600:640"),
	srv("unix:/tmp/s\\"),
	srv("unix:/tmp/s:Mode=600"),

	cli(""),
	cli("tcp"),
	cli("tcp:h"),
	cli("tcp:h:http"),
	cli("tcp:h:80x"),
	cli("tcp:host=h"),
	cli("tcp:port=80"),
	cli("tcp:h:80:foo=1"),
	cli("tcp:h:80:timeout=x"),
	cli("tcp:h:80:timeout=1.5"),
	cli("tcp:h:80:timeout="),
	cli("tcp:h:80:Timeout=1"),
	cli("tcp:h:80:bindaddress=127.0.0.1"),
	cli("tcp:h:80:x"), // Twisted drops 3 positionals, then host is missing
	cli("tcp6:h:80"),
	cli("foo:h:80"),
	cli("tcp:h:80\\"),
	cli("tcp:h:80:=1"),
	cli("unix"),
	cli("unix:/a:/b"),
	cli("unix:/tmp/s:lockfile=x"),
	cli("unix:/tmp/s:lockfile="),
	cli("unix:/tmp/s:timeout=x"),
	cli("unix:/tmp/s:timeout=1.5"),
	cli("unix:/tmp/s:mode=600"),
	cli("unix:/tmp/s:checkpid=1"),
	cli("unix:/tmp/s\\"),
}

// Expected outcomes, by type, with defaults, for the differences below.
const (
	tcp80   = `tcp {"port":80,"interface":"","backlog":50}`
	unixS   = `unix {"address":"/tmp/s","mode":"0666","backlog":50,"lockfile":true}`
	cliTCPh = `tcp {"host":"h","port":80,"timeout":30,"bindAddress":null}`
	cliUnix = `unix {"path":"/tmp/s","timeout":30,"checkPID":false}`
)

// Strings tether reads differently from Twisted: each a deliberate,
// documented difference (docs/from-twisted.md).
var differences = []entry{
	// Server type names: tether ignores case, Twisted's tcp and unix do not.
	srv("TCP:80").differs(serverCase, rejects, tcp80),
	srv("Tcp:80").differs(serverCase, rejects, tcp80),
	srv("UNIX:/tmp/s").differs(serverCase, rejects, unixS),
	srv("Unix:/tmp/s:600").differs(serverCase, rejects,
		`unix {"address":"/tmp/s","mode":"0600","backlog":50,"lockfile":true}`),

	// Ports out of range.
	srv("tcp:65536").differs(portRange, `tcp {"port":65536,"interface":"","backlog":50}`, rejects),
	srv("tcp:-1").differs(portRange, `tcp {"port":-1,"interface":"","backlog":50}`, rejects),
	srv("tcp:port=-80").differs(portRange, `tcp {"port":-80,"interface":"","backlog":50}`, rejects),
	srv("tcp:99999999999999999999").differs(portRange,
		`tcp {"port":99999999999999999999,"interface":"","backlog":50}`, rejects),
	srv("tcp6:70000").differs(portRange, `tcp6 {"port":70000,"backlog":50,"interface":"::"}`, rejects),
	cli("tcp:h:65536").differs(portRange, `tcp {"host":"h","port":65536,"timeout":30,"bindAddress":null}`, rejects),
	cli("tcp:h:-1").differs(portRange, `tcp {"host":"h","port":-1,"timeout":30,"bindAddress":null}`, rejects),
	cli("tcp:host=h:port=100000").differs(portRange,
		`tcp {"host":"h","port":100000,"timeout":30,"bindAddress":null}`, rejects),

	// Backlog and mode out of range.
	srv("tcp:80:backlog=-1").differs(numRange, `tcp {"port":80,"interface":"","backlog":-1}`, rejects),
	srv("tcp:80:backlog=1048577").differs(numRange, `tcp {"port":80,"interface":"","backlog":1048577}`, rejects),
	srv("tcp6:80:-5").differs(numRange, `tcp6 {"port":80,"backlog":-5,"interface":"::"}`, rejects),
	srv("unix:/tmp/s:600:-1").differs(numRange,
		`unix {"address":"/tmp/s","mode":"0600","backlog":-1,"lockfile":true}`, rejects),
	srv("unix:/tmp/s:mode=10000").differs(numRange,
		`unix {"address":"/tmp/s","mode":"10000","backlog":50,"lockfile":true}`, rejects),
	srv("unix:/tmp/s:mode=-1").differs(numRange,
		`unix {"address":"/tmp/s","mode":"-0001","backlog":50,"lockfile":true}`, rejects),

	// An argument given twice: Twisted keeps one, tether refuses.
	srv("tcp:80:backlog=1:backlog=2").differs(twice, `tcp {"port":80,"interface":"","backlog":2}`, rejects),
	srv("tcp:port=80:port=81").differs(twice, `tcp {"port":81,"interface":"","backlog":50}`, rejects),
	srv("unix:/tmp/s:mode=600:mode=640").differs(twice,
		`unix {"address":"/tmp/s","mode":"0640","backlog":50,"lockfile":true}`, rejects),
	srv("unix:address=/a:address=/tmp/s").differs(twice, unixS, rejects),
	srv(`tcp6:80:interface=\:\:1:interface=\:\:2`).differs(twice,
		`tcp6 {"port":80,"backlog":50,"interface":"::2"}`, rejects),
	cli("tcp:h:80:host=x").differs(twice, cliTCPh, rejects),       // Twisted: the positional wins
	cli("tcp:h:80:port=81").differs(twice, cliTCPh, rejects),      // Twisted: the positional wins
	cli("tcp:host=h:port=81:80").differs(twice, cliTCPh, rejects), // Twisted: the positional wins
	cli("tcp:h:80:timeout=1:timeout=2").differs(twice,
		`tcp {"host":"h","port":80,"timeout":2,"bindAddress":null}`, rejects),
	cli("unix:/tmp/s:path=/x").differs(twice, cliUnix, rejects), // Twisted: the positional wins
	cli("unix:path=/a:path=/tmp/s").differs(twice, cliUnix, rejects),
	cli("unix:/tmp/s:lockfile=0:checkPID=1").differs(twice, cliUnix, rejects), // Twisted: lockfile wins

	// checkPID: a number to tether, a truth value to Twisted.
	cli("unix:/tmp/s:checkPID=0").differs(checkPID,
		`unix {"path":"/tmp/s","timeout":30,"checkPID":true}`, cliUnix),
	cli("unix:/tmp/s:checkPID=yes").differs(checkPID,
		`unix {"path":"/tmp/s","timeout":30,"checkPID":true}`, rejects),
	cli("unix:/tmp/s:checkPID=").differs(checkPID, cliUnix, rejects),

	// Client timeout must be positive.
	cli("tcp:h:80:timeout=0").differs(timeoutPos, `tcp {"host":"h","port":80,"timeout":0,"bindAddress":null}`, rejects),
	cli("tcp:h:80:timeout=-3").differs(timeoutPos, `tcp {"host":"h","port":80,"timeout":-3,"bindAddress":null}`, rejects),
	cli("unix:/tmp/s:timeout=0").differs(timeoutPos, `unix {"path":"/tmp/s","timeout":0,"checkPID":false}`, rejects),

	// attemptDelay is tether's own.
	cli("tcp:h:80:attemptDelay=100").differs(tetherOnly, rejects, cliTCPh),

	// Brackets. Twisted splits at the colons inside and rejects the
	// result, or (no colon inside) keeps the brackets as part of the value.
	srv("tcp:80:interface=[::1]").differs(brackets, rejects, `tcp {"port":80,"interface":"::1","backlog":50}`),
	srv("tcp6:80:interface=[::1]").differs(brackets, rejects, `tcp6 {"port":80,"backlog":50,"interface":"::1"}`),
	srv("tcp6:80:5:[fe80::1]").differs(brackets, rejects, `tcp6 {"port":80,"backlog":5,"interface":"fe80::1"}`),
	srv("unix:[/tmp/a:b]").differs(brackets, rejects,
		`unix {"address":"[/tmp/a:b]","mode":"0666","backlog":50,"lockfile":true}`),
	cli("tcp:[::1]:80").differs(brackets, rejects, `tcp {"host":"::1","port":80,"timeout":30,"bindAddress":null}`),
	// DESIGN.md's own example: Twisted splits it into host "[2001" and
	// three positional arguments, which its tcp client drops silently.
	cli("tcp:host=[2001:db8::1]:port=443").differs(brackets,
		`tcp {"host":"[2001","port":443,"timeout":30,"bindAddress":null}`,
		`tcp {"host":"2001:db8::1","port":443,"timeout":30,"bindAddress":null}`),
	cli("tcp:h:80:bindAddress=[::1]").differs(brackets, rejects,
		`tcp {"host":"h","port":80,"timeout":30,"bindAddress":"::1"}`),
	// Twisted accepts these: DESIGN.md's "Twisted rejects these strings"
	// does not hold for a bracketed value without ':' or '=', nor for a '['
	// that is never closed.
	// Only an IPv6 address loses its brackets; tether refuses any other
	// bracketed host, which Twisted takes as written and fails to use.
	srv("tcp:80:interface=[127.0.0.1]").differs(hostSyntax,
		`tcp {"port":80,"interface":"[127.0.0.1]","backlog":50}`, rejects),
	cli("tcp:[127.0.0.1]:80").differs(hostSyntax,
		`tcp {"host":"[127.0.0.1]","port":80,"timeout":30,"bindAddress":null}`, rejects),
	srv("unix:[abc").differs(brackets, `unix {"address":"[abc","mode":"0666","backlog":50,"lockfile":true}`, rejects),
	cli("unix:[abc").differs(brackets, `unix {"path":"[abc","timeout":30,"checkPID":false}`, rejects),

	// Non-ASCII digits and white space in numbers.
	srv("tcp:\u0668\u0660").differs(unicodeInt, tcp80, rejects),
	srv("tcp:\u00a080").differs(unicodeInt, tcp80, rejects),
	srv("tcp:80\u2003").differs(unicodeInt, tcp80, rejects),
	srv("tcp:80:backlog=\uff15").differs(unicodeInt, `tcp {"port":80,"interface":"","backlog":5}`, rejects),
	srv("unix:/tmp/s:mode=\u0666\u0664\u0660").differs(unicodeInt,
		`unix {"address":"/tmp/s","mode":"0640","backlog":50,"lockfile":true}`, rejects),
	cli("tcp:h:\u0668\u0660").differs(unicodeInt, cliTCPh, rejects),
	cli("unix:/tmp/s:lockfile=\u0661").differs(unicodeInt, `unix {"path":"/tmp/s","timeout":30,"checkPID":true}`, rejects),

	// Empty required values.
	srv("unix:").differs(emptyRequired, `unix {"address":"","mode":"0666","backlog":50,"lockfile":true}`, rejects),
	srv("unix:address=").differs(emptyRequired, `unix {"address":"","mode":"0666","backlog":50,"lockfile":true}`, rejects),
	cli("tcp::80").differs(emptyRequired, `tcp {"host":"","port":80,"timeout":30,"bindAddress":null}`, rejects),
	cli("unix:").differs(emptyRequired, `unix {"path":"","timeout":30,"checkPID":false}`, rejects),
	cli("unix:path=").differs(emptyRequired, `unix {"path":"","timeout":30,"checkPID":false}`, rejects),

	// Host syntax checked when parsing.
	srv("tcp:80:interface=foo bar").differs(hostSyntax, `tcp {"port":80,"interface":"foo bar","backlog":50}`, rejects),
	srv("tcp:80:interface=a/b").differs(hostSyntax, `tcp {"port":80,"interface":"a/b","backlog":50}`, rejects),
	srv(`tcp:80:interface=1\:2`).differs(hostSyntax, `tcp {"port":80,"interface":"1:2","backlog":50}`, rejects),
	srv("tcp6:80:interface=x y").differs(hostSyntax, `tcp6 {"port":80,"backlog":50,"interface":"x y"}`, rejects),
	cli(`tcp:h\:x:80`).differs(hostSyntax, `tcp {"host":"h:x","port":80,"timeout":30,"bindAddress":null}`, rejects),
	cli("tcp:a b:80").differs(hostSyntax, `tcp {"host":"a b","port":80,"timeout":30,"bindAddress":null}`, rejects),
	cli("tcp:a/b:80").differs(hostSyntax, `tcp {"host":"a/b","port":80,"timeout":30,"bindAddress":null}`, rejects),
	cli("tcp:h:80:bindAddress=1 2").differs(hostSyntax,
		`tcp {"host":"h","port":80,"timeout":30,"bindAddress":"1 2"}`, rejects),

	// Twisted's clients drop surplus positional arguments.
	cli("tcp:a:b:c:host=h:port=80").differs(extraPositional, cliTCPh, rejects),
	cli("unix:/a:/b:path=/tmp/s").differs(extraPositional, cliUnix, rejects),

	// A timeout beyond tether's bound.
	cli("tcp:h:80:timeout=2147483648").differs(bigNumber,
		`tcp {"host":"h","port":80,"timeout":2147483648,"bindAddress":null}`, rejects),
	cli("unix:/tmp/s:timeout=99999999999999999999").differs(bigNumber,
		`unix {"path":"/tmp/s","timeout":99999999999999999999,"checkPID":false}`, rejects),

	// Keywords before the type.
	srv("port=80:tcp").differs(typeNotFirst, tcp80, rejects),
	srv("interface=127.0.0.1:tcp:80").differs(typeNotFirst,
		`tcp {"port":80,"interface":"127.0.0.1","backlog":50}`, rejects),
	srv("mode=600:unix:/tmp/s").differs(typeNotFirst,
		`unix {"address":"/tmp/s","mode":"0600","backlog":50,"lockfile":true}`, rejects),
	cli("host=h:port=80:tcp").differs(typeNotFirst, cliTCPh, rejects),
	cli("path=/tmp/s:unix").differs(typeNotFirst, cliUnix, rejects),
}

// TestDescribeAgainstTwisted reads every string of the corpus with tether
// and with Twisted and compares: strings in agreeValid must be accepted by
// both with the same meaning, those in agreeInvalid rejected by both, and
// those in differences read exactly as the table says on each side.
func TestDescribeAgainstTwisted(t *testing.T) {
	var all []entry
	all = append(all, agreeValid...)
	all = append(all, agreeInvalid...)
	all = append(all, differences...)
	qs := make([]query, len(all))
	seen := map[query]bool{}
	roles := map[string]int{}
	for i, e := range all {
		qs[i] = query{e.role, e.s}
		if seen[qs[i]] {
			t.Errorf("%s %q is in the corpus twice", e.role, e.s)
		}
		seen[qs[i]] = true
		roles[e.role]++
	}
	if len(all) < 150 || roles["server"] < 50 || roles["client"] < 50 {
		t.Fatalf("corpus too small: %d strings, %v", len(all), roles)
	}
	tw := twistedDescribe(t, qs)
	reported := map[why][]string{}
	for i, e := range all {
		q := qs[i]
		te := tetherDescribe(t, q)
		switch {
		case i < len(agreeValid):
			if !tw[i].ok || !te.ok || tw[i].key() != te.key() {
				t.Errorf("%s %q: want both to accept it alike\n\tTwisted: %v\n\ttether:  %v", e.role, e.s, tw[i], te)
			}
		case i < len(agreeValid)+len(agreeInvalid):
			if tw[i].ok || te.ok {
				t.Errorf("%s %q: want both to reject it\n\tTwisted: %v\n\ttether:  %v", e.role, e.s, tw[i], te)
			}
		default:
			if tw[i].key() == te.key() {
				t.Errorf("%s %q: listed as a difference (%s) but both now read it alike: %v; move it to the agreeing strings",
					e.role, e.s, e.why, te)
			}
			if got, want := tw[i].key(), canon(t, e.twisted); got != want {
				t.Errorf("%s %q: Twisted: got %v, the table says %s", e.role, e.s, tw[i], want)
			}
			if got, want := te.key(), canon(t, e.tether); got != want {
				t.Errorf("%s %q: tether: got %v, the table says %s", e.role, e.s, te, want)
			}
			// The reason given must be one that the string itself shows.
			if ex := explain(q, tw[i]); !ex[e.why] {
				t.Errorf("%s %q: listed as %q, but that does not apply to it (applies: %q)", e.role, e.s, e.why, whys(ex))
			}
			if !documented[e.why] {
				reported[e.why] = append(reported[e.why], e.role+" "+strconv.Quote(e.s))
			}
		}
	}
	for w, ss := range reported {
		t.Logf("%s\n\t%s", w, strings.Join(ss, "\n\t"))
	}
}

// fuzzKeys are the argument names random strings use, fuzzValues the
// pieces of their values, and fuzzTokens all the pieces.
var (
	fuzzKeys   = []string{"port", "interface", "backlog", "mode", "lockfile", "host", "path", "timeout", "checkPID"}
	fuzzValues = []string{"0", "1", "5", "8", "80", "65536", "777", " ", "_", "-", "+", "127.0.0.1", "/s", `\`, "="}
	fuzzTokens = append(append([]string{"tcp", "tcp6", "unix", ":", ":", ":", "="}, fuzzKeys...), fuzzValues...)
)

// fuzzString makes a random string of fuzzTokens: half of them any
// sequence, half shaped like endpoint strings (segments, some of them
// key=value), so that Twisted accepts a fair share.
func fuzzString(r *rand.Rand) string {
	var b strings.Builder
	if r.IntN(10) < 8 {
		b.WriteString([]string{"tcp", "tcp6", "unix"}[r.IntN(3)])
		b.WriteString(":")
	}
	if r.IntN(2) == 0 {
		for n := 1 + r.IntN(7); n > 0; n-- {
			b.WriteString(fuzzTokens[r.IntN(len(fuzzTokens))])
		}
		return b.String()
	}
	for n := 1 + r.IntN(4); n > 0; n-- {
		if r.IntN(2) == 0 {
			b.WriteString(fuzzKeys[r.IntN(len(fuzzKeys))])
			b.WriteString("=")
		}
		for m := 1 + r.IntN(2); m > 0; m-- {
			b.WriteString(fuzzValues[r.IntN(len(fuzzValues))])
		}
		if n > 1 {
			b.WriteString(":")
		}
	}
	return b.String()
}

// TestDescribeFuzzAgainstTwisted reads a few hundred random strings, made
// with a fixed seed from a small alphabet, in both roles, with tether and
// with Twisted. Wherever the two differ, the difference must be one of the
// categories above, as explain finds it from the string and Twisted's
// reading alone; and a difference of meaning (both accept) can only be
// checkPID's or the brackets'.
func TestDescribeFuzzAgainstTwisted(t *testing.T) {
	r := rand.New(rand.NewPCG(2024, 10))
	var qs []query
	seen := map[string]bool{}
	for len(qs) < 2*600 {
		s := fuzzString(r)
		if seen[s] {
			continue
		}
		seen[s] = true
		qs = append(qs, query{"server", s}, query{"client", s})
	}
	tw := twistedDescribe(t, qs)
	var agreeOK, agreeReject int
	excused := map[why][]string{}
	for i, q := range qs {
		te := tetherDescribe(t, q)
		if tw[i].key() == te.key() {
			if te.ok {
				agreeOK++
			} else {
				agreeReject++
			}
			continue
		}
		ex := explain(q, tw[i])
		var allowed []why
		switch {
		case tw[i].ok && !te.ok: // tether refuses what Twisted takes
			allowed = []why{portRange, numRange, twice, checkPID, brackets, timeoutPos,
				unicodeInt, bigNumber, emptyRequired, hostSyntax, extraPositional, typeNotFirst}
		case tw[i].ok && te.ok: // both take it, with different meanings
			allowed = []why{checkPID, brackets}
		default: // tether takes what Twisted refuses
			allowed = []why{serverCase, brackets, tetherOnly}
		}
		var because []why
		for _, w := range allowed {
			if ex[w] {
				because = append(because, w)
			}
		}
		if len(because) == 0 {
			t.Errorf("%s %q: an unexplained difference\n\tTwisted: %v\n\ttether:  %v\n\t(categories that apply: %q)",
				q.role, q.s, tw[i], te, whys(ex))
			continue
		}
		excused[because[0]] = append(excused[because[0]], q.role+" "+strconv.Quote(q.s))
	}
	t.Logf("%d random strings in both roles: %d accepted alike, %d rejected by both, %d differences",
		len(qs)/2, agreeOK, agreeReject, len(qs)-agreeOK-agreeReject)
	for w, ss := range excused {
		n := len(ss)
		if n > 5 {
			ss = append(ss[:5:5], "...")
		}
		t.Logf("%d× %s\n\t%s", n, w, strings.Join(ss, "\n\t"))
	}
	if agreeOK < 50 {
		t.Errorf("only %d random strings were accepted by both: the fuzz exercises too little; adjust fuzzString", agreeOK)
	}
}
