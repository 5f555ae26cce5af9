package endpoint

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/abort"
	"github.com/tether-endpoints/tether/proxyproto"
)

func init() {
	driver.RegisterServer(driver.ServerType{
		Spec: driver.Spec{
			Name:    "haproxy",
			Wrapper: true,
			Help:    "take each connection's addresses from a PROXY protocol header (v1 or v2) that a load balancer sends first",
			Notes: "Twisted's syntax: haproxy:tcp:8080 wraps any server endpoint. The header, text (v1) or binary " +
				"(v2), is read in the connection's own goroutine, on its first Read, RemoteAddr, LocalAddr or " +
				"Header call, never in Accept, and must arrive within 10 seconds. RemoteAddr and LocalAddr are then " +
				"the addresses it names; v1 UNKNOWN, v2 LOCAL and v2 AF_UNSPEC keep the connection's own. A " +
				"connection whose header is missing, late or malformed is reset and its Read fails with an error " +
				"wrapping proxyproto.ErrBadHeader; the listener goes on. v2 TLVs are read and kept " +
				"(proxyproto.Conn.Header), not interpreted.",
		},
		New: func(a *driver.Args) (driver.Server, error) {
			inner, err := a.Env.ParseServer(a.Inner)
			if err != nil {
				return nil, err
			}
			return &proxyServer{inner: inner}, nil
		},
	})
	driver.RegisterClient(driver.ClientType{
		Spec: driver.Spec{
			Name:    "haproxy",
			Wrapper: true,
			Help:    "send a PROXY protocol header at the start of each connection, for a server behind which tether relays",
			Notes: "Not in Twisted. The header names the addresses that proxyproto.NewContext put in Dial's " +
				"context (tether relay puts the original client's there, as v1, or v2 with --proxy-protocol v2); without them it is " +
				"a v1 \"PROXY UNKNOWN\", which tells the server to use the connection's own addresses.",
		},
		New: func(a *driver.Args) (driver.Client, error) {
			inner, err := a.Env.ParseClient(a.Inner)
			if err != nil {
				return nil, err
			}
			return &proxyClient{inner: inner}, nil
		},
	})
}

type proxyClient struct {
	inner Client
}

// headerWriteTimeout bounds writing the PROXY header when the context
// sets no deadline: as long as a server gives a client to send one.
const headerWriteTimeout = 10 * time.Second

func (c *proxyClient) Dial(ctx context.Context) (net.Conn, error) {
	h := proxyproto.FromContext(ctx)
	if h == nil {
		h = &proxyproto.Header{Version: 1}
	}
	b, err := h.Format()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "haproxy", Err: err}
	}
	conn, err := c.inner.Dial(ctx)
	if err != nil {
		return nil, err
	}
	// The header is small and the connection new, so the write does not
	// block in practice; the context bounds it all the same, and without
	// a deadline in the context, headerWriteTimeout does: every phase has
	// one.
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(headerWriteTimeout)
	}
	conn.SetWriteDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.SetWriteDeadline(aLongTimeAgo) })
	_, err = conn.Write(b)
	if !stop() || err != nil {
		abort.Conn(conn)
		if ctx.Err() != nil {
			err = fmt.Errorf("writing the PROXY protocol header: %w", context.Cause(ctx))
		}
		return nil, &net.OpError{Op: "dial", Net: "haproxy", Addr: conn.RemoteAddr(), Err: err}
	}
	conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

type proxyServer struct {
	inner   Server
	timeout time.Duration // for the header; zero is proxyproto's default
}

func (s *proxyServer) Listen(ctx context.Context) (net.Listener, error) {
	ln, err := s.inner.Listen(ctx)
	if err != nil {
		return nil, err
	}
	return proxyproto.NewListener(ln, s.timeout), nil
}
