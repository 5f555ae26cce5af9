package driver

import (
	"fmt"
	"strings"
)

// A Description is an endpoint string taken apart by the grammar, before any
// type has looked at its arguments: the type, the positional arguments in
// order, and the keyword arguments in the order they were written.
//
// The grammar is Twisted's: segments are separated by ':', a backslash makes
// the next character literal, the first segment is the type, and a segment
// with an unescaped '=' is a keyword argument whose key is what comes before
// the first '=' and whose value is everything after it. Positional and
// keyword arguments may interleave.
//
// tether adds two things Twisted rejects, so no string changes meaning:
// a value that begins with '[' runs to the matching ']' with ':' and '='
// inside it taken literally (tcp:80:interface=[::1]), and a wrapper type
// takes the rest of the string as its inner endpoint (haproxy:tcp:80).
type Description struct {
	// Type is the first segment as written; types are matched without
	// regard to case.
	Type string
	// Positional holds the segments without '=', in order.
	Positional []string
	// Keywords holds the keyword arguments in the order written.
	Keywords []Keyword
}

// A Keyword is one key=value argument of a Description.
type Keyword struct {
	Key, Value string
}

// Get returns the value of the keyword key and whether it is present.
func (d *Description) Get(key string) (string, bool) {
	for _, kw := range d.Keywords {
		if kw.Key == key {
			return kw.Value, true
		}
	}
	return "", false
}

// Parse takes an endpoint string apart into a Description without
// interpreting any argument. It fails only on the grammar itself: a trailing
// backslash, an unclosed '[', an empty type or key, or a keyword given twice.
// Every failure is an *Error wrapping ErrSyntax.
func Parse(s string) (*Description, error) {
	d, _, err := parse(s, false)
	return d, err
}

// parse does the work of Parse. With stopAfterType it returns after the
// first segment, giving the byte offset where the arguments begin, so that
// wrapper types can take the rest of the string verbatim.
func parse(s string, stopAfterType bool) (*Description, int, error) {
	d := &Description{}
	fail := func(format string, args ...any) (*Description, int, error) {
		return nil, 0, &Error{Op: "parse", Input: s, Type: strings.ToLower(d.Type),
			Err: WrapError(ErrSyntax, nil, fmt.Sprintf(format, args...))}
	}
	var (
		cur      strings.Builder
		key      string // the key, once this segment has seen its '='
		isKw     bool
		segStart = true // at the start of a value: a '[' here opens a bracket
		segment  = 0
		segAt    = 0   // the offset where the segment begins
		kwAt     []int // the offset of each keyword, for "given twice"
		seen     map[string]int
	)
	// given returns the index of the keyword key if it is already given.
	// Many keywords are looked up in a map, so that a long string is not
	// quadratic.
	given := func(key string) (int, bool) {
		if seen == nil && len(d.Keywords) < 16 {
			for i, kw := range d.Keywords {
				if kw.Key == key {
					return i, true
				}
			}
			return 0, false
		}
		if seen == nil {
			seen = make(map[string]int, 2*len(d.Keywords))
			for i, kw := range d.Keywords {
				seen[kw.Key] = i
			}
		}
		i, ok := seen[key]
		return i, ok
	}
	finish := func() error {
		val := cur.String()
		cur.Reset()
		switch {
		case segment == 0:
			if isKw {
				return fmt.Errorf("the type (the first segment) may not contain '='")
			}
			if val == "" {
				return fmt.Errorf("the type (the first segment) is empty")
			}
			d.Type = val
		case isKw:
			if key == "" {
				return fmt.Errorf("a keyword argument at offset %d has an empty name (=%s)", segAt, Quote(Redact(val)))
			}
			if i, dup := given(key); dup {
				// The values are not shown: one of them may be a secret.
				return fmt.Errorf("keyword %q is given twice, at offsets %d and %d", Redact(key), kwAt[i], segAt)
			}
			if seen != nil {
				seen[key] = len(d.Keywords)
			}
			d.Keywords = append(d.Keywords, Keyword{key, val})
			kwAt = append(kwAt, segAt)
		default:
			d.Positional = append(d.Positional, val)
		}
		segment++
		isKw, key, segStart = false, "", true
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 == len(s) {
				return fail("the string ends with a lone backslash (write \\\\ for a literal one)")
			}
			i++
			cur.WriteByte(s[i])
			segStart = false
		case c == '[' && segStart:
			// The bracket extension: copy up to the matching ']', keeping
			// the brackets, taking ':' and '=' literally and backslash
			// escapes as usual. Brackets nest, so that a bracketed
			// endpoint string may hold brackets of its own
			// ([tcp:[::1]:80]).
			j, depth := i+1, 1
			cur.WriteByte('[')
			for ; j < len(s); j++ {
				switch s[j] {
				case '\\':
					if j+1 == len(s) {
						return fail("the string ends with a lone backslash (write \\\\ for a literal one)")
					}
					j++
				case '[':
					depth++
				case ']':
					depth--
				}
				if depth == 0 {
					break
				}
				cur.WriteByte(s[j])
			}
			if j == len(s) {
				return fail("'[' at offset %d is never closed by ']' (escape it as \\[ for a literal one)", i)
			}
			cur.WriteByte(']')
			i = j
			segStart = false
		case c == ':':
			if err := finish(); err != nil {
				return fail("%v", err)
			}
			if stopAfterType && segment == 1 {
				return d, i + 1, nil
			}
			segAt = i + 1
		case c == '=' && !isKw:
			isKw = true
			key = cur.String()
			cur.Reset()
			segStart = true
		default:
			cur.WriteByte(c)
			segStart = false
		}
	}
	if err := finish(); err != nil {
		return fail("%v", err)
	}
	return d, len(s), nil
}

// MaxNesting is how deep endpoint strings may nest. Each wrapper (the
// haproxy: of haproxy:tcp:80) is one level, and so is each endpoint string
// given as the value of another (tls's endpoint=, socks5's proxy=);
// "tcp:80" alone is one level. A string nested deeper is refused with an
// *Error wrapping ErrTooDeep before anything else is read of it, so that
// no string, however long, costs more than its length to refuse.
const MaxNesting = 16

// checkNesting refuses a string that nests more than MaxNesting deep.
func checkNesting(s string) error {
	if nesting(s, MaxNesting+1) <= MaxNesting {
		return nil
	}
	return &Error{Op: "parse", Input: s, Err: WrapError(ErrTooDeep, nil, fmt.Sprintf(
		"endpoint strings nest more than %d deep, the most this package takes (each wrapper, "+
			"such as haproxy:, is one level, and so is each endpoint string given as a value, "+
			"such as tls's endpoint= or socks5's proxy=)", MaxNesting))}
}

// nesting returns how deep endpoint strings nest in s, counting no
// further than limit. A value counts as an endpoint string when it begins
// with the name of a registered type and has a ':' after it; any value
// that one of the types parses as an endpoint string and that could nest
// further is one of those. A part that does not parse counts as one level:
// parsing it fails anyway.
func nesting(s string, limit int) int {
	depth := 0
	for {
		depth++
		if depth >= limit {
			return depth
		}
		d, rest, err := parse(s, true)
		if err != nil || rest == len(s) {
			return depth
		}
		if !isWrapper(d.Type) {
			break
		}
		// A wrapper's inner string is the rest of s: walk down it here
		// rather than recurse, however many there are.
		s = s[rest:]
	}
	d, err := Parse(s)
	if err != nil {
		return depth
	}
	most := depth
	inner := func(v string) {
		v = Unbracket(v)
		if most >= limit || !strings.Contains(v, ":") {
			return
		}
		if t, _, err := parse(v, true); err != nil || !isType(t.Type) {
			return
		}
		most = max(most, depth+nesting(v, limit-depth))
	}
	for _, p := range d.Positional {
		inner(p)
	}
	for _, kw := range d.Keywords {
		inner(kw.Value)
	}
	return most
}

func isWrapper(typ string) bool {
	if t, _ := lookupServer(typ); t != nil && t.Wrapper {
		return true
	}
	t, _ := lookupClient(typ)
	return t != nil && t.Wrapper
}

func isType(typ string) bool {
	if t, _ := lookupServer(typ); t != nil {
		return true
	}
	t, _ := lookupClient(typ)
	return t != nil
}

// Quote escapes s so that it survives as one argument value of an endpoint
// string: backslash, ':' and '=' are preceded by a backslash. A value that
// begins with a bracketed part, such as "[::1]" or "[tcp:[::1]:80]" (its
// brackets balanced), keeps its brackets and the ':' and '=' inside them
// unescaped; any other leading '[' is escaped.
//
// Twisted's quoteStringArgument escapes only backslash and ':', which leaves
// a positional value containing '=' misread as a keyword. Twisted reads what
// Quote writes as the same value, except for a bracketed part, which
// Twisted does not know.
func Quote(s string) string {
	if !strings.ContainsAny(s, `\:=[`) {
		return s
	}
	var b strings.Builder
	rest := s
	if strings.HasPrefix(s, "[") {
		if end := matchingBracket(s); end > 0 {
			b.WriteString(strings.ReplaceAll(s[:end+1], `\`, `\\`))
			rest = s[end+1:]
		} else {
			b.WriteByte('\\')
		}
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c == '\\' || c == ':' || c == '=' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// matchingBracket returns the index of the ']' that closes the '[' at
// s[0], counting the brackets between, or -1. s is a raw value: its
// backslashes are characters, which Quote escapes.
func matchingBracket(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// Unbracket returns s without the brackets around it when the whole of s
// is one bracketed part ("[tcp:[::1]:80]"), as a value that holds an
// endpoint string may be written; otherwise s. Parsing a nested endpoint
// string (BindServer, BindClient) does this itself.
func Unbracket(s string) string {
	if len(s) >= 2 && s[0] == '[' && matchingBracket(s) == len(s)-1 {
		return s[1 : len(s)-1]
	}
	return s
}

// String writes the Description in canonical form: the type, then the
// positional arguments, then the keywords in order, every value quoted.
// Parse(d.String()) gives back an equal Description. Secrets are written
// as they are: pass the result through Redact before showing it.
func (d *Description) String() string {
	var b strings.Builder
	b.WriteString(Quote(d.Type))
	for _, p := range d.Positional {
		b.WriteByte(':')
		b.WriteString(Quote(p))
	}
	for _, kw := range d.Keywords {
		b.WriteByte(':')
		b.WriteString(Quote(kw.Key))
		b.WriteByte('=')
		b.WriteString(Quote(kw.Value))
	}
	return b.String()
}
