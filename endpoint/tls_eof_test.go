package endpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readAll reads c to its end, with a deadline, and returns what came and
// the error that ended it (io.EOF included, unlike io.ReadAll).
func readAll(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return string(got), err
		}
	}
}

// readEnd is what acceptAndRead's server read of its one connection, and
// the error that ended it.
type readEnd struct {
	got string
	err error
}

// acceptAndRead accepts one connection on ln and reads it to its end.
func acceptAndRead(ln net.Listener) <-chan readEnd {
	ended := make(chan readEnd, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ended <- readEnd{"", err}
			return
		}
		defer c.Close()
		got, err := readAll(c)
		ended <- readEnd{got, err}
	}()
	return ended
}

// checkEnd checks how a TLS stream that carried want ended: io.EOF itself
// after a close_notify, ErrNoCloseNotify (which is also
// io.ErrUnexpectedEOF, and not io.EOF) after a bare end of the TCP stream.
func checkEnd(t *testing.T, who, got string, err error, want string, cut bool) {
	t.Helper()
	if got != want {
		t.Errorf("%s read %q, want %q", who, got, want)
	}
	if !cut && err != io.EOF {
		t.Errorf("%s: after a close_notify, Read ended with %v, want io.EOF", who, err)
	}
	if cut && (!errors.Is(err, ErrNoCloseNotify) || !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
		t.Errorf("%s: after a TCP end without close_notify, Read ended with %v, want ErrNoCloseNotify", who, err)
	}
}

// TestTLSEndWithoutCloseNotify: a TLS stream whose TCP connection ends
// without a close_notify, which anyone on the path can bring about between
// two records, does not read as a complete stream: Read returns
// ErrNoCloseNotify, on a tls: server and on a tls: client, where
// crypto/tls alone returns io.EOF, as for a close_notify. A close_notify
// (Go's Close and CloseWrite) still ends it with io.EOF.
func TestTLSEndWithoutCloseNotify(t *testing.T) {
	p := newPKI(t, "ca")
	cert, key := p.issue(t.TempDir(), "localhost", leafOpts{})
	clientCfg := &tls.Config{RootCAs: p.Pool(), ServerName: "localhost"}

	t.Run("server", func(t *testing.T) {
		ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key)
		for _, cut := range []bool{false, true} {
			ended := acceptAndRead(ln)
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			tc := tls.Client(raw, clientCfg)
			if _, err := io.WriteString(tc, "all of it"); err != nil {
				t.Fatal(err)
			}
			if cut {
				err = raw.(*net.TCPConn).CloseWrite() // FIN, between two records
			} else {
				err = tc.CloseWrite() // close_notify
			}
			if err != nil {
				t.Fatal(err)
			}
			r := <-ended
			checkEnd(t, fmt.Sprintf("tls: server (cut %v)", cut), r.got, r.err, "all of it", cut)
		}
	})

	// A client that connects and closes, sending nothing (a health check,
	// a port scan), cut no stream: its handshake ends with io.EOF, not
	// with a warning of a cut. One that stops inside its ClientHello did
	// send bytes, and its end is a cut like any other.
	t.Run("server, nothing sent", func(t *testing.T) {
		ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key)
		for _, sent := range []string{"", "\x16\x03\x01\x00\xc8\x01"} {
			ended := acceptAndRead(ln)
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(raw, sent); err != nil {
				t.Fatal(err)
			}
			raw.Close()
			r := <-ended
			if sent == "" && (r.err != io.EOF || errors.Is(r.err, ErrNoCloseNotify)) {
				t.Errorf("a client that sent nothing: Read ended with %v, want io.EOF", r.err)
			}
			if sent != "" && !errors.Is(r.err, ErrNoCloseNotify) {
				t.Errorf("a client that ended inside its ClientHello: Read ended with %v, want ErrNoCloseNotify", r.err)
			}
		}
	})

	t.Run("client", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		serverCfg := &tls.Config{Certificates: []tls.Certificate{pair}}
		for _, cut := range []bool{false, true} {
			served := make(chan error, 1)
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					served <- err
					return
				}
				defer raw.Close()
				tc := tls.Server(raw, serverCfg)
				if _, err := io.WriteString(tc, "the whole reply"); err != nil {
					served <- err
					return
				}
				if cut {
					err = raw.(*net.TCPConn).CloseWrite()
				} else {
					err = tc.CloseWrite()
				}
				served <- err
				io.Copy(io.Discard, raw) // until the client closes
			}()
			c, err := Dial(context.Background(), fmt.Sprintf("tls:localhost:%d:trustRoots=%s", tlsPort(ln), p.caFile))
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAll(c)
			c.Close()
			if serr := <-served; serr != nil {
				t.Fatal(serr)
			}
			checkEnd(t, fmt.Sprintf("tls: client (cut %v)", cut), got, err, "the whole reply", cut)
		}
	})

	t.Run("mid-record", func(t *testing.T) {
		// The FIN inside a record: an error with or without this change,
		// and still ErrNoCloseNotify, so that one check covers both.
		ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key)
		ended := acceptAndRead(ln)
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		half := &halfRecord{Conn: raw}
		tc := tls.Client(half, clientCfg)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		half.halving = true
		tc.Write([]byte("cut in the middle"))
		if err := raw.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if r := <-ended; !errors.Is(r.err, ErrNoCloseNotify) {
			t.Errorf("a FIN inside a record: Read ended with %v, want ErrNoCloseNotify", r.err)
		}
	})

	t.Run("openssl s_client", func(t *testing.T) {
		// A real peer: s_client ends its stream with close_notify when its
		// standard input ends; killed, it leaves the kernel to send a FIN.
		openssl := needOpenSSL(t)
		ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key)
		for _, cut := range []bool{false, true} {
			ended := acceptAndRead(ln)
			args := []string{"s_client", "-connect", ln.Addr().String(), "-CAfile", p.caFile, "-servername", "localhost", "-quiet"}
			if !cut {
				args = append(args, "-no_ign_eof")
			}
			cmd := exec.Command(openssl, args...)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			io.WriteString(stdin, "from openssl\n")
			if cut {
				// Killed only once its line has arrived, and with nothing
				// unread (which would make the kernel send a reset).
				var r readEnd
				select {
				case r = <-ended:
					t.Fatalf("the server's read ended before s_client was killed: %q, %v", r.got, r.err)
				case <-time.After(500 * time.Millisecond):
				}
				cmd.Process.Kill()
			} else {
				stdin.Close()
			}
			r := <-ended
			cmd.Wait()
			checkEnd(t, fmt.Sprintf("tls: server of s_client (killed %v)", cut), strings.TrimSpace(r.got), r.err, "from openssl", cut)
		}
	})
}

// halfRecord passes on only the first half of each write once halving is
// set, so that the peer receives part of a record.
type halfRecord struct {
	net.Conn
	halving bool
}

func (c *halfRecord) Write(b []byte) (int, error) {
	if !c.halving {
		return c.Conn.Write(b)
	}
	if _, err := c.Conn.Write(b[:len(b)/2]); err != nil {
		return 0, err
	}
	return len(b), nil
}

// TestTLSNoCloseNotifyHTTP: net/http's server takes a client that ends
// without close_notify, before sending a request, for a connection that
// went away (the error is a *net.OpError of a read), and closes it without
// answering, as it does for io.EOF; any other error would draw a "400 Bad
// Request" written to a peer that has gone.
func TestTLSNoCloseNotifyHTTP(t *testing.T) {
	p := newPKI(t, "ca")
	cert, key := p.issue(t.TempDir(), "localhost", leafOpts{})
	ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key)
	srv := &http.Server{Handler: http.NotFoundHandler(), ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tc := tls.Client(raw, &tls.Config{RootCAs: p.Pool(), ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := raw.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(tc)
	if got != "" {
		t.Errorf("the server answered a client that ended without close_notify: %q", got)
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the server did not close the connection: %v", err)
	}
}

// noDeadlines is a connection that cannot take deadlines, as a pipe on
// Windows or another package's connection may be.
type noDeadlines struct{ net.Conn }

func (noDeadlines) SetDeadline(time.Time) error      { return os.ErrNoDeadline }
func (noDeadlines) SetReadDeadline(time.Time) error  { return os.ErrNoDeadline }
func (noDeadlines) SetWriteDeadline(time.Time) error { return os.ErrNoDeadline }
func (c noDeadlines) NetConn() net.Conn              { return c.Conn }

// TestTLSHandshakeCancelWithoutDeadlines: a client handshake over a
// connection without deadlines still ends when its context does (the
// connection is reset), rather than wait for a silent server for ever.
func TestTLSHandshakeCancelWithoutDeadlines(t *testing.T) {
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	ended := acceptAndRead(ln)
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	tc := tls.Client(noDeadlines{raw}, &tls.Config{ServerName: "localhost"})
	done := make(chan error, 1)
	go func() { done <- clientHandshake(ctx, tc, noDeadlines{raw}) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the handshake with a silent server succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handshake went on past its context, over a connection without deadlines")
	}
	if r := <-ended; !errors.Is(r.err, syscall.ECONNRESET) {
		t.Errorf("the server saw %v; want a reset", r.err)
	}
}
