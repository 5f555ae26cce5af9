package driver

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Sentinel errors. An *Error returned by this package wraps one of these, or
// the operating system's error, so that errors.Is can tell them apart.
var (
	// ErrSyntax is wrapped by errors in the string itself: an unterminated
	// escape or bracket, an empty type, a keyword given twice.
	ErrSyntax = errors.New("endpoint: syntax error")

	// ErrUnknownType is wrapped when no type of the given name is registered.
	ErrUnknownType = errors.New("endpoint: unknown type")

	// ErrBadArgument is wrapped when an argument is missing, unknown, given
	// twice, or has a value its type does not accept.
	ErrBadArgument = errors.New("endpoint: bad argument")

	// ErrTooDeep is wrapped when endpoint strings nest more than
	// MaxNesting deep.
	ErrTooDeep = errors.New("endpoint: nested too deep")
)

// Error describes a failure to parse, listen on or dial an endpoint string.
// It names the string, the operation, the argument at fault when there is
// one, and wraps the underlying error so that errors.Is and errors.As see
// through it: a port in use satisfies errors.Is(err, syscall.EADDRINUSE), a
// cancelled dial errors.Is(err, context.Canceled).
type Error struct {
	// Op is what was being done: "parse", "listen", "dial" or "reload".
	Op string
	// Input is the endpoint string as the user wrote it (or the canonical
	// form of the Description, when there was no string). Error shows it
	// with secret arguments redacted (see Redact); Input keeps them.
	Input string
	// Type is the endpoint type, lower case, when it is known.
	Type string
	// Arg names the argument at fault, or is empty.
	Arg string
	// Value is the argument's value as written, when Arg is set. Error
	// does not show the value of a secret argument, and shows others
	// redacted (a value may be an endpoint string with a secret in it).
	Value string
	// Want says what was wanted, e.g. "a number 0-65535"; may be empty.
	Want string
	// Err is the underlying error; never nil.
	Err error
	// Hint says what was probably meant, when the failure looks like a
	// common mistake (an IPv6 address without brackets, say); or is empty.
	Hint string
}

// Error formats the failure on one line, e.g.
//
//	endpoint "tcp:http": tcp: port "http" is not a number 0-65535
//
// The string and the value are shown redacted (see Redact), and a long
// string shortened; whatever else the message quotes, the value after a
// secret argument's name and '=' is hidden too.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("endpoint ")
	b.WriteString(strconv.Quote(shorten(Redact(e.Input))))
	b.WriteString(": ")
	var op *net.OpError
	if e.Op != "" && e.Op != "parse" && !errors.As(e.Err, &op) {
		// A *net.OpError begins with its own op ("listen tcp ..."); say
		// it once.
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Type != "" && e.Op == "parse" {
		// The type as written, when the grammar failed after it.
		b.WriteString(Redact(e.Type))
		b.WriteString(": ")
	}
	switch {
	case e.Arg != "" && e.Want != "":
		b.WriteString(e.Arg)
		b.WriteByte(' ')
		if isSecretArg(e.Arg) {
			b.WriteString(strconv.Quote(redacted))
		} else {
			b.WriteString(strconv.Quote(shorten(Redact(e.Value))))
		}
		b.WriteString(" is not ")
		b.WriteString(e.Want)
	case e.Arg != "":
		b.WriteString(e.Arg)
		b.WriteString(": ")
		b.WriteString(errText(e.Err))
	default:
		b.WriteString(errText(e.Err))
	}
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return scrub(b.String())
}

// ipv6Hint is the Hint of a string that does not parse and has "::"
// outside brackets: an IPv6 address whose colons split it into segments.
const ipv6Hint = "an IPv6 address in an endpoint string goes in brackets: interface=[::1], tcp:[::1]:80"

// withHint adds to a parse error of s the hint for the mistake s seems to
// make, if any.
func withHint(err error, s string) error {
	var e *Error
	if !errors.As(err, &e) || e.Hint != "" || !(errors.Is(err, ErrBadArgument) || errors.Is(err, ErrSyntax)) {
		return err
	}
	if unbracketedIPv6(s) {
		e.Hint = ipv6Hint
	}
	return err
}

// unbracketedIPv6 reports whether s has "::" outside any [...], where an
// IPv6 address would have had to be.
func unbracketedIPv6(s string) bool {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '[':
			depth++
		case ']':
			if depth > 0 {
				depth--
			}
		case ':':
			if depth == 0 && i+1 < len(s) && s[i+1] == ':' {
				return true
			}
		}
	}
	return false
}

// maxShown is the length beyond which Error shortens the string and the
// value it shows, keeping the beginning and the end.
const maxShown = 1024

// shorten cuts the middle out of a string longer than maxShown, saying how
// long it was: an error line is not the place for a megabyte of wrappers.
func shorten(s string) string {
	if len(s) <= maxShown {
		return s
	}
	head, tail := maxShown*3/4, len(s)-maxShown/4
	// Cut at character boundaries.
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return s[:head] + "...(" + strconv.Itoa(len(s)) + " bytes in all)..." + s[tail:]
}

// errText strips the package prefix of our sentinels, which reads as noise
// in the middle of a message that already begins with "endpoint".
func errText(err error) string {
	if err == nil {
		return "unknown error"
	}
	return strings.TrimPrefix(err.Error(), "endpoint: ")
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the underlying error is a timeout, as net.Error does.
func (e *Error) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout()
}

// Temporary is here so that *Error satisfies net.Error; like the standard
// library's, it is deprecated and reports false unless the cause says so.
func (e *Error) Temporary() bool {
	var t interface{ Temporary() bool }
	return errors.As(e.Err, &t) && t.Temporary()
}

// wrapped is an error with a message of its own that still matches a
// sentinel (and optionally a cause) under errors.Is.
type wrapped struct {
	msg   string
	is    error
	cause error
}

func (w *wrapped) Error() string { return w.msg }

// Unwrap returns the sentinel and the cause, if there is one: the errors
// package wants no nil in the list.
func (w *wrapped) Unwrap() []error {
	if w.cause == nil {
		return []error{w.is}
	}
	return []error{w.is, w.cause}
}

// WrapError returns an error whose message is msg and that matches both
// sentinel (ErrBadArgument, say) and cause, which may be nil, under
// errors.Is and errors.As: for a type whose message says more than the
// sentinel's and must still be told apart by it.
func WrapError(sentinel, cause error, msg string) error {
	return &wrapped{msg: msg, is: sentinel, cause: cause}
}
