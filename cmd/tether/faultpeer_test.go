//go:build unix

package main

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// The peers of the fault-injection tests (fault_test.go): the two ends of
// a relayed connection as the test holds them, and a server behind the
// relay that counts what reaches it. (The test CA is testpeer.CA.)

// faultEnd is one end of a relayed connection as the test holds it: the
// relay's client (side "peer", as the relay's log names it) or the server
// behind the relay (side "upstream").
type faultEnd struct {
	side string
	conn net.Conn // the stream: a *tls.Conn, or the socket itself
	raw  net.Conn // the socket under it
}

// who names the end in messages.
func (e *faultEnd) who() string {
	if e.side == "peer" {
		return "client"
	}
	return e.side
}

func (e *faultEnd) isTLS() bool  { return e.conn != e.raw }
func (e *faultEnd) isUnix() bool { _, ok := e.raw.(*net.UnixConn); return ok }

// cleanEnd says what a clean end of file is on this end's transport.
func (e *faultEnd) cleanEnd() string {
	switch {
	case e.isTLS():
		return "close_notify, then end of file"
	case e.isUnix():
		return "end of file"
	}
	return "FIN"
}

// abort ends the connection as abruptly as its transport allows. A TCP
// socket is reset (SO_LINGER 0), under TLS too: the socket is closed, never
// the *tls.Conn, whose Close would send close_notify. A UNIX stream socket
// cannot send a reset; the nearest thing is to close it with data still
// unread, which Linux reports to the other end as ECONNRESET (a close with
// nothing unread is an ordinary end of file). So abort first waits until
// something has arrived and not been read; the callers arrange that
// something is on its way.
func (e *faultEnd) abort() error {
	if err := waitUnread(e.raw); err != nil {
		return fmt.Errorf("waiting for unread data before the reset: %w", err)
	}
	if tc, ok := e.raw.(*net.TCPConn); ok {
		if err := tc.SetLinger(0); err != nil {
			return err
		}
	}
	return e.raw.Close()
}

// waitUnread blocks until the socket has received data that has not been
// read (looking with MSG_PEEK, which leaves it there), or the socket's read
// deadline passes.
func waitUnread(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T has no socket", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, e := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case e == syscall.EAGAIN:
			return false
		case e != nil:
			perr = e
		case n == 0:
			perr = errors.New("the other end closed before sending anything more")
		}
		return true
	})
	if err != nil {
		return err
	}
	return perr
}

// incoming hashes and counts what an end reads.
type incoming struct {
	h hash.Hash
	n int64
}

func newIncoming() *incoming { return &incoming{h: sha256.New()} }

func (in *incoming) Write(p []byte) (int, error) {
	in.h.Write(p)
	in.n += int64(len(p))
	return len(p), nil
}

// is reports whether what was read is exactly want.
func (in *incoming) is(want []byte) bool {
	sum := sha256.Sum256(want)
	return in.n == int64(len(want)) && string(in.h.Sum(nil)) == string(sum[:])
}

// faultUpstream is a server behind the relay for one fault case: its
// listener and the client endpoint string that the relay connects with.
type faultUpstream struct {
	target string
	ln     net.Listener
	tls    *tls.Config // the server's configuration for a tls: CONNECT, else nil
}

// accept waits for the relay's connection and, for TLS, completes the
// handshake (the relay's tls: client waits for it in Dial). It runs in a
// goroutine of its own: a relay may dial before or after it has finished
// its handshake with its client.
func (u *faultUpstream) accept(deadline time.Time) (*faultEnd, error) {
	u.ln.(interface{ SetDeadline(time.Time) error }).SetDeadline(deadline)
	raw, err := u.ln.Accept()
	if err != nil {
		return nil, fmt.Errorf("the relay did not connect to the upstream: %w", err)
	}
	raw.SetDeadline(deadline)
	e := &faultEnd{side: "upstream", conn: raw, raw: raw}
	if u.tls != nil {
		tc := tls.Server(raw, u.tls)
		if err := tc.Handshake(); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS handshake with the relay's tls: client: %w", err)
		}
		e.conn = tc
	}
	return e, nil
}

// countedUpstream is a TCP echo server behind the relay that counts the
// connections the relay makes to it.
type countedUpstream struct {
	ln       net.Listener
	target   string
	accepted chan string // the remote address of each connection accepted
	relayed  int         // connections counted by settle, markers aside
}

func startCountedUpstream(t *testing.T) *countedUpstream {
	ln, target := listenTest(t, "tcp")
	u := &countedUpstream{ln: ln, target: target, accepted: make(chan string, 128)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepted <- c.RemoteAddr().String()
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	return u
}

// settle returns how many connections the relay has made so far. It
// connects once itself and waits until that connection is accepted: the
// listen queue is first in, first out, so every connection the relay made
// before has been accepted, and counted, by then.
func (u *countedUpstream) settle(t *testing.T) int {
	t.Helper()
	m, err := net.DialTimeout("tcp", u.ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	marker := m.LocalAddr().String()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case a := <-u.accepted:
			if a == marker {
				return u.relayed
			}
			u.relayed++
		case <-timeout:
			t.Fatal("the upstream did not accept the test's own connection in 15s")
		}
	}
}

// waitPeerLine waits for any log line of tether's about the connection
// from peer, whatever its message: the line that says a connection was
// refused, reset or ended.
func waitPeerLine(p *proc, peer net.Addr) map[string]any {
	p.t.Helper()
	var line map[string]any
	seen := 0
	p.waitUntil(fmt.Sprintf("a log line about the connection from %s", peer), func() bool {
		for ; seen < len(p.logs); seen++ {
			if l := p.logs[seen]; l["peer"] == peer.String() {
				line = l
				return true
			}
		}
		return false
	})
	return line
}

// dialTLSListener connects to a tether tls: listener with cfg; the
// handshake is left to the first Read or Write, or to Handshake.
func dialTLSListener(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, net.Conn) {
	t.Helper()
	raw := dialAddr(t, "tcp", addr)
	raw.SetDeadline(time.Now().Add(15 * time.Second))
	return tls.Client(raw, cfg), raw
}

// lookLog waits up to d for a log line with message msg and returns it, or
// nil if none came. Unlike waitLog it does not end the test, so that what
// the two ends of a connection saw is reported all the same.
func (p *proc) lookLog(msg string, d time.Duration) map[string]any {
	deadline := time.After(d)
	for exited := false; ; {
		p.mu.Lock()
		for _, l := range p.logs {
			if l["msg"] == msg {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		if exited {
			return nil // all that tether wrote has been read
		}
		select {
		case <-p.more:
		case <-p.exited:
			exited = true
		case <-deadline:
			return nil
		}
	}
}
