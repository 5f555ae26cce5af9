package driver

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// A Kind says how an argument's text is read and checked, and how `tether
// describe` shows it.
type Kind int

const (
	// String is any text, taken as written.
	String Kind = iota
	// Int is a whole number, written as Python's int() reads it (optional
	// sign, surrounding spaces and '_' between digits allowed), so that a
	// number Twisted accepts means the same here. Arg.Min and Arg.Max bound it.
	Int
	// Port is a TCP or UDP port number, 0-65535.
	Port
	// Bool is a flag written as a number: 0 is false, any other whole number
	// true (Twisted's bool(int(value))).
	Bool
	// Mode is a file mode in octal, at most 07777 (Twisted's int(value, 8)).
	Mode
	// Seconds is a duration written as a whole number of seconds, as
	// Twisted's timeout arguments are; it must be positive.
	Seconds
	// Host is a host name or IP address; an IPv6 address may be written in
	// brackets, [::1], which are removed.
	Host
	// Millis is a duration in whole milliseconds, zero or more.
	Millis
)

var kindNames = [...]string{
	String:  "string",
	Int:     "integer",
	Port:    "port",
	Bool:    "flag",
	Mode:    "octal mode",
	Seconds: "seconds",
	Host:    "host",
	Millis:  "milliseconds",
}

// String names the kind as `tether types` shows it.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// An Arg declares one argument of an endpoint type. A type declares its
// arguments once; from that declaration come the parser's checks and error
// messages, `tether describe`, `tether types` and the string reference.
type Arg struct {
	// Name is the keyword by which the argument is given (port=80).
	Name string
	// Aliases are other keywords accepted for the same argument, as
	// Twisted's unix client takes lockfile= for checkPID=.
	Aliases []string
	// Positional says the argument may also be given without its name, in
	// the order in which positional arguments are declared.
	Positional bool
	// Kind says how the value is read and checked.
	Kind Kind
	// Default is the value, written as in a string, that an absent
	// argument takes. Empty with Required false means the argument is
	// optional and absent (describe shows null), unless EmptyDefault.
	Default string
	// EmptyDefault says that the empty string is the default (as for the
	// tcp server's interface), not an absent value.
	EmptyDefault bool
	// DefaultFrom names another argument of the same Spec and Kind whose
	// value an absent argument takes, as Twisted's ssl certKey defaults to
	// privateKey: describe then shows the value the endpoint will use.
	// Given stays false.
	DefaultFrom string
	// Required says the string must give the argument, and not empty.
	Required bool
	// Variadic makes the last positional argument take every positional
	// segment that is left (exec:sh:-c:date gives argv sh, -c, date);
	// Args.Strings reads them. Given by keyword, it takes one value.
	Variadic bool
	// Secret says the value must not be shown: Redact, error messages,
	// describe's JSON and tether's logs write "xxxxx" for it, as
	// url.URL.Redacted does for a password.
	Secret bool
	// Min and Max bound an Int argument when Max > Min.
	Min, Max int64
	// Help is one line saying what the argument means.
	Help string
}

// Spec declares an endpoint type: its name, what it is, and its arguments.
type Spec struct {
	// Name is the type, the first segment of the string, in lower case.
	Name string
	// Help is one line saying what the type is.
	Help string
	// Args are the arguments, positional ones in their positional order.
	Args []Arg
	// Wrapper says the type wraps another endpoint of the same role and
	// takes the rest of the string after "TYPE:" as that inner endpoint,
	// verbatim (haproxy:tcp:8080), as Twisted's haproxy parser does. A
	// wrapper declares no Args; New finds the inner string in Args.Inner.
	Wrapper bool
	// FillGaps makes positional arguments skip the ones already given by
	// keyword, as Twisted's tcp client does: "tcp:host=h:80" is port 80.
	// Without it, as in a Python call, that string gives host twice.
	FillGaps bool
	// Notes is optional longer text for the reference: how the type
	// differs from Twisted's, examples.
	Notes string
}

// argIndex returns the index of the argument called name (or one of its
// aliases), or -1.
func (s *Spec) argIndex(name string) int {
	for i, a := range s.Args {
		if a.Name == name {
			return i
		}
		for _, al := range a.Aliases {
			if al == name {
				return i
			}
		}
	}
	return -1
}

func (s *Spec) hasPositional() bool {
	for _, a := range s.Args {
		if a.Positional {
			return true
		}
	}
	return false
}

func (s *Spec) argNames() string {
	names := make([]string, len(s.Args))
	for i, a := range s.Args {
		names[i] = a.Name
	}
	return strings.Join(names, ", ")
}

// Value is one argument's value after binding: the text, where it came
// from, and the typed reading of it.
type Value struct {
	Arg *Arg
	// Text is the value as written, or the default.
	Text string
	// Given says the string gave the argument; false means the default.
	Given bool
	// Absent says the argument is optional, not given, and has no default.
	Absent bool
	// Num holds the reading of Int, Port, Bool (0 or 1) and Mode values.
	Num int64
	// Dur holds the reading of Seconds and Millis values.
	Dur time.Duration
	// Str holds the reading of String and Host values (a Host without its
	// brackets).
	Str string
	// List holds a Variadic argument's values, in order; Text is then
	// them joined by ':', each quoted.
	List []string
}

// Args holds the bound arguments of one endpoint string, in declaration
// order. Types read their configuration from it.
type Args struct {
	// Role is "server" or "client".
	Role string
	// Input is the whole endpoint string, for error messages.
	Input string
	// Spec is the type's declaration.
	Spec *Spec
	// Values are in the order of Spec.Args.
	Values []Value
	// Inner is a wrapper's inner endpoint string, and InnerArgs its
	// arguments.
	Inner     string
	InnerArgs *Args
	// Env is what the program that parses the string lends the type:
	// never nil in New. Parse nested endpoint strings with
	// Env.ParseServer and Env.ParseClient, so that they get it too.
	Env *Env
}

// Format writes the Args as MarshalJSON does, for every verb: printed
// with fmt, an Args shows what `tether describe` shows, secrets redacted,
// and not the values as the types get them.
func (a *Args) Format(f fmt.State, verb rune) {
	b, err := a.MarshalJSON()
	if err != nil {
		fmt.Fprintf(f, "%%!%c(driver.Args: %v)", verb, err)
		return
	}
	f.Write(b)
}

// Value returns the bound value of the argument called name (or one of
// its aliases), or nil if the Spec declares no such argument. It is for
// tools that show or check arguments by name; a type reads its own with
// its Params, which are typed.
func (a *Args) Value(name string) *Value {
	if i := a.Spec.argIndex(name); i >= 0 && i < len(a.Values) {
		return &a.Values[i]
	}
	return nil
}

// bind matches a Description against a Spec: positional arguments by
// order, keywords by name, defaults filled in, every value read by its Kind.
func bind(input string, spec *Spec, d *Description) (*Args, error) {
	fail := func(arg, value, want string, err error) (*Args, error) {
		return nil, &Error{Op: "parse", Input: input, Type: spec.Name, Arg: arg, Value: value, Want: want, Err: err}
	}
	texts := make([]*string, len(spec.Args))
	// given[i] is the name under which argument i was given, for errors:
	// an alias (lockfile=) is reported as written.
	given := make([]string, len(spec.Args))
	lists := make([][]string, len(spec.Args))
	named := make([]bool, len(spec.Args))
	if spec.FillGaps {
		for _, kw := range d.Keywords {
			if i := spec.argIndex(kw.Key); i >= 0 {
				named[i] = true
			}
		}
	}
	positional := d.Positional
	if len(positional) == 1 && positional[0] == "" && !spec.hasPositional() {
		// "stdio:", as Twisted's documentation writes it: the trailing
		// ':' of a type that takes no positional arguments.
		positional = nil
	}
	pos := 0
	for _, p := range positional {
		for pos < len(spec.Args) && (!spec.Args[pos].Positional || named[pos]) {
			pos++
		}
		if pos == len(spec.Args) {
			var names []string
			for _, a := range spec.Args {
				if a.Positional {
					names = append(names, a.Name)
				}
			}
			what := "takes no positional arguments"
			if len(names) > 0 {
				what = fmt.Sprintf("takes at most %d positional arguments (%s)", len(names), strings.Join(names, ", "))
			}
			hint, secret := colonInValue(input, d, p)
			shown := Redact(p)
			if secret {
				shown = redacted // the rest of a secret value cut at a ':'
			}
			_, err := fail("", "", "", WrapError(ErrBadArgument, nil,
				fmt.Sprintf("too many positional arguments: %q is extra; %s %s", shown, spec.Name, what)))
			err.(*Error).Hint = hint
			return nil, err
		}
		if spec.Args[pos].Variadic {
			lists[pos] = append(lists[pos], p)
			continue
		}
		texts[pos] = &p
		pos++
	}
	for i, l := range lists {
		if l != nil {
			quoted := make([]string, len(l))
			for j, p := range l {
				quoted[j] = Quote(p)
			}
			text := strings.Join(quoted, ":")
			texts[i] = &text
		}
	}
	for _, kw := range d.Keywords {
		i := spec.argIndex(kw.Key)
		if i < 0 {
			return fail("", "", "", WrapError(ErrBadArgument, nil,
				fmt.Sprintf("unknown argument %q (%s takes %s)", Redact(kw.Key), spec.Name, spec.argNames())))
		}
		if texts[i] != nil {
			return fail(spec.Args[i].Name, "", "", WrapError(ErrBadArgument, nil,
				fmt.Sprintf("given twice (positionally or by another name, as %q)", kw.Key)))
		}
		v := kw.Value
		texts[i] = &v
		given[i] = kw.Key
		if spec.Args[i].Variadic {
			lists[i] = []string{v}
		}
	}
	args := &Args{Input: input, Spec: spec, Values: make([]Value, len(spec.Args))}
	for i := range spec.Args {
		a := &spec.Args[i]
		v := &args.Values[i]
		v.Arg = a
		name := a.Name
		if given[i] != "" {
			name = given[i]
		}
		switch {
		case texts[i] != nil:
			v.Text, v.Given = *texts[i], true
		case a.Required:
			return fail(a.Name, "", "", WrapError(ErrBadArgument, nil, "missing (required)"))
		case a.Default == "" && !a.EmptyDefault:
			v.Absent = true
			continue
		default:
			v.Text = a.Default
		}
		if a.Required && v.Text == "" {
			return fail(a.Name, "", "", WrapError(ErrBadArgument, nil, "empty, but required: give a value"))
		}
		if a.Variadic {
			v.List = lists[i]
			if !v.Given {
				v.List = []string{v.Text}
			}
			for _, p := range v.List {
				if want := readValue(a, &Value{Arg: a, Text: p}); want != "" {
					return fail(a.Name, p, want, ErrBadArgument)
				}
			}
			continue
		}
		if want := readValue(a, v); want != "" {
			return fail(name, v.Text, want, ErrBadArgument)
		}
	}
	for i := range args.Values {
		v := &args.Values[i]
		if !v.Absent || v.Arg.DefaultFrom == "" {
			continue
		}
		if from := &args.Values[spec.argIndex(v.Arg.DefaultFrom)]; !from.Absent {
			arg := v.Arg
			*v = *from
			v.Arg, v.Given = arg, false
		}
	}
	return args, nil
}

// readValue reads v.Text by its Kind into v, and returns what was wanted
// when the text is not acceptable.
func readValue(a *Arg, v *Value) (want string) {
	switch a.Kind {
	case String:
		v.Str = v.Text
	case Host:
		h := v.Text
		if len(h) >= 2 && h[0] == '[' && h[len(h)-1] == ']' && strings.Contains(h, ":") {
			// Only an IPv6 address is written in brackets; "[127.0.0.1]"
			// stays as it is and is refused below, as Twisted would
			// refuse it when listening.
			h = h[1 : len(h)-1]
		}
		if strings.ContainsAny(h, "[]/ ") {
			return "a host name or IP address"
		}
		if strings.Contains(h, ":") {
			if _, err := netip.ParseAddr(h); err != nil {
				return "a host name or IP address (an IPv6 address, if it has ':')"
			}
		}
		v.Str = h
	case Int:
		n, ok := pyInt(v.Text, 10)
		lo, hi := a.Min, a.Max
		if hi <= lo {
			lo, hi = math.MinInt32, math.MaxInt32
		}
		if !ok || n < lo || n > hi {
			if hi == math.MaxInt32 {
				return fmt.Sprintf("a whole number of at least %d", lo)
			}
			return fmt.Sprintf("a whole number %d-%d", lo, hi)
		}
		v.Num = n
	case Port:
		n, ok := pyInt(v.Text, 10)
		if !ok || n < 0 || n > 65535 {
			return "a number 0-65535"
		}
		v.Num = n
	case Bool:
		n, ok := pyInt(v.Text, 10)
		if !ok {
			return "a flag (0 for off, 1 for on)"
		}
		if n != 0 {
			n = 1
		}
		v.Num = n
	case Mode:
		n, ok := pyInt(v.Text, 8)
		if !ok || n < 0 || n > 07777 {
			return "an octal file mode 0-7777 (such as 660)"
		}
		v.Num = n
	case Seconds:
		n, ok := pyInt(v.Text, 10)
		if !ok || n <= 0 || n > math.MaxInt32 {
			return "a whole number of seconds 1-2147483647"
		}
		v.Dur = time.Duration(n) * time.Second
	case Millis:
		n, ok := pyInt(v.Text, 10)
		if !ok || n < 0 || n > math.MaxInt32 {
			return "a whole number of milliseconds, 0 or more"
		}
		v.Dur = time.Duration(n) * time.Millisecond
	}
	return ""
}

// pyInt reads s as Python's int(s, base) does for the ASCII strings that
// matter: surrounding whitespace, an optional sign, digits with single
// underscores between them, and for base 8 an optional 0o prefix. Twisted
// reads numbers with int(), so "tcp: 80 " is port 80 there and here too.
// Numbers too large for int64 read as the largest int64.
func pyInt(s string, base int) (int64, bool) {
	s = strings.Trim(s, " \t\n\r\v\f")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if base == 8 && len(s) > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O') {
		s = s[2:]
		if s[0] == '_' { // int("0o_7", 8) is allowed
			s = s[1:]
		}
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			continue
		}
		d := int64(c) - '0'
		if c < '0' || c > '9' || d >= int64(base) {
			return 0, false
		}
		if n > (math.MaxInt64-d)/int64(base) {
			n = math.MaxInt64 // saturate: every range check refuses it, and a flag is on
			continue
		}
		n = n*int64(base) + d
	}
	if neg {
		n = -n
	}
	return n, true
}

// colonInValue looks at an extra positional argument that is the rest of
// a keyword's value, cut at a ':' the value holds
// (nameserver=127.0.0.1:8600). It returns the Hint for it (the value goes
// in brackets), or says that the keyword is a secret one, whose value, and
// so extra, must not be shown; or neither, if extra follows no keyword.
func colonInValue(input string, d *Description, extra string) (hint string, secret bool) {
	for _, kw := range d.Keywords {
		if !strings.Contains(input, Quote(kw.Key)+"="+Quote(kw.Value)+":"+Quote(extra)) {
			continue
		}
		if isSecretArg(kw.Key) {
			return "the value of " + kw.Key + " has a ':' in it: write the value in brackets", true
		}
		// The value may be an endpoint string with a secret in it
		// (proxy=socks5:...:password=...), and extra the rest of one.
		return "a value with ':' in it goes in brackets: " + Redact(kw.Key+"=["+kw.Value+":"+extra+"]"), false
	}
	return "", false
}
