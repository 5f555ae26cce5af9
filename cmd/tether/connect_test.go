package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func runConnectIn(stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(&env{stdin: stdin, stdout: &out, stderr: &errOut}, append([]string{"connect"}, args...))
	return code, out.String(), errOut.String()
}

// TestConnect: standard input goes out, its end half-closes the
// connection, and the reply sent after that end of file comes back.
func TestConnect(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			ln, target := listenTest(t, network)
			acceptOne(t, ln, func(c net.Conn) {
				n, _ := io.Copy(io.Discard, c) // to the end of file
				fmt.Fprintf(c, "got %d bytes", n)
			})
			code, out, errOut := runConnectIn(strings.NewReader(strings.Repeat("z", 100000)), target)
			if code != exitOK || out != "got 100000 bytes" || errOut != "" {
				t.Errorf("connect = %d, %q, %q", code, out, errOut)
			}
		})
	}
}

// TestConnectPeerFinishesFirst runs the binary with a standard input that
// never ends: it must exit once the peer has finished.
func TestConnectPeerFinishesFirst(t *testing.T) {
	ln, target := listenTest(t, "tcp")
	acceptOne(t, ln, func(c net.Conn) { c.Write([]byte("bye")) })
	cmd := exec.Command(tetherBin, "connect", target)
	stdin, err := cmd.StdinPipe() // left open
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || out.String() != "bye" {
			t.Errorf("connect = %v, stdout %q", err, out.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("connect did not exit when the peer finished")
	}
}

func TestConnectFailures(t *testing.T) {
	if code, out, _ := runConnectIn(nil, "--help"); code != exitOK || !strings.Contains(out, "Usage: tether connect") || !strings.Contains(out, "$ ") {
		t.Errorf("connect --help = %d, %q", code, out)
	}
	for _, args := range [][]string{{}, {"tcp:a:1", "tcp:b:2"}, {"tcp:localhost"}, {"nosuch:x"}, {"--nosuch", "tcp:a:1"}} {
		if code, _, errOut := runConnectIn(nil, args...); code != exitUsage || errOut == "" {
			t.Errorf("connect %q = %d, %q; want exit 2", args, code, errOut)
		}
	}
	ln, target := listenTest(t, "tcp")
	ln.Close() // nothing listens there now
	code, _, errOut := runConnectIn(strings.NewReader(""), target)
	if code != exitFailure || !strings.Contains(errOut, "refused") {
		t.Errorf("connect to a closed port = %d, %q; want exit 1", code, errOut)
	}
}

// TestConnectPeerHalfClosesFirst: a peer that finishes sending but reads
// on, while standard input still has more to come, is not sent a FIN
// that would pass for the end of all of standard input: connect exits 0
// (the peer finished) and resets the connection; and a peer that waits
// for a standard input that does end gets all of it and a clean end.
func TestConnectPeerHalfClosesFirst(t *testing.T) {
	for _, stdinEnds := range []bool{false, true} {
		ln, target := listenTest(t, "tcp")
		ended := make(chan error, 1)
		acceptOne(t, ln, func(c net.Conn) {
			c.Write([]byte("hello"))
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := io.Copy(io.Discard, c)
			ended <- err
		})
		var code int
		if stdinEnds {
			code, _, _ = runConnectIn(strings.NewReader("all of it"), target)
		} else {
			stdin, stdinW := io.Pipe() // never ends
			defer stdinW.Close()
			go stdinW.Write([]byte("part of it"))
			code, _, _ = runConnectIn(stdin, target)
		}
		if code != exitOK {
			t.Errorf("stdin ends %v: connect = %d, want 0", stdinEnds, code)
		}
		err := <-ended
		if stdinEnds && err != nil {
			t.Errorf("a peer that waited for all of standard input saw %v; want a clean end", err)
		}
		if !stdinEnds && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("a peer reading on while standard input was cut saw %v; want a reset", err)
		}
	}
}
