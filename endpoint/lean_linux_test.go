package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// leanListen listens on s and wraps the listener for the lean path.
func listenLean(t *testing.T, s string) net.Listener {
	t.Helper()
	srv, err := ParseServer(s)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	lln, ok := leanListen(srv, ln)
	if !ok {
		ln.Close()
		t.Fatalf("leanListen(%s) declined", s)
	}
	t.Cleanup(func() { lln.Close() })
	return lln
}

func fdOpt(t *testing.T, fd, level, opt int) int {
	t.Helper()
	v, err := unix.GetsockoptInt(fd, level, opt)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestLeanAcceptOptions: a lean listener's connections are bare
// descriptors with the options Go would have set on each (TCP_NODELAY,
// keep-alive 15/15/9), copied by the kernel from the listening socket;
// keepAlive=0 turns keep-alive off; the peer address is accept's.
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
			ln := listenLean(t, c.s)
			d, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			conn, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			lc, ok := conn.(*leanConn)
			if !ok {
				t.Fatalf("accepted a %T", conn)
			}
			if got, want := lc.RemoteAddr().String(), d.LocalAddr().String(); got != want {
				t.Errorf("RemoteAddr %s, want %s", got, want)
			}
			if _, err := lc.Read(make([]byte, 1)); err == nil {
				t.Error("Read on a leanConn worked")
			}
			fd := lc.TakeFD()
			if fd < 0 {
				t.Fatal("TakeFD: -1")
			}
			defer unix.Close(fd)
			if lc.TakeFD() != -1 || lc.Close() != nil {
				t.Error("a taken leanConn still owns its descriptor")
			}
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
			fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
			if err != nil || fl&unix.O_NONBLOCK == 0 {
				t.Errorf("accepted descriptor not non-blocking: %#x %v", fl, err)
			}
		})
	}
}

// TestLeanListenDeclines: only a plain tcp server is taken; closing the
// lean listener ends a waiting Accept with net.ErrClosed, and a
// leanConn closed before it is taken is closed once.
func TestLeanListenDeclines(t *testing.T) {
	for _, s := range []string{"unix:" + t.TempDir() + "/s.sock", "haproxy:tcp:0:interface=127.0.0.1"} {
		srv, err := ParseServer(s)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := srv.Listen(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := leanListen(srv, ln); ok || got != ln {
			t.Errorf("leanListen(%s) took it", s)
		}
		ln.Close()
	}
	ln := listenLean(t, "tcp:0:interface=127.0.0.1")
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.(*leanConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := d.Read(make([]byte, 1)); !errors.Is(err, unix.ECONNRESET) {
		t.Errorf("peer of an aborted leanConn read %v, want a reset", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	ln.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
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
