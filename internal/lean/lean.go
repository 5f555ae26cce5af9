// Package lean carries the relay's lean path (docs/relay-core.md) between
// package endpoint, which knows how an endpoint listens and dials, and
// tether relay, which uses it, without making it part of endpoint's API:
// it is an optimisation of one program, not something a program using
// endpoint strings should see. Package endpoint sets Listen and Client on
// Linux; elsewhere they decline.
package lean

import (
	"net"
	"time"
)

var (
	// Listen wraps ln, made by srv's Listen (srv an endpoint.Server), so
	// that it accepts Conns if srv is a plain tcp or tcp6 server, and
	// returns false and ln unchanged for any other.
	Listen = func(srv any, ln net.Listener) (net.Listener, bool) { return ln, false }

	// Client returns the Target of c (an endpoint.Client) if c is a plain
	// tcp client of an IP literal, and false for any other.
	Client = func(c any) (Target, bool) { return nil, false }
)

// A Conn is a connection a lean listener accepted: a bare non-blocking
// descriptor, not in Go's poller, to be handed whole to code that owns
// descriptors (the relay's event core). It is a net.Conn so that a
// Service can count, detach and cut it; Read and Write fail.
type Conn interface {
	net.Conn
	// TakeFD hands the descriptor over: the caller owns it from then on,
	// and Close does nothing. It returns -1 if the connection was closed
	// (a Service cutting it) or taken before.
	TakeFD() int
}

// A Target starts non-blocking connects to one address, for an event loop
// to complete.
type Target interface {
	// Timeout is the client's timeout= argument (0: none).
	Timeout() time.Duration
	// Connect makes a non-blocking socket with the client's options and
	// starts connecting it; the caller owns the descriptor.
	Connect() (int, error)
	// DialError makes a connect's failure the error Dial would return.
	DialError(err error) error
}
