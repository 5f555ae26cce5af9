package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// coreJoin is Join through the event core: it adopts the pair (failing the
// test if the core declines), starts it and waits for its Result,
// cutting it if ctx ends.
func coreJoin(t *testing.T, ctx context.Context, j *Joiner, a, b net.Conn) Result {
	p, ok := j.Adopt(a, b)
	if !ok {
		t.Error("Adopt declined a pair of plain sockets")
		return Result{Err: errors.New("not adopted")}
	}
	ch := make(chan Result, 1)
	p.Start(func(r Result) { ch <- r })
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		p.Cut(context.Cause(ctx))
		return <-ch
	}
}

// coreRelayed is relayed (relay_test.go) on the event core.
func coreRelayed(t *testing.T, ctx context.Context, j *Joiner, ca, cb string) (client, server net.Conn, res <-chan Result) {
	t.Helper()
	client, a := connPair(t, ca)
	b, server := connPair(t, cb)
	ch := make(chan Result, 1)
	go func() { ch <- coreJoin(t, ctx, j, a, b) }()
	return client, server, ch
}

var pairings = []struct{ a, b string }{{"tcp", "tcp"}, {"tcp", "unix"}, {"unix", "tcp"}, {"unix", "unix"}}

// TestCoreHalfClose: either side may finish sending first; its end of
// file is passed on with shutdown and the other direction goes on, for
// every pairing of TCP and UNIX sockets.
func TestCoreHalfClose(t *testing.T) {
	up, down := randBytes(t, 3<<20+17), randBytes(t, 1<<20+5)
	for _, tc := range pairings {
		for _, serverFirst := range []bool{false, true} {
			name := tc.a + "-" + tc.b
			if serverFirst {
				name += "/server-first"
			}
			t.Run(name, func(t *testing.T) {
				client, server, res := coreRelayed(t, context.Background(), &Joiner{}, tc.a, tc.b)
				// first sends and half-closes; second reads to the end
				// of file, then answers and closes.
				first, second, sent, answer := client, server, up, down
				if serverFirst {
					first, second, sent, answer = server, client, down, up
				}
				secondGot := make(chan []byte, 1)
				go func() {
					got, err := io.ReadAll(second)
					if err != nil {
						t.Error("read to the end of file:", err)
					}
					secondGot <- got
					if _, err := second.Write(answer); err != nil {
						t.Error("write after the half-close:", err)
					}
					second.Close()
				}()
				go func() {
					if _, err := first.Write(sent); err != nil {
						t.Error(err)
					}
					closeWrite(t, first)
				}()
				got, err := io.ReadAll(first)
				if err != nil {
					t.Fatal("reading the answer:", err)
				}
				if g := <-secondGot; !bytes.Equal(g, sent) {
					t.Errorf("stream before the half-close: got %d bytes, want %d intact", len(g), len(sent))
				}
				if !bytes.Equal(got, answer) {
					t.Errorf("answer after the half-close: got %d bytes, want %d intact", len(got), len(answer))
				}
				r := wait(t, res)
				if r.Err != nil || r.AToB != int64(len(up)) || r.BToA != int64(len(down)) {
					t.Errorf("Result = %d, %d, %v; want %d, %d, nil", r.AToB, r.BToA, r.Err, len(up), len(down))
				}
			})
		}
	}
}

// streamUntilFail writes to c until a write fails, and sends that error.
func streamUntilFail(c net.Conn, failed chan<- error) {
	b := make([]byte, 64<<10)
	for {
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(b); err != nil {
			failed <- err
			return
		}
	}
}

// sawReset reads c to its end and says whether c was reset: the reader or
// the writer (streamUntilFail's failed) met ECONNRESET. The kernel reports
// a reset once, to whichever comes first; the other then sees an end.
func sawReset(t *testing.T, c net.Conn, failed <-chan error) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, rerr := io.Copy(io.Discard, c)
	if errors.Is(rerr, syscall.ECONNRESET) {
		return true
	}
	werr := <-failed
	if !errors.Is(werr, syscall.ECONNRESET) {
		t.Logf("read ended with %v, write with %v", rerr, werr)
		return false
	}
	return true
}

// TestCoreResetMidStream: a reset on either side, while bytes flow toward
// it, ends the pair with an error and resets the other side: its reader
// sees ECONNRESET, never a clean end of file.
func TestCoreResetMidStream(t *testing.T) {
	for _, resetter := range []string{"server", "client"} {
		t.Run(resetter, func(t *testing.T) {
			client, server, res := coreRelayed(t, context.Background(), &Joiner{}, "tcp", "tcp")
			victim, culprit := client, server
			if resetter == "client" {
				victim, culprit = server, client
			}
			// The victim streams towards the culprit, which reads some
			// and resets; meanwhile the victim's reader waits.
			failed := make(chan error, 1)
			go streamUntilFail(victim, failed)
			if _, err := io.ReadFull(culprit, make([]byte, 1<<20)); err != nil {
				t.Fatal(err)
			}
			culprit.(*net.TCPConn).SetLinger(0)
			culprit.Close()
			r := wait(t, res)
			if r.Err == nil {
				t.Error("the pair ended without an error after a reset")
			}
			if !sawReset(t, victim, failed) {
				t.Error("the other side was not reset")
			}
		})
	}
}

// TestCoreResetAfterHalfClose: a side that has finished sending and then
// resets (its direction is done, so no read will see the error) still
// ends the pair and resets the other side. The kernel reports the reset
// once, as EPOLLERR.
func TestCoreResetAfterHalfClose(t *testing.T) {
	client, server, res := coreRelayed(t, context.Background(), &Joiner{}, "tcp", "tcp")
	closeWrite(t, client)
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(server); err != nil {
		t.Fatal("the half-close did not arrive:", err)
	}
	client.(*net.TCPConn).SetLinger(0)
	client.Close()
	if r := wait(t, res); r.Err == nil {
		t.Error("the pair ended without an error after a reset")
	}
	// The server has read its end of file, so a read would say nothing
	// more; a write meets the reset.
	server.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := server.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("the server, after the client's reset, wrote with %v; want a reset", err)
	}
}

// holdsNothing waits until no pipe and no buffer is taken: the core gives
// them back right after the last bytes move, which a peer may see first.
func holdsNothing(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for (buffersHeld.Load() != 0 || pipesOut.Load() != 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if b, p := buffersHeld.Load(), pipesOut.Load(); b != 0 || p != 0 {
		t.Errorf("idle pairs hold %d buffers and %d pipes, want none", b, p)
	}
}

// TestCoreIdle: a silent pair is cut with ErrIdle and both sides reset;
// a trickle that never pauses for the timeout is not idle.
func TestCoreIdle(t *testing.T) {
	const idle = 100 * time.Millisecond
	t.Run("silent", func(t *testing.T) {
		client, server, res := coreRelayed(t, context.Background(), &Joiner{IdleTimeout: idle}, "tcp", "tcp")
		if r := wait(t, res); !errors.Is(r.Err, ErrIdle) {
			t.Errorf("Result.Err = %v, want ErrIdle", r.Err)
		}
		for _, c := range []net.Conn{client, server} {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("after the idle cut a side read %v, want ECONNRESET", err)
			}
		}
	})
	t.Run("half-closed and silent", func(t *testing.T) {
		client, _, res := coreRelayed(t, context.Background(), &Joiner{IdleTimeout: idle}, "unix", "tcp")
		closeWrite(t, client)
		if r := wait(t, res); !errors.Is(r.Err, ErrIdle) {
			t.Errorf("Result.Err = %v, want ErrIdle", r.Err)
		}
	})
	t.Run("trickle", func(t *testing.T) {
		// A longer timeout than the others: a loaded machine may pause
		// the writer; the trickle still lasts several timeouts.
		const idle = 5 * idle
		client, server, res := coreRelayed(t, context.Background(), &Joiner{IdleTimeout: idle}, "tcp", "unix")
		go func() {
			for i := 0; i < 12; i++ {
				client.Write([]byte{byte(i)})
				time.Sleep(idle / 5)
			}
			client.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(server)
		if err != nil || len(got) != 12 {
			t.Fatalf("server got %d bytes, %v; want 12 and end of file", len(got), err)
		}
		server.Close()
		if r := wait(t, res); r.Err != nil {
			t.Errorf("Result.Err = %v, want nil: a trickle is not idle", r.Err)
		}
	})
}

// TestCoreManyIdle holds many relayed pairs idle after an echo on each:
// none holds a pipe, a buffer or a goroutine. Then they all end cleanly.
func TestCoreManyIdle(t *testing.T) {
	const n = 500
	lnA, lnB := listen(t, "tcp"), listen(t, "tcp")
	before := runtime.NumGoroutine()
	type end struct{ client, server net.Conn }
	ends := make([]end, n)
	results := make(chan Result, n)
	var j Joiner
	for i := range ends {
		client, err := net.Dial("tcp", lnA.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		a, err := lnA.Accept()
		if err != nil {
			t.Fatal(err)
		}
		b, err := net.Dial("tcp", lnB.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := lnB.Accept()
		if err != nil {
			t.Fatal(err)
		}
		ends[i] = end{client, server}
		t.Cleanup(func() { client.Close(); server.Close() })
		p, ok := j.Adopt(a, b)
		if !ok {
			t.Fatal("Adopt declined")
		}
		p.Start(func(r Result) { results <- r })
	}
	buf := make([]byte, 1)
	for i, e := range ends {
		e.client.Write([]byte{byte(i)})
		if _, err := io.ReadFull(e.server, buf); err != nil || buf[0] != byte(i) {
			t.Fatalf("pair %d: %v %v", i, buf, err)
		}
		e.server.Write(buf)
		if _, err := io.ReadFull(e.client, buf); err != nil || buf[0] != byte(i) {
			t.Fatalf("pair %d back: %v %v", i, buf, err)
		}
	}
	holdsNothing(t)
	// The loops may have started now (two goroutines each: the loop and
	// its reporter), nothing else.
	if g := runtime.NumGoroutine() - before; g > 2*len(loops) {
		t.Errorf("%d idle pairs added %d goroutines; want at most the %d loops' own", n, g, 2*len(loops))
	}
	for _, e := range ends {
		closeWrite(t, e.client)
		closeWrite(t, e.server)
	}
	for range n {
		r := wait(t, results)
		if r.Err != nil || r.AToB != 1 || r.BToA != 1 {
			t.Errorf("Result = %d, %d, %v; want 1, 1, nil", r.AToB, r.BToA, r.Err)
		}
	}
}

// TestCoreLargeStream: large streams both ways at once, checksummed.
func TestCoreLargeStream(t *testing.T) {
	const size = 64 << 20
	block := randBytes(t, 1<<20)
	send := func(c net.Conn) [32]byte {
		h := sha256.New()
		for i := 0; i < size/len(block); i++ {
			block[0] = byte(i)
			h.Write(block)
			if _, err := c.Write(block); err != nil {
				t.Error(err)
				break
			}
		}
		closeWrite(t, c)
		var s [32]byte
		copy(s[:], h.Sum(nil))
		return s
	}
	recv := func(c net.Conn) ([32]byte, int64) {
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil {
			t.Error(err)
		}
		var s [32]byte
		copy(s[:], h.Sum(nil))
		return s, n
	}
	client, server, res := coreRelayed(t, context.Background(), &Joiner{}, "tcp", "tcp")
	upSum, downSum := make(chan [32]byte, 1), make(chan [32]byte, 1)
	// The server sends its own stream with its own copy of the block.
	blk := append([]byte(nil), block...)
	go func() { upSum <- send(client) }()
	go func() {
		h := sha256.New()
		for i := 0; i < size/len(blk); i++ {
			blk[0] = byte(i + 1)
			h.Write(blk)
			if _, err := server.Write(blk); err != nil {
				t.Error(err)
				break
			}
		}
		closeWrite(t, server)
		var s [32]byte
		copy(s[:], h.Sum(nil))
		downSum <- s
	}()
	gotUp := make(chan [32]byte, 1)
	go func() { s, _ := recv(server); gotUp <- s }()
	gotDown, n := recv(client)
	if n != size || gotDown != <-downSum {
		t.Errorf("stream to the client: %d bytes, checksum equal %v", n, gotDown == <-downSum)
	}
	if <-gotUp != <-upSum {
		t.Error("stream to the server corrupted")
	}
	if r := wait(t, res); r.Err != nil || r.AToB != size || r.BToA != size {
		t.Errorf("Result = %d, %d, %v", r.AToB, r.BToA, r.Err)
	}
}

// TestCoreSlowReader: a receiver slower than its sender fills the pipe and
// the socket buffers, so the core must wait for EPOLLOUT holding the bytes
// in flight; nothing may be lost.
func TestCoreSlowReader(t *testing.T) {
	data := randBytes(t, 8<<20)
	client, server, res := coreRelayed(t, context.Background(), &Joiner{}, "tcp", "unix")
	blockedBefore := writesBlocked.Load()
	go func() {
		client.Write(data)
		closeWrite(t, client)
	}()
	var got []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d intact", len(got), len(data))
	}
	if writesBlocked.Load() == blockedBefore {
		t.Error("no write waited for EPOLLOUT: the slow reader did not slow the relay")
	}
	server.Close()
	if r := wait(t, res); r.Err != nil || r.AToB != int64(len(data)) {
		t.Errorf("Result = %d, %v", r.AToB, r.Err)
	}
}

// TestCoreCut: a cut ends the pair with its cause and resets both sides,
// whether it comes while bytes flow or before the pair has started; a UNIX
// side is reported as unsignalled.
func TestCoreCut(t *testing.T) {
	cause := errors.New("drain timeout")
	t.Run("running", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		client, server, res := coreRelayed(t, ctx, &Joiner{}, "tcp", "tcp")
		failed := make(chan error, 1)
		go streamUntilFail(client, failed)
		if _, err := io.ReadFull(server, make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		cancel(cause)
		if r := wait(t, res); !errors.Is(r.Err, cause) || r.Unsignalled != [2]bool{} {
			t.Errorf("Result = %v, unsignalled %v; want %v, none", r.Err, r.Unsignalled, cause)
		}
		server.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, server); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the server read to %v, want ECONNRESET", err)
		}
		if !sawReset(t, client, failed) {
			t.Error("the client was not reset")
		}
	})
	t.Run("before start", func(t *testing.T) {
		client, a := connPair(t, "tcp")
		b, server := connPair(t, "unix")
		p, ok := (&Joiner{}).Adopt(a, b)
		if !ok {
			t.Fatal("Adopt declined")
		}
		p.Cut(cause)
		ch := make(chan Result, 1)
		p.Start(func(r Result) { ch <- r })
		if r := wait(t, ch); !errors.Is(r.Err, cause) || r.Unsignalled != [2]bool{false, true} {
			t.Errorf("Result = %v, unsignalled %v; want %v, [false true]", r.Err, r.Unsignalled, cause)
		}
		client.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the client read %v, want ECONNRESET", err)
		}
		server.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := server.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("the UNIX server read %v, want the end of file it cannot be told apart from", err)
		}
	})
}

// TestCoreDeclines: what the core cannot splice stays with the caller,
// untouched and still usable.
func TestCoreDeclines(t *testing.T) {
	client, a := connPair(t, "tcp")
	tc, _ := tlsPair(t)
	if _, ok := (&Joiner{}).Adopt(a, tc); ok {
		t.Fatal("Adopt took a TLS connection")
	}
	go client.Write([]byte("x"))
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := a.Read(make([]byte, 1)); err != nil {
		t.Errorf("a declined connection is not usable: %v", err)
	}
}

// TestCoreNoPipes: out of descriptors for pipes, a direction goes through
// a buffer, nothing lost, and an idle pair holds neither afterwards.
func TestCoreNoPipes(t *testing.T) {
	noPipes(t)
	client, server, res := coreRelayed(t, context.Background(), &Joiner{}, "tcp", "tcp")
	data := randBytes(t, 4<<20)
	go func() {
		client.Write(data)
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got %v intact %v", err, bytes.Equal(got, data))
	}
	holdsNothing(t)
	closeWrite(t, client)
	server.Close()
	if r := wait(t, res); r.Err != nil || r.AToB != int64(len(data)) {
		t.Errorf("Result = %d, %v", r.AToB, r.Err)
	}
}

// countingWrapper wraps a socket only to learn when it is closed, as a
// leastconn backend's connection does.
type countingWrapper struct {
	net.Conn
	closes atomic.Int32
}

func (w *countingWrapper) Close() error {
	w.closes.Add(1)
	return w.Conn.Close()
}

func (w *countingWrapper) RelaySocket() net.Conn { return w.Conn }

// TestCoreRelaySocket: a wrapper that only watches its socket's close is
// taken by the core (the socket under it spliced), and its Close is called
// once, when the pair has ended, not when the pair is adopted.
func TestCoreRelaySocket(t *testing.T) {
	var j Joiner
	client, a := connPair(t, "tcp")
	inner, server := connPair(t, "tcp")
	w := &countingWrapper{Conn: inner}
	p, ok := j.Adopt(a, w)
	if !ok {
		t.Fatal("Adopt declined a pair whose second side wraps a plain socket")
	}
	if n := w.closes.Load(); n != 0 {
		t.Fatalf("the wrapper was closed %d times at adoption; want its Close when the pair ends", n)
	}
	ch := make(chan Result, 1)
	p.Start(func(r Result) { ch <- r })
	io.WriteString(client, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("through the pair: %q, %v", buf, err)
	}
	client.Close()
	server.Close()
	r := wait(t, ch)
	if r.AToB != 4 {
		t.Errorf("bytes a to b: %d", r.AToB)
	}
	if n := w.closes.Load(); n != 1 {
		t.Fatalf("the wrapper was closed %d times by the end; want once", n)
	}
}

// rawFD returns a non-blocking duplicate of c's socket, closed at the
// test's end.
func rawFD(t *testing.T, c net.Conn) int {
	t.Helper()
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fd := int(f.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	return fd
}

func segsIn(t *testing.T, c net.Conn) uint32 {
	t.Helper()
	var info *unix.TCPInfo
	var ierr error
	rc, _ := c.(*net.TCPConn).SyscallConn()
	rc.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if ierr != nil {
		t.Fatal(ierr)
	}
	return info.Segs_in
}

// TestLastBytesCarryFIN: a direction whose source has ended, as epoll
// reported, sends its last bytes with the FIN in one segment (MSG_MORE,
// then shutdown), as haproxy does; without the report, the bytes go at
// once and the FIN follows in a segment of its own. Counted on the
// receiver (TCP_INFO's segments in; loopback delivers as it sends).
func TestLastBytesCarryFIN(t *testing.T) {
	for _, c := range []struct {
		hup  bool
		segs uint32
	}{{true, 1}, {false, 2}} {
		srcPeer, srcRelay := connPair(t, "tcp")
		dstPeer, dstRelay := connPair(t, "tcp")
		srcPeer.Write([]byte("x"))
		srcPeer.(*net.TCPConn).CloseWrite()
		time.Sleep(10 * time.Millisecond) // the FIN is in (not needed on loopback; cheap)
		p := &Pair{l: &loop{}, fd: [2]int{rawFD(t, srcRelay), rawFD(t, dstRelay)}, hidx: -1}
		p.dirs[0] = direction{readable: true, writable: true, hup: c.hup}
		before := segsIn(t, dstPeer)
		for range 2 { // the second round reads the end if the first did not
			if err := p.pump(0); err != nil {
				t.Fatal(err)
			}
			p.dirs[0].readable = true
		}
		if !p.dirs[0].done {
			t.Fatalf("hup %v: the direction did not end", c.hup)
		}
		if got := segsIn(t, dstPeer) - before; got != c.segs {
			t.Errorf("hup %v: the receiver got %d segments, want %d", c.hup, got, c.segs)
		}
		dstPeer.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := io.ReadAll(dstPeer); string(got) != "x" || err != nil {
			t.Errorf("hup %v: the receiver read %q, %v; want x and the end", c.hup, got, err)
		}
	}
}
