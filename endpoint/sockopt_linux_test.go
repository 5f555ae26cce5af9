package endpoint

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// sockopt reads an integer socket option of c from the kernel.
func sockopt(t *testing.T, c syscall.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// acceptedPair listens on s, dials it with client (a format taking the
// port), and returns the accepted and the dialled TCP connections.
func acceptedPair(t *testing.T, s, client string) (accepted, dialled *net.TCPConn, ln net.Listener) {
	t.Helper()
	ln = listen(t, s)
	got := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		got <- c
	}()
	c, err := Dial(context.Background(), fmt.Sprintf(client, portOf(ln)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a := <-got
	if a == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close() })
	return a.(*net.TCPConn), c.(*net.TCPConn), ln
}

// TestSocketOptions: every socket option argument reaches the kernel, on
// the listening socket, the accepted connection and the dialled one
// (getsockopt on the real sockets), and the defaults are Go's.
func TestSocketOptions(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		a, d, _ := acceptedPair(t, "tcp:0:interface=127.0.0.1", "tcp:127.0.0.1:%d")
		for name, c := range map[string]*net.TCPConn{"accepted": a, "dialled": d} {
			if sockopt(t, c, unix.SOL_SOCKET, unix.SO_KEEPALIVE) != 1 || sockopt(t, c, unix.IPPROTO_TCP, unix.TCP_NODELAY) != 1 {
				t.Errorf("%s: want Go's keep-alive and TCP_NODELAY on", name)
			}
			if v := sockopt(t, c, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); v != 0 {
				t.Errorf("%s: TCP_USER_TIMEOUT %d, want the system's 0", name, v)
			}
		}
	})
	t.Run("set", func(t *testing.T) {
		opts := ":keepAlive=30:keepAliveInterval=5:keepAliveCount=3:userTimeout=4000:noDelay=0"
		a, d, _ := acceptedPair(t, "tcp:0:interface=127.0.0.1"+opts, "tcp:127.0.0.1:%d"+opts)
		for name, c := range map[string]*net.TCPConn{"accepted": a, "dialled": d} {
			for _, o := range []struct {
				what       string
				level, opt int
				want       int
			}{
				{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
				{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 30},
				{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 5},
				{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3},
				{"TCP_USER_TIMEOUT", unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 4000},
				{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 0},
			} {
				if got := sockopt(t, c, o.level, o.opt); got != o.want {
					t.Errorf("%s: %s = %d, want %d", name, o.what, got, o.want)
				}
			}
		}
	})
	t.Run("keep-alive off", func(t *testing.T) {
		a, d, _ := acceptedPair(t, "tcp:0:interface=127.0.0.1:keepAlive=0", "tcp:127.0.0.1:%d:keepAlive=0")
		if sockopt(t, a, unix.SOL_SOCKET, unix.SO_KEEPALIVE) != 0 || sockopt(t, d, unix.SOL_SOCKET, unix.SO_KEEPALIVE) != 0 {
			t.Error("keepAlive=0 left keep-alive on")
		}
	})
	t.Run("reusePort", func(t *testing.T) {
		first := listen(t, "tcp:0:interface=127.0.0.1:reusePort=1")
		if v := sockopt(t, first.(*net.TCPListener), unix.SOL_SOCKET, unix.SO_REUSEPORT); v != 1 {
			t.Fatalf("SO_REUSEPORT = %d", v)
		}
		// A second listener on the same port: the point of the option.
		listen(t, fmt.Sprintf("tcp:%d:interface=127.0.0.1:reusePort=1", portOf(first)))
		if _, err := Listen(context.Background(), fmt.Sprintf("tcp:%d:interface=127.0.0.1", portOf(first))); err == nil {
			t.Error("a listener without reusePort=1 shared the port")
		}
	})
	t.Run("ipv6Only", func(t *testing.T) {
		for _, tc := range []struct {
			s    string
			want int
		}{{"tcp:0:interface=[::]", 0}, {"tcp:0:interface=[::]:ipv6Only=1", 1}, {"tcp6:0:ipv6Only=0", 0},
			{"tcp6:0:interface=[::1]", 1}, {"tcp6:0:interface=[::1]:ipv6Only=1", 1}} {
			ln := listen(t, tc.s)
			if v := sockopt(t, ln.(*net.TCPListener), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); v != tc.want {
				t.Errorf("%s: IPV6_V6ONLY = %d, want %d", tc.s, v, tc.want)
			}
		}
	})
	t.Run("tls", func(t *testing.T) {
		p := newPKI(t, "ca")
		cert, key := p.issue(t.TempDir(), "server", leafOpts{})
		ln := listen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key+":userTimeout=3000:noDelay=0")
		got := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				Handshake(context.Background(), c)
			}
			got <- c
		}()
		c, err := Dial(context.Background(), fmt.Sprintf("tls:localhost:%d:trustRoots=%s:userTimeout=2000", portOf(ln), p.caFile))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := <-got
		defer s.Close()
		raw := tcpUnder(t, s)
		if v := sockopt(t, raw, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); v != 3000 {
			t.Errorf("tls server's connection: TCP_USER_TIMEOUT = %d, want 3000", v)
		}
		if v := sockopt(t, raw, unix.IPPROTO_TCP, unix.TCP_NODELAY); v != 0 {
			t.Errorf("tls server's connection: TCP_NODELAY = %d, want 0", v)
		}
		craw := tcpUnder(t, c)
		if v := sockopt(t, craw, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT); v != 2000 {
			t.Errorf("tls client's connection: TCP_USER_TIMEOUT = %d, want 2000", v)
		}
	})
}

// tcpUnder returns the TCP connection under c's wrappers.
func tcpUnder(t *testing.T, c net.Conn) *net.TCPConn {
	t.Helper()
	for {
		if tc, ok := c.(*net.TCPConn); ok {
			return tc
		}
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			t.Fatalf("%T has no TCP connection under it", c)
		}
		c = w.NetConn()
	}
}
