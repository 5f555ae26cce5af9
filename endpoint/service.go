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
// goroutine; the Service closes the connection after ServeConn returns,
// unless the handler handed it on with Detach. ctx
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

// A Service serves connections with a Handler, each in a goroutine of its
// own: Twisted's strports.service, in the shape of net/http's Server. Run
// listens on Endpoint and serves; Serve serves a listener the caller made.
// Shutdown stops accepting and waits for the connections in hand; Close
// cuts them at once. A connection that is cut is reset at the socket under
// every wrapper (see Abort), so no peer takes a cut stream for a whole one.
//
// The zero value, given a Handler, is ready to Serve. A Service is used
// once: after Shutdown or Close, Serve and Run return at once. Its
// exported fields must not change once it serves.
type Service struct {
	// Endpoint is where Run listens. Serve does not use it.
	Endpoint Server
	// Handler serves each connection.
	Handler Handler
	// DrainTimeout bounds how long Serve and Run wait for connections to
	// finish when their context ends or their listener closes: zero means
	// DefaultDrainTimeout, negative means not at all. Shutdown's context
	// bounds Shutdown instead.
	DrainTimeout time.Duration
	// MaxConns, if positive, is the most connections served at once;
	// further ones wait in the listen queue until one finishes.
	MaxConns int
	// Queued, if not nil, is called for each connection that MaxConns
	// kept waiting: each accepted from the listen queue after every slot
	// had been taken, until the queue is seen empty again. (Those the
	// system refuses once the queue is full never reach the Service.) It
	// sees only listeners that expose their socket (syscall.Conn, as TCP
	// and UNIX listeners and the tls:, ssl: and haproxy: wrappers of
	// package endpoint do), and is called from the accept loop: it must
	// be quick.
	Queued func()
	// Log receives accept errors and cuts; nil means slog.Default().
	Log *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]func() error // each stops its Serve's accept loop
	lastAddr  net.Addr
	conns     map[net.Conn]struct{}
	cancels   []context.CancelCauseFunc // the handlers' contexts, one per Serve
	shutdown  bool                      // Shutdown or Close was called
	cutCause  error                     // why the connections were cut, once they were
	handlers  sync.WaitGroup
	detached  map[net.Conn]*detachment // connections handed on by Detach
}

// A detachment is a connection that outlives its handler (see Detach).
type detachment struct {
	cut      func(cause error)
	slots    chan struct{} // its Serve's, for MaxConns
	returned bool          // the handler has returned
	done     bool          // the code it was handed to is done with it
}

// serveKey is the context key under which a Serve gives its handlers what
// Detach needs.
type serveKey struct{}

type serving struct {
	s     *Service
	slots chan struct{}
}

// Detach tells the Service serving conn that the connection lives on after
// its handler returns: the handler has handed it to code of its own (the
// relay's event loop, which needs no goroutine per connection). ctx and
// conn are those the Service gave the handler. From then on the Service
// does not close conn when the handler returns, and goes on counting it
// (Active, MaxConns; Shutdown waits for it) until done is called, which
// the new owner must do once it has closed the connection. If the Service
// cuts its connections (a drain that times out, Close), it calls cut with
// the cause instead of resetting conn itself; cut must end the connection
// with a reset, soon, and must not wait for done. cut is called at most
// once, perhaps at once from Detach if the Service is cutting already.
//
// Detach returns false, and changes nothing, if conn is not being served
// by a Service (a handler called directly) or is detached already: the
// handler must then see the connection to its end itself.
func Detach(ctx context.Context, conn net.Conn, cut func(cause error)) (done func(), ok bool) {
	sv, _ := ctx.Value(serveKey{}).(*serving)
	if sv == nil {
		return nil, false
	}
	s := sv.s
	s.mu.Lock()
	if _, served := s.conns[conn]; !served || s.detached[conn] != nil {
		s.mu.Unlock()
		return nil, false
	}
	d := &detachment{cut: cut, slots: sv.slots}
	if s.detached == nil {
		s.detached = map[net.Conn]*detachment{}
	}
	s.detached[conn] = d
	cause := s.cutCause
	s.mu.Unlock()
	if cause != nil {
		cut(cause)
	}
	return func() { s.detachedDone(conn, d) }, true
}

// handlerReturned notes that c's handler has returned, and says whether
// c lives on, detached: then its done, not the handler, finishes it.
func (s *Service) handlerReturned(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.detached[c]
	if d == nil {
		return false
	}
	d.returned = true
	if d.done {
		delete(s.detached, c)
		return false
	}
	return true
}

// detachedDone is a detached connection's done: it finishes the
// connection if its handler has returned (else the handler's return does).
func (s *Service) detachedDone(c net.Conn, d *detachment) {
	s.mu.Lock()
	if d.done {
		s.mu.Unlock()
		return
	}
	d.done = true
	if !d.returned {
		s.mu.Unlock()
		return
	}
	delete(s.detached, c)
	s.mu.Unlock()
	s.finish(c, d.slots)
}

// finish closes a connection whose handler (and, if it was detached, its
// new owner) is done with it, and stops counting it.
func (s *Service) finish(c net.Conn, slots chan struct{}) {
	s.closeConn(c)
	s.untrack(c)
	if slots != nil {
		<-slots
	}
	s.handlers.Done()
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

// Active returns the number of connections being served.
func (s *Service) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Addr returns the address of the listener the Service most recently
// opened or began to serve, or nil.
func (s *Service) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAddr
}

// Run listens on Endpoint and serves until ctx ends, then stops
// accepting, waits up to DrainTimeout for the connections in hand, cuts
// what is left and returns nil. If it cannot listen it returns the listen
// error at once: the one an administrator needs to see, such as a port in
// use. It fits errgroup.Group.Go and signal.NotifyContext as it is.
func (s *Service) Run(ctx context.Context) error {
	if s.Endpoint == nil {
		return errors.New("endpoint: Service.Run needs an Endpoint")
	}
	ln, err := s.Endpoint.Listen(ctx)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln and hands each to Handler until ctx
// ends, ln closes or fails, or Shutdown or Close is called; ln is closed
// when it returns. Handlers' contexts carry ctx's values but not its
// cancellation: they end only when the Service cuts their connections.
//
// When ctx ends or ln closes or fails, Serve stops the whole Service as
// Shutdown would, waiting up to DrainTimeout for the connections in hand,
// and returns nil, or ln's error if it failed. After Shutdown or Close it
// returns nil at once: they do the waiting. The accept loop survives
// temporary errors (out of file descriptors, a connection aborted before
// it was accepted), pausing 5 ms, doubling to 1 s, as net/http does.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	if s.Handler == nil {
		ln.Close()
		return errors.New("endpoint: Service needs a Handler")
	}
	connCtx, cancelConns := context.WithCancelCause(context.WithoutCancel(ctx))
	var slots chan struct{}
	if s.MaxConns > 0 {
		slots = make(chan struct{}, s.MaxConns)
	}
	connCtx = context.WithValue(connCtx, serveKey{}, &serving{s: s, slots: slots})
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		cancelConns(ErrServiceClosed)
		ln.Close()
		return nil
	}
	// Closing the listener is what wakes the accept loop from Accept, and
	// closing stopped from waiting for a free slot.
	stopped := make(chan struct{})
	var once sync.Once
	stop := func() error {
		once.Do(func() { close(stopped) })
		return ln.Close()
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]func() error{}
		s.conns = map[net.Conn]struct{}{}
	}
	s.listeners[ln] = stop
	s.lastAddr = ln.Addr()
	s.cancels = append(s.cancels, cancelConns)
	s.mu.Unlock()

	stopAccepting := context.AfterFunc(ctx, func() { stop() })
	err := acceptLoop(ln, s.logger(), stopped, slots, s.Queued, func(c net.Conn) {
		if !s.track(c) {
			abort.Conn(c) // accepted as Shutdown began
			if slots != nil {
				<-slots
			}
			return
		}
		go func() {
			defer func() {
				if !s.handlerReturned(c) {
					s.finish(c, slots)
				}
			}()
			s.Handler.ServeConn(connCtx, c)
		}()
	})
	stopAccepting()
	stop()

	s.mu.Lock()
	delete(s.listeners, ln)
	shutdown := s.shutdown
	s.mu.Unlock()
	if shutdown {
		return nil
	}
	drain := context.Background()
	switch timeout := s.DrainTimeout; {
	case timeout == 0:
		timeout = DefaultDrainTimeout
		fallthrough
	case timeout > 0:
		var cancel context.CancelFunc
		drain, cancel = context.WithTimeout(drain, timeout)
		defer cancel()
	default:
		var cancel context.CancelFunc
		drain, cancel = context.WithCancel(drain)
		cancel() // no drain: cut at once
	}
	s.Shutdown(drain)
	return err
}

// Shutdown stops the Service gracefully: it closes every listener at once,
// so that new connections are refused, and waits for the connections in
// hand to finish. If ctx ends first, it cuts them (their handlers'
// context ends with cause ErrDrainTimeout, and each connection is reset),
// waits for their handlers to return, and returns ctx's error; else nil.
func (s *Service) Shutdown(ctx context.Context) error {
	s.beginShutdown()
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.cut(ErrDrainTimeout)
	<-done
	return ctx.Err()
}

// Close stops the Service at once: it closes every listener and cuts the
// connections in hand (their handlers' context ends with cause
// ErrServiceClosed, and each connection is reset). It does not wait for
// the handlers to return; a Shutdown in progress does, and returns.
func (s *Service) Close() error {
	err := s.beginShutdown()
	s.cut(ErrServiceClosed)
	return err
}

// beginShutdown marks the Service stopped and closes its listeners, and
// returns the first error of closing one.
func (s *Service) beginShutdown() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown = true
	var first error
	for _, stop := range s.listeners {
		if err := stop(); err != nil && first == nil && !errors.Is(err, net.ErrClosed) {
			first = err
		}
	}
	return first
}

// cut ends the handlers' contexts with cause and resets their connections,
// once: so that no peer takes a cut stream for a complete one.
func (s *Service) cut(cause error) {
	s.mu.Lock()
	if s.cutCause != nil {
		s.mu.Unlock()
		return
	}
	s.cutCause = cause
	if n := len(s.conns); n > 0 {
		s.logger().Warn("cutting the connections still open", "connections", n, "reason", cause)
	}
	// The contexts end first, so that a handler sees why before its
	// connection fails under it; a handler that returns at once finds its
	// connection closed by the Service with a reset (see closeConn), not
	// cleanly.
	for _, cancel := range s.cancels {
		cancel(cause)
	}
	var cuts []func(error)
	for c := range s.conns {
		if d := s.detached[c]; d != nil {
			cuts = append(cuts, d.cut)
			continue
		}
		abort.Conn(c)
	}
	s.mu.Unlock()
	// A detached connection's new owner cuts it; not under s.mu, which its
	// done takes.
	for _, cut := range cuts {
		cut(cause)
	}
}

func (s *Service) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// track counts a new connection and its handler, unless the Service has
// begun to stop (then the connection is refused, and track returns false):
// no handler starts once Shutdown waits for them.
func (s *Service) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.conns[c] = struct{}{}
	s.handlers.Add(1)
	return true
}

// closeConn closes a connection whose handler has returned: with a reset
// if the Service has cut its connections, since the handler may have
// returned because of that, mid-stream.
func (s *Service) closeConn(c net.Conn) {
	s.mu.Lock()
	cut := s.cutCause != nil
	s.mu.Unlock()
	if cut {
		abort.Conn(c)
		return
	}
	c.Close()
}

func (s *Service) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// acceptLoop accepts until the listener is closed, handing each connection
// to serve. Errors that pass (too many open files, a connection aborted
// before it was accepted) are logged and retried after a pause that starts
// at 5ms and doubles up to 1s, as net/http does, so a storm of connections
// cannot end the loop. With slots, it accepts only when a slot is free;
// and calls queued, if not nil, for each connection that waited for one.
func acceptLoop(ln net.Listener, log *slog.Logger, stopped <-chan struct{}, slots chan struct{}, queued func(), serve func(net.Conn)) error {
	var pause time.Duration
	// backlog: connections may have queued since every slot was taken;
	// true until the listen queue is seen empty.
	backlog := false
	for {
		if slots != nil {
			select {
			case slots <- struct{}{}:
			case <-stopped:
				return nil
			}
		}
		if backlog {
			backlog = listenQueued(ln)
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
		if backlog {
			queued()
		}
		if queued != nil && slots != nil && len(slots) == cap(slots) {
			// c took the last slot: whoever comes next waits in the
			// queue, which is looked at once a slot is free again.
			backlog = true
		}
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

// RunAll runs several services side by side: each listens on its
// Endpoint, and if any cannot, those already listening are closed and that
// error is returned, so that a program never half-starts. Otherwise they
// serve until ctx ends (all drain and RunAll returns nil) or one's
// listener fails (the others are stopped and drained, and its error
// returned).
func RunAll(ctx context.Context, services ...*Service) error {
	listeners := make([]net.Listener, 0, len(services))
	for _, s := range services {
		if s.Endpoint == nil {
			return errors.New("endpoint: RunAll: a Service without an Endpoint")
		}
		ln, err := s.Endpoint.Listen(ctx)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return err
		}
		s.mu.Lock()
		s.lastAddr = ln.Addr()
		s.mu.Unlock()
		listeners = append(listeners, ln)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(services))
	for i, s := range services {
		go func() {
			err := s.Serve(ctx, listeners[i])
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
