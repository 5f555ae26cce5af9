package endpoint

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/tether-endpoints/tether/internal/lean"
	"github.com/tether-endpoints/tether/internal/rawsys"
	"golang.org/x/sys/unix"
)

// The lean path (docs/relay-core.md, "The lean path"): for a relay whose
// LISTEN is a plain tcp server and whose CONNECT is a plain tcp client of
// an IP literal, nothing happens between accept and splice, so neither
// side needs a net.Conn. The relay's event core accepts on the listening
// socket itself (leanSocket) and starts non-blocking connects (a
// leanTarget) whose completion its loop sees: no goroutine, no Go poller
// registration and no allocation but the pair's, per connection.

func init() {
	lean.Socket = func(srv any, ln net.Listener) (int, bool) {
		if s, ok := srv.(Server); ok {
			return leanSocket(s, ln)
		}
		return -1, false
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

// leanSocket returns a duplicate of ln's listening socket (non-blocking,
// close-on-exec, the caller's to close) if srv, whose Listen made ln, is a
// plain tcp or tcp6 server; -1 and false for any other. The socket options
// srv asks for each accepted connection to have (keep-alive, TCP_NODELAY)
// are set once on the listening socket, from which Linux copies them to
// every connection it accepts; that saves five system calls per
// connection.
func leanSocket(srv Server, ln net.Listener) (int, bool) {
	if s, ok := srv.(*server); ok {
		srv = s.s
	}
	ts, ok := srv.(*tcpServer)
	if !ok {
		return -1, false
	}
	var tl *net.TCPListener
	switch l := ln.(type) {
	case *net.TCPListener:
		tl = l
	case *optsListener:
		if tl, ok = l.Listener.(*net.TCPListener); !ok {
			return -1, false
		}
	default:
		return -1, false
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return -1, false
	}
	dup := -1
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if serr = setInheritedOpts(int(fd), ts.opts); serr == nil {
			serr = clearLinger(int(fd))
		}
		if serr == nil {
			dup, serr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		}
	}); err != nil || serr != nil {
		return -1, false
	}
	return dup, true
}

// clearLinger turns SO_LINGER off on a listening socket, so that no
// connection accepted from it has it: Linux copies it to each, and a
// close of a socket that lingers blocks until its data is sent or the
// linger time passes, which would stall an event loop and every
// connection it serves. A listener inherited from another process (fd:,
// systemd:) may carry it; tether's own never do.
func clearLinger(fd int) error {
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{}); err != nil {
		return os.NewSyscallError("setsockopt SO_LINGER", err)
	}
	return nil
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
	if err := rawsys.SetsockoptInt(fd, level, opt, v); err != nil {
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

// A leanTarget starts non-blocking connects to a plain tcp client
// endpoint's one address, for an event loop to complete (see leanClient).
type leanTarget struct {
	sa      *rawsys.Sockaddr
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
	ap := netip.AddrPortFrom(ip.Unmap(), tc.port)
	t := &leanTarget{opts: tc.opts, timeout: w.timeout, input: w.input, typ: w.typ, addr: net.TCPAddrFromAddrPort(ap)}
	t.sa, t.domain = rawsys.NewSockaddr(ap)
	return t, true
}

// Timeout is the client's timeout= argument: how long the connect may
// take (0: no bound but the system's).
func (t *leanTarget) Timeout() time.Duration { return t.timeout }

// Connect makes a non-blocking socket with the client's options and starts
// connecting it. The caller owns the descriptor, and learns the outcome
// from the socket: writable once connected, or an error (SO_ERROR). The
// error, if the connect cannot start, is one Dial would have returned.
// Every call is one that cannot block, made raw (internal/rawsys): the
// relay's event loop calls it.
func (t *leanTarget) Connect() (int, error) {
	fd, err := rawsys.Socket(t.domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
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
			err = rawsys.Connect(fd, t.sa)
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
	rawsys.Close(fd)
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
