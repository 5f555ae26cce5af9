// Package lean carries the relay's lean path (docs/relay-core.md) between
// package endpoint, which knows how an endpoint listens and dials, and
// tether relay, which uses it, without making it part of endpoint's API:
// it is an optimisation of one program, not something a program using
// endpoint strings should see. Package endpoint sets Socket and Client on
// Linux; elsewhere they decline.
package lean

import (
	"net"
	"time"
)

var (
	// Socket returns a descriptor of ln's listening socket for the
	// relay's event core to accept on, if srv (an endpoint.Server whose
	// Listen made ln) is a plain tcp or tcp6 server; false for any other.
	// The descriptor is a non-blocking, close-on-exec duplicate that the
	// caller owns; the options srv gives each connection (TCP_NODELAY,
	// keep-alive) are set on the listening socket, which Linux copies to
	// every connection it accepts. ln stays the caller's.
	Socket = func(srv any, ln net.Listener) (int, bool) { return -1, false }

	// Client returns the Target of c (an endpoint.Client) if c is a plain
	// tcp client of an IP literal, and false for any other.
	Client = func(c any) (Target, bool) { return nil, false }
)

// A Target starts non-blocking connects to one address, for an event loop
// to complete.
type Target interface {
	// Timeout is the client's timeout= argument (0: none).
	Timeout() time.Duration
	// Connect makes a non-blocking socket with the client's options and
	// starts connecting it; the caller owns the descriptor. It never
	// blocks: an event loop may call it.
	Connect() (int, error)
	// DialError makes a connect's failure the error Dial would return.
	DialError(err error) error
}
