// Package endpoint turns strings such as "tcp:8080:interface=127.0.0.1",
// "unix:/run/app.sock:mode=660" or "tcp:example.com:443" into listening
// ports and connections, so that a program can take where to listen or
// what to connect to as one string from its user and work with every
// transport without knowing which one it got. It is Go's rendering of
// Twisted's endpoints: the strings Twisted accepts mean the same here.
//
// Making an endpoint is separate from using it. ParseServer and ParseClient
// check a string and return a Server or a Client; nothing is opened until
// Server.Listen or Client.Dial is called, and both take a context, whose
// cancellation is Twisted's Deferred.cancel:
//
//	srv, err := endpoint.ParseServer("tcp:8080:interface=127.0.0.1")
//	if err != nil { ... }             // a bad string, with the argument named
//	ln, err := srv.Listen(ctx)        // a net.Listener; errors.Is(err, syscall.EADDRINUSE)
//	defer ln.Close()                  // returns when the port is really closed
//
//	cli, err := endpoint.ParseClient("tcp:example.com:80:timeout=10")
//	conn, err := cli.Dial(ctx)        // a net.Conn; errors.Is(err, context.Canceled)
//
// Every error is an *Error that names the string and wraps the cause.
//
// For a whole server, Service (Twisted's strports.service) listens, serves
// each connection with a Handler in its own goroutine, and on stop closes
// the port and drains; RunAll runs several side by side, all or none:
//
//	svc, err := endpoint.NewService("unix:/run/app.sock", handler)
//	err = svc.Run(ctx) // ctx from signal.NotifyContext; returns after draining
//
// docs/guide.md in the repository walks through all of this.
//
// The built-in types include tcp, tcp6, unix, ssl and tls; `tether types`
// lists them all, with every argument. Package driver is the contract for
// adding more, from any package, in the way database/sql drivers are
// added, and for tools that look into strings (driver.ServerArgs); the
// built-in types register through it too.
//
// The grammar is Twisted's: segments separated by ':', a backslash escapes
// the next character, key=value segments are keyword arguments, the first
// segment is the type (case does not matter). Two extensions, both for
// strings Twisted rejects: a value beginning with '[' runs to its matching
// ']' (brackets nest), so "tcp:80:interface=[::1]" and
// "tls:h:443:endpoint=[tcp:[::1]:443]" need no escaping, and wrapper types take the
// rest of the string as their inner endpoint. See Quote, and driver.Parse.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// A Server is where to listen: a parsed server endpoint string.
type Server interface {
	// Listen opens the port. The context bounds the opening only; the
	// listener lives until it is closed. Closing the listener returns only
	// once the port is closed and anything the endpoint made (a UNIX
	// socket file, its lock file) is removed.
	Listen(ctx context.Context) (net.Listener, error)
}

// A Client is what to connect to: a parsed client endpoint string.
type Client interface {
	// Dial connects. Cancelling the context, or its deadline passing,
	// abandons the attempt and leaves no socket behind; the error then
	// satisfies errors.Is(err, context.Canceled) or
	// errors.Is(err, context.DeadlineExceeded). The context does not
	// affect the connection once Dial has returned it.
	Dial(ctx context.Context) (net.Conn, error)
}

// ParseServer checks a server endpoint string and returns the Server it
// describes. Every problem with the string (an unknown type, a missing or
// bad argument, nesting deeper than MaxNesting) is reported here, as an
// *Error naming the argument. It is the zero Options' ParseServer.
func ParseServer(s string) (Server, error) { return zeroOptions.ParseServer(s) }

// ParseClient checks a client endpoint string and returns the Client it
// describes, reporting every problem with the string as ParseServer does.
// It is the zero Options' ParseClient.
func ParseClient(s string) (Client, error) { return zeroOptions.ParseClient(s) }

// Listen parses the server endpoint string s and listens on it.
func Listen(ctx context.Context, s string) (net.Listener, error) { return zeroOptions.Listen(ctx, s) }

// Dial parses the client endpoint string s and connects to it.
func Dial(ctx context.Context, s string) (net.Conn, error) { return zeroOptions.Dial(ctx, s) }

// asError makes err an *Error about input, unless it already is one; one
// that a type made without naming the string gets the string.
func asError(err error, op, input, typ string) error {
	var e *Error
	if errors.As(err, &e) {
		if e.Input == "" {
			e.Input, e.Type = input, typ
		}
		return err
	}
	return &Error{Op: op, Input: input, Type: typ, Err: err}
}

// server wraps a type's Server so that every Listen error is an *Error
// naming the string, whatever the type returned.
type server struct {
	input, typ string
	s          Server
}

func (s *server) Listen(ctx context.Context) (net.Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "listen", Input: s.input, Type: s.typ, Err: err}
	}
	ln, err := s.s.Listen(ctx)
	if err != nil {
		return nil, asError(err, "listen", s.input, s.typ)
	}
	return ln, nil
}

// String returns the endpoint string the Server was parsed from, redacted
// (see Redact).
func (s *server) String() string { return Redact(s.input) }

// GoString is String, so that %#v does not show the secrets String hides.
func (s *server) GoString() string { return s.String() }

// timeoutExpired is the cause of a dial's context ending at its timeout=
// argument; it matches context.DeadlineExceeded. A named type, not an error
// made per dial, because a relay dials once per connection.
type timeoutExpired time.Duration

func (t timeoutExpired) Error() string {
	return fmt.Sprintf("timeout=%d expired: %v", int(time.Duration(t).Seconds()), context.DeadlineExceeded)
}

func (t timeoutExpired) Unwrap() error { return context.DeadlineExceeded }

// withTimeoutArg bounds ctx by a timeout= argument.
func withTimeoutArg(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d, timeoutExpired(d))
}

type client struct {
	input, typ string
	c          Client
	// timeout is the type's timeout= argument: applied here, once, for
	// every type that declares it.
	timeout time.Duration
}

func (c *client) Dial(ctx context.Context) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "dial", Input: c.input, Type: c.typ, Err: err}
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = withTimeoutArg(ctx, c.timeout)
		defer cancel()
	}
	conn, err := c.c.Dial(ctx)
	if err != nil {
		return nil, asError(err, "dial", c.input, c.typ)
	}
	return conn, nil
}

// String returns the endpoint string the Client was parsed from, redacted
// (see Redact).
func (c *client) String() string { return Redact(c.input) }

// GoString is String, so that %#v does not show the secrets String hides.
func (c *client) GoString() string { return c.String() }
