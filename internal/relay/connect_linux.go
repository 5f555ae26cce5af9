package relay

import (
	"container/heap"
	"os"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/internal/rawsys"
	"golang.org/x/sys/unix"
)

// Pairs whose second socket is still connecting (the relay's lean path,
// docs/relay-core.md): the core's loop completes the connect, so that no
// goroutine waits for it and the socket never enters Go's poller.

// A DialError is a pair's Result error when its second socket's connect
// failed or timed out (a Server's pair): nothing was relayed, and the
// first socket was reset.
type DialError struct{ Err error }

func (e *DialError) Error() string { return e.Err.Error() }

// Unwrap returns the connect's error.
func (e *DialError) Unwrap() error { return e.Err }

// Connecting says how the core completes a Server's connects.
type Connecting struct {
	// Timeout bounds the connect (0: only the system's own bound).
	Timeout time.Duration
	// Wrap, if not nil, makes a failed connect's error the caller's kind
	// (the one its dialer returns); the Result's error is a *DialError
	// around it.
	Wrap func(error) error
	// Done, if not nil, is called once when the connecting phase ends,
	// connected or not (a failure, the timeout, a cut, the first socket
	// failing first), with how long it took. It runs on the core's loop,
	// with the loop's lock held: it must be quick and must not call the
	// Pair's methods.
	Done func(took time.Duration)
}

// connectState is a connecting pair's; dropped once connected, so that an
// idle pair does not carry it.
type connectState struct {
	by    int64 // when the connect times out, on the loops' clock, or 0
	start int64
	c     Connecting
}

// CoreAvailable says whether Adopt and Serve can take pairs at
// all here: Linux, the core not switched off (TETHER_RELAY_CORE=off), its
// loops started.
func CoreAvailable() bool {
	if coreOff {
		return false
	}
	_, err := pickLoop()
	return err == nil
}

// connected handles an event of a connecting second socket: it returns
// true once the connect has succeeded (the pair may move bytes), false if
// it failed (the pair has ended, or will at Start).
func (p *Pair) connected(ev uint32) bool {
	if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		errno := syscall.ECONNRESET
		v, err := rawsys.GetsockoptInt(p.fd[1], unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && v != 0 {
			errno = syscall.Errno(v)
		}
		p.connectFailed(os.NewSyscallError("connect", errno))
		return false
	}
	// Writable and no error: connected. (No SO_ERROR to read: EPOLLERR
	// would be set with it.)
	cs := p.connect
	p.connect = nil
	now := clock()
	if cs.c.Done != nil {
		cs.c.Done(time.Duration(now - cs.start))
	}
	p.last = now
	switch {
	case p.hidx >= 0 && p.idle == 0:
		heap.Remove(&p.l.idle, p.hidx)
	case p.hidx >= 0:
		p.deadline = now + p.idle
		heap.Fix(&p.l.idle, p.hidx)
	case p.idle > 0:
		p.watchIdle() // the idle timeout starts now
	}
	return true
}

// connectFailed ends a connecting pair with err as its dial error. A
// Server starts its pairs as it registers them, under the loop's lock, so
// a connecting pair is always started.
func (p *Pair) connectFailed(err error) {
	if w := p.connect.c.Wrap; w != nil {
		err = w(err)
	}
	p.finish(&DialError{Err: err}, true)
}

// endConnect ends the connecting phase, if the pair is in it, for finish.
func (p *Pair) endConnect() {
	if cs := p.connect; cs != nil {
		p.connect = nil
		if cs.c.Done != nil {
			cs.c.Done(time.Duration(clock() - cs.start))
		}
	}
}

// due is when the idle heap next needs to look at p: its connect's
// deadline while connecting (if it has one), else its last activity plus
// its idle timeout.
func (p *Pair) due() int64 {
	if cs := p.connect; cs != nil && cs.by != 0 {
		return cs.by
	}
	return p.last + p.idle
}

// expire ends a pair whose due time has come.
func (p *Pair) expire() {
	if cs := p.connect; cs != nil && cs.by != 0 {
		p.connectFailed(os.NewSyscallError("connect", syscall.ETIMEDOUT))
		return
	}
	p.finish(ErrIdle, true)
}
