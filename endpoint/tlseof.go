package endpoint

import (
	"io"
	"net"
)

// ErrNoCloseNotify is the error that Read returns (in a *net.OpError) on a
// tls: or ssl: connection, server or client (and srv: with tls=1), whose
// peer closed the TCP connection without first sending a TLS close_notify. What was read before it is
// authentic, but anyone on the path can end a TCP stream, so the stream
// may have been cut short: treat it as an error, never as a complete
// message. errors.Is(err, io.ErrUnexpectedEOF) holds too.
//
// crypto/tls alone returns io.EOF for such an end when it falls between
// two records, the same as for a close_notify; Twisted reports it as
// ConnectionLost rather than ConnectionDone, and so does tether: the relay
// passes it on as a reset. A peer that ends properly sends close_notify
// (Go's tls.Conn does in Close and CloseWrite, OpenSSL in SSL_shutdown).
var ErrNoCloseNotify error = noCloseNotifyError{}

type noCloseNotifyError struct{}

func (noCloseNotifyError) Error() string {
	return "the peer closed the connection without a TLS close_notify, so the stream may have been cut"
}

func (noCloseNotifyError) Is(target error) bool { return target == io.ErrUnexpectedEOF }

// readBelowTLS reads the TCP connection under a *tls.Conn. The end of the
// TCP stream reaches crypto/tls only if no close_notify came before it
// (after a close_notify crypto/tls reads no more), so it is returned as
// ErrNoCloseNotify, which crypto/tls passes on as it is, instead of io.EOF,
// which it would pass on as a clean end. It comes in a *net.OpError, as a
// failed read of a socket does: the message names the connection, and
// net/http's server, for one, closes such a connection without answering.
func readBelowTLS(c net.Conn, b []byte) (int, error) {
	n, err := c.Read(b)
	if err == io.EOF {
		err = &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(),
			Err: ErrNoCloseNotify}
	}
	return n, err
}

// closeNotifyConn is the TCP connection under a client's *tls.Conn: once
// the handshake is done (Dial sets established before it returns the
// connection), it reports the end of the stream as ErrNoCloseNotify (see
// readBelowTLS). During the handshake an end is io.EOF, as before: the
// handshake fails either way, and "EOF" is what a caller retrying on it
// expects.
type closeNotifyConn struct {
	net.Conn
	established bool
}

func (c *closeNotifyConn) Read(b []byte) (int, error) {
	if !c.established {
		return c.Conn.Read(b)
	}
	return readBelowTLS(c.Conn, b)
}

// NetConn returns the TCP connection, so that Abort reaches it.
func (c *closeNotifyConn) NetConn() net.Conn { return c.Conn }
