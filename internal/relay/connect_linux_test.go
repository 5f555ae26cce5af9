package relay

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// connecting relays a fresh client, accepted by a Server, to addr, and
// returns the client, a function that cuts its pair, its Result and how
// many times Done ran. The client is nil if its dial was reset already:
// the Server may reset a connection it has just accepted before the
// client's connect returns (see clientReset).
func connecting(t *testing.T, addr *net.TCPAddr, timeout time.Duration) (*clientSide, func(error), <-chan Result, *atomic.Int32) {
	t.Helper()
	var dones atomic.Int32
	ts := serve(t, &Joiner{}, ServerConfig{Connect: connectTo(addr), Connecting: Connecting{Timeout: timeout,
		Wrap: func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} },
		Done: func(time.Duration) { dones.Add(1) }}})
	c, _, err := ts.dialFrom(t)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	// Once Accepted has run, the pair is in a loop (Accepted runs under
	// the loop's lock, which a cut takes).
	for deadline := time.Now().Add(10 * time.Second); ts.accepted.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the Server did not accept")
		}
	}
	ch := make(chan Result, 1)
	go func() { ch <- ts.end(t).r }()
	return &clientSide{Conn: c, dialErr: err}, ts.Cut, ch, &dones
}

// A clientSide is a client of connecting: its connection, or the error
// its dial ended with.
type clientSide struct {
	net.Conn
	dialErr error
}

// reset says whether the client saw a reset: on its dial, or reading.
func (c *clientSide) reset(t *testing.T) error {
	t.Helper()
	if c.dialErr != nil {
		return c.dialErr
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err
}

// TestConnectingRelay: a pair whose upstream is still connecting relays
// checksummed streams both ways once connected, with the client's
// half-close carried, and reports the bytes; Done runs once.
func TestConnectingRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	up, down := randBytes(t, 3<<20+11), randBytes(t, 1<<20+3)
	served := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		got, _ := io.ReadAll(c)
		served <- sha256.Sum256(got)
		c.Write(down)
	}()
	client, _, res, dones := connecting(t, ln.Addr().(*net.TCPAddr), 5*time.Second)
	if client.Conn == nil {
		t.Fatal(client.dialErr)
	}
	exchange(t, client.Conn, up, down, served)
	r := <-res
	if r.Err != nil || r.AToB != int64(len(up)) || r.BToA != int64(len(down)) {
		t.Errorf("Result %+v", r)
	}
	if n := dones.Load(); n != 1 {
		t.Errorf("Done ran %d times", n)
	}
}

// TestConnectingRefused: a refused connect ends the pair with a
// *DialError (wrapped as the caller asked) and resets the client.
func TestConnectingRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	client, _, res, dones := connecting(t, addr, 5*time.Second)
	r := <-res
	var de *DialError
	var oe *net.OpError
	if !errors.As(r.Err, &de) || !errors.As(r.Err, &oe) || !errors.Is(r.Err, syscall.ECONNREFUSED) {
		t.Errorf("Result error %v, want a DialError around the refusal", r.Err)
	}
	if err := client.reset(t); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read %v, want a reset", err)
	}
	if n := dones.Load(); n != 1 {
		t.Errorf("Done ran %d times", n)
	}
}

// blackHole is a listener whose queue is full, so that a connect to it
// waits (its SYNs are dropped) until it times out or is given up.
func blackHole(t *testing.T) *net.TCPAddr {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*unix.SockaddrInet4).Port}
	for i := 0; i < 2; i++ { // fill the queue (backlog 0 holds one)
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	return addr
}

// TestConnectingTimeout: a connect that does not complete within the
// timeout ends the pair with a *DialError (ETIMEDOUT), the client reset.
func TestConnectingTimeout(t *testing.T) {
	client, _, res, dones := connecting(t, blackHole(t), 100*time.Millisecond)
	r := <-res
	var de *DialError
	if !errors.As(r.Err, &de) || !errors.Is(r.Err, syscall.ETIMEDOUT) {
		t.Errorf("Result error %v, want a DialError timing out", r.Err)
	}
	if err := client.reset(t); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read %v, want a reset", err)
	}
	if n := dones.Load(); n != 1 {
		t.Errorf("Done ran %d times", n)
	}
}

// TestConnectingCut: a cut while connecting ends the pair with the cut's
// cause (not a dial error) and resets the client; Done still runs once.
func TestConnectingCut(t *testing.T) {
	client, cut, res, dones := connecting(t, blackHole(t), 0)
	cause := errors.New("drain timeout")
	cut(cause)
	r := <-res
	if r.Err != cause {
		t.Errorf("Result error %v, want the cut's cause", r.Err)
	}
	if err := client.reset(t); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read %v, want a reset", err)
	}
	if n := dones.Load(); n != 1 {
		t.Errorf("Done ran %d times", n)
	}
}

// TestConnectingServerReset: a server that resets after answering resets
// the client too, and the Result says so.
func TestConnectingServerReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("hello"))
		time.Sleep(50 * time.Millisecond) // let the answer go first (not asserted)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	client, _, res, _ := connecting(t, ln.Addr().(*net.TCPAddr), 5*time.Second)
	if client.Conn == nil {
		t.Fatal(client.dialErr)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(client)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read %v, want a reset", err)
	}
	if r := <-res; r.Err == nil {
		t.Error("Result without an error after a reset")
	}
}

// exchange sends up through client and half-closes it, reads to the end,
// and checks that the answer is down and that the server (which sends the
// SHA-256 of what it read on served) got up intact.
func exchange(t *testing.T, client net.Conn, up, down []byte, served <-chan [sha256.Size]byte) {
	t.Helper()
	go func() {
		client.Write(up)
		client.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal("client read:", err)
	}
	if !bytes.Equal(got, down) {
		t.Errorf("client got %d bytes, want %d, intact", len(got), len(down))
	}
	if sum := <-served; sum != sha256.Sum256(up) {
		t.Error("server got a different stream")
	}
}
