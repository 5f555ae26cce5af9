package endpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// checkGoroutines fails the test if goroutines started during it are still
// running at its end (after a grace period for ones on their way out).
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines left behind (was %d):\n%s", runtime.NumGoroutine()-before, before,
					buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func echoHandler() Handler {
	return HandlerFunc(func(ctx context.Context, c net.Conn) { io.Copy(c, c) })
}

func runService(t *testing.T, svc *Service) (addr string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := svc.Endpoint.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, ln) }()
	return ln.Addr().String(), func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after its context ended")
			return nil
		}
	}
}

func TestServiceServes(t *testing.T) {
	checkGoroutines(t)
	svc, err := NewService("tcp:0:interface=127.0.0.1", echoHandler())
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := runService(t, svc)
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c)
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve returned %v after a stop", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after stop: %v, want refused", err)
	}
}

func TestServicePortInUse(t *testing.T) {
	checkGoroutines(t)
	taken := listen(t, "tcp:0:interface=127.0.0.1")
	s := fmt.Sprintf("tcp:%d:interface=127.0.0.1", portOf(taken))
	svc, err := NewService(s, echoHandler())
	if err != nil {
		t.Fatal(err)
	}
	err = svc.Run(context.Background())
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Run on a port in use: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Input != s {
		t.Fatalf("Run error %v does not name the string", err)
	}
}

func TestRunAllFailsTogether(t *testing.T) {
	checkGoroutines(t)
	good, _ := NewService("tcp:0:interface=127.0.0.1", echoHandler())
	sock := sockPath(t)
	good2, _ := NewService("unix:"+sock, echoHandler())
	taken := listen(t, "tcp:0:interface=127.0.0.1")
	bad, _ := NewService(fmt.Sprintf("tcp:%d:interface=127.0.0.1", portOf(taken)), echoHandler())
	err := RunAll(context.Background(), good, good2, bad)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("RunAll: %v, want EADDRINUSE", err)
	}
	// The listeners already opened were closed again.
	if _, err := net.DialTimeout("tcp", good.Addr().String(), time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("first service still listening: %v", err)
	}
	if _, err := Dial(context.Background(), "unix:"+sock); err == nil {
		t.Fatal("second service still listening")
	}
}

func TestRunAllServesAndStops(t *testing.T) {
	checkGoroutines(t)
	a, _ := NewService("tcp:0:interface=127.0.0.1", echoHandler())
	b, _ := NewService("unix:"+sockPath(t), echoHandler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunAll(ctx, a, b) }()
	for a.Addr() == nil || b.Addr() == nil {
		time.Sleep(time.Millisecond)
	}
	c, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	c, err = net.Dial("unix", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunAll after cancel: %v", err)
	}
}

// TestServiceDrains: stopping lets a connection in hand finish within the
// drain timeout, while new connections are refused at once.
func TestServiceDrains(t *testing.T) {
	checkGoroutines(t)
	release := make(chan struct{})
	svc, _ := NewService("tcp:0:interface=127.0.0.1", HandlerFunc(func(ctx context.Context, c net.Conn) {
		io.WriteString(c, "started\n")
		<-release
		io.WriteString(c, "finished\n")
	}))
	svc.DrainTimeout = 10 * time.Second
	addr, stop := runService(t, svc)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if line, _ := r.ReadString('\n'); line != "started\n" {
		t.Fatalf("got %q", line)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// The port closes at once...
	deadline := time.Now().Add(5 * time.Second)
	for {
		c2, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c2.Close()
		if time.Now().After(deadline) {
			t.Fatal("port still open after stop")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// ...but the connection in hand is not cut, and Serve waits for it.
	select {
	case <-stopped:
		t.Fatal("Serve returned before its connection finished")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if line, _ := r.ReadString('\n'); line != "finished\n" {
		t.Fatalf("drained connection got %q", line)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// TestServiceCutsAfterDrainTimeout: a connection that does not finish is
// closed once the drain timeout passes, and its handler's context ends.
func TestServiceCutsAfterDrainTimeout(t *testing.T) {
	checkGoroutines(t)
	handlerCtxDone := make(chan struct{})
	svc, _ := NewService("tcp:0:interface=127.0.0.1", HandlerFunc(func(ctx context.Context, c net.Conn) {
		io.WriteString(c, "started\n")
		io.Copy(io.Discard, c) // until the Service closes c
		<-ctx.Done()
		close(handlerCtxDone)
	}))
	svc.DrainTimeout = 100 * time.Millisecond
	addr, stop := runService(t, svc)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	r.ReadString('\n')
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	<-handlerCtxDone
	// The cut connection is reset, not closed cleanly: its peer must not
	// take a cut stream for a complete one.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after the drain timeout: %v, want a reset", err)
	}
}

// TestServiceClose: Close cuts the drain short.
func TestServiceClose(t *testing.T) {
	checkGoroutines(t)
	svc, _ := NewService("tcp:0:interface=127.0.0.1", HandlerFunc(func(ctx context.Context, c net.Conn) {
		io.WriteString(c, "started\n")
		io.Copy(io.Discard, c)
	}))
	svc.DrainTimeout = time.Hour
	addr, stop := runService(t, svc)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bufio.NewReader(c).ReadString('\n')
	if n := svc.Active(); n != 1 {
		t.Fatalf("Active = %d, want 1", n)
	}
	shut := make(chan error, 1)
	go func() { shut <- svc.Shutdown(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	if n := svc.Active(); n != 1 {
		t.Fatalf("Active while draining = %d, want 1", n)
	}
	svc.Close()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown after Close = %v; want nil (every handler returned)", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := svc.Active(); n != 0 {
		t.Fatalf("Active after Close = %d", n)
	}
}

// TestServiceShutdownDeadline: Shutdown waits for the connections in hand
// until its context ends, then cuts them (handler contexts end with
// ErrDrainTimeout, connections are reset) and returns the context's error.
func TestServiceShutdownDeadline(t *testing.T) {
	checkGoroutines(t)
	cause := make(chan error, 1)
	svc := &Service{Handler: HandlerFunc(func(ctx context.Context, c net.Conn) {
		io.WriteString(c, "started\n")
		<-ctx.Done()
		cause <- context.Cause(ctx)
	})}
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	served := make(chan error, 1)
	go func() { served <- svc.Serve(context.Background(), ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	r.ReadString('\n')
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := svc.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v; want the context's deadline", err)
	}
	if err := <-cause; !errors.Is(err, ErrDrainTimeout) {
		t.Fatalf("handler's context cause = %v; want ErrDrainTimeout", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Shutdown = %v; want nil", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the cut connection read %v; want a reset", err)
	}
	if err := svc.Serve(context.Background(), listen(t, "tcp:0:interface=127.0.0.1")); err != nil {
		t.Fatalf("Serve after Shutdown = %v; want nil at once", err)
	}
}

func TestServiceMaxConns(t *testing.T) {
	checkGoroutines(t)
	release := make(chan struct{})
	svc, _ := NewService("tcp:0:interface=127.0.0.1", HandlerFunc(func(ctx context.Context, c net.Conn) {
		io.WriteString(c, "hi\n")
		<-release
	}))
	svc.MaxConns = 1
	addr, stop := runService(t, svc)
	c1, _ := net.Dial("tcp", addr)
	defer c1.Close()
	bufio.NewReader(c1).ReadString('\n')
	c2, _ := net.Dial("tcp", addr) // queued in the backlog, not served
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("second connection served beyond MaxConns=1")
	}
	close(release)
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c2).ReadString('\n'); line != "hi\n" {
		t.Fatalf("second connection after the first finished: %q, %v", line, err)
	}
	stop()
}

func TestServiceShutdownBeforeServe(t *testing.T) {
	checkGoroutines(t)
	svc, _ := NewService("tcp:0:interface=127.0.0.1", echoHandler())
	if err := svc.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown of a Service never run: %v", err)
	}
	if err := svc.Run(context.Background()); err != nil {
		t.Fatalf("Run after Shutdown: %v", err)
	}
}

// flakyListener returns the errors in errs from Accept, one per call,
// before passing on to the real listener.
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

type listenerServer struct{ ln net.Listener }

func (s listenerServer) Listen(context.Context) (net.Listener, error) { return s.ln, nil }

// TestServiceSurvivesTemporaryErrors: running out of file descriptors or a
// connection aborted before Accept does not stop the accept loop; another
// error does, and Serve returns it. (cmd/tether's TestRelayFDStorm makes
// the real EMFILE.)
func TestServiceSurvivesTemporaryErrors(t *testing.T) {
	checkGoroutines(t)
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	opErr := func(e syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", e)}
	}
	fl := &flakyListener{Listener: ln, errs: []error{
		opErr(syscall.EMFILE), opErr(syscall.EMFILE), opErr(syscall.ENFILE), opErr(syscall.ECONNABORTED),
	}}
	svc := &Service{Endpoint: listenerServer{fl}, Handler: HandlerFunc(func(ctx context.Context, c net.Conn) {
		io.WriteString(c, "ok")
	}), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	served := make(chan error, 1)
	go func() { served <- svc.Run(context.Background()) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(c); string(got) != "ok" {
		t.Fatalf("after temporary errors: %q, %v", got, err)
	}
	bad := errors.New("listener broken")
	fl.mu.Lock()
	fl.errs = []error{bad}
	fl.mu.Unlock()
	if c2, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		defer c2.Close() // brings Accept round to the injected error
	}
	if err := <-served; !errors.Is(err, bad) {
		t.Fatalf("Serve = %v, want %v", err, bad)
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
		if got := temporary(tc.err); got != tc.want {
			t.Errorf("temporary(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
