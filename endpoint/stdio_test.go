//go:build linux

package endpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/internal/testpeer"
	"golang.org/x/sys/unix"
)

// stdioPipes returns the files a stdio endpoint is given in place of
// standard input and output, and the test's ends of them.
func stdioPipes(t *testing.T) (in, out, toIn, fromOut *os.File) {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, f := range []*os.File{inR, inW, outR, outW} {
			f.Close()
		}
	})
	return inR, outW, inW, outR
}

func TestStdioServer(t *testing.T) {
	checkGoroutines(t)
	in, out, toIn, fromOut := stdioPipes(t)
	ln, err := (&stdioServer{in: in, out: out}).Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&stdioServer{in: in, out: out}).Listen(context.Background()); err == nil {
		t.Error("a second Listen on the same standard input succeeded")
	}
	if _, err := (&stdioClient{in: in, out: out}).Dial(context.Background()); err == nil {
		t.Error("a Dial on standard input already listened on succeeded")
	}
	if a := ln.Addr(); a.Network() != "stdio" || a.String() != "stdio" {
		t.Errorf("Addr = %v %v", a.Network(), a)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// The second Accept waits until Close.
	accepted := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		accepted <- err
	}()

	io.WriteString(toIn, "hello")
	toIn.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
	io.WriteString(c, "world")
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(fromOut)
	if err != nil || string(got) != "world" {
		t.Fatalf("stdout %q, %v", got, err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after CloseWrite: %v, want net.ErrClosed", err)
	}

	select {
	case err := <-accepted:
		t.Fatalf("second Accept returned before Close: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	ln.Close()
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
}

// A listener closed before its connection was accepted gives standard
// input and output back.
func TestStdioServerCloseUnaccepted(t *testing.T) {
	in, out, _, _ := stdioPipes(t)
	ln, err := (&stdioServer{in: in, out: out}).Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	c, err := (&stdioClient{in: in, out: out}).Dial(context.Background())
	if err != nil {
		t.Fatalf("Dial after the listener gave stdio back: %v", err)
	}
	c.Close()
}

func TestStdioClientDeadline(t *testing.T) {
	in, out, _, _ := stdioPipes(t)
	c, err := (&stdioClient{in: in, out: out}).Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Pipes support deadlines.
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past the deadline: %v", err)
	}
}

// TestStdioProcess runs stdio: in a process of its own, on its real
// standard input and output.
func TestStdioProcess(t *testing.T) {
	cmd := exec.Command(helperArgs()[0], helperArgs()[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"=stdio-server", helperRaceEnv)
	cmd.Stdin = strings.NewReader("tether\n")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	stderr := &testpeer.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr)
	}
	// Standard input is not a socket here (a pipe), so the addresses are
	// stdio's.
	if want := "peer stdio local stdio\nTETHER\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	if !strings.Contains(stderr.String(), "second accept: ErrClosed=true") {
		t.Errorf("stderr %q", stderr)
	}

	cmd = exec.Command(helperArgs()[0], helperArgs()[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"=stdio-client", helperRaceEnv)
	cmd.Stdin = strings.NewReader("abc\nhello\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "cba\nolleh\n" {
		t.Errorf("stdio client: %q", out)
	}
}

// TestStdioInetd is inetd-style use: systemd-socket-activate --inetd
// starts a process per connection with the connection as its standard
// input and output, and stdio: serves it, naming the real peer.
func TestStdioInetd(t *testing.T) {
	testpeer.Need(t, socketActivate, "systemd")
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	cmd := exec.Command(socketActivate, append([]string{"--inetd", "--accept", "-l", addr,
		"-E", helperEnv + "=stdio-server", "-E", helperRaceEnv}, helperArgs()...)...)
	stderr := testpeer.Start(t, cmd)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "Listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("systemd-socket-activate did not listen:\n%s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 2; i++ { // a process per connection
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("peer %s local %s\n", c.LocalAddr(), c.RemoteAddr()); line != want {
			t.Errorf("got %q, want %q", line, want)
		}
		io.WriteString(c, "inetd")
		c.(*net.TCPConn).CloseWrite()
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "INETD" {
			t.Errorf("got %q, %v", rest, err)
		}
		c.Close()
	}
}

func TestStdioParse(t *testing.T) {
	for _, s := range []string{"stdio", "stdio:", "STDIO:"} {
		if _, err := ParseServer(s); err != nil {
			t.Errorf("ParseServer(%q): %v", s, err)
		}
		if _, err := ParseClient(s); err != nil {
			t.Errorf("ParseClient(%q): %v", s, err)
		}
	}
	if _, err := ParseServer("stdio:x"); err == nil || !strings.Contains(err.Error(), "stdio takes no positional arguments") {
		t.Errorf("stdio:x: %v", err)
	}
}

// Closing the one connection closes the listener: a server on stdio:
// (an accept loop, a Service, tether relay) ends with it.
func TestStdioServerEndsWithItsConnection(t *testing.T) {
	in, out, toIn, _ := stdioPipes(t)
	ln, err := (&stdioServer{in: in, out: out}).Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Handler: HandlerFunc(func(ctx context.Context, c net.Conn) {
		io.Copy(io.Discard, c)
	})}
	served := make(chan error, 1)
	go func() { served <- svc.Serve(context.Background(), ln) }()
	toIn.Close() // end of standard input: the handler returns, the Service closes the connection
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v, want nil once the listener closed itself", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running after stdio's one connection ended")
	}
}

// blockingPipe returns the two ends of a pipe in blocking mode, as a
// shell pipeline or inetd hands them to a program (os.Pipe's are not).
func blockingPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(fds[0]), "r"), os.NewFile(uintptr(fds[1]), "w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// TestStdioBlockingPipes: standard input and output that are blocking
// pipes (or sockets) are read through Go's poller all the same, so that
// deadlines work and Close interrupts a Read of a peer that sends
// nothing: before, neither did, and a silent peer held the process (a
// PROXY header's deadline, the relay's idle timeout, SIGTERM) for ever.
// Blocking mode is put back on the pipe, for whoever else holds it, once
// the connection is closed.
func TestStdioBlockingPipes(t *testing.T) {
	in, keepIn := blockingPipe(t)
	_, out := blockingPipe(t)
	other, err := unix.Dup(int(in.Fd())) // another holder of the open pipe
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(other)
	c, err := (&stdioClient{in: in, out: out}).Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past the deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read interrupted by Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not interrupt a Read of a silent blocking pipe")
	}
	if fl, err := unix.FcntlInt(uintptr(other), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("after Close the pipe's flags are %#x, %v: still non-blocking", fl, err)
	}
	keepIn.Close()
}

// TestStdioSharedSocketHalfClose: inetd and systemd hand over one socket
// as standard input and output. Closing the output half (CloseWrite, a
// relay's half-close) must leave the input half non-blocking: its reads
// keep their deadlines, and Close still ends them.
func TestStdioSharedSocketHalfClose(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(fds[1]), "peer")
	defer peer.Close()
	second, err := unix.Dup(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	in, out := os.NewFile(uintptr(fds[0]), "in"), os.NewFile(uintptr(second), "out")
	c, err := (&stdioClient{in: in, out: out}).Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read after the half-close: %v, want its deadline", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read after the half-close ignored its deadline")
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung")
	}
}
