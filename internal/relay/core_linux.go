package relay

import (
	"container/heap"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/internal/rawsys"
	"golang.org/x/sys/unix"
)

// The event-driven core (docs/relay-core.md). A pair of plain stream
// sockets is taken off Go's poller and moved by one of a few event loops,
// each a goroutine blocking in epoll_wait on an epoll instance of its own:
// an idle pair then costs a Pair struct and nothing else in user space (no
// goroutine, no buffer, no pipe).
//
// Descriptor ownership. Adopt duplicates each socket's descriptor
// (F_DUPFD_CLOEXEC) and then closes the net.Conn: Go's poller removes its
// descriptor from its epoll and closes it, while the socket lives on in the
// duplicate, which from then on belongs to the core alone. Nothing else
// holds it, so no one can close it under the loop, its number cannot be
// reused while a pair refers to it, and Go's poller does not wake up for
// the pair's events. The core closes each descriptor once, when the pair
// ends, which also takes it out of the epoll.

// writesBlocked counts the writes that found the receiver full, after
// which a direction waits for EPOLLOUT: for tests.
var writesBlocked atomic.Int64

// coreOff is the switch that sends every pair to the goroutine path
// (Join): TETHER_RELAY_CORE=off in the environment.
var coreOff = os.Getenv("TETHER_RELAY_CORE") == "off"

// A RelaySocket is a connection that wraps a plain socket only to be told
// when the connection ends (a balance: backend counted for leastconn): it
// moves no bytes of its own and holds none back. The event core moves the
// bytes on the socket RelaySocket returns, and calls the wrapper's Close
// once the pair has ended, after closing the socket.
type RelaySocket interface {
	net.Conn
	RelaySocket() net.Conn
}

// A Pair is two connections handed to the event core by Adopt. Its
// methods may be called from any goroutine.
type Pair struct {
	l    *loop
	fd   [2]int  // the core's own descriptors, -1 once closed
	tcp  [2]bool // can carry a reset (SO_LINGER 0); a UNIX socket cannot
	slot int32   // index in l.pairs.items
	gen  int32   // tells this pair from a later one in the same slot
	dirs [2]direction

	idle     int64 // the idle timeout in nanoseconds, or 0
	last     int64 // when bytes last moved, on the loop's clock
	deadline int64 // when the idle heap will look at the pair again
	hidx     int   // index in l.idle, -1 when not in it
	again    bool  // on l.again: a direction stopped with work left

	done     func(Result)
	srv      *Server        // the Server that accepted fd[0], which is told of the end instead of done
	peer     netip.AddrPort // fd[0]'s peer, for srv
	admitted bool           // counted by srv's PerPeer, to be released when it ends
	accepted int64          // when srv accepted fd[0], on the loops' clock
	closers  []io.Closer    // wrappers of the sockets, closed when the pair ends (see RelaySocket)
	cause    error          // a Cut before Start, to apply when it starts
	connect  *connectState  // fd[1]'s connect, until it completes (a Server's pair)
	started  bool
	ended    bool
	unsigned [2]bool
}

// A direction moves bytes from fd[i] to fd[1-i] through a pipe (splice) or,
// failing that, a buffer. It holds either only while bytes are in flight.
type direction struct {
	p        *pipe
	buf      *[]byte // the fallback when no pipe can be had
	off, n   int     // the buffer's bytes not yet written: buf[off:n]
	bytes    int64   // moved so far
	readable bool    // the source may have more: no EAGAIN (or short read) since its last edge
	hup      bool    // epoll has reported the source's end (or an error): read until it shows
	writable bool    // the receiver may take more: no EAGAIN since its last edge
	eof      bool    // the source has ended
	done     bool    // the end is passed on (shutdown)
	noSplice bool    // the kernel refused splice for these sockets
	bulk     bool    // a read has filled a buffer: splice from now on
}

// pending says how many bytes are in flight.
func (d *direction) pending() int {
	if d.p != nil {
		return d.p.data
	}
	return d.n - d.off
}

// release gives back the pipe or buffer of a direction with nothing in
// flight, or drops one that still has bytes (the pair is ending).
func (d *direction) release() {
	if d.p != nil {
		putPipe(d.p) // a pipe with data in it is closed, not pooled
		d.p = nil
	}
	if d.buf != nil {
		putBuf(d.buf)
		d.buf, d.off, d.n = nil, 0, 0
	}
}

// Adopt hands the pair a, b to the event core if it can take it: both
// must be plain stream sockets (*net.TCPConn, or *net.UnixConn of network
// "unix"), on Linux, with the core not switched off (TETHER_RELAY_CORE=off)
// and descriptors to spare. It returns false, and leaves a and b as they
// were, when it cannot: Join them instead.
//
// On success a and b are closed (their sockets now belong to the Pair)
// and nothing moves until Start. The pair then behaves as Join does: half
// close carried with shutdown(SHUT_WR), both sockets reset on any error
// (the idle timeout, a Cut), the byte counts reported when it ends.
func (j *Joiner) Adopt(a, b net.Conn) (*Pair, bool) {
	if coreOff {
		return nil, false
	}
	var closers []io.Closer
	if w, ok := a.(RelaySocket); ok {
		closers, a = append(closers, a), w.RelaySocket()
	}
	if w, ok := b.(RelaySocket); ok {
		closers, b = append(closers, b), w.RelaySocket()
	}
	ra, rb := spliceable(a), spliceable(b)
	if ra == nil || rb == nil {
		return nil, false
	}
	l, err := pickLoop()
	if err != nil {
		return nil, false
	}
	p := &Pair{l: l, fd: [2]int{-1, -1}, hidx: -1}
	for i, rc := range []syscall.RawConn{ra, rb} {
		var derr error
		if cerr := rc.Control(func(fd uintptr) {
			p.fd[i], derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		}); cerr != nil || derr != nil {
			p.closeFDs()
			return nil, false
		}
	}
	_, p.tcp[0] = a.(*net.TCPConn)
	_, p.tcp[1] = b.(*net.TCPConn)
	if idle := j.IdleTimeout; idle > 0 {
		p.idle = int64(idle)
	}
	if !l.add(p) {
		p.closeFDs()
		return nil, false
	}
	p.closers = closers
	// Go's poller forgets its descriptors; the sockets live on in ours
	// (no FIN: a socket is shut only when its last descriptor closes).
	a.Close()
	b.Close()
	return p, true
}

// closeFDs closes the pair's descriptors, which are in no epoll.
func (p *Pair) closeFDs() {
	for i, fd := range p.fd {
		if fd >= 0 {
			rawsys.Close(fd)
			p.fd[i] = -1
		}
	}
}

// Start starts moving bytes. done is called once, in a goroutine of its
// own, with the pair's Result when it has ended and both sockets are
// closed; it may be nil. Start is called once.
func (p *Pair) Start(done func(Result)) {
	if len(p.closers) > 0 {
		// The wrappers learn that their connections ended before the
		// caller does (a leastconn count is down once done is told).
		inner := done
		done = func(r Result) {
			for _, c := range p.closers {
				c.Close() // its socket is closed already: only its own work is left
			}
			if inner != nil {
				inner(r)
			}
		}
	}
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	p.done, p.started = done, true
	l.now = clock()
	p.startLocked()
}

// startLocked starts a pair marked started: it applies a Cut made before,
// puts the pair in the idle heap if it has a deadline, and moves what
// epoll reported between Adopt and now (it is in the flags). Called with
// l.mu held.
func (p *Pair) startLocked() {
	if p.cause != nil {
		p.finish(p.cause, true)
		return
	}
	p.last = p.l.now
	// While connecting, only the connect's own deadline counts: the idle
	// timeout starts once connected (connected), as Join's starts after
	// the dial.
	if cs := p.connect; cs != nil && cs.by != 0 || cs == nil && p.idle > 0 {
		p.watchIdle()
	}
	if p.connect == nil {
		p.pumpBoth()
	}
}

// watchIdle puts p in the idle heap, due at p.due(), and moves the loop's
// deadline up if p is due first. Called with l.mu held.
func (p *Pair) watchIdle() {
	l := p.l
	p.deadline = p.due()
	heap.Push(&l.idle, p)
	if l.deadline == 0 || p.deadline < l.deadline {
		l.setDeadline(p.deadline)
	}
}

// Cut ends the pair at once, resetting both sockets, with cause as the
// Result's error; it does nothing if the pair has ended. Before Start, the
// cut happens when Start is called.
func (p *Pair) Cut(cause error) {
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case p.ended:
	case !p.started:
		if p.cause == nil {
			p.cause = cause
		}
	default:
		p.finish(cause, true)
	}
}

// A loop is one event loop: an epoll instance and the pairs registered in
// it. Everything about its pairs is guarded by mu, which the loop holds
// while it handles a batch of events, and Start and Cut take from other
// goroutines.
//
// The loop's goroutine does not block in epoll_wait: the epoll descriptor
// is itself non-blocking and registered with Go's poller (an epoll
// descriptor is readable while events are ready), and the loop collects
// events with epoll_wait(0) when Go's poller says there are some. A
// goroutine blocking in a system call costs a thread hand-off at each
// wakeup (measured: 5.8 nanosleep and 2 futex calls more per relayed
// connection); waiting in Go's poller costs what any connection's
// goroutine costs. The idle timeouts are the epoll file's read deadline.
type loop struct {
	epfd     int      // the epoll instance
	file     *os.File // the same descriptor, in Go's poller
	rc       syscall.RawConn
	mu       sync.Mutex
	pairs    slotTable[*Pair]
	idle     idleHeap
	again    []*Pair
	deadline int64 // the read deadline set on file, on the loop's clock, or 0
	events   [256]unix.EpollEvent
	now      int64 // the loop's clock when it last woke (or Start ran)
	qmu      sync.Mutex
	queue    []report // Results for the reporter
	spare    []report
	kick     chan struct{}
	n        int   // events collected
	werr     error // epoll_wait's error
	waitFn   func(uintptr) bool
	peekFn   func(uintptr)
	servers  []*Server // by id (Joiner.Serve): whose listening sockets are in epfd
}

// collect takes the ready events without waiting.
func (l *loop) collect(fd uintptr) {
	l.n, l.werr = rawsys.EpollPoll(int(fd), l.events[:])
	if l.werr == unix.EINTR {
		l.n, l.werr = 0, nil
	}
}

// wait is collect for RawConn.Read: false, "wait for readiness", when there
// was nothing.
func (l *loop) wait(fd uintptr) bool {
	l.collect(fd)
	return l.n > 0 || l.werr != nil
}

var (
	loopsOnce sync.Once
	loops     []*loop
	loopsErr  error
	nextLoop  atomic.Uint32
)

// pickLoop returns the next loop, round robin, starting them the first
// time: one per CPU Go may use.
func pickLoop() (*loop, error) {
	loopsOnce.Do(func() {
		for range runtime.GOMAXPROCS(0) {
			l, err := newLoop()
			if err != nil {
				loopsErr = err
				return
			}
			loops = append(loops, l)
			go l.run()
			go l.reporter()
		}
	})
	if len(loops) == 0 {
		return nil, loopsErr
	}
	return loops[int(nextLoop.Add(1))%len(loops)], nil
}

func newLoop() (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	// Non-blocking, so os.NewFile puts it in Go's poller.
	f := os.NewFile(uintptr(epfd), "relay-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	l := &loop{epfd: epfd, file: f, rc: rc, kick: make(chan struct{}, 1)}
	l.waitFn, l.peekFn = l.wait, l.collect // made once: no allocation per round
	return l, nil
}

// add gives p a slot and registers its descriptors, edge-triggered, for
// everything at once, as Go's poller does: no epoll_ctl is needed again
// until the pair ends. Registering reports what is ready already.
func (l *loop) add(p *Pair) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addLocked(p)
}

// addLocked is add, called with l.mu held.
func (l *loop) addLocked(p *Pair) bool {
	p.slot, p.gen = l.pairs.put(p)
	p.dirs[0].writable, p.dirs[1].writable = true, true
	for i, fd := range p.fd {
		ev := unix.EpollEvent{
			Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
			Fd:     p.slot<<1 | int32(i),
			Pad:    p.gen,
		}
		if err := rawsys.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			if i == 1 {
				rawsys.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, p.fd[0], nil)
			}
			l.pairs.release(p.slot)
			return false
		}
	}
	return true
}

// setDeadline sets when the loop next looks at its idle pairs (0: never).
// Go's poller wakes the loop then, or at once if the time has passed.
// Called with mu held.
func (l *loop) setDeadline(d int64) {
	l.deadline = d
	t := time.Time{}
	if d != 0 {
		t = epoch.Add(time.Duration(d))
	}
	l.file.SetReadDeadline(t)
}

// maxRounds bounds the splices one direction makes before the loop turns
// to other pairs: a stream that never runs dry does not starve the rest.
const maxRounds = 16

func (l *loop) run() {
	for {
		l.mu.Lock()
		busy := len(l.again) > 0
		l.mu.Unlock()
		l.n, l.werr = 0, nil
		if busy {
			// Work left from the last round: look for events, but do not
			// wait for them.
			l.rc.Control(l.peekFn)
		} else if err := l.rc.Read(l.waitFn); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			panic("relay: waiting for events: " + err.Error()) // the loop's own descriptor: a bug
		}
		if l.werr != nil {
			panic("relay: epoll_wait: " + l.werr.Error()) // EBADF, EFAULT, EINVAL: a bug
		}
		n := l.n
		l.mu.Lock()
		now := clock()
		l.now = now
		for _, ev := range l.events[:n] {
			if ev.Fd == -1 {
				// A Server's listening socket (registered by Serve).
				if s := l.servers[ev.Pad]; s != nil {
					l.accept(s)
				}
				continue
			}
			slot, side := ev.Fd>>1, int(ev.Fd&1)
			if int(slot) >= len(l.pairs.items) {
				continue
			}
			p := l.pairs.items[slot]
			if p == nil || p.gen != ev.Pad || p.ended {
				continue // ended earlier in this batch
			}
			p.event(side, ev.Events)
		}
		again := l.again
		l.again = nil
		for _, p := range again {
			p.again = false
			if !p.ended {
				p.pumpBoth()
			}
		}
		clear(again)
		if cap(again) <= 1024 && l.again == nil {
			l.again = again[:0]
		}
		for len(l.idle) > 0 && l.idle[0].deadline <= now {
			p := l.idle[0]
			if due := p.due(); due > now {
				p.deadline = due
				heap.Fix(&l.idle, 0)
				continue
			}
			p.expire()
		}
		// Go's poller reports a passed deadline until it is moved.
		next := int64(0)
		if len(l.idle) > 0 {
			next = l.idle[0].deadline
		}
		if next != l.deadline || (next != 0 && next <= now) {
			l.setDeadline(next)
		}
		l.mu.Unlock()
	}
}

// event notes what epoll reported for fd[side] and moves what can move.
func (p *Pair) event(side int, ev uint32) {
	if p.connect != nil && side == 1 && ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 && !p.connected(ev) {
		return
	}
	if ev&unix.EPOLLERR != 0 {
		// A reset or other error: reported once by the kernel, so take it
		// now, before a read sees only an end of file and passes a cut
		// stream on as a clean end.
		if v, err := rawsys.GetsockoptInt(p.fd[side], unix.SOL_SOCKET, unix.SO_ERROR); err == nil && v != 0 {
			if p.started {
				p.finish(sockErr(syscall.Errno(v)), true)
			} else {
				p.cause = sockErr(syscall.Errno(v))
			}
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		p.dirs[side].readable = true
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		p.dirs[side].hup = true
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		p.dirs[1-side].writable = true
	}
	if p.started && p.connect == nil {
		p.pumpBoth()
	}
}

// sockErr is the error a socket reported through SO_ERROR.
func sockErr(errno syscall.Errno) error { return os.NewSyscallError("read", errno) }

// pumpBoth moves what both directions can, and ends the pair when both
// are done or one fails.
func (p *Pair) pumpBoth() {
	for i := range p.dirs {
		if err := p.pump(i); err != nil {
			p.finish(err, true)
			return
		}
	}
	if p.dirs[0].done && p.dirs[1].done {
		p.finish(nil, false)
	}
}

// pump moves bytes from fd[i] to fd[1-i] until the source has nothing more
// for now (EAGAIN), the receiver is full (EAGAIN, with the bytes kept in
// flight until its next EPOLLOUT), the source ended (then the receiver's
// write half is shut), or maxRounds.
func (p *Pair) pump(i int) error {
	d := &p.dirs[i]
	if d.done {
		return nil
	}
	src, dst := p.fd[i], p.fd[1-i]
	for rounds := 0; ; rounds++ {
		if d.pending() > 0 {
			if !d.writable {
				return nil
			}
			if d.hup && !d.eof && d.p == nil {
				// The source's end has been reported: read it now, so that
				// the write goes out with the FIN (see writeOut). The read
				// is one the direction makes anyway.
				if err := d.readMore(src); err != nil {
					return err
				}
			}
			n, err := d.writeOut(dst)
			if n > 0 {
				d.bytes += int64(n)
				p.last = p.l.now
			}
			switch {
			case err == unix.EAGAIN:
				d.writable = false
				writesBlocked.Add(1)
				return nil
			case err != nil:
				return err
			}
			continue
		}
		if d.eof {
			d.release()
			d.done = true
			if p.dirs[1-i].done {
				// The receiver has ended too: the close that ends the
				// pair now sends its FIN (it has nothing unread, so no
				// reset), one system call fewer than shutting it first.
				return nil
			}
			if err := rawsys.Shutdown(dst, unix.SHUT_WR); err != nil {
				return os.NewSyscallError("shutdown", err)
			}
			return nil
		}
		if !d.readable {
			d.release()
			return nil
		}
		if rounds >= maxRounds {
			d.release()
			if !p.again {
				p.again = true
				p.l.again = append(p.l.again, p)
			}
			return nil
		}
		n, err := d.readIn(src)
		switch {
		case err == unix.EAGAIN:
			d.readable = false
			d.release()
			return nil
		case err != nil:
			return err
		case n == 0:
			d.eof = true
		default:
			p.last = p.l.now
		}
	}
}

// readIn reads what the source has into an empty pipe, or into a buffer
// when no pipe can be had or the sockets cannot be spliced.
//
// A direction starts with the buffer and turns to splice once a read fills
// it, as haproxy's splice-auto does: for the few bytes most short
// connections carry, a read and a write cost the kernel less than two
// splices through a pipe; a stream is spliced after its first 32 KiB.
func (d *direction) readIn(src int) (int, error) {
	if !d.noSplice && d.bulk && d.p == nil && d.buf == nil {
		if pp, err := getPipe(); err == nil {
			d.p = pp
		} else {
			d.noSplice = true // out of descriptors: buffer this direction
		}
	}
	if d.p != nil {
		for {
			n, err := rawsys.Splice(src, d.p.w, maxSplice, unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
			switch err {
			case unix.EINTR:
				continue
			case nil:
				d.p.data = int(n)
				return int(n), nil
			case unix.EINVAL:
				d.noSplice = true
				d.release()
			case unix.EAGAIN:
				return 0, err
			default:
				return 0, wrapSplice(err)
			}
			break
		}
	}
	if d.buf == nil {
		d.buf = getBuf()
	}
	for {
		n, err := rawsys.Read(src, *d.buf)
		switch err {
		case unix.EINTR:
			continue
		case nil:
			d.off, d.n = 0, n
			if n == len(*d.buf) {
				d.bulk = true
			} else if n > 0 && !d.hup {
				// A short read took all the socket had: what comes later
				// is a new edge (epoll is edge-triggered), so there is no
				// need for the read that would say EAGAIN. Unless epoll
				// has reported the end already: that edge is spent, and
				// the next read shows it.
				d.readable = false
			}
			return n, nil
		case unix.EAGAIN:
			return 0, err
		}
		return 0, os.NewSyscallError("read", err)
	}
}

// readMore reads into the buffer's free end, after the bytes in flight:
// a read of 0 is the source's end. EAGAIN is not an error here.
func (d *direction) readMore(src int) error {
	for d.n < len(*d.buf) {
		n, err := rawsys.Read(src, (*d.buf)[d.n:])
		switch err {
		case unix.EINTR:
			continue
		case nil:
			if n == 0 {
				d.eof = true
			}
			d.n += n
			return nil
		case unix.EAGAIN:
			d.readable = false
			return nil
		}
		return os.NewSyscallError("read", err)
	}
	return nil
}

// writeOut writes what is in flight to the receiver.
func (d *direction) writeOut(dst int) (int, error) {
	for {
		var n int
		var err error
		if d.p != nil {
			n, err = rawsys.Splice(d.p.r, dst, d.p.data, unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
			if err == nil {
				if n == 0 {
					return 0, io.ErrNoProgress
				}
				d.p.data -= n
				return n, nil
			}
		} else {
			if d.eof {
				// The last bytes: MSG_MORE holds them for the shutdown or
				// close that follows at once, so that they and the FIN
				// go out in one segment (and are acknowledged with one),
				// as haproxy's do.
				n, err = rawsys.Send(dst, (*d.buf)[d.off:d.n], unix.MSG_MORE|unix.MSG_NOSIGNAL)
			} else {
				n, err = rawsys.Write(dst, (*d.buf)[d.off:d.n])
			}
			if err == nil {
				d.off += n
				return n, nil
			}
		}
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, err
		}
		if d.p != nil {
			return 0, wrapSplice(err)
		}
		return 0, os.NewSyscallError("write", err)
	}
}

// finish ends the pair: with a reset on both sockets if reset (SO_LINGER
// 0 on TCP; a UNIX socket cannot carry one and is noted unsignalled), each
// closed, which takes it out of the epoll; then reports the Result.
// Called with l.mu held.
func (p *Pair) finish(err error, reset bool) {
	if p.ended {
		return
	}
	p.ended = true
	p.releasePeer()
	p.endConnect()
	l := p.l
	if p.hidx >= 0 {
		heap.Remove(&l.idle, p.hidx)
	}
	for i, fd := range p.fd {
		// No EPOLL_CTL_DEL: closing the core's only descriptor of the
		// socket removes it from the epoll (two system calls fewer per
		// pair). Should a forked child hold a copy for a moment (until its
		// exec closes it, CLOEXEC), the socket's events still come, with
		// this pair's slot and generation, and are dropped as stale.
		if reset {
			if p.tcp[i] {
				rawsys.SetLingerZero(fd)
			} else {
				p.unsigned[i] = true
			}
		}
		rawsys.Close(fd)
		p.fd[i] = -1
		p.dirs[i].release()
	}
	l.pairs.release(p.slot)
	if !p.started {
		return // Adopt failed after add: nobody waits for a Result
	}
	r := Result{AToB: p.dirs[0].bytes, BToA: p.dirs[1].bytes, Err: err, Unsignalled: p.unsigned}
	if p.done != nil || p.srv != nil {
		l.report(p, r)
	}
}

// A report is a pair's Result on its way to the pair's done, or its
// Server's Ended.
type report struct {
	p *Pair
	r Result
}

// report queues p's Result for the loop's reporter goroutine, so that a
// done that blocks (a log line to a slow writer) never stalls the loop,
// and no goroutine is started per pair.
func (l *loop) report(p *Pair, r Result) {
	l.qmu.Lock()
	l.queue = append(l.queue, report{p, r})
	l.qmu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default: // the reporter is awake and will look again
	}
}

// reporter calls the queued dones, in the order the pairs ended.
func (l *loop) reporter() {
	for range l.kick {
		l.qmu.Lock()
		q := l.queue
		l.queue, l.spare = l.spare, nil
		l.qmu.Unlock()
		for i := range q {
			if p := q[i].p; p.srv != nil {
				p.srv.ended(p, q[i].r)
			} else {
				p.done(q[i].r)
			}
		}
		clear(q)
		l.qmu.Lock()
		if cap(q) <= 4096 {
			l.spare = q[:0]
		}
		l.qmu.Unlock()
	}
}

// The loops' clock: nanoseconds on the monotonic clock since the package
// started.
var epoch = time.Now()

func clock() int64 { return int64(time.Since(epoch)) }

// idleHeap orders a loop's pairs that have an idle timeout by when each is
// next looked at. A pair is looked at once per idle period at most: when
// its deadline comes, it is either ended or moved to its last activity
// plus the timeout.
type idleHeap []*Pair

func (h idleHeap) Len() int           { return len(h) }
func (h idleHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h idleHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *idleHeap) Push(x any) {
	p := x.(*Pair)
	p.hidx = len(*h)
	*h = append(*h, p)
}
func (h *idleHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.hidx = -1
	return p
}
