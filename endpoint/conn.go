package endpoint

import (
	"context"
	"net"
	"time"

	"github.com/tether-endpoints/tether/internal/abort"
)

// ErrAbortUnsignalled is wrapped by Abort's error when the connection was
// closed but its transport cannot tell the peer that the stream was cut: a
// UNIX stream socket, a pipe, an exec: program's standard input. Such a
// peer sees an ordinary end of file, so a protocol that cannot tell a
// complete message from a cut one should not run over it.
var ErrAbortUnsignalled = abort.ErrUnsignalled

// Abort closes conn so that its peer learns the stream was cut rather than
// finished: the socket under every wrapper (a *tls.Conn, a *proxyproto.Conn, any
// connection with a NetConn method) is closed first, with SO_LINGER 0 if it
// is TCP, so the peer gets a reset and no TLS close_notify is sent. Call it
// instead of Close on every path that abandons a connection mid-stream:
// after a failed read or write on the other side of a relay, a timeout, a
// shutdown that cannot wait.
//
// conn is closed when Abort returns. The error is nil if the peer was told,
// and wraps ErrAbortUnsignalled if the transport has no way to tell it.
func Abort(conn net.Conn) error { return abort.Conn(conn) }

// A handshaker is a connection with a lazy opening phase that can be run
// explicitly: *tls.Conn's handshake, *proxyproto.Conn's header.
type handshaker interface {
	HandshakeContext(ctx context.Context) error
}

// Handshake runs, now and in the calling goroutine, every opening phase
// that the layers of an accepted connection would otherwise run lazily at
// its first Read or Write: the TLS handshake of a tls: or ssl: server, the
// PROXY protocol header of a haproxy: server, innermost first (haproxy:tls:
// completes the handshake, then reads the header inside it). Each phase is
// bounded by its own timeout (handshakeTimeout, the header timeout) as well
// as by ctx. A connection with no such phase returns nil at once.
//
// Call it before acting on a connection's behalf, so that nothing is done
// for a client that has not proved who it is or where it comes from: a
// relay dials its upstream only after Handshake succeeds. On an error the
// connection should be aborted (see Abort); the error wraps proxyproto.ErrBadHeader
// for a bad header, and is crypto/tls's for a failed handshake.
func Handshake(ctx context.Context, conn net.Conn) error {
	var layers []handshaker
	for _, c := range abort.Layers(conn) {
		if h, ok := c.(handshaker); ok {
			layers = append(layers, h)
		}
	}
	for i := len(layers) - 1; i >= 0; i-- {
		if err := layers[i].HandshakeContext(ctx); err != nil {
			return err
		}
	}
	return nil
}

// aLongTimeAgo is a deadline in the past: setting it interrupts a blocked
// read or write at once.
var aLongTimeAgo = time.Unix(1, 0)
