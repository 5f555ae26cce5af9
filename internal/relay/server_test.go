package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// serve runs s on a loopback listener until the test ends.
func serve(t *testing.T, s *Server) (addr string, served <-chan error) {
	t.Helper()
	ln := listen(t, "tcp")
	ch := make(chan error, 1)
	go func() { ch <- s.Serve(ln) }()
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String(), ch
}

// TestServerDrain: Shutdown closes the listener at once, lets a transfer
// in flight finish, and only then returns.
func TestServerDrain(t *testing.T) {
	release := make(chan struct{})
	s := &Server{Handler: func(ctx context.Context, c net.Conn) {
		defer c.Close()
		<-release
		io.Copy(c, c)
	}}
	addr, served := serve(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, func() bool { return s.Active() == 1 })

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if err := <-served; err != ErrServerClosed {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	if c2, err := net.Dial("tcp", addr); err == nil {
		c2.Close()
		t.Error("a new connection was accepted after Shutdown began")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a connection in flight", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	c.Write([]byte("still here"))
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if string(got) != "still here" || err != nil {
		t.Errorf("echo during drain = %q, %v", got, err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := s.Serve(listen(t, "tcp")); err != ErrServerClosed {
		t.Errorf("Serve after Shutdown = %v", err)
	}
}

// TestServerDrainTimeout: when Shutdown's context ends, the handlers'
// context is cancelled and Shutdown returns once they have.
func TestServerDrainTimeout(t *testing.T) {
	cancelled := make(chan error, 1)
	s := &Server{Handler: func(ctx context.Context, c net.Conn) {
		defer c.Close()
		<-ctx.Done()
		cancelled <- context.Cause(ctx)
	}}
	addr, _ := serve(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, func() bool { return s.Active() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if err := <-cancelled; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("handler's context cause = %v", err)
	}
	if n := s.Active(); n != 0 {
		t.Errorf("Active after Shutdown = %d", n)
	}
}

func TestServerMaxConns(t *testing.T) {
	var mu sync.Mutex
	running, most := 0, 0
	release := make(chan struct{})
	s := &Server{MaxConns: 2, Handler: func(ctx context.Context, c net.Conn) {
		defer c.Close()
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		<-release
		c.Write([]byte("k"))
		mu.Lock()
		running--
		mu.Unlock()
	}}
	addr, _ := serve(t, s)
	var conns []net.Conn
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", addr) // completes in the listen queue
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	waitFor(t, func() bool { return s.Active() == 2 })
	time.Sleep(20 * time.Millisecond)
	if n := s.Active(); n != 2 {
		t.Errorf("Active = %d with MaxConns 2", n)
	}
	close(release)
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Errorf("connection %d never served: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 2 {
		t.Errorf("at most %d handlers ran at once, want 2", most)
	}
}

// flakyListener fails Accept with the given errors before passing on to
// the real listener.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestServerSurvivesTemporaryErrors: running out of file descriptors or a
// connection aborted before Accept does not stop the accept loop.
func TestServerSurvivesTemporaryErrors(t *testing.T) {
	ln := listen(t, "tcp")
	opErr := func(e syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", e)}
	}
	fl := &flakyListener{Listener: ln, errs: []error{
		opErr(syscall.EMFILE), opErr(syscall.EMFILE), opErr(syscall.ENFILE), opErr(syscall.ECONNABORTED),
	}}
	s := &Server{Handler: func(ctx context.Context, c net.Conn) {
		c.Write([]byte("ok"))
		c.Close()
	}}
	served := make(chan error, 1)
	go func() { served <- s.Serve(fl) }()
	defer s.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(c); string(got) != "ok" {
		t.Fatalf("after temporary errors: %q, %v", got, err)
	}
	// A permanent error ends Serve and is returned.
	bad := errors.New("listener broken")
	fl.mu.Lock()
	fl.errs = []error{bad}
	fl.mu.Unlock()
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err == nil {
		defer c2.Close()
	}
	// Serve was waiting in the real Accept; c2 brings it back round.
	if err := <-served; err != bad {
		t.Errorf("Serve = %v, want %v", err, bad)
	}
}

func TestTemporary(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{syscall.EMFILE, true},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENFILE)}, true},
		{fmt.Errorf("wrapped: %w", syscall.ECONNABORTED), true},
		{net.ErrClosed, false},
		{&net.OpError{Op: "accept", Err: net.ErrClosed}, false},
		{syscall.EBADF, false},
		{errors.New("other"), false},
		{nil, false},
	} {
		if got := Temporary(tc.err); got != tc.want {
			t.Errorf("Temporary(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
