// Package driver is the contract between package endpoint and the endpoint
// types: what a type declares, what it receives, and how it registers, as
// database/sql/driver is for database/sql. A program that only parses,
// listens and dials needs package endpoint alone; this package is for
// writing a new type, or for a tool that looks into endpoint strings (as
// tether describe and tether types do).
//
// A type is a Spec (its name, help and arguments) and a New function,
// registered from an init function with RegisterServer or RegisterClient.
// The built-in types (tcp, unix, tls, ...) register through exactly this
// contract. Each argument is declared once, as a typed Param, and read in
// New already converted and checked:
//
//	var portParam = driver.PortParam("port", "port to connect to").Positional().Required()
//
//	func init() {
//		driver.RegisterClient(driver.ClientType{
//			Spec: driver.Spec{Name: "echo", Help: "...", Args: []driver.Arg{portParam.Arg()}},
//			New: func(a *driver.Args) (driver.Client, error) {
//				return &echoClient{port: portParam.Get(a)}, nil
//			},
//		})
//	}
//
// From the declaration come the parser's checks and error messages, the
// defaults, Redact's knowledge of secrets, and the reference that tether
// types prints. The grammar itself (Parse, Quote), the *Error every
// failure is reported as, and Redact live here too, because binding a
// string to a Spec produces them; package endpoint re-exports what a
// program needs of them.
package driver

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"reflect"
)

// Server and Client are what a type's New returns. They are the methods of
// endpoint.Server and endpoint.Client, whose promises a type must keep:
// Listen's and Dial's context bounds the opening only and its
// cancellation leaves no socket behind; closing a listener returns once
// the port is closed and everything the endpoint made is removed. A type
// that declares a timeout= argument of kind Seconds, as the built-in
// clients do, need not apply it: endpoint bounds Dial's context by it.
type (
	Server interface {
		Listen(ctx context.Context) (net.Listener, error)
	}
	Client interface {
		Dial(ctx context.Context) (net.Conn, error)
	}
)

// Env is what the program parsing a string lends every type in it, set
// from endpoint.Options. A type keeps it if it needs it after New.
type Env struct {
	// Resolver looks host names up; nil means net.DefaultResolver.
	Resolver *net.Resolver

	// Logger is the program's logger for what a type has to say outside
	// any call (a failed certificate reload); nil means the program wants
	// nothing logged. Log returns one that is never nil.
	Logger *slog.Logger

	// TLSConfig is the program's hook to adjust a TLS configuration; nil
	// means none. A type calls AdjustTLS, not this.
	TLSConfig func(*tls.Config)

	// Inherit, if not nil, hands listening sockets over between this
	// process and the one that replaces it (see endpoint.Inheritor): a
	// server type that listens on a socket a new process could take over
	// gets it from here, and gives it here to be handed on.
	Inherit Inheritor

	// ParseServer and ParseClient parse a nested endpoint string (a
	// wrapper's inner string, a proxy's endpoint) with this Env.
	ParseServer func(s string) (Server, error)
	ParseClient func(s string) (Client, error)
}

// Inheritor is endpoint.Inheritor, whose documentation says what a type
// must do with it: get a listening socket from ListenWithCallback rather
// than make it, so that a restarted process takes over the one its parent
// listened on.
type Inheritor interface {
	ListenWithCallback(network, addr string, listen func(network, addr string) (net.Listener, error)) (net.Listener, error)
	HasParent() bool
	HandedOn() bool
}

// discard is the logger of an Env without one.
var discard = slog.New(slog.DiscardHandler)

// Log returns the Logger, or one that discards everything: never nil.
func (e *Env) Log() *slog.Logger {
	if e == nil || e.Logger == nil {
		return discard
	}
	return e.Logger
}

// AdjustTLS lets the program's TLSConfig hook change cfg, keeping
// verification as the type set it up: a change to InsecureSkipVerify is
// undone, and the type's VerifyConnection stays, to pass before the
// hook's own. A type calls it on every configuration it makes, each time
// it loads its files.
func (e *Env) AdjustTLS(cfg *tls.Config) {
	if e == nil || e.TLSConfig == nil {
		return
	}
	skip, verify := cfg.InsecureSkipVerify, cfg.VerifyConnection
	e.TLSConfig(cfg)
	cfg.InsecureSkipVerify = skip
	if mine := cfg.VerifyConnection; verify != nil && (mine == nil || reflect.ValueOf(mine).Pointer() != reflect.ValueOf(verify).Pointer()) {
		// The hook removed the type's own check, or set one of its
		// own: the type's stays, and both must pass.
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if err := verify(cs); err != nil {
				return err
			}
			if mine != nil {
				return mine(cs)
			}
			return nil
		}
	}
}
