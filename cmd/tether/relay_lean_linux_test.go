package main

import (
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestRelayLeanPath: a plain tcp LISTEN to a tcp CONNECT of an IP literal
// takes the lean path (and nothing else does: a host name, which is raced
// with Happy Eyeballs, or --proxy-protocol); through it, checksummed
// streams both ways with the half-close carried, the log line's bytes
// exact, and a server's reset passed on to the client as a reset.
func TestRelayLeanPath(t *testing.T) {
	ln, target := listenTest(t, "tcp")
	port := ln.Addr().(*net.TCPAddr).Port
	for _, args := range [][]string{
		{"tcp:localhost:" + itoa(port)},
		{"--proxy-protocol", "v2", target},
	} {
		p := startTether(t, append([]string{tetherBin, "relay", "--log-format", "json", serverEndpoint(t, "tcp")}, args...)...)
		p.addr()
		if p.count(leanMsg) != 0 {
			t.Errorf("%v took the lean path", args)
		}
	}
	p := startTether(t, tetherBin, "relay", "--log-format", "json", serverEndpoint(t, "tcp"), target)
	addr := p.addr()
	p.waitLog(leanMsg, nil)

	up, down := randomBytes(t, 5<<20+7), randomBytes(t, 2<<20+1)
	got := sumThenAnswer(t, ln, down)
	c := streamThrough(t, "tcp", addr, up, down, got)
	l := p.waitLog("connection ended", nil)
	if l["from_peer"] != float64(len(up)) || l["to_peer"] != float64(len(down)) || l["error"] != nil || l["peer"] != c.LocalAddr().String() {
		t.Errorf("log line %v; want peer %s, from_peer %d, to_peer %d, no error", l, c.LocalAddr(), len(up), len(down))
	}

	// The server resets: so must the relay, toward the client.
	acceptOne(t, ln, func(c net.Conn) {
		io.ReadFull(c, make([]byte, 1))
		c.(*net.TCPConn).SetLinger(0)
	})
	c2 := dialAddr(t, "tcp", addr)
	c2.Write([]byte("x"))
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c2); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client of a reset upstream read %v, want a reset", err)
	}
	// The client resets: the server sees a reset.
	srvErr := make(chan error, 1)
	acceptOne(t, ln, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadAll(c)
		srvErr <- err
	})
	c3 := dialAddr(t, "tcp", addr)
	c3.Write([]byte("x"))
	time.Sleep(100 * time.Millisecond) // let the connect complete first (not asserted)
	c3.(*net.TCPConn).SetLinger(0)
	c3.Close()
	if err := <-srvErr; !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("server of a reset client read %v, want a reset", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
