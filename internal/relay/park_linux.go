package relay

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/internal/abort"
	"golang.org/x/sys/unix"
)

// Parking (docs/relay-core.md, "TLS pairs"). The event core cannot take a
// TLS pair: its bytes must pass through crypto/tls in user space. Join
// can, but keeps a goroutine parked in a read for each direction, about
// 4 KiB of stack each, for as long as the pair is open. A Parked pair
// keeps Join's semantics (its state is Join's pair) and holds a goroutine
// only while bytes are moving: a direction whose source has nothing more
// (crypto/tls holds no complete record, the socket has no byte) is parked
// by arming a one-shot watch on the socket under the source in the
// watcher's epoll, and its goroutine exits; the watcher starts a new one
// when the socket becomes readable.
//
// Descriptors. Unlike the core, a Parked pair does not take its sockets:
// each net.Conn (a *tls.Conn keeps its socket) stays the owner, and only
// the descriptor number is used, for epoll_ctl, under the pair's lock and
// while the pair is not closed. teardown removes both descriptors from the
// epoll under that lock before it closes the connections, so no watch is
// armed on a descriptor number after its socket is closed. Reads go
// through the connections (and RawConn), never the number.

// parkOff is the switch that sends TLS pairs back to Join:
// TETHER_RELAY_PARK=off in the environment (TETHER_RELAY_CORE=off too).
var parkOff = os.Getenv("TETHER_RELAY_PARK") == "off"

// The states of a Parked pair's direction.
const (
	dirParked   = iota // no goroutine; the source's socket is watched (or not yet started)
	dirRunning         // a goroutine moves bytes
	dirFinished        // ended (end of file passed on, or the pair failed)
)

// A Parked pair is two connections, at least one of them TLS, joined with
// Join's semantics but with no goroutine while the pair is idle. Park
// makes one; its methods may be called from any goroutine.
type Parked struct {
	pair
	fd      [2]int             // the descriptors under conns, for epoll_ctl only
	rc      [2]syscall.RawConn // the sockets under conns
	wrapped [2]bool            // a *tls.Conn: may hold bytes read from its socket
	state   [2]uint8
	bytes   [2]int64
	// lingerSet is when direction i's goroutine last set its source's
	// read deadline for linger (zero: not lingering). Only that goroutine
	// touches it.
	lingerSet [2]time.Time
	slot      int32 // index in the watcher's table
	gen       int32 // tells this pair from a later one in the same slot
	watched   bool  // both descriptors are in the watcher's epoll
	started   bool
	// reported: the Result has been handed to done (or will be by Start).
	reported bool
	done     func(Result)
}

// Park prepares the pair a, b to be joined with no goroutine while it is
// idle, if it can: each side must be a *tls.Conn over a TCP or UNIX stream
// socket, or such a socket itself (or a RelaySocket over one), at least one
// side TLS (plain pairs go
// to Adopt), and parking not switched off (TETHER_RELAY_PARK=off or
// TETHER_RELAY_CORE=off). It returns false, leaving a and b untouched,
// when it cannot: Join them instead.
//
// Nothing moves until Start. The pair then behaves exactly as Join does:
// half-close carried with CloseWrite, both connections aborted through
// every wrapper on any error (the idle timeout, a Cut), closed cleanly
// when both directions ended, the byte counts reported at the end.
func (j *Joiner) Park(a, b net.Conn) (*Parked, bool) {
	if parkOff || coreOff {
		return nil, false
	}
	p := &Parked{pair: pair{conns: [2]net.Conn{a, b}, idle: j.IdleTimeout}}
	p.park = p
	for i, c := range p.conns {
		switch w := c.(type) {
		case *tls.Conn:
			p.wrapped[i] = true
			c = innerSocket(w)
		case RelaySocket:
			// Read from the socket under it; written to, half-closed and
			// closed through the wrapper, which so learns of the end.
			c = w.RelaySocket()
		}
		rc := spliceable(c)
		if rc == nil {
			return nil, false
		}
		p.rc[i] = rc
		if rc.Control(func(fd uintptr) { p.fd[i] = int(fd) }) != nil {
			return nil, false
		}
	}
	if !p.wrapped[0] && !p.wrapped[1] {
		return nil, false
	}
	w, err := getWatcher()
	if err != nil || !w.add(p) {
		return nil, false
	}
	return p, true
}

// innerSocket follows a TLS connection's NetConn chain (crypto/tls's, then
// wrappers such as the endpoint's handshake deadline) to the socket.
func innerSocket(c net.Conn) net.Conn {
	layers := abort.Layers(c)
	return layers[len(layers)-1]
}

// Start starts the pair. done is called once, with the Result, when both
// directions are done and both connections closed; it may be called from
// the goroutine that calls Start or Cut, so it must not need locks they
// hold. Start is called once.
func (p *Parked) Start(done func(Result)) {
	if p.idle > 0 {
		p.clock = &activity{start: time.Now()}
	}
	p.mu.Lock()
	p.done, p.started = done, true
	if p.closed {
		// Cut before Start: the directions never ran. The Cut may still
		// be resetting the connections in another goroutine; teardown
		// (its sync.Once) returns once it has, so that done never runs
		// before both are reset.
		p.mu.Unlock()
		p.teardown(nil, false)
		p.settle()
		return
	}
	if p.idle > 0 {
		p.timer = time.AfterFunc(p.idle, p.check)
	}
	// Both directions start running, rather than watched: crypto/tls may
	// already hold bytes that came with the handshake, which no socket
	// readiness would announce.
	p.state = [2]uint8{dirRunning, dirRunning}
	p.mu.Unlock()
	go p.run(0)
	go p.run(1)
}

// Cut ends the pair at once, aborting both connections, with cause as the
// Result's error; it does nothing if the pair has ended. Before Start, the
// connections are aborted at once and Start reports the Result.
func (p *Parked) Cut(cause error) {
	p.teardown(cause, true)
}

// errWouldBlock says a source has nothing to read now.
var errWouldBlock = errors.New("relay: would block")

// run moves bytes of direction i while its source has them, then parks
// the direction (or finishes it) and returns.
func (p *Parked) run(i int) {
	dst := p.conns[1-i]
	var bp *[]byte
	defer func() {
		if bp != nil {
			putBuf(bp)
		}
	}()
	moved := false // bytes moved since the last linger
	for {
		if bp == nil {
			bp = getBuf()
		}
		var n int
		var err error
		if moved {
			// Bytes are flowing: the next are likely on their way. Wait
			// for them a little, in Go's poller, rather than park and be
			// woken by the watcher a moment later (an epoll_ctl, an event
			// and a new goroutine per pause of a stream).
			n, err = p.linger(i, *bp)
			moved = n > 0
		} else {
			n, err = p.read(i, *bp)
		}
		if n > 0 {
			moved = true
			p.clock.touch()
			nw, ew := dst.Write((*bp)[:n])
			p.bytes[i] += int64(nw)
			p.clock.touch()
			if ew == nil && nw != n {
				ew = io.ErrShortWrite
			}
			if ew != nil {
				p.fail(ew)
				p.exit(i)
				return
			}
		}
		switch {
		case err == nil:
		case err == errWouldBlock:
			putBuf(bp) // an idle direction holds no buffer
			bp = nil
			if p.sleep(i) {
				return
			}
			p.exit(i)
			return
		case err == io.EOF:
			p.closeWrite(dst)
			p.exit(i)
			return
		default:
			p.fail(err)
			p.exit(i)
			return
		}
	}
}

// read reads what source i has now, without waiting for bytes that have
// not arrived: errWouldBlock when there are none. A TLS source first gives
// what crypto/tls holds (plaintext, or whole records read from the socket
// already), read under a past deadline, which touches the socket only if
// it holds no complete record and then times out (crypto/tls does not keep
// a timeout as its error); only if the socket has bytes is it read, and
// then it waits for the rest of a record for parkLinger at most: a peer
// that sends part of a record and stops gets its direction parked (what
// it sent stays in crypto/tls), not a goroutine and a buffer held for it.
func (p *Parked) read(i int, b []byte) (int, error) {
	src := p.conns[i]
	if !p.wrapped[i] {
		return readNow(p.rc[i], b)
	}
	src.SetReadDeadline(aLongTimeAgo)
	n, err := src.Read(b)
	src.SetReadDeadline(time.Time{})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return n, err
	}
	if n > 0 {
		return n, nil
	}
	if p.isClosed() {
		return 0, net.ErrClosed
	}
	if ready, err := socketReadable(p.rc[i]); err != nil || !ready {
		if err == nil {
			err = errWouldBlock
		}
		return 0, err
	}
	src.SetReadDeadline(time.Now().Add(parkLinger))
	n, err = src.Read(b)
	src.SetReadDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if n == 0 {
			return 0, errWouldBlock
		}
		err = nil
	}
	return n, err
}

// parkLinger is how long a direction that has just moved bytes waits for
// more before it parks.
const parkLinger = 5 * time.Millisecond

// linger waits up to about parkLinger for source i to have bytes, and
// reads them: errWouldBlock if none came. The deadline is moved at most
// once a millisecond, not for every read: setting one costs more than a
// record of a stream takes to read, and it is left in place between the
// reads of a stream (so a pause of 4 to 5 ms, not exactly 5, parks it).
func (p *Parked) linger(i int, b []byte) (int, error) {
	src := p.conns[i]
	if now := time.Now(); now.Sub(p.lingerSet[i]) > parkLinger/5 {
		if src.SetReadDeadline(now.Add(parkLinger)) != nil {
			return 0, errWouldBlock
		}
		p.lingerSet[i] = now
	}
	var n int
	var err error
	if p.wrapped[i] {
		n, err = src.Read(b)
	} else if err = waitReadable(p.rc[i]); err == nil {
		n, err = readNow(p.rc[i], b)
	}
	if n > 0 && (err == nil || errors.Is(err, os.ErrDeadlineExceeded)) {
		return n, nil
	}
	p.lingerSet[i] = time.Time{}
	src.SetReadDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// Nothing came; crypto/tls keeps the start of a record read
		// meanwhile, and read sees the socket's readiness afresh.
		return p.read(i, b)
	}
	return n, err
}

// readNow reads from a plain socket without waiting: errWouldBlock if it
// has nothing, io.EOF at its end.
func readNow(rc syscall.RawConn, b []byte) (int, error) {
	var n int
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), b)
			if rerr != unix.EINTR {
				return true
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case rerr == unix.EAGAIN:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, os.NewSyscallError("read", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// socketReadable says whether a read of the socket would not block (bytes
// or end of file are waiting), without waiting. A pending socket error (a
// reset) is returned: the kernel reports it once, to the peek, and a read
// after it would see only end of file, so a reset would pass for a clean
// end.
func socketReadable(rc syscall.RawConn) (bool, error) {
	var peek [1]byte
	var ready bool
	var perr error
	err := rc.Read(func(fd uintptr) bool {
		for {
			_, _, err := unix.Recvfrom(int(fd), peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch err {
			case unix.EINTR:
				continue
			case nil:
				ready = true
			case unix.EAGAIN:
			default:
				perr = os.NewSyscallError("recvfrom", err)
			}
			return true
		}
	})
	if err == nil {
		err = perr
	}
	return ready, err
}

// sleep parks direction i: arms the one-shot watch on its source's socket.
// It returns false if the pair is closed (the direction is then to
// finish). The watch reports a socket that is readable already at once,
// so bytes that arrived since the last read are not missed.
func (p *Parked) sleep(i int) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	p.state[i] = dirParked
	err := theWatcher.arm(p, i)
	if err != nil {
		p.state[i] = dirRunning
	}
	p.mu.Unlock()
	if err != nil {
		p.fail(err)
		return false
	}
	return true
}

// wake is the watcher's: the socket under source i is readable (or has an
// error). A parked direction gets a goroutine again.
func (p *Parked) wake(i int) {
	p.mu.Lock()
	if p.closed || p.state[i] != dirParked || !p.started {
		p.mu.Unlock()
		return
	}
	p.state[i] = dirRunning
	p.mu.Unlock()
	go p.run(i)
}

// exit notes that direction i's goroutine is done with it for good, and
// ends the pair when both directions are done.
func (p *Parked) exit(i int) {
	p.mu.Lock()
	p.state[i] = dirFinished
	last := p.state[1-i] == dirFinished
	if last && !p.closed {
		// Both ends of file passed on: a clean end, as Join's.
		p.finished = true
		if p.timer != nil {
			p.timer.Stop()
		}
	}
	p.mu.Unlock()
	if last {
		p.teardown(nil, false)
		p.settle()
	}
}

// unwatchLocked takes both descriptors out of the watcher's epoll; called
// by teardown with mu held, before the connections are closed.
func (p *Parked) unwatchLocked() {
	if p.watched {
		theWatcher.remove(p)
		p.watched = false
	}
}

// settle ends the directions that are parked (the pair is closed: no
// goroutine will come for them) and reports the Result once both are
// finished. Called after teardown, and by the last direction to finish.
func (p *Parked) settle() {
	p.mu.Lock()
	if p.closed {
		if p.timer != nil {
			p.timer.Stop()
		}
		for i, s := range p.state {
			if s == dirParked {
				p.state[i] = dirFinished
			}
		}
	}
	if p.reported || !p.started || p.state != [2]uint8{dirFinished, dirFinished} {
		p.mu.Unlock()
		return
	}
	p.reported = true
	r := Result{AToB: p.bytes[0], BToA: p.bytes[1], Err: p.err, Unsignalled: p.unsignalled}
	done := p.done
	p.done = nil
	p.mu.Unlock()
	if done != nil {
		done(r)
	}
}

// A watcher is an epoll instance in which parked directions' sockets are
// watched, one shot at a time, and a goroutine that starts a direction's
// goroutine when its socket is readable. As with the core's loops, the
// epoll descriptor is non-blocking and waits in Go's poller.
type watcher struct {
	epfd   int
	file   *os.File
	rc     syscall.RawConn
	mu     sync.Mutex
	pairs  slotTable[*Parked]
	events [128]unix.EpollEvent
	n      int
	werr   error
	waitFn func(uintptr) bool
}

var (
	watcherOnce sync.Once
	theWatcher  *watcher
	watcherErr  error
)

// getWatcher starts the watcher the first time.
func getWatcher() (*watcher, error) {
	watcherOnce.Do(func() {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			watcherErr = os.NewSyscallError("epoll_create1", err)
			return
		}
		if err := unix.SetNonblock(epfd, true); err != nil {
			unix.Close(epfd)
			watcherErr = os.NewSyscallError("fcntl", err)
			return
		}
		f := os.NewFile(uintptr(epfd), "relay-park-epoll")
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			watcherErr = err
			return
		}
		w := &watcher{epfd: epfd, file: f, rc: rc}
		w.waitFn = w.wait
		theWatcher = w
		go w.run()
	})
	return theWatcher, watcherErr
}

// wait collects ready events without blocking, for RawConn.Read: false,
// "wait for readiness", when there were none.
func (w *watcher) wait(fd uintptr) bool {
	w.n, w.werr = unix.EpollWait(int(fd), w.events[:], 0)
	if w.werr == unix.EINTR {
		w.n, w.werr = 0, nil
	}
	return w.n > 0 || w.werr != nil
}

func (w *watcher) run() {
	for {
		w.n, w.werr = 0, nil
		if err := w.rc.Read(w.waitFn); err != nil {
			panic("relay: parked pairs: waiting for events: " + err.Error()) // the watcher's own descriptor: a bug
		}
		if w.werr != nil {
			panic("relay: parked pairs: epoll_wait: " + w.werr.Error())
		}
		for _, ev := range w.events[:w.n] {
			slot, side := ev.Fd>>1, int(ev.Fd&1)
			w.mu.Lock()
			var p *Parked
			if int(slot) < len(w.pairs.items) {
				p = w.pairs.items[slot]
			}
			w.mu.Unlock()
			if p != nil && p.gen == ev.Pad {
				p.wake(side)
			}
		}
	}
}

// add gives p a slot and puts both its descriptors in the epoll, disarmed
// (a one-shot watch with no events, which sleep arms).
func (w *watcher) add(p *Parked) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	p.slot, p.gen = w.pairs.put(p)
	for i, fd := range p.fd {
		ev := unix.EpollEvent{Events: unix.EPOLLONESHOT, Fd: p.slot<<1 | int32(i), Pad: p.gen}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			if i == 1 {
				unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, p.fd[0], nil)
			}
			w.pairs.release(p.slot)
			return false
		}
	}
	p.watched = true
	return true
}

// arm watches source i's socket for one readiness (or error) report.
// Called with p.mu held and the pair not closed, so the descriptor is
// still the pair's.
func (w *watcher) arm(p *Parked, i int) error {
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd:     p.slot<<1 | int32(i),
		Pad:    p.gen,
	}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, p.fd[i], &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// remove takes p's descriptors out of the epoll and frees its slot.
// Called with p.mu held, before the connections are closed.
func (w *watcher) remove(p *Parked) {
	for _, fd := range p.fd {
		unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
	w.mu.Lock()
	w.pairs.release(p.slot)
	w.mu.Unlock()
}
