package endpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/internal/abort"
)

// A Handler serves one connection. ServeConn runs in the connection's own
// goroutine; the Service closes the connection after ServeConn returns. ctx
// is cancelled when the Service gives up waiting for its connections to
// finish, a moment before it resets them; context.Cause(ctx) is then
// ErrDrainTimeout or ErrServiceClosed.
type Handler interface {
	ServeConn(ctx context.Context, conn net.Conn)
}

// HandlerFunc lets an ordinary function be a Handler.
type HandlerFunc func(ctx context.Context, conn net.Conn)

// ServeConn calls f(ctx, conn).
func (f HandlerFunc) ServeConn(ctx context.Context, conn net.Conn) { f(ctx, conn) }

// The causes of a handler's context ending (context.Cause), and the reasons
// a Service gives for cutting connections.
var (
	// ErrDrainTimeout: the Service stopped and its drain timeout passed.
	ErrDrainTimeout = errors.New("drain timeout")
	// ErrServiceClosed: Service.Close was called.
	ErrServiceClosed = errors.New("service closed")
)

// DefaultDrainTimeout is how long a stopping Service waits for its
// connections when its DrainTimeout is zero.
const DefaultDrainTimeout = 10 * time.Second

// A Service listens on a server endpoint and hands each connection to a
// Handler: Twisted's strports.service. Run listens when it starts, failing
// at once with the listen error if it cannot; when its context ends or Stop
// is called it stops listening, lets the connections in hand finish for up
// to DrainTimeout, then resets what is left and returns; Close cuts the
// wait short.
//
// A Service is used once; its exported fields must not change after Start.
type Service struct {
	// Endpoint is where to listen.
	Endpoint Server
	// Handler serves each connection.
	Handler Handler
	// DrainTimeout bounds how long stopping waits for connections to
	// finish: zero means DefaultDrainTimeout, negative means not at all.
	DrainTimeout time.Duration
	// MaxConns, if positive, is the most connections served at once;
	// further ones wait in the listen queue until one finishes.
	MaxConns int
	// Log receives accept errors; nil means slog.Default().
	Log *slog.Logger

	mu      sync.Mutex
	ln      net.Listener
	conns   map[net.Conn]struct{}
	stop    chan struct{} // closed by Stop; made by whichever of Start and Stop comes first
	stopped bool
	cut     chan struct{} // closed by Close: stop draining at once
	cutDone bool
	wg      sync.WaitGroup
}

// NewService parses a server endpoint string and returns a Service that
// will serve it with h.
func NewService(s string, h Handler) (*Service, error) {
	srv, err := ParseServer(s)
	if err != nil {
		return nil, err
	}
	return &Service{Endpoint: srv, Handler: h}, nil
}

// Start listens. The error, if any, is the Endpoint's Listen error: the one
// an administrator needs to see, such as a port already in use.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("endpoint: Service started twice")
	}
	if s.Endpoint == nil || s.Handler == nil {
		return errors.New("endpoint: Service needs an Endpoint and a Handler")
	}
	ln, err := s.Endpoint.Listen(ctx)
	if err != nil {
		return err
	}
	s.ln = ln
	s.conns = map[net.Conn]struct{}{}
	s.stopChan()
	return nil
}

// stopChan returns the channel Stop closes; s.mu must be held.
func (s *Service) stopChan() chan struct{} {
	if s.stop == nil {
		s.stop = make(chan struct{})
	}
	return s.stop
}

// cutChan returns the channel Close closes; s.mu must be held.
func (s *Service) cutChan() chan struct{} {
	if s.cut == nil {
		s.cut = make(chan struct{})
	}
	return s.cut
}

// Active returns the number of connections being served.
func (s *Service) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops the Service at once: it stops listening and, without waiting
// for the drain timeout, cuts the connections in hand as a drain timeout
// would. Like Stop it does not wait; Serve returns when all is closed.
func (s *Service) Close() {
	s.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cutDone {
		s.cutDone = true
		close(s.cutChan())
	}
}

// Addr returns the address the Service listens on, or nil before Start.
func (s *Service) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Stop asks Serve to stop: it stops listening at once and drains. Stop
// does not wait; Serve (or Run) returns when the Service has stopped.
func (s *Service) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.stopped = true
		close(s.stopChan())
	}
}

// Run listens and serves until ctx ends or Stop is called, then drains,
// and returns nil; or returns the listen error at once. It fits
// errgroup.Group.Go and signal.NotifyContext as it is.
func (s *Service) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Serve accepts connections on the listener that Start opened until ctx
// ends or Stop is called, then stops listening and drains: it waits for
// the handlers for up to DrainTimeout (or until Close), then cancels their
// context, resets their connections and waits for them to return. It returns nil after a
// stop, or the error that broke the listener.
func (s *Service) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln, stop, cut := s.ln, s.stop, s.cutChan()
	s.mu.Unlock()
	if ln == nil {
		return errors.New("endpoint: Service.Serve called before Start")
	}
	connCtx, cancelConns := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelConns(nil)

	// Closing the listener is what wakes the accept loop.
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		ln.Close()
		close(stopped)
	}()

	var slots chan struct{}
	if s.MaxConns > 0 {
		slots = make(chan struct{}, s.MaxConns)
	}
	err := acceptLoop(ln, s.logger(), stopped, slots, func(c net.Conn) {
		s.track(c, true)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				if slots != nil {
					<-slots
				}
			}()
			defer s.track(c, false)
			defer c.Close()
			s.Handler.ServeConn(connCtx, c)
		}()
	})
	s.Stop()
	<-stopped
	s.drain(cancelConns, cut)
	return err
}

func (s *Service) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Service) track(c net.Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
}

// drain waits for the handlers, up to the drain timeout or until Close,
// then cuts them off: it cancels their context and resets their
// connections, so that no peer takes a cut stream for a complete one.
func (s *Service) drain(cancelConns context.CancelCauseFunc, cut <-chan struct{}) {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	timeout := s.DrainTimeout
	if timeout == 0 {
		timeout = DefaultDrainTimeout
	}
	cause := ErrDrainTimeout
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-done:
			return
		case <-t.C:
		case <-cut:
			cause = ErrServiceClosed
		}
	}
	if n := s.Active(); n > 0 {
		s.logger().Warn("cutting the connections still open", "addr", s.ln.Addr().String(),
			"connections", n, "reason", cause)
	}
	cancelConns(cause)
	s.mu.Lock()
	for c := range s.conns {
		abort.Conn(c)
	}
	s.mu.Unlock()
	<-done
}

// acceptLoop accepts until the listener is closed, handing each connection
// to serve. Errors that pass (too many open files, a connection aborted
// before it was accepted) are logged and retried after a pause that starts
// at 5ms and doubles up to 1s, as net/http does, so a storm of connections
// cannot end the loop. With slots, it accepts only when a slot is free.
func acceptLoop(ln net.Listener, log *slog.Logger, stopped <-chan struct{}, slots chan struct{}, serve func(net.Conn)) error {
	var pause time.Duration
	for {
		if slots != nil {
			select {
			case slots <- struct{}{}:
			case <-stopped:
				return nil
			}
		}
		c, err := ln.Accept()
		if err != nil {
			if slots != nil {
				<-slots
			}
			select {
			case <-stopped:
				return nil
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !temporary(err) {
				return fmt.Errorf("endpoint: accepting on %s: %w", ln.Addr(), err)
			}
			if pause == 0 {
				pause = 5 * time.Millisecond
			} else if pause *= 2; pause > time.Second {
				pause = time.Second
			}
			log.Warn("accept failed; retrying", "addr", ln.Addr().String(), "error", err, "pause", pause)
			select {
			case <-time.After(pause):
			case <-stopped:
				return nil
			}
			continue
		}
		pause = 0
		serve(c)
	}
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

// temporary reports whether an error from Accept is worth retrying after
// a pause: a temporary errno, or an error that says it is temporary or a
// timeout. net.ErrClosed never is.
func temporary(err error) bool {
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

// RunAll runs several services side by side: it starts them all, and if
// any cannot listen, closes those already listening and returns that
// error without serving. Otherwise it serves until ctx ends (all drain and
// RunAll returns nil) or one fails (the others are stopped and drained, and
// its error returned).
func RunAll(ctx context.Context, services ...*Service) error {
	for i, s := range services {
		if err := s.Start(ctx); err != nil {
			for _, started := range services[:i] {
				started.mu.Lock()
				started.ln.Close()
				started.mu.Unlock()
			}
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(services))
	for _, s := range services {
		go func() {
			err := s.Serve(ctx)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	var first error
	for range services {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
