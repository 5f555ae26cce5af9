// Package abort ends connections abortively: the socket under every wrapper
// is closed with a reset, so that no peer takes a cut stream for a whole
// one. It is shared by package endpoint (which exports it as
// endpoint.Abort) and the relay.
package abort

import (
	"errors"
	"fmt"
	"net"
)

// ErrUnsignalled is wrapped by Conn's error when the innermost connection
// was closed but its transport has no way to tell the peer that the stream
// was cut: a UNIX stream socket, a pipe, a subprocess's standard input. Its
// peer sees an ordinary end of file.
var ErrUnsignalled = errors.New("the transport cannot signal an abort; the peer sees an ordinary end")

// A wrapper exposes the connection it wraps, as *tls.Conn does.
type wrapper interface{ NetConn() net.Conn }

type lingerer interface{ SetLinger(sec int) error }

// Conn closes c abortively. It looks through wrappers (NetConn, as
// *tls.Conn and proxyproto.Conn expose) to the innermost connection,
// sets SO_LINGER to 0 on it if it is a TCP socket, and closes it first, so
// that nothing a wrapper would write on Close (a TLS close_notify, which
// tells the peer the stream ended cleanly) reaches the wire; then it closes
// the wrappers to release what they hold. The peer of a TCP connection sees
// a reset (ECONNRESET).
//
// The error is nil when the peer was told, wraps ErrUnsignalled when the
// connection was closed but its transport cannot carry a reset, and wraps
// net.ErrClosed when the socket was closed already. Either way c is closed
// when Conn returns.
func Conn(c net.Conn) error {
	layers := Layers(c)
	inner := layers[len(layers)-1]
	var err error
	if l, ok := inner.(lingerer); ok {
		switch lerr := l.SetLinger(0); {
		case errors.Is(lerr, net.ErrClosed):
			// Closed already, by whoever gave up on it first (a drain
			// cut racing a relay's own abort): that one said how.
			err = lerr
		case lerr != nil:
			err = fmt.Errorf("%w: setting SO_LINGER: %w", ErrUnsignalled, lerr)
		}
	} else {
		err = fmt.Errorf("%s connection: %w", network(inner), ErrUnsignalled)
	}
	inner.Close()
	closeOuter(layers[:len(layers)-1])
	return err
}

// Layers returns c and the connections it wraps, outermost first, found
// through NetConn (as *tls.Conn and proxyproto.Conn expose it): the last is
// the innermost, the socket itself when there is one.
func Layers(c net.Conn) []net.Conn {
	layers := []net.Conn{c}
	for inner := c; ; {
		w, ok := inner.(wrapper)
		if !ok {
			return layers
		}
		next := w.NetConn()
		if next == nil || next == inner {
			return layers
		}
		inner = next
		layers = append(layers, inner)
	}
}

// closeOuter closes wrappers from the innermost out, once the socket under
// them is gone, so that they release what they hold and write nothing.
func closeOuter(layers []net.Conn) {
	for i := len(layers) - 1; i >= 0; i-- {
		layers[i].Close()
	}
}

func network(c net.Conn) string {
	if a := c.LocalAddr(); a != nil {
		return a.Network()
	}
	return fmt.Sprintf("%T", c)
}
