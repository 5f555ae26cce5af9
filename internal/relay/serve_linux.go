package relay

import (
	"errors"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/tether-endpoints/tether/internal/rawsys"
	"golang.org/x/sys/unix"
)

// Accepting in the loops (docs/relay-core.md, "The lean path"): a Server
// puts a listening TCP socket into every loop's epoll, and the loop that
// sees it ready accepts, starts the connect and registers the pair itself,
// as haproxy's threads do. No goroutine runs per connection, none is woken
// to accept or to dial, and nothing is allocated for a connection but its
// Pair.

// A ServerConfig says what a Server does with each connection.
type ServerConfig struct {
	// Connect starts a non-blocking connect for a new connection (a
	// lean.Target's Connect); its error is a dial error of the caller's
	// kind. Called on a loop: it must not block.
	Connect func() (int, error)
	// Connecting says how the core completes the connects.
	Connecting Connecting
	// MaxConns, when positive, bounds the pairs in hand: at the bound
	// the Server stops accepting, and connections wait in the listen
	// queue until a pair ends.
	MaxConns int
	// PerPeer, if not nil, bounds the connections from one peer: one
	// more is reset as it is accepted, and ends with ErrPeerLimit.
	PerPeer *PeerCounter
	// Accepted, if not nil, is called for each connection accepted, on
	// a loop with its lock held: it must be quick.
	Accepted func()
	// Queued, if not nil, is called for each connection that waited in
	// the listen queue for a pair to end (at MaxConns), as it is accepted;
	// like Accepted, on a loop.
	Queued func()
	// Ended (required) is called once for each connection accepted, when its pair
	// has ended and both sockets are closed, with the peer's address,
	// when it was accepted, and the Result (whose Err is a *DialError
	// if the connect failed). It runs in the loop's reporter goroutine:
	// it may log.
	Ended func(peer netip.AddrPort, accepted time.Time, r Result)
	// AcceptFailed, if not nil, is told of a failed accept that the
	// Server outlives (out of descriptors or memory): it stops accepting
	// for pause, which starts at 5 ms and doubles to 1 s while accepts
	// go on failing, as Service's accept loop does. Called in a goroutine
	// of its own. (A connect that gets no socket for the same reasons
	// pauses accepting too; its connection's Result says why.)
	AcceptFailed func(err error, pause time.Duration)
}

// A Server accepts connections on a listening socket in the core's loops
// and relays each to a connect of its own (Joiner.Serve). Its methods may
// be called from any goroutine.
type Server struct {
	j   *Joiner
	cfg ServerConfig
	id  int32 // its index in every loop's servers

	mu         sync.Mutex
	fd         int  // the listening socket, -1 once closed
	registered bool // in the loops' epolls
	full       bool // at MaxConns: not accepting until a pair ends
	backlog    bool // a connection waited while full: Queued until the queue is seen empty
	pause      time.Duration
	paused     *time.Timer // not accepting after an accept failure, until it fires
	active     int
	err        error         // the accept failure that stopped the Server
	stopped    chan struct{} // closed when it stops accepting (Stop, or err)
	drained    chan struct{} // closed once stopped with no pair left
}

// acceptBatch bounds the connections a loop accepts for one event, so
// that a storm of connections does not starve the pairs in hand; the
// listening socket, registered level-triggered, is reported again while
// connections wait.
const acceptBatch = 16

var serverIDs struct {
	sync.Mutex
	next int32
}

// Serve accepts connections on fd, a listening TCP socket, in the core's
// loops, until Stop: each is relayed to a socket that cfg.Connect starts
// connecting, once the connect completes. fd must be non-blocking and
// close-on-exec; the Server owns it from then on, and closes it when it
// stops. It returns an error, owning nothing, if the core cannot take fd
// (switched off, or epoll refusing it).
func (j *Joiner) Serve(fd int, cfg ServerConfig) (*Server, error) {
	if coreOff {
		return nil, errors.New("relay: the event core is switched off (TETHER_RELAY_CORE=off)")
	}
	if _, err := pickLoop(); err != nil {
		return nil, err
	}
	serverIDs.Lock()
	id := serverIDs.next
	serverIDs.next++
	serverIDs.Unlock()
	s := &Server{j: j, cfg: cfg, id: id, fd: fd, stopped: make(chan struct{}), drained: make(chan struct{})}
	for _, l := range loops {
		l.mu.Lock()
		for int(id) >= len(l.servers) {
			l.servers = append(l.servers, nil)
		}
		l.servers[id] = s
		l.mu.Unlock()
	}
	s.mu.Lock()
	err := s.register(true)
	if err != nil {
		s.fd = -1
	}
	s.mu.Unlock()
	if err != nil {
		s.forget()
		return nil, err
	}
	return s, nil
}

// register puts the listening socket in every loop's epoll (on) or takes
// it out. Every loop is woken for a new connection, and all but one find
// nothing to accept: EPOLLEXCLUSIVE cannot help, since no thread blocks in
// the loops' epoll_wait (each epoll is watched by Go's poller). Arming
// one loop at a time instead (EPOLLONESHOT, the next loop armed after each
// batch, round robin) was tried and not kept: it doubled the context
// switches per connection (docs/relay-core.md).
// Called with s.mu held.
func (s *Server) register(on bool) error {
	if on == s.registered {
		return nil
	}
	for i, l := range loops {
		var err error
		if on {
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1, Pad: s.id}
			err = rawsys.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev)
		} else {
			err = rawsys.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
		}
		if err != nil && on {
			for _, l := range loops[:i] {
				rawsys.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
			}
			return os.NewSyscallError("epoll_ctl", err)
		}
	}
	s.registered = on
	return nil
}

// wanted registers or unregisters the socket as the Server's state
// says. Called with s.mu held.
func (s *Server) wanted() {
	if s.fd < 0 {
		return
	}
	if err := s.register(!s.full && s.paused == nil); err != nil {
		s.stopLocked(err)
	}
}

// Stop stops accepting and closes the listening socket; the pairs in hand
// go on. It may be called more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	s.stopLocked(nil)
	s.mu.Unlock()
	s.forget()
}

// forget takes s out of the loops (an event still in flight for it finds
// nil).
func (s *Server) forget() {
	for _, l := range loops {
		l.mu.Lock()
		if int(s.id) < len(l.servers) {
			l.servers[s.id] = nil
		}
		l.mu.Unlock()
	}
}

func (s *Server) stopLocked(err error) {
	if s.fd < 0 {
		return
	}
	s.register(false)
	rawsys.Close(s.fd)
	s.fd = -1
	if s.paused != nil {
		s.paused.Stop()
		s.paused = nil
	}
	s.err = err
	close(s.stopped)
	if s.active == 0 {
		close(s.drained)
	}
}

// Stopped is closed when the Server stops accepting: after Stop, or when
// accepting failed in a way it cannot outlive (then Err says how).
func (s *Server) Stopped() <-chan struct{} { return s.stopped }

// Err is the accept failure that stopped the Server, or nil.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Drained is closed once the Server has stopped and every pair it
// accepted has ended and been reported to Ended.
func (s *Server) Drained() <-chan struct{} { return s.drained }

// Active returns the number of pairs in hand: accepted, and not yet
// reported ended.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// Cut ends every pair the Server has in hand, as Pair.Cut does.
func (s *Server) Cut(cause error) {
	for _, l := range loops {
		l.mu.Lock()
		for _, p := range l.pairs.items {
			if p != nil && p.srv == s && !p.ended {
				p.finish(cause, true)
			}
		}
		l.mu.Unlock()
	}
}

// acceptErr sorts accept(2)'s failures: skip (the new connection died
// before it was taken; Linux passes its network errors on), pause (the
// process or system is out of descriptors or memory), or fatal (the
// listening socket is no more).
func acceptErr(err error) (skip, pause bool) {
	switch err {
	case unix.EINTR, unix.ECONNABORTED, unix.ECONNRESET, unix.EPROTO, unix.EPERM, unix.ETIMEDOUT,
		unix.ENETDOWN, unix.ENOPROTOOPT, unix.EHOSTDOWN, unix.ENONET, unix.EHOSTUNREACH,
		unix.EOPNOTSUPP, unix.ENETUNREACH:
		return true, false
	}
	return false, outOfResources(err)
}

// take accepts one connection for l, unless the Server is not accepting
// (stopped, full, paused) or none waits; queued says it waited for a free
// slot. Called with l.mu held.
func (s *Server) take() (fd int, peer netip.AddrPort, queued, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.fd >= 0 && !s.full && s.paused == nil {
		if max := s.cfg.MaxConns; max > 0 && s.active >= max {
			s.full = true
			s.wanted()
			return -1, peer, false, false
		}
		nfd, peer, err := rawsys.Accept4(s.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err == nil {
			s.active++
			s.pause = 0
			return nfd, peer, s.backlog, true
		}
		if err == unix.EAGAIN {
			s.backlog = false
			return -1, peer, false, false
		}
		skip, pause := acceptErr(err)
		switch {
		case skip:
			continue
		case pause:
			s.pauseLocked(os.NewSyscallError("accept4", err))
		default:
			s.stopLocked(os.NewSyscallError("accept4", err))
		}
	}
	return -1, peer, false, false
}

// pauseLocked stops accepting for a while after a failure for want of
// descriptors or memory: 5 ms, doubling to 1 s while failures go on, so
// that the connections wait in the listen queue for pairs to end rather
// than being taken only to be dropped. An accept's failure, if given, goes
// to AcceptFailed (a connect's is its pair's Result). Called with s.mu
// held.
func (s *Server) pauseLocked(acceptErr error) {
	if s.paused != nil || s.fd < 0 {
		return
	}
	if s.pause == 0 {
		s.pause = 5 * time.Millisecond
	} else if s.pause *= 2; s.pause > time.Second {
		s.pause = time.Second
	}
	s.paused = time.AfterFunc(s.pause, s.resume)
	s.wanted()
	if f := s.cfg.AcceptFailed; f != nil && acceptErr != nil {
		go f(acceptErr, s.pause)
	}
}

// outOfResources reports whether err says the process or system is out of
// descriptors or memory.
func outOfResources(err error) bool {
	for _, e := range []error{unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// resume ends a pause after an accept failure.
func (s *Server) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused != nil {
		s.paused = nil
		s.wanted()
	}
}

// accept takes the connections waiting on s, up to acceptBatch, and
// starts relaying each. Called by the loop with l.mu held.
func (l *loop) accept(s *Server) {
	for range acceptBatch {
		fd, peer, queued, ok := s.take()
		if !ok {
			return
		}
		if queued && s.cfg.Queued != nil {
			s.cfg.Queued()
		}
		if s.cfg.Accepted != nil {
			s.cfg.Accepted()
		}
		now := l.now
		p := &Pair{l: l, fd: [2]int{fd, -1}, tcp: [2]bool{true, true}, hidx: -1, srv: s, peer: peer, accepted: now}
		if !s.cfg.PerPeer.Admit(peer.Addr()) {
			p.abandon(ErrPeerLimit)
			continue
		}
		p.admitted = true
		up, err := s.cfg.Connect()
		if err != nil {
			if d := s.cfg.Connecting.Done; d != nil {
				d(time.Duration(clock() - now))
			}
			p.abandon(&DialError{Err: err})
			if outOfResources(err) {
				// No socket for the connect: the next connections would
				// fail the same way. Leave them queued for a while.
				s.mu.Lock()
				s.pauseLocked(nil)
				s.mu.Unlock()
				return
			}
			continue
		}
		p.fd[1] = up
		cs := &connectState{start: now, c: s.cfg.Connecting}
		if s.cfg.Connecting.Timeout > 0 {
			cs.by = now + int64(s.cfg.Connecting.Timeout)
		}
		p.connect = cs
		if idle := s.j.IdleTimeout; idle > 0 {
			p.idle = int64(idle)
		}
		if !l.addLocked(p) {
			p.endConnect()
			p.abandon(errors.New("relay: the event core cannot take the connection (epoll_ctl failed); connection reset"))
			continue
		}
		p.done, p.started = nil, true
		p.startLocked()
		if !p.ended {
			p.speculate()
		}
	}
}

// speculate passes on what the client has sent already, if the connect
// has completed (on loopback it completes within connect(2)), as haproxy
// does: the server behind finds the request with the connection instead
// of waiting for it, and the loop saves an epoll round. A read that finds
// nothing, or a write that finds the connect in progress (EAGAIN), leaves
// the pair to its events as before; a write that fails otherwise is the
// connect's failure. Called with l.mu held.
func (p *Pair) speculate() {
	d := &p.dirs[0]
	d.readable = true
	n, err := d.readIn(p.fd[0])
	switch {
	case err == unix.EAGAIN:
		// Nothing yet: the events will say when.
		d.readable = false
		d.release()
		return
	case err != nil:
		// The client's reset. The kernel reports it to this read only:
		// from now on epoll shows a hang-up without EPOLLERR and a read
		// an end of file, which would pass the cut on as a clean end.
		p.finish(err, true)
		return
	case n == 0:
		// The client's end, which a read shows again once connected.
		d.release()
		return
	}
	m, err := rawsys.Write(p.fd[1], (*d.buf)[d.off:d.n])
	switch err {
	case nil:
	case unix.EAGAIN:
		return // the bytes stay in flight until the connect's EPOLLOUT
	default:
		p.connectFailed(os.NewSyscallError("connect", err))
		return
	}
	d.off += m
	d.bytes += int64(m)
	p.connected(unix.EPOLLOUT)
	p.pumpBoth()
}

// abandon ends a pair that never made it into the loop: its sockets are
// reset and closed, and its Result (err) reported.
func (p *Pair) abandon(err error) {
	p.releasePeer()
	for i, fd := range p.fd {
		if fd >= 0 {
			rawsys.SetLingerZero(fd)
			rawsys.Close(fd)
			p.fd[i] = -1
		}
	}
	p.ended = true
	p.l.report(p, Result{Err: err})
}

// releasePeer uncounts an admitted pair from its Server's PerPeer, as it
// ends and before its sockets close: a client that sees its connection
// end and connects again at once finds it uncounted. Called on the loop.
func (p *Pair) releasePeer() {
	if p.admitted {
		p.admitted = false
		p.srv.cfg.PerPeer.Release(p.peer.Addr())
	}
}

// ended reports a pair of the Server's to cfg.Ended, and frees its slot:
// the Server accepts again if it was full.
func (s *Server) ended(p *Pair, r Result) {
	s.cfg.Ended(p.peer, epoch.Add(time.Duration(p.accepted)), r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.full && (s.cfg.MaxConns <= 0 || s.active < s.cfg.MaxConns) {
		s.full = false
		// As Service does: what waits in the listen queue as the slot
		// frees has waited for it.
		s.backlog = s.fd >= 0 && listenQueued(s.fd)
		s.wanted()
	}
	if s.fd < 0 && s.active == 0 {
		close(s.drained)
	}
}

// listenQueued says whether a connection waits in the listen queue of fd
// now, polling without waiting.
func listenQueued(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
}
