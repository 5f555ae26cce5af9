package proxyproto

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/internal/abort"
)

// NewListener returns a listener whose connections are *Conn: each reads
// a PROXY protocol header, lazily, within timeout (zero or less means
// DefaultHeaderTimeout). Package endpoint's haproxy: server returns one.
func NewListener(inner net.Listener, timeout time.Duration) net.Listener {
	if timeout <= 0 {
		timeout = DefaultHeaderTimeout
	}
	return &listener{Listener: inner, timeout: timeout}
}

type listener struct {
	net.Listener
	timeout time.Duration
}

// SyscallConn returns the inner listener's raw connection, if it has one:
// the listening socket, which the headers do not change.
func (l *listener) SyscallConn() (syscall.RawConn, error) {
	sc, ok := l.Listener.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// Accept returns the next connection at once; its header is read later,
// in whichever goroutine first needs it.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &Conn{conn: c, timeout: l.timeout}, nil
}

// A Conn is a connection accepted by a haproxy: server. Its first
// Read, RemoteAddr, LocalAddr or Header call reads the PROXY protocol
// header (so call RemoteAddr in the connection's goroutine, not the
// accept loop); RemoteAddr and LocalAddr then return the addresses the
// header names. If the header is missing, malformed, or not there within
// the timeout, the connection is closed, Read returns an error wrapping
// ErrBadHeader, and RemoteAddr and LocalAddr return the connection's
// own addresses.
type Conn struct {
	conn    net.Conn
	timeout time.Duration

	once sync.Once
	hdr  *Header
	err  error

	mu         sync.Mutex
	done       bool      // the header has been read (or failed)
	headerDL   time.Time // the header's deadline, while it is read
	readDL     time.Time // the caller's read deadline
	readDLSent bool      // the caller set one before the header was read
	cause      error     // why HandshakeContext's context ended the read
}

func (c *Conn) readHeader() {
	c.once.Do(func() {
		c.mu.Lock()
		c.headerDL = time.Now().Add(c.timeout)
		dl := c.headerDL
		if c.readDLSent && !c.readDL.IsZero() && c.readDL.Before(dl) {
			dl = c.readDL
		}
		if c.cause != nil { // HandshakeContext's context has already ended
			dl = aLongTimeAgo
		}
		c.conn.SetReadDeadline(dl)
		c.mu.Unlock()

		h, err := Read(c.conn)

		c.mu.Lock()
		c.done = true
		c.conn.SetReadDeadline(c.readDL)
		cause := c.cause
		c.mu.Unlock()
		if err != nil {
			switch {
			case cause != nil:
				err = proxyError(cause, "reading it was cancelled")
			case errors.Is(err, os.ErrDeadlineExceeded):
				err = proxyError(err, "none arrived within %v", c.timeout)
			}
			c.err = &net.OpError{Op: "read", Net: "haproxy", Source: c.conn.LocalAddr(), Addr: c.conn.RemoteAddr(), Err: err}
			// The client never sent what it owed: a reset, not a clean end.
			abort.Conn(c.conn)
			return
		}
		c.hdr = h
	})
}

// HandshakeContext reads the PROXY protocol header now, if that has not
// been done, within the header timeout and until ctx ends; it returns the
// header's error. endpoint.Handshake calls it.
func (c *Conn) HandshakeContext(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.done {
			c.cause = context.Cause(ctx)
			c.conn.SetReadDeadline(aLongTimeAgo)
		}
	})
	defer stop()
	c.readHeader()
	return c.err
}

// Header reads the PROXY protocol header if that has not been done, and
// returns it.
func (c *Conn) Header() (*Header, error) {
	c.readHeader()
	return c.hdr, c.err
}

// NetConn returns the connection the header came on. Once the header has
// been read nothing of the connection's data is held back, so reading the
// returned connection directly (to splice it, say) misses nothing.
func (c *Conn) NetConn() net.Conn { return c.conn }

// Read reads the header first, if that has not been done.
func (c *Conn) Read(p []byte) (int, error) {
	if c.readHeader(); c.err != nil {
		return 0, c.err
	}
	return c.conn.Read(p)
}

// WriteTo lets io.Copy from the connection use the underlying
// connection's fast path.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if c.readHeader(); c.err != nil {
		return 0, c.err
	}
	return io.Copy(w, c.conn)
}

// Write writes to the connection; it does not wait for the header.
func (c *Conn) Write(p []byte) (int, error) { return c.conn.Write(p) }

// ReadFrom lets io.Copy to the connection use the underlying connection's
// fast path.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.conn, r) }

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// CloseWrite shuts down the writing side, if the connection can.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return &net.OpError{Op: "close", Net: "haproxy", Addr: c.conn.RemoteAddr(), Err: errors.ErrUnsupported}
}

// RemoteAddr returns the original client's address as the header names it,
// reading the header first if that has not been done.
func (c *Conn) RemoteAddr() net.Addr {
	if c.readHeader(); c.hdr != nil && c.hdr.Source != nil {
		return c.hdr.Source
	}
	return c.conn.RemoteAddr()
}

// LocalAddr returns the address the original client connected to as the
// header names it, reading the header first if that has not been done.
func (c *Conn) LocalAddr() net.Addr {
	if c.readHeader(); c.hdr != nil && c.hdr.Destination != nil {
		return c.hdr.Destination
	}
	return c.conn.LocalAddr()
}

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.conn.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline; while the header is being read,
// the earlier of it and the header's deadline applies.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDL, c.readDLSent = t, true
	if c.done {
		return c.conn.SetReadDeadline(t)
	}
	if !c.headerDL.IsZero() { // being read now
		dl := c.headerDL
		if !t.IsZero() && t.Before(dl) {
			dl = t
		}
		return c.conn.SetReadDeadline(dl)
	}
	return nil
}

// SetWriteDeadline sets the write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// aLongTimeAgo is a deadline in the past: setting it interrupts a blocked
// read at once.
var aLongTimeAgo = time.Unix(1, 0)
