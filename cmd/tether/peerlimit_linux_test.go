package main

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMaxConnsPerPeerBeforeHandshake: on a tls: LISTEN a connection
// counts from its accept, before its handshake, so that connections that
// never finish one cannot take every --max-conns slot: with a limit of 1,
// a second silent connection from the same client is reset at once, not
// after the handshake timeout.
func TestMaxConnsPerPeerBeforeHandshake(t *testing.T) {
	ln, target := listenTest(t, "tcp")
	echoServer(ln)
	p := startTether(t, tetherBin, "relay", "--log-format", "json", "--dev-cert", "--max-conns-per-peer", "1",
		"tls:0:interface=127.0.0.1:handshakeTimeout=30", target)
	addr := p.waitLog("listening", nil)["addr"].(string)
	// Two silent connections from one client: whichever the relay takes
	// second is reset at once; the other waits in its handshake.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	ends := make(chan error, 2)
	for range 2 {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			if strings.Contains(err.Error(), "reset") {
				ends <- err // reset as the dial completed
				continue
			}
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err := c.Read(make([]byte, 1))
			ends <- err
		}()
	}
	start := time.Now()
	first, second := <-ends, <-ends
	if first == nil || !strings.Contains(first.Error(), "reset") || !errors.Is(second, os.ErrDeadlineExceeded) {
		t.Errorf("two silent connections from 127.0.0.2: %v after %v, then %v; want one reset at once and the other left to its handshake",
			first, time.Since(start), second)
	}
	line := p.waitLog("too many connections from this peer; connection reset", nil)
	if !strings.HasPrefix(line["peer"].(string), "127.0.0.2:") {
		t.Errorf("its log line: %v", line)
	}
}

// TestMaxConnsPerPeer: with --max-conns-per-peer 2, a third connection
// from one client address is reset and logged while two are open, another
// address is served, and once one of the two ends the client may connect
// again. On the relay's lean path (its event core accepts), on the usual
// path (TETHER_RELAY_LEAN=off, and a UNIX CONNECT, which the core does
// not dial), and in tether serve.
func TestMaxConnsPerPeer(t *testing.T) {
	for _, c := range []struct {
		name string
		argv func(target string) []string
	}{
		{"relay, lean path", func(target string) []string {
			return []string{tetherBin, "relay", "--log-format", "json", "--max-conns-per-peer", "2", "tcp:0:interface=127.0.0.1", target}
		}},
		{"relay, usual path", func(target string) []string {
			return []string{"env", "TETHER_RELAY_LEAN=off", tetherBin, "relay", "--log-format", "json", "--max-conns-per-peer", "2", "tcp:0:interface=127.0.0.1", target}
		}},
		{"serve", func(string) []string {
			return []string{tetherBin, "serve", "--log-format", "json", "--max-conns-per-peer", "2", "tcp:0:interface=0.0.0.0"}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, target := listenTest(t, "tcp")
			echoServer(ln)
			p := startTether(t, c.argv(target)...)
			addr := p.waitLog("listening", nil)["addr"].(string)
			if strings.Contains(c.name, "lean") {
				p.waitLog(leanMsg, nil) // or the test tests the usual path twice
			}
			_, port, _ := net.SplitHostPort(addr)
			to := "127.0.0.1:" + port
			// dial connects from the address from and sends a byte that
			// comes back: an error if not, a reset perhaps already in
			// connect(2) (on loopback the relay can accept and reset
			// before the dialler looks at its socket again).
			dial := func(from string) (net.Conn, error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
				conn, err := d.Dial("tcp", to)
				if err != nil {
					return nil, err
				}
				t.Cleanup(func() { conn.Close() })
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := conn.Write([]byte("x")); err != nil {
					return conn, err
				}
				_, err = io.ReadFull(conn, make([]byte, 1))
				return conn, err
			}
			a1, err := dial("127.0.0.2")
			if err != nil {
				t.Fatalf("the first connection from 127.0.0.2: %v", err)
			}
			if _, err := dial("127.0.0.2"); err != nil {
				t.Fatalf("the second connection from 127.0.0.2: %v", err)
			}
			if _, err := dial("127.0.0.2"); err == nil || !strings.Contains(err.Error(), "reset") {
				t.Errorf("a third connection from 127.0.0.2: %v, want it reset", err)
			}
			line := p.waitLog("too many connections from this peer; connection reset", nil)
			if !strings.HasPrefix(line["peer"].(string), "127.0.0.2:") || line["max_conns_per_peer"] != 2.0 {
				t.Errorf("its log line: %v", line)
			}
			if _, err := dial("127.0.0.3"); err != nil {
				t.Errorf("a connection from 127.0.0.3 while 127.0.0.2 has two: %v", err)
			}
			// A client that ends its connection (its end, then the
			// relay's) may connect again: at once, but for the moment
			// in which the relay, having sent its end, closes the pair.
			a1.(*net.TCPConn).CloseWrite()
			if _, err := io.ReadAll(a1); err != nil {
				t.Fatalf("the end of a connection from 127.0.0.2: %v", err)
			}
			a1.Close()
			deadline := time.Now().Add(2 * time.Second)
			for {
				_, err := dial("127.0.0.2")
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("127.0.0.2, with one of its two connections closed, is still refused: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
