package endpoint

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/internal/lean"
	"golang.org/x/sys/unix"
)

// The lean path (docs/relay-core.md, "The lean path"): for a relay whose
// LISTEN is a plain tcp server and whose CONNECT is a plain tcp client of
// an IP literal, nothing happens between accept and splice, so neither
// side needs a net.Conn. Building one costs Go's poller registration and,
// when the relay's core takes the socket over, a duplicate, a removal and
// a close: five system calls per socket, plus the allocations. A
// leanListener accepts bare descriptors instead, and a leanTarget starts
// non-blocking connects whose completion the core's event loop sees.

func init() {
	lean.Listen = func(srv any, ln net.Listener) (net.Listener, bool) {
		if s, ok := srv.(Server); ok {
			return leanListen(s, ln)
		}
		return ln, false
	}
	lean.Client = func(c any) (lean.Target, bool) {
		if cli, ok := c.(Client); ok {
			if t, ok := leanClient(cli); ok {
				return t, true
			}
		}
		return nil, false
	}
}

// leanListen wraps ln, made by srv's Listen, so that it accepts leanConns
// (bare descriptors, never in Go's poller) if srv is a plain tcp or tcp6
// server; it returns false, and ln unchanged, for any other server. The
// socket options srv asks for each accepted connection to have (keep-alive,
// TCP_NODELAY) are set once on the listening socket, from which Linux
// copies them to every connection it accepts; that saves five system calls
// per connection.
//
// Closing the returned listener closes ln. It exposes ln's socket
// (syscall.Conn), so a Service sees its listen queue (Queued) and an
// Inheritor can hand it on.
func leanListen(srv Server, ln net.Listener) (net.Listener, bool) {
	if s, ok := srv.(*server); ok {
		srv = s.s
	}
	ts, ok := srv.(*tcpServer)
	if !ok {
		return ln, false
	}
	var tl *net.TCPListener
	switch l := ln.(type) {
	case *net.TCPListener:
		tl = l
	case *optsListener:
		if tl, ok = l.Listener.(*net.TCPListener); !ok {
			return ln, false
		}
	default:
		return ln, false
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return ln, false
	}
	// A listener's RawConn cannot wait (its Read is not supported), so
	// the accept loop waits on a duplicate of the socket, which Go's
	// poller takes as it takes any non-blocking descriptor.
	dup := -1
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if serr = setInheritedOpts(int(fd), ts.opts); serr == nil {
			dup, serr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		}
	}); err != nil || serr != nil {
		return ln, false
	}
	f := os.NewFile(uintptr(dup), "lean-listener")
	frc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return ln, false
	}
	return &leanListener{Listener: ln, rc: rc, file: f, wait: frc, addr: ln.Addr()}, true
}

// setInheritedOpts sets on a listening socket the options its accepted
// connections are to have, as Go would set them on each: TCP_NODELAY on
// (unless noDelay=0), and keep-alive by net's rules (see applyKeepAlive).
// It is also right for a listener inherited from another process, which
// has no ListenConfig: the options are the socket's own from now on.
func setInheritedOpts(fd int, o sockOpts) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, boolInt(!o.nagle)); err != nil {
		return os.NewSyscallError("setsockopt TCP_NODELAY", err)
	}
	return setKeepAliveFD(fd, o, true)
}

// setKeepAliveFD sets keep-alive as net does for a connection made with
// o's KeepAlive and KeepAliveConfig fields (net's rule: a KeepAlive field
// that is not negative turns a disabled config on with that idle time;
// zero values take Go's defaults of 15 s, 15 s and 9; negative ones leave
// the system's). off says whether to turn keep-alive off explicitly when o
// disables it: a listener may carry it from an earlier process, a new
// socket never has it.
func setKeepAliveFD(fd int, o sockOpts, off bool) error {
	cfg, field := o.keepAlive, o.keepAliveField()
	if !cfg.Enable && field >= 0 {
		cfg = net.KeepAliveConfig{Enable: true, Idle: field}
	}
	if !cfg.Enable {
		if !off {
			return nil
		}
		return setIntOpt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 0, "SO_KEEPALIVE")
	}
	if err := setIntOpt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, "SO_KEEPALIVE"); err != nil {
		return err
	}
	secs := func(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
	if d := cfg.Idle; d >= 0 {
		if d == 0 {
			d = 15 * time.Second
		}
		if err := setIntOpt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs(d), "TCP_KEEPIDLE"); err != nil {
			return err
		}
	}
	if d := cfg.Interval; d >= 0 {
		if d == 0 {
			d = 15 * time.Second
		}
		if err := setIntOpt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs(d), "TCP_KEEPINTVL"); err != nil {
			return err
		}
	}
	if n := cfg.Count; n >= 0 {
		if n == 0 {
			n = 9
		}
		if err := setIntOpt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, n, "TCP_KEEPCNT"); err != nil {
			return err
		}
	}
	return nil
}

func setIntOpt(fd, level, opt, v int, name string) error {
	if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
		return os.NewSyscallError("setsockopt "+name, err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

type leanListener struct {
	net.Listener
	rc   syscall.RawConn // the listening socket's
	file *os.File        // a duplicate of it, in Go's poller
	wait syscall.RawConn // file's, which can wait
	addr net.Addr
}

// Close closes the duplicate first, which wakes a waiting Accept with
// net.ErrClosed, then the listener.
func (l *leanListener) Close() error {
	l.file.Close()
	return l.Listener.Close()
}

// SyscallConn is the listening socket's (Queued, Inheritor).
func (l *leanListener) SyscallConn() (syscall.RawConn, error) { return l.rc, nil }

// Accept accepts a connection as a bare non-blocking descriptor, waiting
// in Go's poller for the listening socket only.
func (l *leanListener) Accept() (net.Conn, error) {
	var (
		nfd  int
		sa   unix.Sockaddr
		aerr error
	)
	err := l.wait.Read(func(fd uintptr) bool {
		for {
			nfd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			// As Go's accept: a connection gone before it was taken is
			// skipped, not reported.
			if aerr != unix.EINTR && aerr != unix.ECONNABORTED {
				break
			}
		}
		return aerr != unix.EAGAIN
	})
	if err != nil {
		// The listener is closed (os.ErrClosed from the file).
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
	if aerr != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: os.NewSyscallError("accept4", aerr)}
	}
	return &leanConn{fd: nfd, remote: sockaddrTCP(sa), local: l.addr}, nil
}

func sockaddrTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port, Zone: zoneName(a.ZoneId)}
	}
	return nil
}

func zoneName(id uint32) string {
	if id == 0 {
		return ""
	}
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name
	}
	return ""
}

// errLean is what a leanConn's Read and Write return: it is a descriptor
// on its way to a relay core, not a stream to use.
var errLean = errors.New("endpoint: a lean connection is a bare descriptor for a relay core; it cannot be read or written")

// A leanConn (a lean.Conn) is a TCP connection accepted by a leanListener: a bare
// non-blocking descriptor, not in Go's poller, meant to be handed whole to
// code that owns descriptors (the relay's event core) with TakeFD. It is a
// net.Conn so that a Service can count, detach and cut it; Read and Write
// fail. Close and SetLinger act on the descriptor until it is taken.
type leanConn struct {
	mu     sync.Mutex
	fd     int // -1 once taken or closed
	remote *net.TCPAddr
	local  net.Addr
}

// TakeFD hands the descriptor over: from then on the caller owns it and
// must close it, and Close does nothing. It returns -1 if the connection
// was closed (a Service cutting it) or taken before.
func (c *leanConn) TakeFD() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	fd := c.fd
	c.fd = -1
	return fd
}

// Read fails: see leanConn.
func (c *leanConn) Read([]byte) (int, error) { return 0, errLean }

// Write fails: see leanConn.
func (c *leanConn) Write([]byte) (int, error) { return 0, errLean }

// Close closes the descriptor unless it has been taken.
func (c *leanConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return os.NewSyscallError("close", err)
}

// SetLinger sets SO_LINGER, as net.TCPConn's does (abort.Conn uses it to
// reset the connection); after TakeFD it fails with net.ErrClosed.
func (c *leanConn) SetLinger(sec int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return net.ErrClosed
	}
	l := unix.Linger{}
	if sec >= 0 {
		l = unix.Linger{Onoff: 1, Linger: int32(sec)}
	}
	return os.NewSyscallError("setsockopt SO_LINGER", unix.SetsockoptLinger(c.fd, unix.SOL_SOCKET, unix.SO_LINGER, &l))
}

// RemoteAddr is the peer's address, as accept reported it.
func (c *leanConn) RemoteAddr() net.Addr { return c.remote }

// LocalAddr is the listener's address (with a wildcard address if the
// listener has one: no getsockname is made per connection).
func (c *leanConn) LocalAddr() net.Addr { return c.local }

// SetDeadline does nothing: nothing waits on a leanConn.
func (c *leanConn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline does nothing: nothing waits on a leanConn.
func (c *leanConn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline does nothing: nothing waits on a leanConn.
func (c *leanConn) SetWriteDeadline(time.Time) error { return nil }

// A leanTarget starts non-blocking connects to a plain tcp client
// endpoint's one address, for an event loop to complete (see leanClient).
type leanTarget struct {
	sa      unix.Sockaddr
	domain  int
	addr    *net.TCPAddr
	opts    sockOpts
	timeout time.Duration
	input   string
	typ     string
}

// leanClient returns a leanTarget for c if c is a plain tcp client of an
// IP literal (no host name to resolve, so no Happy Eyeballs race, and no
// bindAddress); false otherwise. The address is parsed here, once.
func leanClient(c Client) (*leanTarget, bool) {
	w, ok := c.(*client)
	if !ok {
		return nil, false
	}
	tc, ok := w.c.(*tcpClient)
	if !ok || tc.bind != "" {
		return nil, false
	}
	ip, err := netip.ParseAddr(tc.host)
	if err != nil || ip.Zone() != "" {
		return nil, false
	}
	ip = ip.Unmap()
	t := &leanTarget{opts: tc.opts, timeout: w.timeout, input: w.input, typ: w.typ,
		addr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, tc.port))}
	if ip.Is4() {
		t.domain, t.sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(tc.port), Addr: ip.As4()}
	} else {
		t.domain, t.sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(tc.port), Addr: ip.As16()}
	}
	return t, true
}

// Timeout is the client's timeout= argument: how long the connect may
// take (0: no bound but the system's).
func (t *leanTarget) Timeout() time.Duration { return t.timeout }

// Connect makes a non-blocking socket with the client's options and starts
// connecting it. The caller owns the descriptor, and learns the outcome
// from the socket: writable once connected, or an error (SO_ERROR). The
// error, if the connect cannot start, is one Dial would have returned.
func (t *leanTarget) Connect() (int, error) {
	fd, err := unix.Socket(t.domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, t.DialError(os.NewSyscallError("socket", err))
	}
	err = setSockOpts(uintptr(fd), t.opts, false)
	if err == nil && !t.opts.nagle {
		err = setIntOpt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1, "TCP_NODELAY")
	}
	if err == nil {
		err = setKeepAliveFD(fd, t.opts, false)
	}
	if err == nil {
		for {
			err = unix.Connect(fd, t.sa)
			if err != unix.EINTR {
				break
			}
		}
		switch err {
		case nil, unix.EINPROGRESS, unix.EALREADY:
			return fd, nil
		}
		err = os.NewSyscallError("connect", err)
	}
	unix.Close(fd)
	return -1, t.DialError(err)
}

// DialError makes err, a connect's failure, the error Dial would have
// returned: an *Error naming the client string, around a *net.OpError.
func (t *leanTarget) DialError(err error) error {
	var oe *net.OpError
	if !errors.As(err, &oe) {
		err = &net.OpError{Op: "dial", Net: "tcp", Addr: t.addr, Err: err}
	}
	return asError(err, "dial", t.input, t.typ)
}
