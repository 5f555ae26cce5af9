package endpoint

import (
	"errors"
	"math"
	"net"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

// The TCP socket options, declared once and shared by every type that
// makes TCP sockets: the tcp, tcp6, ssl and tls servers and clients (the
// proxies and haproxy: pass them on through their inner endpoint string).
var (
	keepAliveParam = driver.IntParam("keepAlive",
		"seconds a connection may be idle before TCP keep-alive probes start; 0 turns keep-alive off; absent is Go's default (15)",
		0, math.MaxInt32)
	keepAliveIntervalParam = driver.IntParam("keepAliveInterval",
		"seconds between keep-alive probes; absent is Go's default (15)", 1, math.MaxInt32)
	keepAliveCountParam = driver.IntParam("keepAliveCount",
		"unanswered keep-alive probes after which the connection is dropped; absent is Go's default (9)", 1, 127)
	userTimeoutParam = driver.MillisParam("userTimeout",
		"milliseconds sent data may stay unacknowledged before the connection is dropped (TCP_USER_TIMEOUT, Linux); absent or 0 is the system's")
	noDelayParam = driver.BoolParam("noDelay",
		"1 sends small writes at once (TCP_NODELAY, Go's default); 0 lets Nagle's algorithm gather them").Default("1")
	reusePortParam = driver.BoolParam("reusePort",
		"1 lets several sockets, in one process or several, listen on the port (SO_REUSEPORT); the kernel spreads connections among them").Default("0")
	ipv6OnlyParam = driver.BoolParam("ipv6Only",
		"on an IPv6 address, 1 takes IPv6 connections only (IPV6_V6ONLY), 0 takes IPv4 ones too; absent keeps tcp's and tcp6's own rule")
)

// socketArgs are the socket option arguments of client types.
func socketArgs() []driver.Arg {
	return []driver.Arg{keepAliveParam.Arg(), keepAliveIntervalParam.Arg(), keepAliveCountParam.Arg(),
		userTimeoutParam.Arg(), noDelayParam.Arg()}
}

// listenSocketArgs are the socket option arguments of server types.
func listenSocketArgs() []driver.Arg {
	return append(socketArgs(), reusePortParam.Arg(), ipv6OnlyParam.Arg())
}

// sockOpts are the socket options a string asks for, read once.
type sockOpts struct {
	keepAlive   net.KeepAliveConfig // Enable false and Idle -1: keep-alive off
	userTimeout time.Duration       // 0: the system's
	nagle       bool                // noDelay=0: TCP_NODELAY off (Go turns it on)
	reusePort   bool
	ipv6Only    int // -1 off, 1 on, 0 as the type decides
}

// readSockOpts reads the socket options of a type that declares them.
func readSockOpts(a *driver.Args) sockOpts {
	o := sockOpts{keepAlive: net.KeepAliveConfig{Enable: true}}
	if !keepAliveParam.In(a.Spec) {
		return o
	}
	switch {
	case keepAliveParam.Absent(a):
	case keepAliveParam.Get(a) == 0:
		o.keepAlive = net.KeepAliveConfig{Enable: false, Idle: -1}
	default:
		o.keepAlive.Idle = time.Duration(keepAliveParam.Get(a)) * time.Second
	}
	if !keepAliveIntervalParam.Absent(a) {
		o.keepAlive.Interval = time.Duration(keepAliveIntervalParam.Get(a)) * time.Second
	}
	if !keepAliveCountParam.Absent(a) {
		o.keepAlive.Count = keepAliveCountParam.Get(a)
	}
	o.userTimeout = userTimeoutParam.Get(a)
	o.nagle = !noDelayParam.Get(a)
	if reusePortParam.In(a.Spec) {
		o.reusePort = reusePortParam.Get(a)
		if !ipv6OnlyParam.Absent(a) {
			o.ipv6Only = -1
			if ipv6OnlyParam.Get(a) {
				o.ipv6Only = 1
			}
		}
	}
	return o
}

// listenConfig is a net.ListenConfig that makes the listening socket and
// the connections it accepts as o says. Keep-alive Go applies to each
// accepted connection; the options a listening socket passes on to the
// connections it accepts (TCP_USER_TIMEOUT on Linux) are set on it.
func (o sockOpts) listenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAlive: o.keepAliveField(), KeepAliveConfig: o.keepAlive,
		Control: func(network, address string, c syscall.RawConn) error { return o.control(c, true) }}
}

// keepAliveField is net's older KeepAlive field, which must be negative
// for keep-alive to be off (a disabled KeepAliveConfig alone is not).
func (o sockOpts) keepAliveField() time.Duration {
	if !o.keepAlive.Enable && o.keepAlive.Idle < 0 {
		return -1
	}
	return 0
}

// dialer is a net.Dialer that makes its sockets as o says.
func (o sockOpts) dialer() *net.Dialer {
	return &net.Dialer{KeepAlive: o.keepAliveField(), KeepAliveConfig: o.keepAlive,
		Control: func(network, address string, c syscall.RawConn) error { return o.control(c, false) }}
}

// control sets the options that must be set before bind or connect.
func (o sockOpts) control(c syscall.RawConn, listening bool) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = setSockOpts(fd, o, listening)
	})
	if err != nil {
		return err
	}
	return serr
}

// apply sets what Go sets itself after connect or accept (TCP_NODELAY on),
// when o asks otherwise.
func (o sockOpts) apply(c net.Conn) error {
	if tc, ok := c.(*net.TCPConn); ok && o.nagle {
		return tc.SetNoDelay(false)
	}
	return nil
}

// applyKeepAlive sets keep-alive on an accepted connection as a listener
// made with listenConfig would have (net's rule: an older KeepAlive field
// that is not negative turns a disabled KeepAliveConfig on with that idle
// time), for a listener inherited from another process, which has none.
func (o sockOpts) applyKeepAlive(c net.Conn) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	cfg, field := o.keepAlive, o.keepAliveField()
	if !cfg.Enable && field >= 0 {
		cfg = net.KeepAliveConfig{Enable: true, Idle: field}
	}
	if !cfg.Enable {
		return tc.SetKeepAlive(false)
	}
	return tc.SetKeepAliveConfig(cfg)
}

// optsListener applies the per-connection options Go does not, as each
// connection is accepted, and with keepAlive the keep-alive options too.
type optsListener struct {
	net.Listener
	opts      sockOpts
	keepAlive bool
}

// SyscallConn is the socket's, so that an Inheritor can hand it on.
func (l *optsListener) SyscallConn() (syscall.RawConn, error) {
	sc, ok := l.Listener.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

func (l *optsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	err = l.opts.apply(c)
	if err == nil && l.keepAlive {
		err = l.opts.applyKeepAlive(c)
	}
	if err != nil {
		c.Close()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: c.RemoteAddr(), Err: err}
	}
	return c, nil
}
