package relay

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/internal/testpeer"
)

// parkStart parks a, b (failing the test if Park declines) and starts the
// pair; its Result arrives on the channel.
func parkStart(t *testing.T, j *Joiner, a, b net.Conn) (*Parked, <-chan Result) {
	t.Helper()
	p, ok := j.Park(a, b)
	if !ok {
		t.Fatal("Park declined a TLS pair over sockets")
	}
	ch := make(chan Result, 1)
	p.Start(func(r Result) { ch <- r })
	return p, ch
}

// parkedRelay sets up client =TLS= a =Parked= b <-> server over TCP.
func parkedRelay(t *testing.T, j *Joiner) (client *tls.Conn, server net.Conn, p *Parked, res <-chan Result) {
	t.Helper()
	client, a := tlsPair(t)
	b, server := connPair(t, "tcp")
	p, res = parkStart(t, j, a, b)
	return client, server, p, res
}

// running counts the goroutines moving bytes for parked pairs.
func running() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "relay.(*Parked).run(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitParked waits until no parked pair has a goroutine (each direction
// parks once its source has nothing more), and fails the test if that does
// not happen within seconds. None must be seen for settle on end: a pair
// just started has not begun its goroutines yet, and one just ended may
// still be leaving them.
func waitParked(t *testing.T) {
	t.Helper()
	const settle = 20 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	var n int
	var b int64
	for since := time.Now(); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if n, b = running(), buffersHeld.Load(); n != 0 || b != 0 {
			since = time.Now()
		} else if time.Since(since) >= settle {
			return
		}
	}
	t.Fatalf("%d goroutines and %d buffers held by parked pairs, want none", n, b)
}

// echo sends msg from one end and reads it at the other.
func echo(t *testing.T, from, to net.Conn, msg []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { _, err := from.Write(msg); errc <- err }()
	to.SetReadDeadline(time.Now().Add(20 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(to, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("the bytes arrived changed")
	}
}

// TestParkManyIdle holds many TLS pairs idle after an echo each way: not
// one goroutine or buffer is held for them. Then they all end cleanly.
func TestParkManyIdle(t *testing.T) {
	const n = 200
	ca := testpeer.NewCA(t, "park-test")
	type end struct {
		client *tls.Conn
		server net.Conn
	}
	ends := make([]end, n)
	results := make([]<-chan Result, n)
	var j Joiner
	for i := range ends {
		client, a := tlsPairCA(t, ca, nil)
		b, server := connPair(t, "tcp")
		_, results[i] = parkStart(t, &j, a, b)
		ends[i] = end{client, server}
		echo(t, client, server, []byte("ping"))
		echo(t, server, client, []byte("pong"))
	}
	waitParked(t)
	for _, e := range ends {
		e.client.CloseWrite()
		e.server.(*net.TCPConn).CloseWrite()
	}
	for i, e := range ends {
		e.server.SetReadDeadline(time.Now().Add(20 * time.Second))
		if b, err := io.ReadAll(e.server); err != nil || len(b) != 0 {
			t.Fatalf("pair %d: server read %q, %v; want a clean end", i, b, err)
		}
		r := wait(t, results[i])
		if r.Err != nil || r.AToB != 4 || r.BToA != 4 {
			t.Errorf("pair %d: Result %+v; want a clean end, 4 bytes each way", i, r)
		}
	}
}

// TestParkWakes: a parked pair wakes for bytes from either side, and
// streams both ways at once, checksummed, between parkings; then each
// side half-closes in turn and the pair ends cleanly.
func TestParkWakes(t *testing.T) {
	client, server, _, res := parkedRelay(t, &Joiner{IdleTimeout: time.Hour})
	var up, down int64
	for round := 0; round < 3; round++ {
		waitParked(t)
		echo(t, client, server, []byte("hello"))
		waitParked(t)
		echo(t, server, client, []byte("there"))
		up, down = up+5, down+5
	}
	waitParked(t)
	a, b := randBytes(t, 4<<20+3), randBytes(t, 3<<20+11)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); echo(t, server, client, b) }()
	echo(t, client, server, a)
	wg.Wait()
	up, down = up+int64(len(a)), down+int64(len(b))
	waitParked(t)
	// Half-close while parked, the client first: the upstream sees its
	// end, and still sends.
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(20 * time.Second))
	if rest, err := io.ReadAll(server); err != nil || len(rest) != 0 {
		t.Fatalf("upstream after the client's half-close: %q, %v", rest, err)
	}
	waitParked(t)
	echo(t, server, client, []byte("still"))
	down += 5
	closeWrite(t, server)
	client.SetReadDeadline(time.Now().Add(20 * time.Second))
	if rest, err := io.ReadAll(client); err != nil || len(rest) != 0 {
		t.Fatalf("client after the upstream's half-close: %q, %v", rest, err)
	}
	r := wait(t, res)
	if r.Err != nil || r.AToB != up || r.BToA != down {
		t.Errorf("Result %+v; want a clean end, %d and %d bytes", r, up, down)
	}
}

// TestParkHalfCloseUpstreamFirst: the upstream half-closes while the pair
// is parked; the client gets a clean end (close_notify) and still sends.
func TestParkHalfCloseUpstreamFirst(t *testing.T) {
	client, server, _, res := parkedRelay(t, &Joiner{})
	echo(t, client, server, []byte("x"))
	waitParked(t)
	closeWrite(t, server)
	client.SetReadDeadline(time.Now().Add(20 * time.Second))
	if rest, err := io.ReadAll(client); err != nil || len(rest) != 0 {
		t.Fatalf("client after the upstream's half-close: %q, %v", rest, err)
	}
	waitParked(t)
	echo(t, client, server, []byte("more"))
	client.CloseWrite()
	server.SetReadDeadline(time.Now().Add(20 * time.Second))
	if rest, err := io.ReadAll(server); err != nil || len(rest) != 0 {
		t.Fatalf("upstream after the client's half-close: %q, %v", rest, err)
	}
	if r := wait(t, res); r.Err != nil || r.AToB != 5 || r.BToA != 0 {
		t.Errorf("Result %+v; want a clean end, 5 and 0 bytes", r)
	}
}

// TestParkResetWhileParked: a reset from either side of a parked pair
// reaches the other side as a reset, never a clean end.
func TestParkResetWhileParked(t *testing.T) {
	t.Run("upstream", func(t *testing.T) {
		client, server, _, res := parkedRelay(t, &Joiner{})
		echo(t, client, server, []byte("x"))
		waitParked(t)
		server.(*net.TCPConn).SetLinger(0)
		server.Close()
		if r := wait(t, res); r.Err == nil || r.Unsignalled != [2]bool{} {
			t.Errorf("Result %+v; want the reset as the error, both sides told", r)
		}
		client.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("TLS client after the upstream's reset: Read = %v; want a reset", err)
		}
	})
	t.Run("client", func(t *testing.T) {
		client, server, _, res := parkedRelay(t, &Joiner{})
		echo(t, server, client, []byte("x"))
		waitParked(t)
		client.NetConn().(*net.TCPConn).SetLinger(0)
		client.NetConn().Close()
		if r := wait(t, res); r.Err == nil {
			t.Errorf("Result %+v; want the reset as the error", r)
		}
		server.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := server.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("upstream after the client's reset: Read = %v; want a reset", err)
		}
	})
}

// TestParkCut: a cut reaches a parked pair (and one not yet started) at
// once: the Result carries its cause and both sides are reset.
func TestParkCut(t *testing.T) {
	cause := errors.New("drain cut")
	check := func(t *testing.T, client *tls.Conn, server net.Conn, res <-chan Result) {
		t.Helper()
		if r := wait(t, res); !errors.Is(r.Err, cause) {
			t.Errorf("Result.Err = %v, want the cut's cause", r.Err)
		}
		client.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("TLS client after the cut: Read = %v; want a reset", err)
		}
		server.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := server.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("upstream after the cut: Read = %v; want a reset", err)
		}
	}
	t.Run("parked", func(t *testing.T) {
		client, server, p, res := parkedRelay(t, &Joiner{})
		echo(t, client, server, []byte("x"))
		waitParked(t)
		p.Cut(cause)
		check(t, client, server, res)
	})
	t.Run("before start", func(t *testing.T) {
		client, a := tlsPair(t)
		b, server := connPair(t, "tcp")
		var j Joiner
		p, ok := j.Park(a, b)
		if !ok {
			t.Fatal("Park declined")
		}
		p.Cut(cause)
		ch := make(chan Result, 1)
		p.Start(func(r Result) { ch <- r })
		check(t, client, server, ch)
	})
}

// slowClose is a connection whose Close takes a while, and says when it
// has returned.
type slowClose struct {
	net.Conn
	closed atomic.Bool
}

func (c *slowClose) Close() error {
	time.Sleep(200 * time.Millisecond)
	err := c.Conn.Close()
	c.closed.Store(true)
	return err
}

func (c *slowClose) NetConn() net.Conn { return c.Conn }

// TestParkStartDuringCut: a Start that comes while a Cut in another
// goroutine is still resetting the connections reports the Result only
// once the Cut is over: done may close what it was given, and must not
// close, cleanly, a connection the Cut has not reset yet.
func TestParkStartDuringCut(t *testing.T) {
	var slow *slowClose
	a, _ := tlsPairCA(t, testpeer.NewCA(t, "relay-test"), func(c net.Conn) net.Conn {
		slow = &slowClose{Conn: c}
		return slow
	})
	b, server := connPair(t, "tcp")
	var j Joiner
	p, ok := j.Park(a, b)
	if !ok {
		t.Fatal("Park declined")
	}
	go p.Cut(errors.New("drain cut"))
	time.Sleep(50 * time.Millisecond) // the Cut is in the slow Close
	res := make(chan bool, 1)
	p.Start(func(Result) { res <- slow.closed.Load() })
	if closed := <-res; !closed {
		t.Error("done ran before the Cut had closed the TLS connection")
	}
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("upstream after the cut: Read = %v; want a reset", err)
	}
}

// TestParkPartialRecord: a TLS peer that sends the start of a record and
// stops does not hold a goroutine or a buffer: the direction parks with
// the part in crypto/tls, and the rest, when it comes, is relayed.
func TestParkPartialRecord(t *testing.T) {
	var raw net.Conn
	client, a := tlsPairCA(t, testpeer.NewCA(t, "relay-test"), func(c net.Conn) net.Conn {
		raw = &batching{Conn: c}
		return raw
	})
	b, server := connPair(t, "tcp")
	_, res := parkStart(t, &Joiner{}, a, b)
	waitParked(t)
	// Hold the record back, then send its first 3 bytes only.
	bt := raw.(*batching)
	bt.mu.Lock()
	bt.hold = true
	bt.mu.Unlock()
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	bt.mu.Lock()
	rec := bt.held
	bt.held, bt.hold = nil, false
	bt.mu.Unlock()
	if _, err := bt.Conn.Write(rec[:3]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // longer than parkLinger
	waitParked(t)
	if _, err := bt.Conn.Write(rec[3:]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("upstream read %q, %v; want hello", buf, err)
	}
	client.Close()
	server.Close()
	wait(t, res)
}

// TestParkIdle: a parked pair silent for the idle timeout is cut with
// ErrIdle and both sides reset.
func TestParkIdle(t *testing.T) {
	client, server, _, res := parkedRelay(t, &Joiner{IdleTimeout: 100 * time.Millisecond})
	if r := wait(t, res); !errors.Is(r.Err, ErrIdle) {
		t.Errorf("Result.Err = %v, want ErrIdle", r.Err)
	}
	client.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("TLS client after the idle cut: Read = %v; want a reset", err)
	}
	server.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("upstream after the idle cut: Read = %v; want a reset", err)
	}
}

// batching holds back what is written to it until flush, then writes it
// all at once: records the TLS client writes one by one reach the socket
// in one segment.
type batching struct {
	net.Conn
	mu    sync.Mutex
	hold  bool
	held  []byte
	flush chan struct{}
}

func (c *batching) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		c.held = append(c.held, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *batching) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = false
	_, err := c.Conn.Write(c.held)
	c.held = nil
	return err
}

// TestParkBufferedRecords: bytes crypto/tls holds already are not
// stranded when the socket under it has nothing more: two records in one
// segment (the second is read from the socket with the first), and
// plaintext left in the TLS connection before the pair starts.
func TestParkBufferedRecords(t *testing.T) {
	t.Run("two records in one segment", func(t *testing.T) {
		var bc *batching
		ca := testpeer.NewCA(t, "park-test")
		client, a := tlsPairCA(t, ca, func(c net.Conn) net.Conn { bc = &batching{Conn: c}; return bc })
		b, server := connPair(t, "tcp")
		_, res := parkStart(t, &Joiner{}, a, b)
		for round := 0; round < 5; round++ {
			waitParked(t)
			bc.mu.Lock()
			bc.hold = true
			bc.mu.Unlock()
			client.Write([]byte("first record;"))
			client.Write([]byte("second record"))
			if err := bc.release(); err != nil {
				t.Fatal(err)
			}
			want := "first record;second record"
			got := make([]byte, len(want))
			server.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.ReadFull(server, got); err != nil || string(got) != want {
				t.Fatalf("round %d: upstream got %q, %v; want %q", round, got, err, want)
			}
		}
		client.Close()
		server.Close()
		wait(t, res)
	})
	t.Run("plaintext held before start", func(t *testing.T) {
		client, a := tlsPair(t)
		b, server := connPair(t, "tcp")
		if _, err := client.Write([]byte("abcdef")); err != nil {
			t.Fatal(err)
		}
		first := make([]byte, 2)
		a.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadFull(a, first); err != nil {
			t.Fatal(err)
		}
		a.SetReadDeadline(time.Time{})
		// "cdef" is in a's buffer, the socket is empty: nothing will
		// announce it.
		_, res := parkStart(t, &Joiner{}, a, b)
		got := make([]byte, 4)
		server.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadFull(server, got); err != nil || string(got) != "cdef" {
			t.Fatalf("upstream got %q, %v; want the held plaintext", got, err)
		}
		client.Close()
		server.Close()
		wait(t, res)
	})
}

// TestParkDeclines: plain pairs (the core's) and pairs without a socket
// under them are left to Join, untouched.
func TestParkDeclines(t *testing.T) {
	var j Joiner
	a, b := connPair(t, "tcp")
	if _, ok := j.Park(a, b); ok {
		t.Error("Park took a pair of plain sockets")
	}
	tc, _ := tlsPair(t)
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if _, ok := j.Park(tc, p1); ok {
		t.Error("Park took a pipe")
	}
	if _, err := tc.Write([]byte("x")); err != nil {
		t.Errorf("a declined connection is not untouched: %v", err)
	}
}

// TestParkRelaySocket: a plain side that wraps its socket only to learn of
// the end (a leastconn backend) is parked too, and its Close is called once,
// when the pair ends.
func TestParkRelaySocket(t *testing.T) {
	var j Joiner
	client, a := tlsPair(t)
	inner, server := connPair(t, "tcp")
	w := &countingWrapper{Conn: inner}
	_, res := parkStart(t, &j, a, w)
	io.WriteString(client, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("through the pair: %q, %v", buf, err)
	}
	if n := w.closes.Load(); n != 0 {
		t.Fatalf("the wrapper was closed %d times while the pair runs", n)
	}
	client.Close()
	server.Close()
	if r := wait(t, res); r.AToB != 4 {
		t.Errorf("bytes a to b: %d", r.AToB)
	}
	if n := w.closes.Load(); n != 1 {
		t.Fatalf("the wrapper was closed %d times by the end; want once", n)
	}
}
