// Package interop checks tether against Twisted itself: endpoint strings
// are read by both and compared, and lock files are taken and checked by
// real Twisted processes. The tests need Debian's /usr/bin/python3 with
// python3-twisted; without it they fail (CI installs it), they never skip.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

// python is the interpreter that has Twisted: Debian's, not whatever
// python3 comes first on PATH.
const python = "/usr/bin/python3"

var twistedCheck struct {
	once sync.Once
	err  error
}

// requireTwisted fails the test (it does not skip it) unless python can
// import Twisted's endpoints.
func requireTwisted(t *testing.T) {
	t.Helper()
	twistedCheck.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, python, "-c",
			"import twisted, twisted.internet.endpoints; print(twisted.__version__)").CombinedOutput()
		if err != nil {
			twistedCheck.err = fmt.Errorf("%s cannot import twisted (install python3-twisted): %v\n%s", python, err, out)
		}
	})
	if twistedCheck.err != nil {
		t.Fatal(twistedCheck.err)
	}
}

// A query is one endpoint string in one role.
type query struct {
	role string // "server" or "client"
	s    string
}

// An outcome is what one side made of a query: rejected, or a type and its
// arguments in the JSON conventions of `tether describe`.
type outcome struct {
	ok   bool
	typ  string
	args map[string]any // numbers as json.Number
	err  string         // why it was rejected
}

// rejects is how a rejection is written in the tables and in messages.
const rejects = "rejects"

// key is the outcome in a canonical form that two outcomes can be compared
// by: "rejects", or the type and its arguments as JSON with sorted keys.
func (o outcome) key() string {
	if !o.ok {
		return rejects
	}
	b, err := json.Marshal(o.args)
	if err != nil {
		panic(err)
	}
	return o.typ + " " + string(b)
}

// String is key plus the reason for a rejection, for messages.
func (o outcome) String() string {
	if !o.ok {
		return rejects + " (" + o.err + ")"
	}
	return o.key()
}

func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// canon reads an expected outcome as written in a table, "rejects" or
// `TYPE {"arg":value,...}`, into the canonical form of outcome.key.
func canon(t *testing.T, spec string) string {
	t.Helper()
	if spec == rejects {
		return rejects
	}
	typ, js, ok := strings.Cut(spec, " ")
	var args map[string]any
	if !ok || decodeJSON([]byte(js), &args) != nil {
		t.Fatalf("bad expected outcome %q: want %q or `TYPE {JSON}`", spec, rejects)
	}
	return outcome{ok: true, typ: typ, args: args}.key()
}

// tetherOnlyArgs are arguments of tether's that Twisted has no string
// form for: the socket options every TCP type takes, and the unix
// server's owner and group.
var tetherOnlyArgs = []string{"keepAlive", "keepAliveInterval", "keepAliveCount", "userTimeout", "noDelay",
	"reusePort", "ipv6Only", "owner", "group"}

// tetherDescribe reads a query as `tether describe` does, in process.
// attemptDelay, a tether-only tcp client argument, and the other
// tetherOnlyArgs are dropped so that the arguments compare with Twisted's.
func tetherDescribe(t *testing.T, q query) outcome {
	t.Helper()
	parse := driver.ServerArgs
	if q.role == "client" {
		parse = driver.ClientArgs
	}
	a, err := parse(q.s)
	if err != nil {
		return outcome{err: err.Error()}
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatalf("json.Marshal of the arguments of %q: %v", q.s, err)
	}
	var d struct {
		Role string
		Type string
		Args map[string]any
	}
	if err := decodeJSON(b, &d); err != nil {
		t.Fatalf("tether's JSON for %q: %v: %s", q.s, err, b)
	}
	if d.Role != q.role {
		t.Errorf("tether describes %q with role %q, want %q", q.s, d.Role, q.role)
	}
	if q.role == "client" && d.Type == "tcp" {
		delete(d.Args, "attemptDelay")
	}
	for _, name := range tetherOnlyArgs {
		delete(d.Args, name)
	}
	return outcome{ok: true, typ: d.Type, args: d.Args}
}

// twistedDescribe reads every query as Twisted does, with one python
// process for the whole batch (testdata/twisted_describe.py).
func twistedDescribe(t *testing.T, qs []query) []outcome {
	t.Helper()
	requireTwisted(t)
	var in bytes.Buffer
	for _, q := range qs {
		b, err := json.Marshal([]string{q.role, q.s})
		if err != nil {
			t.Fatal(err)
		}
		in.Write(b)
		in.WriteByte('\n')
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/twisted_describe.py")
	cmd.Stdin = &in
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("twisted_describe.py: %v\n%s", err, stderr.Bytes())
	}
	out := make([]outcome, 0, len(qs))
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r struct {
			OK    bool
			Role  string
			Type  string
			Args  map[string]any
			Error string
		}
		if err := decodeJSON(sc.Bytes(), &r); err != nil {
			t.Fatalf("twisted_describe.py wrote %q: %v", sc.Text(), err)
		}
		i := len(out)
		if i >= len(qs) {
			t.Fatalf("twisted_describe.py answered more than the %d queries", len(qs))
		}
		if r.OK && r.Role != qs[i].role {
			t.Fatalf("twisted_describe.py answered %q for %s %q: answers out of step", r.Role, qs[i].role, qs[i].s)
		}
		out = append(out, outcome{ok: r.OK, typ: r.Type, args: r.Args, err: r.Error})
	}
	if len(out) != len(qs) {
		t.Fatalf("twisted_describe.py answered %d of %d queries\n%s", len(out), len(qs), stderr.Bytes())
	}
	return out
}

// A why is the reason tether and Twisted read a string differently.
type why string

// Deliberate differences, documented in DESIGN.md or in a type's Notes.
const (
	portRange why = "tether rejects a port outside 0-65535 when parsing; Twisted takes any int() and fails only at listen/connect"
	numRange  why = "tether rejects a backlog outside 0-1048576 and a mode outside 0-07777 when parsing; Twisted takes any int()"
	twice     why = "a keyword given twice, or an argument given positionally and by keyword (or under both its names, " +
		"checkPID and lockfile), is an error in tether; Twisted silently keeps one of them"
	serverCase why = "server type names are case-insensitive in tether; Twisted looks its built-in tcp and unix server " +
		"parsers up case-sensitively (its tcp6 plugin is matched without case)"
	checkPID why = "tether reads checkPID= as a number, 0 meaning off, as both read lockfile=; Twisted passes checkPID's " +
		"text on and tests its truth, so any non-empty text, even \"0\", is on and \"\" is off"
	brackets why = "tether extension: a value beginning with '[' runs to its matching ']' (brackets nest), protecting ':' and '=', and a " +
		"host loses its brackets"
	timeoutPos why = "tether wants a client timeout of at least 1 second; Twisted takes any int(), 0 and negative too"
	tetherOnly why = "attemptDelay is a tether-only tcp client argument (Happy Eyeballs); Twisted does not know it"
)

// More deliberate differences, found by this suite and decided on: in each,
// tether refuses a string that Twisted accepts with a meaning nobody can
// use, or that fails only later. docs/from-twisted.md lists them.
const (
	unicodeInt why = "tether reads numbers with ASCII digits and ASCII white space only; Python's int() also " +
		"takes other scripts' digits and white space (U+0660-U+0669, U+FF10-U+FF19, U+00A0, U+2003...)"
	emptyRequired why = "tether rejects an empty host, address or path when parsing; Twisted takes \"\" and fails " +
		"(or does something surprising) at listen/connect"
	hostSyntax why = "tether checks a host argument (host, interface, bindAddress) when parsing: no space, " +
		"'/' or bracket inside, ':' only in an IPv6 address; Twisted takes any text and fails at listen/connect"
	extraPositional why = "tether rejects too many positional arguments; Twisted's tcp and unix client parsers " +
		"silently drop them all when there are more than they take and keywords give the required ones"
	bigNumber    why = "tether's timeout is at most 2147483647 seconds; Twisted takes any int()"
	typeNotFirst why = "tether's type is the first segment and may not be a keyword; Twisted takes the first " +
		"positional segment, so port=80:tcp is tcp:80 there"
)

var documented = map[why]bool{portRange: true, numRange: true, twice: true, serverCase: true,
	checkPID: true, brackets: true, timeoutPos: true, tetherOnly: true, unicodeInt: true, emptyRequired: true,
	hostSyntax: true, extraPositional: true, bigNumber: true, typeNotFirst: true}

// twistedParse is Twisted's _tokenize and _parse, written again here so
// that differences can be explained without trusting tether's grammar:
// positional segments (the type first) and keywords in the order written,
// duplicates kept; firstKw says the first segment was a keyword. ok is
// false where Twisted raises (a trailing backslash).
func twistedParse(s string) (args []string, kws [][2]string, firstKw, ok bool) {
	var (
		cur     strings.Builder
		sofar   []string
		afterEq bool // after '=', only ':' is an operator
		first   = true
	)
	add := func() {
		if first && len(sofar) != 1 {
			firstKw = true
		}
		first = false
		if len(sofar) == 1 {
			args = append(args, sofar[0])
		} else {
			kws = append(kws, [2]string{sofar[0], sofar[1]})
		}
		sofar = sofar[:0]
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; {
		case c == ':':
			sofar = append(sofar, cur.String())
			cur.Reset()
			add()
			afterEq = false
		case c == '=' && !afterEq:
			sofar = append(sofar, cur.String())
			cur.Reset()
			afterEq = true
		case c == '\\':
			if i+1 == len(rs) {
				return nil, nil, false, false
			}
			i++
			cur.WriteRune(rs[i])
		default:
			cur.WriteRune(c)
		}
	}
	sofar = append(sofar, cur.String())
	add()
	return args, kws, firstKw, true
}

// explain returns every category, documented or reported, that could make
// tether read q differently from Twisted's reading tw. It looks only at the
// string and at Twisted's reading, never at tether's.
func explain(q query, tw outcome) map[why]bool {
	found := map[why]bool{}
	args, kws, firstKw, ok := twistedParse(q.s)
	if !ok || len(args) == 0 {
		return found
	}
	has := map[string]int{}
	for _, kw := range kws {
		has[kw[0]]++
		if kw[0] == "attemptDelay" && q.role == "client" {
			found[tetherOnly] = true
		}
		if kw[0] == "checkPID" && q.role == "client" {
			found[checkPID] = true
		}
	}
	for _, n := range has {
		if n > 1 {
			found[twice] = true
		}
	}
	typ := args[0]
	if firstKw {
		found[typeNotFirst] = true
	}
	pos := args[1:]
	switch lt := strings.ToLower(typ); {
	case q.role == "server" && (lt == "tcp" || lt == "unix") && typ != lt:
		found[serverCase] = true
	case q.role == "client" && lt == "tcp":
		if len(pos) == 2 && (has["host"] > 0 || has["port"] > 0) ||
			len(pos) == 1 && has["host"] > 0 && has["port"] > 0 {
			found[twice] = true
		}
		if len(pos) > 2 {
			found[extraPositional] = true
		}
	case q.role == "client" && lt == "unix":
		if len(pos) == 1 && has["path"] > 0 || has["lockfile"] > 0 && has["checkPID"] > 0 {
			found[twice] = true
		}
		if len(pos) > 1 {
			found[extraPositional] = true
		}
	}
	// tether's brackets open at the start of any segment or value, a
	// keyword's name included.
	values := append([]string{}, args...)
	var flags []string
	for _, kw := range kws {
		values = append(values, kw[0], kw[1])
		if kw[0] == "lockfile" || kw[0] == "checkPID" {
			flags = append(flags, kw[1])
		}
	}
	if q.role == "server" && strings.ToLower(typ) == "unix" && len(pos) >= 4 {
		flags = append(flags, pos[3])
	}
	for _, v := range values {
		if strings.HasPrefix(v, "[") {
			found[brackets] = true
		}
		for _, r := range v {
			if r > 0x7f {
				found[unicodeInt] = true
			}
		}
	}
	for _, f := range flags {
		digits := strings.ReplaceAll(strings.Trim(f, " \t\n\r\v\f"), "_", "")
		if _, err := strconv.ParseInt(digits, 10, 64); errors.Is(err, strconv.ErrRange) {
			found[bigNumber] = true
		}
	}
	if !tw.ok {
		return found
	}
	num := func(name string) (int64, bool) {
		n, ok := tw.args[name].(json.Number)
		if !ok {
			return 0, false
		}
		i, err := n.Int64()
		return i, err == nil
	}
	if n, ok := num("port"); ok && (n < 0 || n > 65535) {
		found[portRange] = true
	} else if _, isNum := tw.args["port"].(json.Number); isNum && !ok {
		found[portRange] = true // beyond int64
	}
	if n, ok := num("backlog"); ok && (n < 0 || n > 1<<20) {
		found[numRange] = true
	} else if _, isNum := tw.args["backlog"].(json.Number); isNum && !ok {
		found[numRange] = true
	}
	if m, ok := tw.args["mode"].(string); ok {
		if strings.HasPrefix(m, "-") || len(m) > 4 {
			found[numRange] = true
		}
	}
	if n, ok := num("timeout"); ok && n <= 0 {
		found[timeoutPos] = true
	} else if _, isNum := tw.args["timeout"].(json.Number); isNum && (!ok || n > math.MaxInt32) {
		found[bigNumber] = true
	}
	for _, name := range []string{"host", "address", "path"} {
		if v, ok := tw.args[name].(string); ok && v == "" {
			found[emptyRequired] = true
		}
	}
	for _, name := range []string{"host", "interface", "bindAddress"} {
		if v, ok := tw.args[name].(string); ok && !hostLike(v) {
			found[hostSyntax] = true
		}
	}
	return found
}

// hostLike says whether s could be a host name or IP address as tether
// reads one: no space, '/' or bracket, and ':' only in an IPv6 address.
func hostLike(s string) bool {
	if strings.ContainsAny(s, " /[]") {
		return false
	}
	if strings.Contains(s, ":") {
		ip, err := netip.ParseAddr(s)
		return err == nil && ip.Is6()
	}
	return true
}

func whys(m map[why]bool) []string {
	var out []string
	for w := range m {
		out = append(out, string(w))
	}
	sort.Strings(out)
	return out
}
