package endpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/proxyproto"
)

// stallAfterHello passes a TLS client's first write (its ClientHello) to
// the server and swallows every write after it: the client's second flight
// (its Finished message) never arrives, as with a client that stops on
// purpose after saying hello.
type stallAfterHello struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *stallAfterHello) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if c.writes == 1 {
		return c.Conn.Write(p)
	}
	return len(p), nil
}

// TestTLSStalledBeforeFinished: a real TLS 1.3 client (crypto/tls) sends
// its ClientHello, reads the server's whole flight, and never delivers its
// Finished. Whether the server runs the handshake lazily (its first Read)
// or explicitly (Handshake), handshakeTimeout must end it: the deadline
// covers the handshake to its very end, not to the last callback.
func TestTLSStalledBeforeFinished(t *testing.T) {
	p := newPKI(t, "ca")
	cert, key := p.issue(t.TempDir(), "server", leafOpts{})
	roots := x509Pool(t, p)
	for _, how := range []string{"read", "Handshake"} {
		t.Run(how, func(t *testing.T) {
			ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key+":handshakeTimeout=1")
			result := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					result <- err
					return
				}
				defer c.Close()
				if how == "read" {
					_, err = c.Read(make([]byte, 1))
				} else {
					err = Handshake(context.Background(), c)
				}
				result <- err
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			client := tls.Client(&stallAfterHello{Conn: raw}, &tls.Config{ServerName: "localhost",
				RootCAs: roots, MinVersion: tls.VersionTLS13})
			client.SetDeadline(time.Now().Add(20 * time.Second))
			// In TLS 1.3 the client's handshake is done once it has sent
			// its Finished, which the server never gets.
			if err := client.Handshake(); err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			select {
			case err := <-result:
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("server: %v; want the handshake to time out", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("the server still waits for the client's Finished long after handshakeTimeout=1")
			}
		})
	}
}

func x509Pool(t *testing.T, p *testPKI) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return pool
}

// readToEnd reads a connection that the other side ends, and returns how
// the reads ended: nil for a clean end of file.
func readToEnd(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	return err
}

// TestAbortTLS: Abort on an accepted TLS connection (bare, and inside
// haproxy:) resets the TCP socket under it without a close_notify, so the
// client's read fails; Close, for contrast, is a clean end the client
// reads as EOF. Without the contrast the test could not tell the two.
func TestAbortTLS(t *testing.T) {
	p := newPKI(t, "ca")
	cert, key := p.issue(t.TempDir(), "server", leafOpts{})
	roots := x509Pool(t, p)
	for _, tc := range []struct {
		prefix string
		end    func(net.Conn) error
		clean  bool
	}{
		{"", Abort, false},
		{"haproxy:", Abort, false},
		{"", net.Conn.Close, true},
	} {
		name := fmt.Sprintf("%sAbort", tc.prefix)
		if tc.clean {
			name = tc.prefix + "Close"
		}
		t.Run(name, func(t *testing.T) {
			ln := listen(t, tc.prefix+"tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key)
			ended := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					ended <- err
					return
				}
				if err := Handshake(context.Background(), c); err != nil {
					ended <- err
					return
				}
				c.Write([]byte("part of a stream"))
				ended <- tc.end(c)
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			client := tls.Client(raw, &tls.Config{ServerName: "localhost", RootCAs: roots})
			defer client.Close()
			if tc.prefix == "haproxy:" {
				// tether's haproxy:tls: reads the header inside TLS, as Twisted's does.
				if _, err := client.Write([]byte("PROXY TCP4 192.0.2.1 192.0.2.2 1000 443\r\n")); err != nil {
					t.Fatal(err)
				}
			}
			err = readToEnd(client)
			if eerr := <-ended; eerr != nil {
				t.Fatalf("server side: %v", eerr)
			}
			if tc.clean && err != nil {
				t.Fatalf("after Close the client read %v; want a clean end", err)
			}
			if !tc.clean && (err == nil || !errors.Is(err, syscall.ECONNRESET)) {
				t.Fatalf("after Abort the client read %v; want a reset, not a clean end", err)
			}
		})
	}
}

// TestAbortUnix: a UNIX stream socket cannot carry a reset, and Abort says
// so rather than pretending.
func TestAbortUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln := listen(t, "unix:"+Quote(path))
	go func() {
		c, err := net.Dial("unix", path)
		if err == nil {
			defer c.Close()
			readToEnd(c)
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if err := Abort(c); !errors.Is(err, ErrAbortUnsignalled) {
		t.Fatalf("Abort of a UNIX connection = %v; want ErrAbortUnsignalled", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Abort, Write = %v; want net.ErrClosed", err)
	}
}

// TestHandshakeHeaderCancelled: Handshake reads a haproxy: header within
// its context; a context that ends first ends the wait, with an error that
// wraps proxyproto.ErrBadHeader and says why.
func TestHandshakeHeaderCancelled(t *testing.T) {
	ln := listen(t, "haproxy:tcp:0:interface=127.0.0.1")
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = Handshake(ctx, c)
	if !errors.Is(err, proxyproto.ErrBadHeader) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Handshake = %v; want proxyproto.ErrBadHeader and the context's deadline", err)
	}
	// The silent client is reset, not closed cleanly.
	if err := readToEnd(silent); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the client whose header never came read %v; want a reset", err)
	}
}
