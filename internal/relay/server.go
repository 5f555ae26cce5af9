package relay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// ErrServerClosed is returned by Server.Serve once Shutdown or Close has
// been called.
var ErrServerClosed = errors.New("relay: server closed")

// A Server accepts connections and hands each to Handler in a goroutine of
// its own. Its accept loop survives temporary failures (EMFILE, ENFILE,
// ECONNABORTED and the like) by backing off, and never does a connection's
// work itself. The zero value is ready once Handler is set; the fields must
// not change after Serve is first called.
type Server struct {
	// Handler serves one connection and must close it. ctx is cancelled
	// when Shutdown stops waiting (its context ended) or Close is called:
	// Handler should then give up and return.
	Handler func(ctx context.Context, conn net.Conn)

	// MaxConns limits how many connections are handled at once. At the
	// limit, Serve stops accepting until one ends; connections arriving
	// meanwhile wait in the listen queue. Zero or negative: no limit.
	MaxConns int

	// Logger receives the accept errors that Serve retries. Nil: they are
	// not logged.
	Logger *slog.Logger

	mu        sync.Mutex
	inited    bool
	ctx       context.Context // handlers' context
	cancel    context.CancelCauseFunc
	closing   chan struct{} // closed when Shutdown begins
	sem       chan struct{} // one token per connection handled, when MaxConns > 0
	listeners map[net.Listener]struct{}
	active    int           // Serve loops and handlers running
	conns     int           // handlers running
	idle      chan struct{} // closed when active drops to zero, if made
}

func (s *Server) initLocked() {
	if s.inited {
		return
	}
	s.inited = true
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.closing = make(chan struct{})
	if s.MaxConns > 0 {
		s.sem = make(chan struct{}, s.MaxConns)
	}
	s.listeners = map[net.Listener]struct{}{}
}

func (s *Server) shuttingDown() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.active == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// Active returns the number of connections being handled.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Serve accepts connections on ln until ln fails or Shutdown or Close is
// called, and then returns ErrServerClosed. Serve may be called for several
// listeners at once. Shutdown closes ln; an error other than a temporary one
// closes it too.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.initLocked()
	if s.shuttingDown() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.active++
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer s.leave()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var delay time.Duration // how long to back off after a temporary error
	for {
		if s.sem != nil {
			select {
			case s.sem <- struct{}{}:
			case <-s.closing:
				return ErrServerClosed
			}
		}
		conn, err := ln.Accept()
		if err != nil {
			if s.sem != nil {
				<-s.sem
			}
			if s.shuttingDown() {
				return ErrServerClosed
			}
			if !Temporary(err) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if s.Logger != nil {
				s.Logger.Warn("accept failed; retrying", "error", err, "retry_in", delay)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.closing:
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		delay = 0
		// Counted even if Shutdown has begun: it was accepted, so
		// Shutdown waits for it. This Serve loop is still counted, so
		// the count cannot have reached zero in between.
		s.mu.Lock()
		s.active++
		s.conns++
		s.mu.Unlock()
		go s.handle(conn)
	}
}

func (s *Server) handle(conn net.Conn) {
	defer func() {
		s.mu.Lock()
		s.conns--
		s.mu.Unlock()
		if s.sem != nil {
			<-s.sem
		}
		s.leave()
	}()
	s.Handler(s.ctx, conn)
}

// Shutdown stops the server: it closes the listeners at once, so that no
// new connection is accepted, and waits for the connections being handled
// to end. If ctx ends first, Shutdown cancels the handlers' context, waits
// for them to return, and returns ctx's error. Connections that Accept had
// already returned when Shutdown began are handled, not dropped.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.initLocked()
	if !s.shuttingDown() {
		close(s.closing)
	}
	for ln := range s.listeners {
		ln.Close()
	}
	idle := s.idle
	if s.active == 0 {
		idle = make(chan struct{})
		close(idle)
	} else if idle == nil {
		s.idle = make(chan struct{})
		idle = s.idle
	}
	s.mu.Unlock()

	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		s.cancel(context.Cause(ctx))
		<-idle
		return ctx.Err()
	}
}

// Close stops the server at once: Shutdown with a context already ended.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ErrServerClosed)
	err := s.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// temporaryErrnos are accept(2) failures that say nothing about the
// listening socket: the process or system is out of file descriptors or
// memory, or a connection died before it was accepted (Linux passes on a
// new connection's pending network errors too).
var temporaryErrnos = []syscall.Errno{
	syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
	syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO, syscall.EPERM,
	syscall.EINTR, syscall.EAGAIN, syscall.ETIMEDOUT,
	syscall.ENETDOWN, syscall.ENOPROTOOPT, syscall.EHOSTDOWN,
	syscall.EHOSTUNREACH, syscall.EOPNOTSUPP, syscall.ENETUNREACH,
}

// Temporary reports whether an error from Accept is worth retrying after a
// pause: a temporary errno, or an error that says it is temporary or a
// timeout. net.ErrClosed never is.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, e := range temporaryErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	var t interface {
		Temporary() bool
		Timeout() bool
	}
	return errors.As(err, &t) && (t.Temporary() || t.Timeout())
}
