package relay

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenFD returns a fresh listening socket on 127.0.0.1 as a bare
// non-blocking, close-on-exec descriptor, as lean.Socket hands it to
// Serve, and its address. The net.Listener it was made with is closed: the
// descriptor is the socket's only one.
func listenFD(t *testing.T) (int, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	var derr error
	if err := rc.Control(func(lfd uintptr) { fd, derr = unix.FcntlInt(lfd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil {
		t.Fatal(err, derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return fd, ln.Addr().String()
}

// connectTo is a ServerConfig.Connect that starts a non-blocking connect
// to addr, as a lean.Target does; an error is the connect's own, at once.
// It is called on several loops at once: each call has its own
// unix.SockaddrInet4, which Connect writes to.
func connectTo(addr *net.TCPAddr) func() (int, error) {
	var ip [4]byte
	copy(ip[:], addr.IP.To4())
	return func() (int, error) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, os.NewSyscallError("socket", err)
		}
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: addr.Port, Addr: ip}); err != nil && err != unix.EINPROGRESS {
			unix.Close(fd)
			return -1, os.NewSyscallError("connect", err)
		}
		return fd, nil
	}
}

// backend listens on 127.0.0.1 and runs handle for each connection it
// accepts, in a goroutine of its own, which closes the connection after;
// it counts the connections. An accept that fails (out of descriptors,
// TestServeAcceptPause) is tried again until the listener is closed.
func backend(t *testing.T, handle func(net.Conn)) (*net.TCPAddr, *atomic.Int32) {
	t.Helper()
	ln := listen(t, "tcp")
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			n.Add(1)
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr), &n
}

// echoBack is a backend's handler that sends back what it reads until the end
// of file.
func echoBack(c net.Conn) { io.Copy(c, c) }

// A serverEnd is what ServerConfig.Ended was told of one connection.
type serverEnd struct {
	peer     netip.AddrPort
	accepted time.Time
	r        Result
}

// A testServer is a Server on a fresh loopback listening socket, with its
// callbacks counted and its ends collected.
type testServer struct {
	*Server
	addr     string
	ends     chan serverEnd
	accepted atomic.Int32
	queued   atomic.Int32
}

// serve starts a Server with cfg on a fresh listening socket, setting cfg's
// Accepted, Queued and Ended to count and collect. When the test ends the
// Server is stopped, its pairs cut, and its drain awaited.
func serve(t *testing.T, j *Joiner, cfg ServerConfig) *testServer {
	t.Helper()
	fd, addr := listenFD(t)
	return serveFD(t, j, cfg, fd, addr)
}

// serveFD is serve on fd, a listening socket from listenFD, at addr.
func serveFD(t *testing.T, j *Joiner, cfg ServerConfig, fd int, addr string) *testServer {
	t.Helper()
	ts := &testServer{addr: addr, ends: make(chan serverEnd, 100)}
	cfg.Accepted = func() { ts.accepted.Add(1) }
	cfg.Queued = func() { ts.queued.Add(1) }
	cfg.Ended = func(peer netip.AddrPort, at time.Time, r Result) { ts.ends <- serverEnd{peer, at, r} }
	s, err := j.Serve(fd, cfg)
	if err != nil {
		unix.Close(fd)
		t.Fatal("Serve:", err)
	}
	ts.Server = s
	t.Cleanup(func() {
		s.Stop()
		s.Cut(errors.New("test over"))
		select {
		case <-s.Drained():
		case <-time.After(10 * time.Second):
			t.Error("the Server did not drain after Stop and Cut")
		}
	})
	return ts
}

// end waits for the next connection's end.
func (ts *testServer) end(t *testing.T) serverEnd {
	t.Helper()
	select {
	case e := <-ts.ends:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("Ended was not called")
		return serverEnd{}
	}
}

// noEnd says no connection's end has been reported.
func (ts *testServer) noEnd(t *testing.T) {
	t.Helper()
	select {
	case e := <-ts.ends:
		t.Errorf("Ended was called (%v, %v) while the connection was open", e.peer, e.r.Err)
	default:
	}
}

// dial connects to the Server, with deadlines so that nothing hangs.
func (ts *testServer) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// dialFrom dials the Server from a port bound first, so that the client's
// address is known even when the dial fails: a Server that resets a
// connection at once (its connect failed) may do it before the dial has
// returned.
func (ts *testServer) dialFrom(t *testing.T) (net.Conn, netip.AddrPort, error) {
	t.Helper()
	var local netip.AddrPort
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) {
			if err = unix.Bind(int(fd), &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				return
			}
			var sa unix.Sockaddr
			if sa, err = unix.Getsockname(int(fd)); err == nil {
				local = netip.AddrPortFrom(netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr), uint16(sa.(*unix.SockaddrInet4).Port))
			}
		})
		return err
	}}
	c, err := d.Dial("tcp", ts.addr)
	if err != nil {
		return nil, local, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, local, nil
}

// dialReset dials the Server, sends a byte, and says whether the client
// was reset, which the kernel reports once: to the dial, the write or the
// read, whichever comes first. It returns the client's address.
func (ts *testServer) dialReset(t *testing.T) (netip.AddrPort, bool) {
	t.Helper()
	c, peer, err := ts.dialFrom(t)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatal(err)
		}
		return peer, true
	}
	if _, err := c.Write([]byte("x")); errors.Is(err, syscall.ECONNRESET) {
		return peer, true
	}
	return peer, wasReset(t, c)
}

// peerOf is c's local address as the Server sees it: the peer Ended is
// told of.
func peerOf(c net.Conn) netip.AddrPort {
	ap := c.LocalAddr().(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// roundTrip sends msg through c to an echo backend and reads it back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal("write:", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo of %q: %q, %v", msg, buf, err)
	}
}

// wasReset reads c (with a deadline) and says whether it was reset.
func wasReset(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Logf("read to %v", err)
		return false
	}
	return true
}

// pollFD waits up to five seconds for events on the bare descriptor fd.
func pollFD(t *testing.T, fd int, events int16) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if n, err := unix.Poll(fds, 100); n > 0 {
			return
		} else if err != nil && err != unix.EINTR {
			t.Fatal("poll:", err)
		}
	}
	t.Fatalf("descriptor %d not ready for %#x within 5s", fd, events)
}

// activeIs waits until the Server has n pairs in hand.
func (ts *testServer) activeIs(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for ts.Active() != n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := ts.Active(); got != n {
		t.Fatalf("Active() = %d, want %d", got, n)
	}
}

// TestServeRelay: a connection accepted by the loops is relayed to the
// connect Connect started: checksummed streams both ways, the client's
// half-close carried first; Ended gets the client's address, when it was
// accepted and the byte counts. Accepted and Connecting.Done run once.
func TestServeRelay(t *testing.T) {
	up, down := randBytes(t, 1<<20+13), randBytes(t, 300<<10+7)
	served := make(chan [32]byte, 1)
	addr, _ := backend(t, func(c net.Conn) {
		got, err := io.ReadAll(c)
		if err != nil {
			t.Error("backend read:", err)
		}
		served <- sha256.Sum256(got)
		c.Write(down)
	})
	var dones atomic.Int32
	ts := serve(t, &Joiner{}, ServerConfig{Connect: connectTo(addr),
		Connecting: Connecting{Timeout: 5 * time.Second, Done: func(time.Duration) { dones.Add(1) }}})
	before := time.Now()
	client := ts.dial(t)
	exchange(t, client, up, down, served)
	e := ts.end(t)
	if e.r.Err != nil || e.r.AToB != int64(len(up)) || e.r.BToA != int64(len(down)) {
		t.Errorf("Result = %d, %d, %v; want %d, %d, nil", e.r.AToB, e.r.BToA, e.r.Err, len(up), len(down))
	}
	if want := peerOf(client); e.peer != want {
		t.Errorf("Ended's peer = %v, want the client's address %v", e.peer, want)
	}
	if e.accepted.Before(before) || e.accepted.After(time.Now()) {
		t.Errorf("accepted at %v, not between the dial (%v) and now", e.accepted, before)
	}
	if n := ts.accepted.Load(); n != 1 {
		t.Errorf("Accepted ran %d times, want 1", n)
	}
	if n := dones.Load(); n != 1 {
		t.Errorf("Connecting.Done ran %d times, want 1", n)
	}
	if n := ts.queued.Load(); n != 0 {
		t.Errorf("Queued ran %d times without MaxConns", n)
	}
	ts.activeIs(t, 0)
}

// TestServeConnectFails: a connect that Connect cannot start, or that the
// kernel refuses, resets the client, and Ended gets a *DialError around
// the connect's error (made the caller's kind by Connecting.Wrap when the
// loop saw the failure).
func TestServeConnectFails(t *testing.T) {
	t.Run("Connect error", func(t *testing.T) {
		errNoBackend := errors.New("no backend")
		var dones atomic.Int32
		ts := serve(t, &Joiner{}, ServerConfig{Connect: func() (int, error) { return -1, errNoBackend },
			Connecting: Connecting{Done: func(time.Duration) { dones.Add(1) }}})
		peer, reset := ts.dialReset(t)
		if !reset {
			t.Error("the client was not reset")
		}
		e := ts.end(t)
		var de *DialError
		if !errors.As(e.r.Err, &de) || de.Err != errNoBackend {
			t.Errorf("Result.Err = %#v, want a *DialError around Connect's error", e.r.Err)
		}
		if e.r.AToB != 0 || e.r.BToA != 0 {
			t.Errorf("bytes counted: %d, %d", e.r.AToB, e.r.BToA)
		}
		if e.peer != peer {
			t.Errorf("Ended's peer = %v, want the client's address %v", e.peer, peer)
		}
		if n := dones.Load(); n != 1 {
			t.Errorf("Connecting.Done ran %d times, want 1", n)
		}
		ts.activeIs(t, 0)
	})
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().(*net.TCPAddr)
		ln.Close()
		connect := connectTo(closed)
		var started atomic.Int32
		ts := serve(t, &Joiner{}, ServerConfig{
			Connect: func() (int, error) {
				fd, err := connect()
				if err == nil {
					started.Add(1)
				}
				return fd, err
			},
			Connecting: Connecting{Timeout: 5 * time.Second,
				Wrap: func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Addr: closed, Err: err} }}})
		peer, reset := ts.dialReset(t)
		if !reset {
			t.Error("the client was not reset")
		}
		e := ts.end(t)
		var de *DialError
		if !errors.As(e.r.Err, &de) || !errors.Is(e.r.Err, syscall.ECONNREFUSED) {
			t.Errorf("Result.Err = %v, want a *DialError around the refusal", e.r.Err)
		}
		var oe *net.OpError
		if started.Load() == 1 && !errors.As(e.r.Err, &oe) {
			t.Errorf("Result.Err = %#v: the refusal the loop saw is not wrapped by Connecting.Wrap", e.r.Err)
		}
		if e.peer != peer {
			t.Errorf("Ended's peer = %v, want the client's address %v", e.peer, peer)
		}
	})
}

// TestServeResetBeforeAccept: a client that resets its connection while
// it waits in the listen queue ends with that reset, which the kernel
// reports once, to the first read (the loop's, made as it accepts): Ended
// has the error, and the backend is reset too, not given an end of file
// that would pass the cut stream on as whole.
func TestServeResetBeforeAccept(t *testing.T) {
	saw := make(chan error, 1)
	addr, _ := backend(t, func(c net.Conn) {
		_, err := io.ReadAll(c)
		saw <- err
	})
	fd, laddr := listenFD(t)
	c, err := net.DialTimeout("tcp", laddr, 5*time.Second)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // a reset, now in the queued connection
	ts := serveFD(t, &Joiner{}, ServerConfig{Connect: connectTo(addr)}, fd, laddr)
	if e := ts.end(t); !errors.Is(e.r.Err, syscall.ECONNRESET) {
		t.Errorf("Result.Err = %v, want the client's reset (ECONNRESET)", e.r.Err)
	}
	select {
	case err := <-saw:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the backend read to %v, want a reset", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the connect did not reach the backend")
	}
}

// TestServeIdleNotDuringConnect: the idle timeout starts once the connect
// has completed, as Join's starts after the dial; a connect that takes
// longer (here, to a backend whose listen queue is full, so that its
// kernel drops the SYN until the retry a second later) is bounded by
// Connecting.Timeout only, and is not ended as idle.
func TestServeIdleNotDuringConnect(t *testing.T) {
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(lfd) })
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*unix.SockaddrInet4).Port}
	filler, err := net.DialTimeout("tcp", addr.String(), 5*time.Second) // the queue's one place
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })

	const idle = 100 * time.Millisecond
	ts := serve(t, &Joiner{IdleTimeout: idle}, ServerConfig{Connect: connectTo(addr)})
	ts.dial(t)
	time.Sleep(5 * idle)
	ts.noEnd(t)
	ts.activeIs(t, 1)
}

// TestServeAccepted: many clients at once are each accepted once (spread
// over the loops), each relayed or, when Connect fails, reset; Ended is
// told of every one, by its own address, and Accepted ran once for each.
func TestServeAccepted(t *testing.T) {
	const n = 20
	addr, _ := backend(t, echoBack)
	connect := connectTo(addr)
	var calls atomic.Int32
	ts := serve(t, &Joiner{}, ServerConfig{Connect: func() (int, error) {
		if calls.Add(1)%3 == 0 {
			return -1, errors.New("every third fails")
		}
		return connect()
	}})
	type outcome struct {
		peer  netip.AddrPort
		reset bool
	}
	outcomes := make(chan outcome, n)
	for i := range n {
		go func() {
			c, peer, err := ts.dialFrom(t)
			if err != nil {
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("client %d: %v", i, err)
				}
				outcomes <- outcome{peer, true}
				return
			}
			msg := []byte{byte(i)}
			_, werr := c.Write(msg)
			c.(*net.TCPConn).CloseWrite()
			got, rerr := io.ReadAll(c)
			switch {
			case errors.Is(werr, syscall.ECONNRESET) || errors.Is(werr, syscall.EPIPE) || errors.Is(rerr, syscall.ECONNRESET):
				outcomes <- outcome{peer, true}
			case werr == nil && rerr == nil && bytes.Equal(got, msg):
				outcomes <- outcome{peer, false}
			default:
				t.Errorf("client %d wrote with %v, read %q, %v; want its byte back or a reset", i, werr, got, rerr)
				outcomes <- outcome{peer, false}
			}
		}()
	}
	resets := map[netip.AddrPort]bool{}
	for range n {
		o := <-outcomes
		resets[o.peer] = o.reset
	}
	dialErrors := 0
	for range n {
		e := ts.end(t)
		reset, ok := resets[e.peer]
		if !ok {
			t.Errorf("Ended for %v, no client's address (or twice)", e.peer)
			continue
		}
		delete(resets, e.peer)
		var de *DialError
		switch failed := errors.As(e.r.Err, &de); {
		case failed:
			dialErrors++
			if !reset {
				t.Errorf("%v: Ended with %v, but the client was not reset", e.peer, e.r.Err)
			}
		case e.r.Err != nil || e.r.AToB != 1 || e.r.BToA != 1:
			t.Errorf("%v: Result = %d, %d, %v; want 1, 1, nil", e.peer, e.r.AToB, e.r.BToA, e.r.Err)
		}
	}
	if dialErrors != n/3 {
		t.Errorf("%d dial errors, want %d", dialErrors, n/3)
	}
	if got := ts.accepted.Load(); got != n {
		t.Errorf("Accepted ran %d times for %d connections", got, n)
	}
	ts.activeIs(t, 0)
	ts.noEnd(t)
}

// TestServeMaxConns: at MaxConns the Server stops accepting: a further
// connection waits in the listen queue, nothing of it reaching the backend,
// until a pair ends; then it is relayed, and Queued runs once for it.
func TestServeMaxConns(t *testing.T) {
	addr, conns := backend(t, echoBack)
	ts := serve(t, &Joiner{}, ServerConfig{Connect: connectTo(addr), MaxConns: 2})
	a, b := ts.dial(t), ts.dial(t)
	roundTrip(t, a, "a")
	roundTrip(t, b, "b")
	ts.activeIs(t, 2)
	c := ts.dial(t) // the kernel completes the handshake: it waits in the queue
	if _, err := io.WriteString(c, "c"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the third connection read %d, %v at MaxConns 2; want it held (a timeout)", n, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("the backend has %d connections at MaxConns 2", n)
	}
	if n := ts.accepted.Load(); n != 2 {
		t.Errorf("Accepted ran %d times at MaxConns 2", n)
	}
	if n := ts.Active(); n != 2 {
		t.Errorf("Active() = %d while held, want 2", n)
	}
	if n := ts.queued.Load(); n != 0 {
		t.Errorf("Queued ran %d times before the queue was taken", n)
	}
	ts.noEnd(t)
	a.Close()
	if e := ts.end(t); e.peer != peerOf(a) || e.r.Err != nil {
		t.Errorf("Ended for %v (%v), want %v's clean end", e.peer, e.r.Err, peerOf(a))
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'c' {
		t.Fatalf("the queued connection, once a slot was free: %q, %v; want its echo", buf, err)
	}
	if n := ts.queued.Load(); n != 1 {
		t.Errorf("Queued ran %d times, want once (the third connection)", n)
	}
	if n := ts.accepted.Load(); n != 3 {
		t.Errorf("Accepted ran %d times, want 3", n)
	}
	ts.activeIs(t, 2)
	roundTrip(t, b, "b") // still relayed
}

// TestServeStop: after Stop the listening socket is closed, so a new
// connection is refused (or reset), and Stopped is closed; the pair in
// hand goes on, and Drained closes only once it has ended and Ended has
// been told.
func TestServeStop(t *testing.T) {
	addr, conns := backend(t, echoBack)
	ts := serve(t, &Joiner{}, ServerConfig{Connect: connectTo(addr)})
	a := ts.dial(t)
	roundTrip(t, a, "before")
	select {
	case <-ts.Stopped():
		t.Fatal("Stopped closed before Stop")
	default:
	}
	ts.Stop()
	ts.Stop() // again: nothing more
	select {
	case <-ts.Stopped():
	case <-time.After(5 * time.Second):
		t.Fatal("Stopped not closed after Stop")
	}
	if err := ts.Err(); err != nil {
		t.Errorf("Err() = %v after Stop, want nil", err)
	}
	if c, err := net.DialTimeout("tcp", ts.addr, 5*time.Second); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("x"))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("a connection after Stop read %d bytes: it was relayed", n)
		}
		c.Close()
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Logf("dial after Stop: %v", err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the backend has %d connections, want 1 (none after Stop)", n)
	}
	roundTrip(t, a, "after") // the pair in hand goes on
	select {
	case <-ts.Drained():
		t.Fatal("Drained closed with a pair in hand")
	case <-time.After(50 * time.Millisecond):
	}
	if n := ts.Active(); n != 1 {
		t.Errorf("Active() = %d after Stop, want 1", n)
	}
	ts.noEnd(t)
	a.Close()
	select {
	case <-ts.Drained():
	case <-time.After(5 * time.Second):
		t.Fatal("Drained not closed after the last pair ended")
	}
	select {
	case e := <-ts.ends:
		if e.peer != peerOf(a) || e.r.Err != nil {
			t.Errorf("Ended for %v (%v), want %v's clean end", e.peer, e.r.Err, peerOf(a))
		}
	default:
		t.Error("Drained closed before Ended was called")
	}
	if n := ts.accepted.Load(); n != 1 {
		t.Errorf("Accepted ran %d times, want 1", n)
	}
}

// TestServeCut: Cut ends every pair in hand with its cause, resetting the
// clients, and leaves the Server accepting; after Stop, a Cut of the last
// pair closes Drained.
func TestServeCut(t *testing.T) {
	addr, _ := backend(t, echoBack)
	ts := serve(t, &Joiner{}, ServerConfig{Connect: connectTo(addr)})
	a, b := ts.dial(t), ts.dial(t)
	roundTrip(t, a, "a")
	roundTrip(t, b, "b")
	cause := errors.New("drain timeout")
	ts.Cut(cause)
	peers := map[netip.AddrPort]bool{peerOf(a): true, peerOf(b): true}
	for range 2 {
		e := ts.end(t)
		if e.r.Err != cause {
			t.Errorf("Result.Err = %v, want the cut's cause", e.r.Err)
		}
		if !peers[e.peer] {
			t.Errorf("Ended for %v, not a cut client's (or twice)", e.peer)
		}
		delete(peers, e.peer)
	}
	for _, c := range []net.Conn{a, b} {
		if !wasReset(t, c) {
			t.Error("a cut client was not reset")
		}
	}
	c := ts.dial(t)
	roundTrip(t, c, "c") // still accepting
	ts.Stop()
	cause2 := errors.New("service closed")
	ts.Cut(cause2)
	select {
	case <-ts.Drained():
	case <-time.After(5 * time.Second):
		t.Fatal("Drained not closed after Stop and Cut")
	}
	if e := ts.end(t); e.r.Err != cause2 || e.peer != peerOf(c) {
		t.Errorf("Ended for %v with %v, want %v with the second cut's cause", e.peer, e.r.Err, peerOf(c))
	}
	if !wasReset(t, c) {
		t.Error("the client cut after Stop was not reset")
	}
}

// TestServeIdle: a relayed pair with nothing moving for the Joiner's
// IdleTimeout is ended with ErrIdle, not before, and its client reset.
func TestServeIdle(t *testing.T) {
	const idle = 100 * time.Millisecond
	addr, _ := backend(t, echoBack)
	ts := serve(t, &Joiner{IdleTimeout: idle}, ServerConfig{Connect: connectTo(addr)})
	c := ts.dial(t)
	roundTrip(t, c, "x")
	e := ts.end(t)
	if !errors.Is(e.r.Err, ErrIdle) {
		t.Errorf("Result.Err = %v, want ErrIdle", e.r.Err)
	}
	if d := time.Since(e.accepted); d < idle {
		t.Errorf("ended %v after it was accepted, before the idle timeout (%v)", d, idle)
	}
	if e.r.AToB != 1 || e.r.BToA != 1 {
		t.Errorf("Result = %d, %d; want 1, 1", e.r.AToB, e.r.BToA)
	}
	if !wasReset(t, c) {
		t.Error("the idle client was not reset")
	}
}

// TestServeAcceptFatal: when the listening socket stops listening (shut
// down through another descriptor), accept4 fails for good: the Server
// stops (Stopped, and Err says why) and, having no pair, is drained.
func TestServeAcceptFatal(t *testing.T) {
	fd, _ := listenFD(t)
	other, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(other)
	s, err := (&Joiner{}).Serve(fd, ServerConfig{Connect: func() (int, error) { return -1, errors.New("unused") },
		Ended: func(netip.AddrPort, time.Time, Result) { t.Error("Ended called with no connection") }})
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	defer s.Stop()
	if err := unix.Shutdown(other, unix.SHUT_RD); err != nil {
		t.Fatal("shutdown of the listening socket:", err)
	}
	select {
	case <-s.Stopped():
	case <-time.After(5 * time.Second):
		t.Fatal("the Server did not stop when its socket stopped listening")
	}
	if err := s.Err(); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Err() = %v, want accept4's EINVAL", err)
	}
	select {
	case <-s.Drained():
	case <-time.After(5 * time.Second):
		t.Fatal("a stopped Server with no pair is not drained")
	}
}

// TestServeAcceptPause: out of descriptors (RLIMIT_NOFILE lowered to the
// lowest free one, for the whole process: no test here runs in parallel),
// accept4 fails with EMFILE: the Server outlives it, telling AcceptFailed
// of each failure with a pause that starts at 5 ms and doubles, and relays
// the waiting connection once descriptors can be had again.
func TestServeAcceptPause(t *testing.T) {
	addr, _ := backend(t, echoBack)
	type failure struct {
		err   error
		pause time.Duration
	}
	failures := make(chan failure, 100)
	ts := serve(t, &Joiner{}, ServerConfig{Connect: connectTo(addr),
		AcceptFailed: func(err error, pause time.Duration) { failures <- failure{err, pause} }})
	port, _ := strconv.Atoi(ts.addr[strings.LastIndexByte(ts.addr, ':')+1:])
	var saved unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &saved); err != nil {
			panic("restoring RLIMIT_NOFILE: " + err.Error()) // the rest of the tests would fail oddly
		}
	}
	// starve connects a client with the limit lowered, and returns its
	// socket, the first three failures, and Accepted's count before,
	// restoring the limit. Should a
	// descriptor below the limit be closed meanwhile (a goroutine of an
	// earlier test closing its connection), the Server may take it and
	// accept (its connect then failing or not): then starve returns no
	// failures, and the caller tries again.
	starve := func() (int, []failure, int32) {
		cfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		low, err := unix.Dup(cfd) // the lowest free number: with the limit there, none can be made
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(low)
		lowered := saved
		lowered.Cur = uint64(low)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lowered); err != nil {
			unix.Close(cfd)
			t.Skip("cannot lower RLIMIT_NOFILE:", err)
		}
		defer restore()
		accepted := ts.accepted.Load()
		if err := unix.Connect(cfd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil && err != unix.EINPROGRESS {
			restore()
			t.Fatal("connect:", err)
		}
		var got []failure
		for deadline := time.Now().Add(5 * time.Second); len(got) < 3; {
			select {
			case f := <-failures:
				got = append(got, f)
			case <-time.After(10 * time.Millisecond):
				if ts.accepted.Load() > accepted {
					return cfd, nil, accepted
				}
				if time.Now().After(deadline) {
					restore()
					t.Fatalf("AcceptFailed told of %d failures out of descriptors in 5s, want 3", len(got))
				}
			}
		}
		return cfd, got, accepted
	}
	var cfd int
	var got []failure
	var accepted int32
	for attempt := 0; len(got) == 0; attempt++ {
		if attempt == 5 {
			t.Fatal("the Server accepted every time with the limit lowered: descriptors keep being freed")
		}
		if cfd, got, accepted = starve(); len(got) == 0 {
			unix.Close(cfd)
			ts.end(t)
			// Failing on, the Server goes on doubling its pause from
			// where it was (accept4 fails out of descriptors with an
			// empty queue too): the next attempt's pauses start later.
			for quiet := false; !quiet; {
				select {
				case <-failures:
				case <-time.After(50 * time.Millisecond):
					quiet = true
				}
			}
		}
	}
	defer unix.Close(cfd)
	// Relayed once the pause is over: an echo.
	pollFD(t, cfd, unix.POLLOUT)
	if _, err := unix.Write(cfd, []byte("x")); err != nil {
		t.Fatal("client write:", err)
	}
	pollFD(t, cfd, unix.POLLIN)
	buf := make([]byte, 1)
	if n, err := unix.Read(cfd, buf); n != 1 || err != nil || buf[0] != 'x' {
		t.Fatalf("client read %q, %v after descriptors were free; want the echo", buf[:max(n, 0)], err)
	}
	if n := ts.accepted.Load() - accepted; n != 1 {
		t.Errorf("Accepted ran %d times for the starved connection once descriptors were free, want 1", n)
	}
	select {
	case <-ts.Stopped():
		t.Errorf("the Server stopped (%v) for a failure it outlives", ts.Err())
	default:
	}
	// The goroutines that call AcceptFailed may run out of order.
	for quiet := false; !quiet; {
		select {
		case f := <-failures:
			got = append(got, f)
		case <-time.After(50 * time.Millisecond):
			quiet = true
		}
	}
	slices.SortFunc(got, func(a, b failure) int { return cmp.Compare(a.pause, b.pause) })
	want := 5 * time.Millisecond
	for want < got[0].pause && want < time.Second {
		want *= 2 // a retried attempt: see above
	}
	for _, f := range got {
		if !errors.Is(f.err, unix.EMFILE) {
			t.Errorf("AcceptFailed told of %v, want EMFILE", f.err)
		}
		if f.pause != want {
			var pauses []time.Duration
			for _, f := range got {
				pauses = append(pauses, f.pause)
			}
			t.Errorf("pauses %v: want 5ms doubling, up to 1s", pauses)
			break
		}
		want = min(2*want, time.Second)
	}
}

// TestServeDeclines: a descriptor epoll cannot take (/dev/null) is
// refused with an error, and left open for the caller.
func TestServeDeclines(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := (&Joiner{}).Serve(int(f.Fd()), ServerConfig{Ended: func(netip.AddrPort, time.Time, Result) {}})
	if err == nil {
		s.Stop()
		t.Fatal("Serve took /dev/null")
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil {
		t.Errorf("the descriptor Serve declined is not open: %v", err)
	}
}

// TestServeQueuedOnlyWhenWaited: Queued counts only connections that
// waited in the listen queue at MaxConns, as Service.Queued does
// (endpoint's TestServiceQueued): with MaxConns 1, a connection made after
// the one before it has ended never waited, and is not counted.
func TestServeQueuedOnlyWhenWaited(t *testing.T) {
	addr, _ := backend(t, echoBack)
	ts := serve(t, &Joiner{}, ServerConfig{Connect: connectTo(addr), MaxConns: 1})
	for i := range 3 {
		c := ts.dial(t)
		roundTrip(t, c, "x")
		c.Close()
		if e := ts.end(t); e.r.Err != nil {
			t.Fatalf("connection %d ended with %v", i, e.r.Err)
		}
		ts.activeIs(t, 0)
	}
	if n := ts.queued.Load(); n != 0 {
		t.Errorf("Queued ran %d times for 3 connections made one after another, none of which waited; want 0", n)
	}
}

// TestServeConnectOutOfFDs: a connect that gets no socket for want of
// descriptors resets its client and pauses accepting (5 ms at least each
// time), so that the connections waiting in the queue are not taken at
// full speed only to be reset; AcceptFailed is not told (the Result says
// why). With 30 connections queued and every connect failing so, the
// Server takes at most one per pause in each loop (every loop may be
// taking one as the pause ends).
func TestServeConnectOutOfFDs(t *testing.T) {
	var calls atomic.Int32
	var told atomic.Int32
	ts := serve(t, &Joiner{}, ServerConfig{
		Connect: func() (int, error) {
			calls.Add(1)
			return -1, os.NewSyscallError("socket", unix.EMFILE)
		},
		AcceptFailed: func(error, time.Duration) { told.Add(1) },
	})
	start := time.Now()
	for range 30 {
		c, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
		if errors.Is(err, unix.ECONNRESET) {
			// Accepted and reset before the dial had read its outcome
			// (SO_ERROR, after the non-blocking connect): what the Server
			// is to do with a connection it cannot connect on.
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	time.Sleep(50 * time.Millisecond)
	n, elapsed := calls.Load(), time.Since(start)
	if most := (int32(elapsed/(5*time.Millisecond)) + 1) * int32(len(loops)); n > most || n == 0 {
		t.Errorf("%d connects in %v with every one out of descriptors; want 1 to %d (one per pause and loop)", n, elapsed, most)
	}
	e := ts.end(t)
	var de *DialError
	if !errors.As(e.r.Err, &de) || !errors.Is(e.r.Err, unix.EMFILE) {
		t.Errorf("Result error %v, want a DialError around EMFILE", e.r.Err)
	}
	if told.Load() != 0 {
		t.Error("AcceptFailed was told of a connect's failure")
	}
}
