package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// listenLean listens on s and returns the listener and the lean path's
// descriptor of its socket.
func listenLean(t *testing.T, s string) (net.Listener, int) {
	t.Helper()
	srv, ln := parseListen(t, s)
	fd, ok := leanSocket(srv, ln)
	if !ok {
		t.Fatalf("leanSocket(%s) declined", s)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return ln, fd
}

// parseListen parses the server endpoint string s and listens on it, until
// the end of the test.
func parseListen(t *testing.T, s string) (Server, net.Listener) {
	t.Helper()
	srv, err := ParseServer(s)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return srv, ln
}

// dialAndAccept connects to ln and accepts the connection on lfd, the
// lean path's descriptor of ln's socket, as the event core does; both
// ends are closed at the end of the test.
func dialAndAccept(t *testing.T, ln net.Listener, lfd int) int {
	t.Helper()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	unix.Poll([]unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}}, 5000)
	fd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func fdOpt(t *testing.T, fd, level, opt int) int {
	t.Helper()
	v, err := unix.GetsockoptInt(fd, level, opt)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestLeanAcceptOptions: the lean path's descriptor of a listening socket
// is a non-blocking, close-on-exec duplicate, and the connections accepted
// on it have the options Go would have set on each (TCP_NODELAY,
// keep-alive 15/15/9), copied by the kernel from the listening socket;
// keepAlive=0 turns keep-alive off.
func TestLeanAcceptOptions(t *testing.T) {
	for _, c := range []struct {
		s                          string
		nodelay, ka, idle, intv, n int
	}{
		{"tcp:0:interface=127.0.0.1", 1, 1, 15, 15, 9},
		{"tcp:0:interface=127.0.0.1:keepAlive=0", 1, 0, -1, -1, -1},
		{"tcp:0:interface=127.0.0.1:keepAlive=40:keepAliveInterval=7:keepAliveCount=3:noDelay=0", 0, 1, 40, 7, 3},
	} {
		t.Run(c.s, func(t *testing.T) {
			ln, lfd := listenLean(t, c.s)
			for _, f := range []struct {
				cmd, flag int
			}{{unix.F_GETFL, unix.O_NONBLOCK}, {unix.F_GETFD, unix.FD_CLOEXEC}} {
				if v, err := unix.FcntlInt(uintptr(lfd), f.cmd, 0); err != nil || v&f.flag == 0 {
					t.Errorf("fcntl(%d): %#x %v, want flag %#x", f.cmd, v, err, f.flag)
				}
			}
			fd := dialAndAccept(t, ln, lfd)
			if v := fdOpt(t, fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); v != c.nodelay {
				t.Errorf("TCP_NODELAY %d, want %d", v, c.nodelay)
			}
			if v := fdOpt(t, fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE); v != c.ka {
				t.Errorf("SO_KEEPALIVE %d, want %d", v, c.ka)
			}
			if c.ka == 1 {
				for _, o := range []struct{ opt, want int }{{unix.TCP_KEEPIDLE, c.idle}, {unix.TCP_KEEPINTVL, c.intv}, {unix.TCP_KEEPCNT, c.n}} {
					if v := fdOpt(t, fd, unix.IPPROTO_TCP, o.opt); v != o.want {
						t.Errorf("option %d: %d, want %d", o.opt, v, o.want)
					}
				}
			}
		})
	}
}

// TestLeanClearsLinger: a listening socket that carries SO_LINGER (one
// inherited from another process may) has it turned off when the lean path
// takes it, so that no accepted connection's close blocks an event loop.
func TestLeanClearsLinger(t *testing.T) {
	srv, ln := parseListen(t, "tcp:0:interface=127.0.0.1")
	rc, err := ln.(interface {
		SyscallConn() (syscall.RawConn, error)
	}).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		err = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 30})
	})
	if err != nil {
		t.Fatal(err)
	}
	lfd, ok := leanSocket(srv, ln)
	if !ok {
		t.Fatal("leanSocket declined a tcp server")
	}
	defer unix.Close(lfd)
	fd := dialAndAccept(t, ln, lfd)
	l, err := unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER)
	if err != nil || l.Onoff != 0 {
		t.Errorf("an accepted connection's SO_LINGER is %+v, %v; want off", l, err)
	}
}

// TestLeanSocketDeclines: only a plain tcp server's socket is taken; and
// the descriptor is the caller's: closing it leaves the listener open.
func TestLeanSocketDeclines(t *testing.T) {
	for _, s := range []string{"unix:" + t.TempDir() + "/s.sock", "haproxy:tcp:0:interface=127.0.0.1"} {
		srv, err := ParseServer(s)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := srv.Listen(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if fd, ok := leanSocket(srv, ln); ok || fd != -1 {
			t.Errorf("leanSocket(%s) took it: %d", s, fd)
		}
		ln.Close()
	}
	srv, ln := parseListen(t, "tcp:0:interface=127.0.0.1")
	fd, ok := leanSocket(srv, ln)
	if !ok {
		t.Fatal("leanSocket declined a tcp server")
	}
	unix.Close(fd)
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("the listener after its lean descriptor closed: %v", err)
	}
	c.Close()
}

// TestLeanClient: a plain tcp client of an IP literal starts non-blocking
// connects with its options set; a host name, a bindAddress or another
// type is declined; a refused connect shows in SO_ERROR.
func TestLeanClient(t *testing.T) {
	for _, s := range []string{"tcp:localhost:80", "tcp:127.0.0.1:80:bindAddress=127.0.0.1", "unix:/x", "tls:127.0.0.1:443"} {
		c, err := ParseClient(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := leanClient(c); ok {
			t.Errorf("leanClient(%s) took it", s)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := ParseClient(fmt.Sprintf("tcp:127.0.0.1:%d:userTimeout=3000", portOf(ln)))
	if err != nil {
		t.Fatal(err)
	}
	lt, ok := leanClient(c)
	if !ok {
		t.Fatal("leanClient declined a tcp client of an IP literal")
	}
	fd, err := lt.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	if _, err := unix.Poll(pfd, 5000); err != nil || pfd[0].Revents&unix.POLLOUT == 0 {
		t.Fatalf("connect did not complete: %v %#x", err, pfd[0].Revents)
	}
	for _, o := range []struct{ level, opt, want int }{
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1}, {unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15}, {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 3000},
	} {
		if v := fdOpt(t, fd, o.level, o.opt); v != o.want {
			t.Errorf("option %d: %d, want %d", o.opt, v, o.want)
		}
	}
	port := portOf(ln)
	ln.Close()
	c, _ = ParseClient(fmt.Sprintf("tcp:127.0.0.1:%d", port))
	lt, _ = leanClient(c)
	fd2, err := lt.Connect()
	if err != nil {
		return // refused at once: fine
	}
	defer unix.Close(fd2)
	pfd = []unix.PollFd{{Fd: int32(fd2), Events: unix.POLLOUT}}
	unix.Poll(pfd, 5000)
	if v := fdOpt(t, fd2, unix.SOL_SOCKET, unix.SO_ERROR); v != int(unix.ECONNREFUSED) {
		t.Errorf("SO_ERROR %d, want ECONNREFUSED", v)
	}
	if err := lt.DialError(unix.ECONNREFUSED); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("DialError lost the errno: %v", err)
	}
}
