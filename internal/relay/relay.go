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
	"time"

	"github.com/tether-endpoints/tether/internal/abort"
)

// ErrIdle is the error Join returns when it ended a pair because nothing
// moved in either direction for the Joiner's IdleTimeout.
var ErrIdle = errors.New("relay: idle timeout")

// A Joiner joins pairs of connections. The zero value has no idle timeout.
type Joiner struct {
	// IdleTimeout, when positive, ends a pair (resetting both connections)
	// once no byte has been read or written in either direction for that
	// long. Join notices it at once (as soon as its timer fires: within a
	// few milliseconds); a receiver that takes no byte for IdleTimeout,
	// however much is waiting for it, counts as idle. Zero or negative: no
	// idle timeout.
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
// buffers from a pool, held only while data is arriving: a direction
// reading from a socket waits for it to be readable, one reading from
// anything else (TLS) waits in a one-byte read, so an idle pair holds no
// buffer.
//
// When the pair ends in error (Result.Err is not nil), both connections
// are aborted (see internal/abort): the socket under every wrapper is reset
// and no TLS close_notify is sent, so that a peer never mistakes a broken
// stream for a complete one. A clean end closes them with Close.
func (j *Joiner) Join(ctx context.Context, a, b net.Conn) Result {
	p := &pair{conns: [2]net.Conn{a, b}, idle: j.IdleTimeout}
	if p.idle > 0 {
		p.clock = &activity{start: time.Now()}
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
	clock *activity // when bytes last moved; nil without an idle timeout

	once sync.Once
	mu   sync.Mutex
	err  error // first real error
	// closed is set once teardown began: errors after it are its doing.
	closed      bool
	finished    bool
	unsignalled [2]bool // aborted, but the transport could not say so
	timer       *time.Timer
	// park is the Parked pair this is the state of, or nil for Join's
	// own: teardown takes its sockets out of the watcher before closing
	// them and then ends its parked directions (park_linux.go).
	park *Parked
}

// An activity clock notes when bytes last moved, for the idle timeout.
// The copy loops touch it at every read and write that moves bytes, in
// the middle of a splice loop too, so the idle check needs to interrupt
// nothing to know.
type activity struct {
	start time.Time
	last  atomic.Int64 // nanoseconds since start at which bytes last moved
}

func (a *activity) now() int64 { return int64(time.Since(a.start)) }

// touch notes that bytes moved now. A nil clock (no idle timeout) costs a
// comparison.
func (a *activity) touch() {
	if a != nil {
		a.last.Store(a.now())
	}
}

// copyHalf copies one direction to its end and returns the bytes moved. It
// is named, not a closure, so that stack dumps say what a goroutine is.
func (p *pair) copyHalf(i int) (written int64) {
	src, dst := p.conns[i], p.conns[1-i]
	for {
		n, err := copyConn(dst, src, p.clock)
		written += n
		switch {
		case err == nil: // end of file from src
			p.closeWrite(dst)
			return written
		case p.idle > 0 && errors.Is(err, os.ErrDeadlineExceeded) && !p.isClosed():
			// Someone interrupted the read with a past deadline (a
			// poke), not to end it: nothing was lost; go on.
			src.SetReadDeadline(time.Time{})
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
		if p.park != nil {
			// Under mu, so that no direction can arm a watch after it:
			// the descriptors are closed next.
			p.park.unwatchLocked()
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
		if p.park != nil {
			p.park.settle()
		}
	})
}

// check is the idle timer: it ends the pair if no byte has moved for the
// idle timeout, and otherwise sets itself for when that would be.
func (p *pair) check() {
	p.mu.Lock()
	if p.closed || p.finished {
		p.mu.Unlock()
		return
	}
	now, last := p.clock.now(), p.clock.last.Load()
	if wait := time.Duration(last + int64(p.idle) - now); wait > 0 {
		p.timer.Reset(wait)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.teardown(ErrIdle, true)
}

// copyConn copies from src to dst until end of file (nil error) or an
// error: with splice(2) between stream sockets, else through a buffer. It
// touches clock whenever bytes move.
func copyConn(dst, src net.Conn, clock *activity) (int64, error) {
	if s, d := spliceable(src), spliceable(dst); s != nil && d != nil {
		n, fallback, err := spliceCopy(d, s, clock)
		if !fallback {
			return n, err
		}
		m, err := copyBuffered(dst, src, clock)
		return n + m, err
	}
	return copyBuffered(dst, src, clock)
}

// readBuffered reads what src holds already (the rest of a TLS record
// whose first byte was just read), without waiting for more: under a past
// read deadline, a TLS connection returns its buffered plaintext and
// touches the network only if it has none, which then times out (crypto/tls
// does not keep a timeout as its error). A source without deadlines gives
// nothing more: its first byte goes on alone.
func readBuffered(src net.Conn, b []byte) (int, error) {
	if src.SetReadDeadline(aLongTimeAgo) != nil {
		return 0, nil
	}
	n, err := src.Read(b)
	src.SetReadDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = nil
	}
	return n, err
}

// aLongTimeAgo is a deadline in the past: setting it makes a read return
// at once.
var aLongTimeAgo = time.Unix(1, 0)

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

// copyBuffered copies with a buffer from the pool. For a socket it can peek
// at (see peekable) it waits until the socket is readable before taking a
// buffer and gives the buffer back whenever the socket is drained, so an
// idle connection holds none.
func copyBuffered(dst io.Writer, src net.Conn, clock *activity) (written int64, err error) {
	rc := peekable(src)
	var bp *[]byte
	defer func() {
		if bp != nil {
			putBuf(bp)
		}
	}()
	var probe [1]byte
	for {
		start := 0
		if bp == nil {
			if rc != nil {
				if err := waitReadable(rc); err != nil {
					return written, err
				}
				bp = getBuf()
			} else {
				// A source that cannot be polled (TLS, a pipe): wait in a
				// one-byte read, so that an idle direction holds no
				// buffer. What follows that byte (the rest of a TLS
				// record) is read into a pooled buffer behind it.
				n, er := src.Read(probe[:])
				if n == 0 {
					if er == io.EOF {
						return written, nil
					}
					if er != nil {
						return written, er
					}
					continue
				}
				bp = getBuf()
				(*bp)[0], start = probe[0], 1
			}
		}
		var nr int
		var er error
		if start == 0 {
			nr, er = src.Read(*bp)
		} else {
			nr, er = readBuffered(src, (*bp)[1:])
			nr++
		}
		if nr > 0 {
			clock.touch()
			nw, ew := dst.Write((*bp)[:nr])
			written += int64(nw)
			clock.touch()
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
		if nr < len(*bp) {
			putBuf(bp) // drained for now
			bp = nil
		}
	}
}
