package endpoint

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
			Err: errorf(ErrSyntax, nil, fmt.Sprintf(format, args...))}
	}
	var (
		cur      strings.Builder
		key      string // the key, once this segment has seen its '='
		isKw     bool
		segStart = true // at the start of a value: a '[' here opens a bracket
		segment  = 0
	)
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
				return fmt.Errorf("a keyword argument has an empty name (=%s)", Quote(val))
			}
			if _, dup := d.Get(key); dup {
				return fmt.Errorf("keyword %q is given twice", key)
			}
			d.Keywords = append(d.Keywords, Keyword{key, val})
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
			// escapes as usual.
			j := i + 1
			cur.WriteByte('[')
			for ; j < len(s) && s[j] != ']'; j++ {
				if s[j] == '\\' {
					if j+1 == len(s) {
						return fail("the string ends with a lone backslash (write \\\\ for a literal one)")
					}
					j++
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

// Quote escapes s so that it survives as one argument value of an endpoint
// string: backslash, ':' and '=' are preceded by a backslash. A value that
// begins with a bracketed part, such as "[::1]", keeps its brackets and the
// ':' and '=' inside them unescaped; any other leading '[' is escaped.
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
		if end := strings.IndexByte(s, ']'); end > 0 {
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

// String writes the Description in canonical form: the type, then the
// positional arguments, then the keywords in order, every value quoted.
// Parse(d.String()) gives back an equal Description.
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
