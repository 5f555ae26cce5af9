package rawsys

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pollFor waits up to five seconds for events on fd (unix.Poll), and
// returns what was reported; it fails the test if nothing was.
func pollFor(t *testing.T, fd int, events int16) int16 {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := unix.Poll(fds, 100)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatal("poll:", err)
		}
		if n > 0 {
			return fds[0].Revents
		}
	}
	t.Fatalf("descriptor %d not ready for %#x within 5s", fd, events)
	return 0
}

// closeLater closes fd when the test ends; a test that closes fd itself
// does not call it (the number may be in use again by then).
func closeLater(t *testing.T, fd int) {
	t.Cleanup(func() { unix.Close(fd) })
}

// isErrno says whether err is exactly the unix.Errno want, as the event
// core compares them (err == unix.EAGAIN), not merely wrapping it.
func isErrno(err error, want unix.Errno) bool {
	e, ok := err.(unix.Errno)
	return ok && e == want
}

// listener makes a non-blocking listening TCP socket on the loopback
// address ip (port chosen by the system) with rawsys.Socket, and returns it
// and its address; it skips the test if the family is not configured.
func listener(t *testing.T, ip netip.Addr) (int, netip.AddrPort) {
	t.Helper()
	domain, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Addr: ip.As16()})
	if ip.Is4() {
		domain, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: ip.As4()}
	}
	fd, err := Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("socket(%v): %v", ip, err)
	}
	closeLater(t, fd)
	if err := unix.Bind(fd, sa); err != nil {
		t.Skipf("bind %v: %v", ip, err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, netip.AddrPortFrom(ip, sockaddrAddrPort(got).Port())
}

// sockaddrAddrPort is sa as a netip.AddrPort.
func sockaddrAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// dial starts a non-blocking connect to ap with NewSockaddr, Socket and
// Connect, as the lean path's target does, and waits until it completes
// (writable, SO_ERROR 0).
func dial(t *testing.T, ap netip.AddrPort) int {
	t.Helper()
	sa, domain := NewSockaddr(ap)
	fd, err := Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		t.Fatal("socket:", err)
	}
	closeLater(t, fd)
	if err := Connect(fd, sa); err != nil && !isErrno(err, unix.EINPROGRESS) {
		t.Fatal("connect:", err)
	}
	pollFor(t, fd, unix.POLLOUT)
	if v, err := GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || v != 0 {
		t.Fatalf("SO_ERROR after the connect: %v, %v", unix.Errno(v), err)
	}
	return fd
}

// accept waits for a connection on the non-blocking listener lfd and takes
// it with Accept4; the descriptor is closed when the test ends.
func accept(t *testing.T, lfd int) (int, netip.AddrPort) {
	t.Helper()
	fd, peer := acceptOwn(t, lfd)
	closeLater(t, fd)
	return fd, peer
}

// acceptOwn is accept for a test that closes the descriptor itself.
func acceptOwn(t *testing.T, lfd int) (int, netip.AddrPort) {
	t.Helper()
	pollFor(t, lfd, unix.POLLIN)
	fd, peer, err := Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal("accept4:", err)
	}
	return fd, peer
}

// TestConnectAccept4: a connect made with NewSockaddr, Socket and Connect
// reaches a listener over 127.0.0.1 and [::1], and Accept4 returns a
// non-blocking, close-on-exec descriptor and the dialer's own address as
// its peer; bytes pass both ways. On an empty queue Accept4 says EAGAIN.
func TestConnectAccept4(t *testing.T) {
	for _, ip := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()} {
		t.Run(ip.String(), func(t *testing.T) {
			lfd, addr := listener(t, ip)
			if fd, peer, err := Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC); !isErrno(err, unix.EAGAIN) || fd != -1 || peer.IsValid() {
				t.Fatalf("Accept4 on an empty queue = %d, %v, %v; want -1, no address, EAGAIN", fd, peer, err)
			}
			cfd := dial(t, addr)
			afd, peer := accept(t, lfd)
			local, err := unix.Getsockname(cfd)
			if err != nil {
				t.Fatal(err)
			}
			if want := sockaddrAddrPort(local); peer != want {
				t.Errorf("Accept4's peer = %v, want the dialer's local address %v", peer, want)
			}
			if remote, _ := unix.Getpeername(cfd); sockaddrAddrPort(remote) != addr {
				t.Errorf("the dialer is connected to %v, want %v", sockaddrAddrPort(remote), addr)
			}
			if fl, err := unix.FcntlInt(uintptr(afd), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
				t.Errorf("accepted descriptor flags %#x, %v; want O_NONBLOCK", fl, err)
			}
			if fl, err := unix.FcntlInt(uintptr(afd), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
				t.Errorf("accepted descriptor fd flags %#x, %v; want FD_CLOEXEC", fl, err)
			}
			if n, err := Write(cfd, []byte("ping")); n != 4 || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			pollFor(t, afd, unix.POLLIN)
			buf := make([]byte, 16)
			if n, err := Read(afd, buf); err != nil || string(buf[:n]) != "ping" {
				t.Fatalf("Read = %q, %v; want ping", buf[:n], err)
			}
			if n, err := Write(afd, []byte("pong")); n != 4 || err != nil {
				t.Fatalf("Write back = %d, %v", n, err)
			}
			pollFor(t, cfd, unix.POLLIN)
			if n, err := Read(cfd, buf); err != nil || string(buf[:n]) != "pong" {
				t.Fatalf("Read back = %q, %v; want pong", buf[:n], err)
			}
		})
	}
}

// TestNewSockaddr: the kernel form of an address has its family, its port
// in network byte order and its address; an IPv4-mapped IPv6 address is
// made IPv4, as the sockets the lean path makes for it are.
func TestNewSockaddr(t *testing.T) {
	for _, tc := range []struct {
		in     string
		domain int
	}{
		{"127.0.0.1:8080", unix.AF_INET},
		{"[::ffff:10.1.2.3]:443", unix.AF_INET},
		{"[::1]:1", unix.AF_INET6},
		{"[2001:db8::7]:65535", unix.AF_INET6},
	} {
		ap := netip.MustParseAddrPort(tc.in)
		sa, domain := NewSockaddr(ap)
		if domain != tc.domain {
			t.Errorf("%s: family %d, want %d", tc.in, domain, tc.domain)
			continue
		}
		want := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if got := addrPort(&sa.raw); got != want {
			t.Errorf("%s: kernel form reads back as %v", tc.in, got)
		}
		wantLen := uint32(unix.SizeofSockaddrInet4)
		if domain == unix.AF_INET6 {
			wantLen = unix.SizeofSockaddrInet6
		}
		if sa.len != wantLen {
			t.Errorf("%s: length %d, want %d", tc.in, sa.len, wantLen)
		}
		// The port's bytes, as the kernel reads them: big-endian.
		b := (*[4]byte)(unsafe.Pointer(&sa.raw))
		if got := uint16(b[2])<<8 | uint16(b[3]); got != ap.Port() {
			t.Errorf("%s: port bytes %#x %#x, want %d big-endian", tc.in, b[2], b[3], ap.Port())
		}
	}
}

// TestReadWriteShutdown: on a non-blocking socketpair, Write and Read move
// bytes, a Read with nothing to read says EAGAIN, Shutdown(SHUT_WR) is an
// end of file (0, nil) for the peer while the other direction goes on,
// and a Write after it fails with EPIPE.
func TestReadWriteShutdown(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := fds[0], fds[1]
	closeLater(t, a)
	closeLater(t, b)
	buf := make([]byte, 64)
	if n, err := Read(b, buf); !isErrno(err, unix.EAGAIN) || n > 0 {
		t.Errorf("Read with nothing sent = %d, %v; want EAGAIN", n, err)
	}
	if n, err := Write(a, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if n, err := Read(b, buf); n != 5 || err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if err := Shutdown(a, unix.SHUT_WR); err != nil {
		t.Fatal("Shutdown:", err)
	}
	if n, err := Read(b, buf); n != 0 || err != nil {
		t.Errorf("Read after the peer's Shutdown = %d, %v; want 0, nil (end of file)", n, err)
	}
	if n, err := Write(b, []byte("back")); n != 4 || err != nil {
		t.Fatalf("Write the other way after the half-close = %d, %v", n, err)
	}
	if n, err := Read(a, buf); n != 4 || err != nil || string(buf[:n]) != "back" {
		t.Errorf("Read the other way = %q, %v", buf[:n], err)
	}
	if _, err := Write(a, []byte("x")); !isErrno(err, unix.EPIPE) {
		t.Errorf("Write after Shutdown(SHUT_WR) = %v, want EPIPE", err)
	}
	if err := Shutdown(a, 42); !isErrno(err, unix.EINVAL) {
		t.Errorf("Shutdown(42) = %v, want EINVAL", err)
	}
}

// TestClose: Close closes the descriptor once; closing it again, or -1,
// says EBADF, as does every call on a closed descriptor.
func TestClose(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeLater(t, fds[1])
	if err := Close(fds[0]); err != nil {
		t.Fatal("Close:", err)
	}
	if err := Close(fds[0]); !isErrno(err, unix.EBADF) {
		t.Errorf("second Close = %v, want EBADF", err)
	}
	if err := Close(-1); !isErrno(err, unix.EBADF) {
		t.Errorf("Close(-1) = %v, want EBADF", err)
	}
	if _, err := Read(-1, make([]byte, 1)); !isErrno(err, unix.EBADF) {
		t.Errorf("Read(-1) = %v, want EBADF", err)
	}
	if _, err := Write(-1, []byte("x")); !isErrno(err, unix.EBADF) {
		t.Errorf("Write(-1) = %v, want EBADF", err)
	}
	if err := Shutdown(-1, unix.SHUT_WR); !isErrno(err, unix.EBADF) {
		t.Errorf("Shutdown(-1) = %v, want EBADF", err)
	}
	if _, err := GetsockoptInt(-1, unix.SOL_SOCKET, unix.SO_ERROR); !isErrno(err, unix.EBADF) {
		t.Errorf("GetsockoptInt(-1) = %v, want EBADF", err)
	}
	if err := SetLingerZero(-1); !isErrno(err, unix.EBADF) {
		t.Errorf("SetLingerZero(-1) = %v, want EBADF", err)
	}
	if _, _, err := Accept4(-1, 0); !isErrno(err, unix.EBADF) {
		t.Errorf("Accept4(-1) = %v, want EBADF", err)
	}
	if err := Connect(-1, new(Sockaddr)); !isErrno(err, unix.EBADF) {
		t.Errorf("Connect(-1) = %v, want EBADF", err)
	}
	if _, err := Socket(-1, unix.SOCK_STREAM, 0); !isErrno(err, unix.EAFNOSUPPORT) {
		t.Errorf("Socket(-1, ...) = %v, want EAFNOSUPPORT", err)
	}
}

// TestSetLingerZero: a TCP socket closed after SetLingerZero resets its
// connection: the peer reads ECONNRESET, not an end of file. Without it,
// Close sends a FIN.
func TestSetLingerZero(t *testing.T) {
	for _, reset := range []bool{true, false} {
		lfd, addr := listener(t, netip.MustParseAddr("127.0.0.1"))
		cfd := dial(t, addr)
		afd, _ := acceptOwn(t, lfd)
		if reset {
			if err := SetLingerZero(afd); err != nil {
				t.Fatal("SetLingerZero:", err)
			}
			if l, err := unix.GetsockoptLinger(afd, unix.SOL_SOCKET, unix.SO_LINGER); err != nil || l.Onoff == 0 || l.Linger != 0 {
				t.Fatalf("SO_LINGER after SetLingerZero = %+v, %v; want on, 0", l, err)
			}
		}
		if err := Close(afd); err != nil {
			t.Fatal("Close:", err)
		}
		pollFor(t, cfd, unix.POLLIN)
		n, err := Read(cfd, make([]byte, 8))
		switch {
		case reset && !isErrno(err, unix.ECONNRESET):
			t.Errorf("after a close with SO_LINGER 0 the peer read %d, %v; want ECONNRESET", n, err)
		case !reset && (n != 0 || err != nil):
			t.Errorf("after a plain close the peer read %d, %v; want 0, nil (end of file)", n, err)
		}
	}
}

// TestGetsockoptSOError: a non-blocking connect to a closed port becomes
// writable with SO_ERROR ECONNREFUSED, which reading clears; SetsockoptInt
// sets what GetsockoptInt reads back.
func TestGetsockoptSOError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	sa, domain := NewSockaddr(closed)
	fd, err := Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeLater(t, fd)
	if err := Connect(fd, sa); err != nil && !isErrno(err, unix.EINPROGRESS) && !isErrno(err, unix.ECONNREFUSED) {
		t.Fatalf("Connect = %v, want EINPROGRESS (or ECONNREFUSED at once)", err)
	} else if err == nil {
		t.Fatal("a connect to a closed port succeeded")
	} else if isErrno(err, unix.EINPROGRESS) {
		pollFor(t, fd, unix.POLLOUT)
		if v, err := GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || unix.Errno(v) != unix.ECONNREFUSED {
			t.Errorf("SO_ERROR = %v, %v; want ECONNREFUSED", unix.Errno(v), err)
		}
		if v, err := GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || v != 0 {
			t.Errorf("SO_ERROR read again = %v, %v; want 0 (cleared)", unix.Errno(v), err)
		}
	}
	for _, v := range []int{1, 0} {
		if err := SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, v); err != nil {
			t.Fatal("SetsockoptInt:", err)
		}
		if got, err := GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil || (got != 0) != (v != 0) {
			t.Errorf("TCP_NODELAY set to %d reads %d, %v", v, got, err)
		}
	}
	if err := SetsockoptInt(fd, unix.SOL_SOCKET, 0x7fff, 1); !isErrno(err, unix.ENOPROTOOPT) {
		t.Errorf("SetsockoptInt of an unknown option = %v, want ENOPROTOOPT", err)
	}
}

// TestEpollPoll: EpollPoll never waits: it returns 0 while nothing is
// ready, and the registered events, with their data, once something is;
// EpollCtl adds and removes, with the errors as unix.Errno.
func TestEpollPoll(t *testing.T) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	closeLater(t, epfd)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeLater(t, fds[0])
	closeLater(t, fds[1])
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: 12345, Pad: 678}
	if err := EpollCtl(epfd, unix.EPOLL_CTL_ADD, fds[0], &ev); err != nil {
		t.Fatal("EpollCtl ADD:", err)
	}
	if err := EpollCtl(epfd, unix.EPOLL_CTL_ADD, fds[0], &ev); !isErrno(err, unix.EEXIST) {
		t.Errorf("EpollCtl ADD twice = %v, want EEXIST", err)
	}
	events := make([]unix.EpollEvent, 8)
	start := time.Now()
	if n, err := EpollPoll(epfd, events); n != 0 || err != nil {
		t.Fatalf("EpollPoll with nothing ready = %d, %v; want 0, nil", n, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("EpollPoll with nothing ready took %v: it waited", d)
	}
	if n, err := EpollPoll(epfd, nil); n != 0 || err != nil {
		t.Errorf("EpollPoll into no events = %d, %v; want 0, nil", n, err)
	}
	if _, err := Write(fds[1], []byte("x")); err != nil {
		t.Fatal(err)
	}
	var n int
	for deadline := time.Now().Add(5 * time.Second); n == 0 && time.Now().Before(deadline); {
		if n, err = EpollPoll(epfd, events); err != nil {
			t.Fatal("EpollPoll:", err)
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if n != 1 || events[0].Events&unix.EPOLLIN == 0 || events[0].Fd != 12345 || events[0].Pad != 678 {
		t.Fatalf("EpollPoll = %d, %+v; want one EPOLLIN event with its data", n, events[0])
	}
	if err := EpollCtl(epfd, unix.EPOLL_CTL_DEL, fds[0], nil); err != nil {
		t.Fatal("EpollCtl DEL:", err)
	}
	if n, err := EpollPoll(epfd, events); n != 0 || err != nil {
		t.Errorf("EpollPoll after DEL = %d, %v; want 0, nil", n, err)
	}
	if err := EpollCtl(epfd, unix.EPOLL_CTL_DEL, fds[0], nil); !isErrno(err, unix.ENOENT) {
		t.Errorf("EpollCtl DEL twice = %v, want ENOENT", err)
	}
	if err := EpollCtl(epfd, unix.EPOLL_CTL_ADD, -1, &ev); !isErrno(err, unix.EBADF) {
		t.Errorf("EpollCtl ADD of -1 = %v, want EBADF", err)
	}
	if _, err := EpollPoll(fds[0], events); !isErrno(err, unix.EINVAL) {
		t.Errorf("EpollPoll on a socket = %v, want EINVAL", err)
	}
}

// TestSplice: Splice moves a socket's bytes into a pipe and from the pipe
// into another socket, and says EAGAIN when the source has nothing.
func TestSplice(t *testing.T) {
	lfd, addr := listener(t, netip.MustParseAddr("127.0.0.1"))
	src := dial(t, addr)
	in, _ := accept(t, lfd)
	out := dial(t, addr)
	dst, _ := accept(t, lfd)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	closeLater(t, p[0])
	closeLater(t, p[1])
	const flags = unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MOVE
	if n, err := Splice(in, p[1], 1<<16, flags); !isErrno(err, unix.EAGAIN) {
		t.Errorf("Splice with nothing sent = %d, %v; want EAGAIN", n, err)
	}
	if _, err := Write(src, []byte("spliced")); err != nil {
		t.Fatal(err)
	}
	pollFor(t, in, unix.POLLIN)
	n, err := Splice(in, p[1], 1<<16, flags)
	if n != 7 || err != nil {
		t.Fatalf("Splice into the pipe = %d, %v; want 7", n, err)
	}
	if n, err := Splice(p[0], out, n, flags); n != 7 || err != nil {
		t.Fatalf("Splice out of the pipe = %d, %v; want 7", n, err)
	}
	pollFor(t, dst, unix.POLLIN)
	buf := make([]byte, 16)
	if n, err := Read(dst, buf); err != nil || string(buf[:n]) != "spliced" {
		t.Errorf("through the pipe: %q, %v", buf[:n], err)
	}
}

// TestErrnoValues: the errors are bare unix.Errno values, so that
// errors.Is and == both work, and a success is a nil error, not Errno(0).
func TestErrnoValues(t *testing.T) {
	err := Close(-1)
	if _, ok := err.(unix.Errno); !ok || err != unix.EBADF || !errors.Is(err, unix.EBADF) {
		t.Errorf("Close(-1) = %#v (%T), want unix.EBADF", err, err)
	}
	if errno(0) != nil {
		t.Error("errno(0) is not nil")
	}
}
