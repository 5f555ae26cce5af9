//go:build linux

package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/internal/testpeer"
)

// tlsPair returns the two ends of one TLS connection over loopback TCP,
// handshake done: the client's *tls.Conn and the server's.
func tlsPair(t *testing.T) (client, server *tls.Conn) {
	t.Helper()
	return tlsPairCA(t, testpeer.NewCA(t, "relay-test"), nil)
}

// tlsPairCA is tlsPair with a given CA (making one per pair is slow when
// a test needs hundreds), and wrap, if not nil, around the client's socket.
func tlsPairCA(t *testing.T, ca *testpeer.CA, wrap func(net.Conn) net.Conn) (client, server *tls.Conn) {
	t.Helper()
	rawC, rawS := connPair(t, "tcp")
	if wrap != nil {
		rawC = wrap(rawC)
	}
	server = tls.Server(rawS, &tls.Config{Certificates: []tls.Certificate{ca.KeyPair("localhost")}})
	client = tls.Client(rawC, &tls.Config{ServerName: "localhost", RootCAs: ca.Pool()})
	done := make(chan error, 1)
	go func() { done <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return client, server
}

// TestJoinResetReachesTLSPeer: when the upstream resets mid-stream, the
// client of a TLS connection on the other side sees the stream fail, not a
// close_notify and a clean end of a truncated download.
func TestJoinResetReachesTLSPeer(t *testing.T) {
	client, a := tlsPair(t)
	b, server := connPair(t, "tcp")
	res := make(chan Result, 1)
	go func() { res <- Join(context.Background(), a, b) }()

	if _, err := server.Write(make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(client, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	server.(*net.TCPConn).SetLinger(0)
	server.Close()
	r := wait(t, res)
	if r.Err == nil || r.Unsignalled != [2]bool{} {
		t.Errorf("Join = %+v; want the upstream's reset as the error, and both sides told", r)
	}
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("TLS client after the upstream reset: Read = %v; want a reset, not a clean end", err)
	}
}

// TestJoinUnsignalled: a pair cut while one side is a UNIX socket reports
// that that side could not be told, and the TCP side still gets its reset.
func TestJoinUnsignalled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	client, server, res := relayed(t, ctx, &Joiner{}, "tcp", "unix")
	client.Write([]byte("x"))
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(server, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	cancel()
	r := wait(t, res)
	if !errors.Is(r.Err, context.Canceled) || r.Unsignalled != [2]bool{false, true} {
		t.Errorf("Join = %+v; want context.Canceled and the UNIX side (b) unsignalled", r)
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("TCP client after the cut: Read = %v; want a reset", err)
	}
}

// TestIdleTLSHoldsNoBuffer: a pair with a TLS side, after traffic both
// ways (records of one byte and of many), holds no copy buffer while idle:
// the direction reading TLS waits in a one-byte read, not on 32 KiB. The
// one-byte records also check that a record's first byte is not held back
// waiting for the next.
func TestIdleTLSHoldsNoBuffer(t *testing.T) {
	client, a := tlsPair(t)
	b, server := connPair(t, "tcp")
	res := make(chan Result, 1)
	go func() { res <- Join(context.Background(), a, b) }()
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, msg := range []string{"x", "y", strings.Repeat("z", 40<<10)} {
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(server, got); err != nil || string(got) != msg {
			t.Fatalf("upstream got %d bytes, %v", len(got), err)
		}
	}
	server.Write([]byte("pong"))
	if _, err := io.ReadFull(client, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for buffersHeld.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := buffersHeld.Load(); n != 0 {
		t.Errorf("an idle TLS pair holds %d buffers, want none", n)
	}
	client.Close()
	server.Close()
	wait(t, res)
}
