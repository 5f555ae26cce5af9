package endpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

// Options adjusts how endpoints are made and used, as net.Dialer and
// net.ListenConfig do for addresses. The zero value is the default, and
// the package's ParseServer, ParseClient, Listen and Dial are the zero
// value's methods. The endpoints an Options makes keep a reference to it
// (inner endpoints too: a tls: client's endpoint=, a wrapper's inner
// string), so it must not change once used.
type Options struct {
	// Resolver looks up the host names of tcp, tls and ssl clients; nil
	// means net.DefaultResolver. (A socks5: or httpconnect: proxy
	// resolves the host it is asked for itself.)
	Resolver *net.Resolver

	// Logger receives what an endpoint has to say outside any call: a
	// TLS certificate reload that failed (the old certificates stay in
	// use), an exec: program's standard error, line by line. Nil means
	// nothing is logged, except that an exec: program's standard error is
	// then logged to this process's standard error rather than lost: the
	// package never writes to the global logger.
	Logger *slog.Logger

	// TLSConfig, if not nil, is called with every TLS configuration a
	// tls: or ssl: endpoint makes, server or client, each time its files
	// are loaded: to set cipher suites, curve preferences, a session
	// cache, a KeyLogWriter, or another check in VerifyConnection. It gets
	// the endpoint's own configuration (certificates, roots, server name
	// and versions already set) and may change it; it must not keep it.
	// Verification may be tightened, never turned off: a change to
	// InsecureSkipVerify is undone.
	TLSConfig func(*tls.Config)

	// Inherit, if not nil, hands listening sockets over between a process
	// and the one that replaces it (see Inheritor): tcp, tcp6, unix and
	// systemd: servers, and the wrappers around them, get their socket
	// from it, and it keeps those they make, to hand on.
	Inherit Inheritor
}

// ParseServer checks a server endpoint string and returns the Server it
// describes, made with these options. Every problem with the string (an
// unknown type, a missing or bad argument, nesting deeper than MaxNesting)
// is reported here, as an *Error naming the argument.
func (o *Options) ParseServer(s string) (Server, error) {
	t, args, err := driver.BindServer(s)
	if err != nil {
		return nil, err
	}
	args.Env = o.env()
	srv, err := t.New(args)
	if err != nil {
		return nil, asError(err, "parse", s, t.Name)
	}
	if srv == nil {
		return nil, &Error{Op: "parse", Input: s, Type: t.Name, Err: errors.New("type returned a nil Server")}
	}
	return &server{input: s, typ: t.Name, s: srv}, nil
}

// ParseClient checks a client endpoint string and returns the Client it
// describes, made with these options, reporting every problem with the
// string as ParseServer does.
func (o *Options) ParseClient(s string) (Client, error) {
	t, args, err := driver.BindClient(s)
	if err != nil {
		return nil, err
	}
	args.Env = o.env()
	cli, err := t.New(args)
	if err != nil {
		return nil, asError(err, "parse", s, t.Name)
	}
	if cli == nil {
		return nil, &Error{Op: "parse", Input: s, Type: t.Name, Err: errors.New("type returned a nil Client")}
	}
	c := &client{input: s, typ: t.Name, c: cli}
	if timeoutParam.In(&t.Spec) {
		// The shared timeout= bounds the whole Dial of every type that
		// declares it; the types themselves need not apply it.
		c.timeout = timeoutParam.Get(args)
	}
	return c, nil
}

// Listen parses the server endpoint string s and listens on it.
func (o *Options) Listen(ctx context.Context, s string) (net.Listener, error) {
	srv, err := o.ParseServer(s)
	if err != nil {
		return nil, err
	}
	return srv.Listen(ctx)
}

// Dial parses the client endpoint string s and connects to it.
func (o *Options) Dial(ctx context.Context, s string) (net.Conn, error) {
	cli, err := o.ParseClient(s)
	if err != nil {
		return nil, err
	}
	return cli.Dial(ctx)
}

var zeroOptions = &Options{}

func (o *Options) orZero() *Options {
	if o == nil {
		return zeroOptions
	}
	return o
}

// env is what the types in a string parsed with o are lent.
func (o *Options) env() *driver.Env {
	o = o.orZero()
	return &driver.Env{
		Resolver:    o.Resolver,
		Logger:      o.Logger,
		TLSConfig:   o.TLSConfig,
		Inherit:     o.Inherit,
		ParseServer: func(s string) (driver.Server, error) { return o.ParseServer(s) },
		ParseClient: func(s string) (driver.Client, error) { return o.ParseClient(s) },
	}
}

// execLogger returns the logger an exec: program's standard error goes
// to: the program's Logger, or one writing to this process's standard
// error, so that it is not lost.
func execLogger(env *driver.Env) *slog.Logger {
	if env != nil && env.Logger != nil {
		return env.Logger
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}
