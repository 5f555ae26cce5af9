// Package relay moves bytes between connections. Join copies both ways
// between two connections until both directions are done, carrying
// half-close and keeping the kernel's zero-copy path (splice) for plain TCP
// and UNIX connections; Server is an accept loop that survives running out
// of file descriptors and drains its connections on shutdown.
package relay

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/internal/abort"
)

// ErrIdle is the error Join returns when it ended a pair because nothing
// moved in either direction for the Joiner's IdleTimeout.
var ErrIdle = errors.New("relay: idle timeout")

// A Joiner joins pairs of connections. The zero value has no idle timeout.
type Joiner struct {
	// IdleTimeout, when positive, ends a pair (resetting both connections)
	// once no byte has moved in either direction for that long. Join
	// notices within about twice IdleTimeout; a receiver so slow that it
	// takes longer than IdleTimeout to accept one pipe's worth (up to
	// 1 MiB) counts as idle. Zero or negative: no idle timeout.
	IdleTimeout time.Duration
}

// A Result is what Join reports of a pair once both directions are done.
type Result struct {
	// AToB and BToA are the bytes moved each way.
	AToB, BToA int64
	// Err is the first real error: nil when both directions ended at end
	// of file, ErrIdle after the idle timeout, context.Cause(ctx) when ctx
	// was cancelled, or the error of the read or write that failed.
	Err error
	// Unsignalled says, for a and for b, that the pair was aborted but the
	// connection's transport could not tell its peer so (a UNIX stream
	// socket, a pipe): that peer saw an ordinary end of a cut stream.
	Unsignalled [2]bool
}

// Join is Joiner{}.Join: no idle timeout.
func Join(ctx context.Context, a, b net.Conn) Result {
	var j Joiner
	return j.Join(ctx, a, b)
}

// Join copies from a to b and from b to a until both directions are done,
// then closes both connections and reports the bytes moved each way.
//
// When one side reaches end of file, the other side's write half is closed
// (CloseWrite) and the reverse direction keeps flowing until it ends too. A
// connection without CloseWrite cannot carry a half-close: its end of file
// closes both connections.
//
// Between plain *net.TCPConn and *net.UnixConn (stream) connections, in
// any pairing, bytes move with splice(2) and never enter user space; a
// direction holds a pipe only while bytes are in flight, so an idle pair
// costs no pipe. Other connections (TLS, pipes) are copied through 32 KiB
// buffers from a pool; a direction reading from a socket holds one only
// while data is arriving, one reading from anything else while it waits.
//
// When the pair ends in error (Result.Err is not nil), both connections
// are aborted (see internal/abort): the socket under every wrapper is reset
// and no TLS close_notify is sent, so that a peer never mistakes a broken
// stream for a complete one. A clean end closes them with Close.
func (j *Joiner) Join(ctx context.Context, a, b net.Conn) Result {
	p := &pair{conns: [2]net.Conn{a, b}, idle: j.IdleTimeout, start: time.Now()}
	p.live[0].Store(true)
	p.live[1].Store(true)
	if p.idle > 0 {
		p.mu.Lock()
		p.timer = time.AfterFunc(p.idle, p.check)
		p.mu.Unlock()
	}
	stop := context.AfterFunc(ctx, func() { p.teardown(context.Cause(ctx), true) })

	var r Result
	done := make(chan int64, 1)
	go func() { done <- p.copyHalf(0) }() // a to b
	r.BToA = p.copyHalf(1)                // b to a
	r.AToB = <-done

	stop()
	p.mu.Lock()
	p.finished = true
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	p.teardown(nil, false)
	p.mu.Lock()
	r.Err, r.Unsignalled = p.err, p.unsignalled
	p.mu.Unlock()
	if ctx.Err() != nil && (r.Err == nil || errors.Is(r.Err, net.ErrClosed)) {
		// Whoever cancelled ctx may have closed a connection before
		// AfterFunc's teardown ran; the cancellation is the cause.
		r.Err = context.Cause(ctx)
	}
	return r
}

// pair is one Join in progress. Direction i copies from conns[i] to
// conns[1-i].
type pair struct {
	conns [2]net.Conn
	idle  time.Duration
	start time.Time

	last atomic.Int64    // nanoseconds since start at which bytes last moved
	seq  atomic.Int64    // idle checks that interrupted the readers (pokes)
	ack  [2]atomic.Int64 // the last poke each direction has returned from
	live [2]atomic.Bool  // the direction is still copying

	once sync.Once
	mu   sync.Mutex
	err  error // first real error
	// closed is set once teardown began: errors after it are its doing.
	closed      bool
	finished    bool
	unsignalled [2]bool // aborted, but the transport could not say so
	timer       *time.Timer
	// An outstanding poke: its seq, when it was made, and last at the time.
	poked, pokedAt, lastAtPoke int64
}

func (p *pair) now() int64 { return int64(time.Since(p.start)) }

// copyHalf copies one direction to its end and returns the bytes moved. It
// is named, not a closure, so that stack dumps say what a goroutine is.
func (p *pair) copyHalf(i int) (written int64) {
	src, dst := p.conns[i], p.conns[1-i]
	defer p.live[i].Store(false)
	for {
		n, err := copyConn(dst, src)
		written += n
		if n > 0 {
			p.last.Store(p.now())
		}
		switch {
		case err == nil: // end of file from src
			p.closeWrite(dst)
			return written
		case p.idle > 0 && errors.Is(err, os.ErrDeadlineExceeded) && !p.isClosed():
			// The idle check interrupted the read to learn whether bytes
			// moved (n > 0). Clear its deadline first, then acknowledge,
			// so that a poke made in between is not lost.
			src.SetReadDeadline(time.Time{})
			p.ack[i].Store(p.seq.Load())
		default:
			p.fail(err)
			return written
		}
	}
}

type closeWriter interface{ CloseWrite() error }

// closeWrite passes an end of file on to dst.
func (p *pair) closeWrite(dst net.Conn) {
	cw, ok := dst.(closeWriter)
	if !ok {
		// No way to say "no more data" but closing: end the pair.
		p.teardown(nil, false)
		return
	}
	if err := cw.CloseWrite(); err != nil {
		p.fail(err)
	}
}

func (p *pair) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// fail records err as the pair's error and resets both connections, unless
// the pair is already being torn down, in which case err is a consequence.
func (p *pair) fail(err error) {
	if p.isClosed() {
		return
	}
	p.teardown(err, true)
}

// teardown closes both connections, once. cause, if not nil, becomes the
// pair's error unless it already has one; reset asks for an abortive close.
func (p *pair) teardown(cause error, reset bool) {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		if p.err == nil {
			p.err = cause
		}
		p.mu.Unlock()
		for i, c := range p.conns {
			if !reset {
				c.Close()
				continue
			}
			if errors.Is(abort.Conn(c), abort.ErrUnsignalled) {
				p.mu.Lock()
				p.unsignalled[i] = true
				p.mu.Unlock()
			}
		}
	})
}

// pollInterval is how often the idle check looks again while waiting for
// interrupted readers to report.
func (p *pair) pollInterval() time.Duration {
	return min(max(p.idle/16, time.Millisecond), 250*time.Millisecond)
}

// aLongTimeAgo is a deadline in the past: setting it interrupts a read.
var aLongTimeAgo = time.Unix(1, 0)

// check is the idle timer. A splice in progress reports nothing until it
// returns, so when the pair looks idle the check interrupts both readers
// with a past read deadline (a poke): each returns what it moved and starts
// again. If nothing moved and both readers answered, or one of them is
// still stuck in a write a whole IdleTimeout later, the pair is idle.
func (p *pair) check() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.finished {
		return
	}
	now, last := p.now(), p.last.Load()
	idle := int64(p.idle)
	if p.poked != 0 {
		answered := true
		for i := range p.live {
			if p.live[i].Load() && p.ack[i].Load() < p.poked {
				answered = false
			}
		}
		switch {
		case last != p.lastAtPoke:
			p.poked = 0 // bytes moved: not idle; look again below
		case answered || now-p.pokedAt >= idle:
			p.mu.Unlock()
			p.teardown(ErrIdle, true)
			p.mu.Lock()
			return
		default:
			p.timer.Reset(p.pollInterval())
			return
		}
	}
	if now-last < idle {
		p.timer.Reset(time.Duration(last + idle - now))
		return
	}
	p.poked = p.seq.Add(1)
	p.pokedAt, p.lastAtPoke = now, last
	for i, c := range p.conns {
		if p.live[i].Load() {
			c.SetReadDeadline(aLongTimeAgo)
		}
	}
	p.timer.Reset(p.pollInterval())
}

// copyConn copies from src to dst until end of file (nil error) or an
// error: with splice(2) between stream sockets, else through a buffer.
func copyConn(dst, src net.Conn) (int64, error) {
	if s, d := spliceable(src), spliceable(dst); s != nil && d != nil {
		n, fallback, err := spliceCopy(d, s)
		if !fallback {
			return n, err
		}
		m, err := copyBuffered(dst, src)
		return n + m, err
	}
	return copyBuffered(dst, src)
}

// bufSize is the size of the pooled copy buffers, which only connections
// that cannot be spliced use: a TLS read returns at most one 16 KiB record.
const bufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// buffersHeld counts the pooled buffers taken and not yet given back.
var buffersHeld atomic.Int64

func getBuf() *[]byte {
	buffersHeld.Add(1)
	return bufPool.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	buffersHeld.Add(-1)
	bufPool.Put(b)
}

// copyBuffered copies with a buffer from the pool. For a socket it waits
// until the socket is readable before taking a buffer and gives the buffer
// back whenever the socket is drained, so an idle connection holds none.
func copyBuffered(dst io.Writer, src net.Conn) (written int64, err error) {
	var rc syscall.RawConn
	switch s := src.(type) {
	case *net.TCPConn:
		rc, _ = s.SyscallConn()
	case *net.UnixConn:
		rc, _ = s.SyscallConn()
	}
	var bp *[]byte
	defer func() {
		if bp != nil {
			putBuf(bp)
		}
	}()
	for {
		if bp == nil {
			if rc != nil {
				if err := waitReadable(rc); err != nil {
					return written, err
				}
			}
			bp = getBuf()
		}
		nr, er := src.Read(*bp)
		if nr > 0 {
			nw, ew := dst.Write((*bp)[:nr])
			written += int64(nw)
			if ew != nil {
				return written, ew
			}
			if nw != nr {
				return written, io.ErrShortWrite
			}
		}
		if er == io.EOF {
			return written, nil
		}
		if er != nil {
			return written, er
		}
		if rc != nil && nr < len(*bp) {
			putBuf(bp) // drained for now
			bp = nil
		}
	}
}

// waitReadable blocks until a read from the socket would not block: data,
// end of file or an error is waiting. It honours the read deadline. A
// pending socket error (a reset) is returned here: the kernel reports it
// once, and a read after the peek would see only end of file, so a reset
// would pass for a clean end.
func waitReadable(rc syscall.RawConn) error {
	var peek [1]byte
	var sockErr error
	err := rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EAGAIN:
			return false
		case nil, syscall.EINTR:
		default:
			sockErr = os.NewSyscallError("recvfrom", err)
		}
		return true
	})
	if err != nil {
		return err
	}
	return sockErr
}
