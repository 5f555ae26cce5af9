package endpoint

import "github.com/tether-endpoints/tether/endpoint/driver"

// Error describes a failure to parse, listen on, dial or reload an
// endpoint string: it names the string (redacted), the operation, the
// argument at fault when there is one, and wraps the cause, so that
// errors.Is and errors.As see through it (a port in use satisfies
// errors.Is(err, syscall.EADDRINUSE), a cancelled dial
// errors.Is(err, context.Canceled)). Every error this package returns is
// one. It is defined in package driver, where the types make it; see
// driver.Error for its fields.
type Error = driver.Error

// Errors that an *Error wraps, for errors.Is.
var (
	// ErrSyntax: the string itself is malformed (an unterminated escape
	// or bracket, an empty type, a keyword given twice).
	ErrSyntax = driver.ErrSyntax
	// ErrUnknownType: no type of that name is registered.
	ErrUnknownType = driver.ErrUnknownType
	// ErrBadArgument: an argument is missing, unknown, given twice, or
	// has a value its type does not accept.
	ErrBadArgument = driver.ErrBadArgument
	// ErrTooDeep: endpoint strings nest more than MaxNesting deep.
	ErrTooDeep = driver.ErrTooDeep
)

// MaxNesting is how deep endpoint strings may nest (haproxy:tls:...,
// a proxy's endpoint=): deeper is an error wrapping ErrTooDeep, so that a
// hostile string cannot make parsing or redacting take unbounded time.
const MaxNesting = driver.MaxNesting

// Quote escapes s for use as one value inside an endpoint string: an
// inner endpoint, a path with colons. Parse reads it back as s.
func Quote(s string) string { return driver.Quote(s) }

// Redact returns s with the values of secret arguments (a proxy's
// password=, at any depth of nesting) replaced by "xxxxx", for logs and
// messages; a string it cannot parse is redacted as far as it can be read.
// Server and Client print themselves redacted already.
func Redact(s string) string { return driver.Redact(s) }
