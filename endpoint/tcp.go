package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/abort"
)

// The tcp client's own argument.
var attemptDelayParam = driver.MillisParam("attemptDelay",
	"milliseconds to wait for one address before also trying the next (RFC 8305)").
	Default(strconv.Itoa(int(defaultAttemptDelay / time.Millisecond)))

func init() {
	driver.RegisterServer(driver.ServerType{
		Spec: driver.Spec{
			Name: "tcp",
			Help: "listen for TCP connections (IPv4, or IPv6 when the interface is an IPv6 address)",
			Args: append([]driver.Arg{listenPortParam.Arg(), interfaceParam.Arg(), backlogParam.Arg()}, listenSocketArgs()...),
		},
		New: func(a *driver.Args) (driver.Server, error) {
			host := interfaceParam.Get(a)
			return newTCPServer(tcpNetwork(host), host, a), nil
		},
	})
	tcp6Interface := driver.HostParam("interface", "IPv6 address or host name to listen on").Positional().Default("::")
	driver.RegisterServer(driver.ServerType{
		Spec: driver.Spec{
			Name:  "tcp6",
			Help:  "listen for TCP connections on IPv6 (on \"::\", IPv4 too, as Twisted's does)",
			Args:  append([]driver.Arg{listenPortParam.Arg(), backlogParam.Arg(), tcp6Interface.Arg()}, listenSocketArgs()...),
			Notes: "The positional order is port, backlog, interface: Twisted's, unlike tcp's.",
		},
		New: func(a *driver.Args) (driver.Server, error) {
			return newTCPServer("tcp6", tcp6Interface.Get(a), a), nil
		},
	})
	driver.RegisterClient(driver.ClientType{
		Spec: driver.Spec{
			Name: "tcp",
			Help: "connect over TCP, racing IPv6 and IPv4 addresses (Happy Eyeballs)",
			Args: append([]driver.Arg{hostParam.Arg(), connectPortParam.Arg(),
				timeoutParam.Help("seconds the whole attempt (resolving and connecting) may take").Arg(),
				bindAddressParam.Arg(), attemptDelayParam.Arg(),
			}, socketArgs()...),
			FillGaps: true,
			Notes: "Twisted's tcp client resolves host names to IPv4 only; this one resolves both families. " +
				"As in Twisted, positional arguments fill what keywords left: tcp:host=example.com:80 is port 80.",
		},
		New: func(a *driver.Args) (driver.Client, error) {
			c := &tcpClient{
				resolver: a.Env.Resolver,
				host:     hostParam.Get(a),
				port:     connectPortParam.Get(a),
				delay:    attemptDelayParam.Get(a),
				bind:     bindAddressParam.Get(a),
				opts:     readSockOpts(a),
			}
			return c, nil
		},
	})
}

// Arguments that several types share, declared once.
var (
	listenPortParam = driver.PortParam("port", "port to listen on; 0 picks a free one").Positional().Required()
	interfaceParam  = driver.HostParam("interface",
		"address to listen on; empty means every IPv4 address, an IPv6 address listens on IPv6").Positional().EmptyDefault()
	backlogParam = driver.IntParam("backlog", "length of the queue of connections not yet accepted", 0, 1<<20).
			Positional().Default("50")
	hostParam        = driver.HostParam("host", "host name or IP address to connect to").Positional().Required()
	connectPortParam = driver.PortParam("port", "port to connect to").Positional().Required()
	timeoutParam     = driver.SecondsParam("timeout", "seconds the attempt may take").Default("30")
	bindAddressParam = driver.HostParam("bindAddress", "local address to connect from; absent lets the system choose")
)

// tcpNetwork is the network a tcp server listens on for an interface: IPv6
// for an IPv6 address, else IPv4, as Twisted's tcp server does.
func tcpNetwork(host string) string {
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() && !ip.Is4In6() {
		return "tcp6"
	}
	return "tcp4"
}

type tcpServer struct {
	network, host string
	port, backlog int
	opts          sockOpts
	inherit       Inheritor
}

func newTCPServer(network, host string, a *driver.Args) *tcpServer {
	return &tcpServer{network: network, host: host, port: int(listenPortParam.Get(a)), backlog: backlogParam.Get(a),
		opts: readSockOpts(a), inherit: a.Env.Inherit}
}

func (s *tcpServer) Listen(ctx context.Context) (net.Listener, error) {
	network := s.network
	// On "::" Twisted's IPv6 port takes IPv4 connections too (it leaves
	// IPV6_V6ONLY off); Go's "tcp6" would turn it on, its "tcp" does not.
	if ip, err := netip.ParseAddr(s.host); err == nil && ip == netip.IPv6Unspecified() {
		network = "tcp"
	}
	addr := net.JoinHostPort(s.host, strconv.Itoa(s.port))
	ln, inherited, err := inheritListen(s.inherit, network, addr, func() (net.Listener, error) {
		lc := s.opts.listenConfig()
		ln, err := lc.Listen(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if err := setBacklog(ln.(*net.TCPListener), s.backlog); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	})
	if err != nil {
		return nil, err
	}
	if s.opts.nagle || inherited {
		// An inherited listener has no ListenConfig: keep-alive is set
		// on each connection it accepts, as lc would have.
		return &optsListener{Listener: ln, opts: s.opts, keepAlive: inherited}, nil
	}
	return ln, nil
}

// setBacklog calls listen(2) again with the backlog asked for: the standard
// library always uses the system's maximum, and Linux lets a listening
// socket's queue length be changed this way.
func setBacklog(ln syscall.Conn, backlog int) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = relisten(fd, backlog) }); err != nil {
		return err
	}
	if lerr != nil {
		return &net.OpError{Op: "listen", Net: "tcp", Err: fmt.Errorf("setting backlog %d: %w", backlog, lerr)}
	}
	return nil
}

type tcpClient struct {
	// resolver looks host names up; nil means net.DefaultResolver.
	resolver *net.Resolver
	host     string
	port     uint16
	bind     string
	delay    time.Duration
	opts     sockOpts
}

// Dial connects within ctx, which the client endpoint's wrapper has bounded
// by timeout= already (see client.Dial).
func (c *tcpClient) Dial(ctx context.Context) (net.Conn, error) {
	conn, err := c.dial(ctx)
	return conn, contextError(ctx, err)
}

// contextError makes an error that the context caused say so under
// errors.Is(err, context.Canceled) or context.DeadlineExceeded. Neither the
// resolver's errors nor a connect that hit the context's deadline (the
// poller's "i/o timeout") always do.
func contextError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ne net.Error
	if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() {
		// The poller's deadline is the context's, and may fire a moment
		// before the context's own timer does.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 50*time.Millisecond {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	return err
}

func (c *tcpClient) dial(ctx context.Context) (net.Conn, error) {
	d := c.opts.dialer()
	wantFamily := 0 // 4 or 6 when bindAddress fixes it
	if c.bind != "" {
		ips, err := c.lookup(ctx, c.bind)
		if err != nil {
			return nil, err
		}
		d.LocalAddr = &net.TCPAddr{IP: ips[0].AsSlice()}
		wantFamily = family(ips[0])
	}
	ips, err := c.lookup(ctx, c.host)
	if err != nil {
		return nil, err
	}
	addrs := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range interleave(ips) {
		if wantFamily == 0 || family(ip) == wantFamily {
			addrs = append(addrs, netip.AddrPortFrom(ip, c.port))
		}
	}
	if len(addrs) == 0 {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf(
			"%s has no address of the family of bindAddress %s", c.host, c.bind)}
	}
	conn, err := raceDial(ctx, d, addrs, c.delay)
	if err != nil {
		return nil, err
	}
	if err := c.opts.apply(conn); err != nil {
		abort.Conn(conn)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: conn.RemoteAddr(), Err: err}
	}
	return conn, nil
}

func family(ip netip.Addr) int {
	if ip.Unmap().Is4() {
		return 4
	}
	return 6
}

// lookup resolves host to its addresses, or reads it as an IP literal.
func (c *tcpClient) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	r := c.resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	return ips, nil
}

// interleave orders addresses as RFC 8305 section 4 asks: the resolver's
// first choice first, then alternating between the families.
func interleave(ips []netip.Addr) []netip.Addr {
	if len(ips) < 2 {
		return ips
	}
	first := family(ips[0])
	var same, other []netip.Addr
	for _, ip := range ips {
		if family(ip) == first {
			same = append(same, ip)
		} else {
			other = append(other, ip)
		}
	}
	out := make([]netip.Addr, 0, len(ips))
	for i := 0; i < len(same) || i < len(other); i++ {
		if i < len(same) {
			out = append(out, same[i])
		}
		if i < len(other) {
			out = append(out, other[i])
		}
	}
	return out
}

type dialResult struct {
	conn net.Conn
	err  error
}

// raceDial connects to the first of addrs that answers. It starts with the
// first address and starts the next one when the previous attempt fails or
// after delay, whichever comes first (Happy Eyeballs, RFC 8305). The first
// connection made wins; the other attempts are cancelled and waited for,
// and a connection that completes after the winner is closed, so nothing is
// left open when raceDial returns.
func raceDial(ctx context.Context, d *net.Dialer, addrs []netip.AddrPort, delay time.Duration) (net.Conn, error) {
	if len(addrs) == 1 {
		conn, err := d.DialContext(ctx, "tcp", addrs[0].String())
		return conn, contextError(ctx, err)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan dialResult, len(addrs))
	started, pending := 0, 0
	start := func() {
		addr := addrs[started].String()
		started++
		pending++
		go func() {
			conn, err := d.DialContext(ctx, "tcp", addr)
			results <- dialResult{conn, err}
		}()
	}
	var (
		winner   net.Conn
		firstErr error
	)
	timer := time.NewTimer(delay)
	defer timer.Stop()
	start()
	for pending > 0 {
		var next <-chan time.Time
		if winner == nil && ctx.Err() == nil && started < len(addrs) {
			next = timer.C
		}
		select {
		case r := <-results:
			pending--
			switch {
			case r.err == nil && winner == nil:
				winner = r.conn
				cancel()
			case r.err == nil:
				abort.Conn(r.conn) // a loser of the race: never used
			case firstErr == nil:
				firstErr = r.err
			}
			if winner == nil && ctx.Err() == nil && started < len(addrs) {
				start()
				timer.Reset(delay)
			}
		case <-next:
			start()
			timer.Reset(delay)
		}
	}
	if winner != nil {
		return winner, nil
	}
	return nil, contextError(parent, firstErr)
}
