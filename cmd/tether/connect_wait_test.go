package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
)

// TestConnectWait: with --wait, connect tries again while the server is
// not there yet (no socket file, then a socket file nobody listens on, then
// a TCP port refused) and gets through once it listens.
func TestConnectWait(t *testing.T) {
	t.Run("unix", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "late.sock")
		served := make(chan error, 1)
		go func() {
			time.Sleep(150 * time.Millisecond)
			// A socket file that refuses: left by a server that is gone.
			// It is bound and never listened on, so that no connection
			// attempt can be accepted by it in the meantime.
			if err := boundUnixFile(path); err != nil {
				served <- err
				return
			}
			time.Sleep(150 * time.Millisecond)
			os.Remove(path)
			ln, err := net.Listen("unix", path)
			if err != nil {
				served <- err
				return
			}
			t.Cleanup(func() { ln.Close() })
			served <- nil
			echoServer(ln)
		}()
		start := time.Now()
		code, out, errOut := runConnectIn(strings.NewReader("hello"), "--wait", "5s", "unix:"+endpoint.Quote(path))
		if code != exitOK || out != "hello" || errOut != "" {
			t.Errorf("connect --wait = %d, %q, %q", code, out, errOut)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("connect --wait returned after %v, before the server listened", d)
		}
		if err := <-served; err != nil {
			t.Errorf("the late server: %v", err)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		ln, target := listenTest(t, "tcp")
		addr := ln.Addr().String()
		ln.Close() // refused until it listens again
		served := make(chan error, 1)
		go func() {
			time.Sleep(200 * time.Millisecond)
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				served <- err // the port was taken meanwhile: rare
				return
			}
			t.Cleanup(func() { ln.Close() })
			served <- nil
			echoServer(ln)
		}()
		// The flag after the endpoint string, as a person may put it.
		code, out, errOut := runConnectIn(strings.NewReader("hello"), target, "--wait", "5s")
		if code != exitOK || out != "hello" || errOut != "" {
			t.Errorf("connect --wait = %d, %q, %q", code, out, errOut)
		}
		if err := <-served; err != nil {
			t.Errorf("the late server: %v", err)
		}
	})
}

// boundUnixFile leaves a unix socket file at path that refuses every
// connection, as one left by a server that is gone does: the socket is
// bound, never listened on, and closed.
func boundUnixFile(path string) error {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	return syscall.Bind(fd, &syscall.SockaddrUnix{Name: path})
}

// TestConnectWaitGivesUp: --wait ends when its duration has passed,
// saying so; an error that is not "not there yet" ends it at once; and
// without --wait a refused connection fails at once.
func TestConnectWaitGivesUp(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	code, _, errOut := runConnectIn(strings.NewReader(""), "--wait", "300ms", "unix:"+endpoint.Quote(filepath.Join(dir, "never.sock")))
	d := time.Since(start)
	if code != exitFailure || !strings.Contains(errOut, "no such file or directory") ||
		!strings.Contains(errOut, "still failing after --wait 300ms") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("connect --wait 300ms to no socket = %d, %q", code, errOut)
	}
	if d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("connect --wait 300ms gave up after %v", d)
	}

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	code, _, errOut = runConnectIn(strings.NewReader(""), "--wait", "5s", "unix:"+endpoint.Quote(filepath.Join(file, "sock")))
	if code != exitFailure || !strings.Contains(errOut, "not a directory") || time.Since(start) > time.Second {
		t.Errorf("connect --wait 5s under a file = %d, %q after %v; want a failure at once", code, errOut, time.Since(start))
	}

	if code, _, errOut := runConnectIn(nil, "--wait", "-1s", "tcp:h:1"); code != exitUsage || !strings.Contains(errOut, "negative") {
		t.Errorf("connect --wait -1s = %d, %q", code, errOut)
	}
}

// TestConnectPeerReset: a peer that resets the connection is named as the
// one that failed, not standard output, however standard output is
// written (the binary, with a file as standard output, which would splice).
func TestConnectPeerReset(t *testing.T) {
	ln, target := listenTest(t, "tcp")
	acceptOne(t, ln, func(c net.Conn) {
		c.Read(make([]byte, 1)) // connect is up and copying
		c.(*net.TCPConn).SetLinger(0)
		c.Close() // a reset
	})
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(tetherBin, "connect", target)
	stdin, err := cmd.StdinPipe() // left open: the reset, not its end, ends connect
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("x"))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("connect did not exit when the peer reset the connection")
	}
	var ee *exec.ExitError
	msg := errOut.String()
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailure ||
		!strings.HasPrefix(msg, "tether connect: the peer reset the connection (receiving from the peer): ") ||
		!strings.Contains(msg, "connection reset by peer") || strings.Contains(msg, "stdout") ||
		strings.Contains(msg, "standard output") || strings.Count(msg, "\n") != 1 {
		t.Errorf("connect to a peer that resets = %v, stderr %q", err, msg)
	}
}

// failingWriter is a standard output that cannot be written.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// failingReader is a standard input that cannot be read.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("input/output error") }

// TestConnectLocalFailures: a failure to write standard output or to read
// standard input is said to be that, and the peer is reset.
func TestConnectLocalFailures(t *testing.T) {
	ln, target := listenTest(t, "tcp")
	reset := make(chan error, 1)
	acceptOne(t, ln, func(c net.Conn) {
		c.Write([]byte("reply"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, c)
		reset <- err
	})
	// Standard input stays open: no half-close comes before the reset.
	stdin, stdinW := io.Pipe()
	defer stdinW.Close()
	var errOut bytes.Buffer
	code := run(&env{stdin: stdin, stdout: failingWriter{}, stderr: &errOut}, []string{"connect", target})
	if msg := errOut.String(); code != exitFailure ||
		msg != "tether connect: writing to standard output failed: no space left on device\n" {
		t.Errorf("connect with a failing stdout = %d, %q", code, msg)
	}
	if err := <-reset; err == nil || !strings.Contains(err.Error(), "reset") {
		t.Errorf("the peer saw %v, want a reset", err)
	}

	ln, target = listenTest(t, "tcp")
	acceptOne(t, ln, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, c)
		reset <- err
	})
	errOut.Reset()
	var out bytes.Buffer
	code = run(&env{stdin: failingReader{}, stdout: &out, stderr: &errOut}, []string{"connect", target})
	if msg := errOut.String(); code != exitFailure ||
		msg != "tether connect: reading standard input failed: input/output error\n" {
		t.Errorf("connect with a failing stdin = %d, %q", code, msg)
	}
	if err := <-reset; err == nil || !strings.Contains(err.Error(), "reset") {
		t.Errorf("the peer saw %v, want a reset", err)
	}
}

// TestConnectWarnsInsecure: insecureSkipVerify=1 at any depth of CONNECT
// is warned about, once; nothing is said without it.
func TestConnectWarnsInsecure(t *testing.T) {
	ln, _ := listenTest(t, "tcp")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // refused: the warning comes before connecting
	tlsTo := fmt.Sprintf("tls:127.0.0.1:%d", port)
	for _, tt := range []struct {
		s    string
		warn bool
	}{
		{tlsTo + ":insecureSkipVerify=1", true},
		{"haproxy:" + tlsTo + ":insecureSkipVerify=1", true},
		{fmt.Sprintf("ssl:127.0.0.1:%d:insecureSkipVerify=7", port), true},
		{"tls:example.com:443:endpoint=" + endpoint.Quote(tlsTo+":insecureSkipVerify=1"), true},
		{fmt.Sprintf("socks5:h:1:proxy=%s", endpoint.Quote(tlsTo+":insecureSkipVerify=1")), true},
		{tlsTo, false},
		{tlsTo + ":insecureSkipVerify=0", false},
	} {
		code, _, errOut := runConnectIn(strings.NewReader(""), tt.s)
		n := strings.Count(errOut, "WARNING: insecureSkipVerify=1: the server's certificate is NOT verified")
		if code != exitFailure || (tt.warn && n != 1) || (!tt.warn && strings.Contains(errOut, "WARNING")) {
			t.Errorf("connect %q = %d, stderr %q; want a failure and %v warning", tt.s, code, errOut, tt.warn)
		}
	}
}

// TestConnectSignalResets: tether connect stopped by SIGTERM or SIGINT in
// the middle of a stream resets the connection, so that the peer does not
// take what it got for the whole stream, and exits as the signal would
// have made it.
func TestConnectSignalResets(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		ln, target := listenTest(t, "tcp")
		ended := make(chan error, 1)
		started := make(chan struct{})
		acceptOne(t, ln, func(c net.Conn) {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			c.Read(make([]byte, 1))
			close(started)
			_, err := io.Copy(io.Discard, c)
			ended <- err
		})
		cmd := exec.Command(tetherBin, "connect", target)
		stdin, err := cmd.StdinPipe() // left open: the stream goes on
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stdin.Write([]byte("part of a stream"))
		<-started
		cmd.Process.Signal(sig)
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 128+int(sig) || !strings.Contains(errOut.String(), "the connection was reset") {
			t.Errorf("%v: connect ended with %v, stderr %q; want exit %d and the reset said", sig, err, errOut.String(), 128+int(sig))
		}
		if err := <-ended; !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%v: the peer saw %v; want a reset", sig, err)
		}
	}
}
