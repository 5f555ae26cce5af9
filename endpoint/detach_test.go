package endpoint

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// detachingHandler hands each connection to a goroutine of its own that
// echoes it until its end, then calls done: the shape of a handler that
// gives its connection to an event loop. cut resets the connection, as
// Detach asks. Each detached connection's done is sent on dones, and each
// cut's cause on cuts.
func detachingHandler(t *testing.T, cuts chan<- error) Handler {
	return HandlerFunc(func(ctx context.Context, c net.Conn) {
		done, ok := Detach(ctx, c, func(cause error) {
			cuts <- cause
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		})
		if !ok {
			t.Error("Detach refused a connection its Service serves")
			return
		}
		if _, again := Detach(ctx, c, func(error) {}); again {
			t.Error("Detach took a connection twice")
		}
		io.WriteString(c, "detached\n")
		go func() {
			io.Copy(c, c)
			c.Close()
			done()
		}()
	})
}

// TestDetach: a detached connection outlives its handler; the Service
// counts it (Active) until done, and Shutdown waits for it.
func TestDetach(t *testing.T) {
	checkGoroutines(t)
	svc, _ := NewService("tcp:0:interface=127.0.0.1", detachingHandler(t, make(chan error, 1)))
	addr, stop := runService(t, svc)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); line != "detached\n" {
		t.Fatal(line, err)
	}
	if n := svc.Active(); n != 1 {
		t.Errorf("Active = %d with one detached connection, want 1", n)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// The handler has returned; the Service must still be waiting.
	io.WriteString(c, "ping\n")
	if line, err := r.ReadString('\n'); line != "ping\n" {
		t.Fatalf("echo during the drain: %q, %v", line, err)
	}
	select {
	case <-stopped:
		t.Fatal("Serve returned while a detached connection was open")
	default:
	}
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.ReadAll(r); err != nil {
		t.Fatalf("the detached connection's end: %v, want a clean one", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if n := svc.Active(); n != 0 {
		t.Errorf("Active = %d after done, want 0", n)
	}
}

// TestDetachCut: when the drain times out, the Service cuts a detached
// connection through its cut, with the cause, and then waits for done.
func TestDetachCut(t *testing.T) {
	checkGoroutines(t)
	cuts := make(chan error, 1)
	svc, _ := NewService("tcp:0:interface=127.0.0.1", detachingHandler(t, cuts))
	svc.DrainTimeout = 50 * time.Millisecond
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
	if cause := <-cuts; !errors.Is(cause, ErrDrainTimeout) {
		t.Errorf("cut with %v, want ErrDrainTimeout", cause)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after the cut: %v, want a reset", err)
	}
}

// TestDetachMaxConns: a detached connection keeps its MaxConns slot until
// done.
func TestDetachMaxConns(t *testing.T) {
	checkGoroutines(t)
	svc, _ := NewService("tcp:0:interface=127.0.0.1", detachingHandler(t, make(chan error, 1)))
	svc.MaxConns = 1
	addr, stop := runService(t, svc)
	defer stop()
	c1, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	bufio.NewReader(c1).ReadString('\n')
	c2, err := net.Dial("tcp", addr) // queued in the backlog, not served
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("second connection served beyond MaxConns=1 while the first is detached")
	}
	c1.(*net.TCPConn).CloseWrite()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c2).ReadString('\n'); line != "detached\n" {
		t.Fatalf("second connection after the first was done: %q, %v", line, err)
	}
	c2.(*net.TCPConn).CloseWrite()
}

// TestDetachOutsideService: a handler called directly cannot detach.
func TestDetachOutsideService(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, ok := Detach(context.Background(), a, func(error) {}); ok {
		t.Error("Detach outside a Service said yes")
	}
}
