package endpoint

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/proxyproto"
)

// sameHeader says whether two headers say the same, as their wire forms.
func sameHeader(a, b *proxyproto.Header) bool {
	fa, erra := a.Format()
	fb, errb := b.Format()
	return erra == nil && errb == nil && bytes.Equal(fa, fb)
}

func tcpAddr(s string) *net.TCPAddr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

// v2 builds a PROXY protocol version 2 header from its command and family
// bytes and a body.
func v2(verCmd, fam byte, body ...[]byte) []byte {
	b := append([]byte("\r\n\r\n\x00\r\nQUIT\n"), verCmd, fam, 0, 0)
	for _, p := range body {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint16(b[14:], uint16(len(b)-16))
	return b
}

// TestHAProxyServer runs haproxy:tcp in front of a handler and sends it
// good headers, bad ones and none.
func TestHAProxyServer(t *testing.T) {
	checkGoroutines(t)
	srv, err := ParseServer("haproxy:tcp:0:interface=127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv.(*server).s.(*proxyServer).timeout = 300 * time.Millisecond
	ln, err := srv.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	type served struct {
		remote, local net.Addr
		data          string
		err           error
	}
	results := make(chan served, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				b, err := io.ReadAll(c)
				results <- served{c.RemoteAddr(), c.LocalAddr(), string(b), err}
			}()
		}
	}()
	defer func() { ln.Close(); <-done }()

	send := func(data string, closeWrite bool) (net.Conn, served) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, data)
		if closeWrite {
			c.(*net.TCPConn).CloseWrite()
		}
		select {
		case r := <-results:
			return c, r
		case <-time.After(10 * time.Second):
			t.Fatalf("%q: not served", data)
			return nil, served{}
		}
	}

	// A client that sends nothing does not hold up the next one: the
	// header is not read in Accept.
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	c, r := send("PROXY TCP4 203.0.113.7 198.51.100.1 4242 443\r\nhello", true)
	c.Close()
	if r.err != nil || r.data != "hello" || r.remote.String() != "203.0.113.7:4242" || r.local.String() != "198.51.100.1:443" {
		t.Errorf("v1: %+v", r)
	}
	v2Header, err := (&proxyproto.Header{Version: 2, Source: tcpAddr("203.0.113.7:4242"),
		Destination: tcpAddr("198.51.100.1:443"), TLVs: []proxyproto.TLV{{Type: 1, Value: []byte("h2")}}}).Format()
	if err != nil {
		t.Fatal(err)
	}
	c, r = send(string(v2Header)+"v2 data", true)
	c.Close()
	if r.err != nil || r.data != "v2 data" || r.remote.String() != "203.0.113.7:4242" {
		t.Errorf("v2: %+v", r)
	}
	// UNKNOWN and LOCAL keep the connection's own addresses.
	for _, hdr := range []string{"PROXY UNKNOWN\r\n", string(v2(0x20, 0x00))} {
		c, r = send(hdr+"x", true)
		if r.err != nil || r.data != "x" || r.remote.String() != c.LocalAddr().String() || r.local.String() != c.RemoteAddr().String() {
			t.Errorf("%q: %+v; want the real addresses %v %v", hdr, r, c.LocalAddr(), c.RemoteAddr())
		}
		c.Close()
	}
	// A bad header fails that connection, which is closed.
	c, r = send("GET / HTTP/1.0\r\n\r\n", false)
	if !errors.Is(r.err, proxyproto.ErrBadHeader) || r.remote.String() != c.LocalAddr().String() {
		t.Errorf("no header: %+v", r)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || os.IsTimeout(err) {
		t.Errorf("the connection with a bad header was not closed: %d, %v", n, err)
	}
	c.Close()
	// The idle client's header never comes.
	select {
	case r := <-results:
		if !errors.Is(r.err, proxyproto.ErrBadHeader) || !errors.Is(r.err, os.ErrDeadlineExceeded) ||
			!strings.Contains(r.err.Error(), "none arrived within 300ms") {
			t.Errorf("idle client: %v", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the idle client was not timed out")
	}
	// And the listener works on.
	c, r = send("PROXY TCP6 2001:db8::7 2001:db8::1 4243 443\r\n", true)
	c.Close()
	if r.err != nil || r.remote.String() != "[2001:db8::7]:4243" {
		t.Errorf("after the failures: %+v", r)
	}
}

// A deadline that the caller sets before the header is read is kept: the
// earlier of it and the header's applies while the header is read, and
// it alone after.
func TestProxyConnDeadline(t *testing.T) {
	ln := listen(t, "haproxy:tcp:0:interface=127.0.0.1")
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err = sc.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Read: %v after %v", err, time.Since(start))
	}

	c2, _ := net.Dial("tcp", ln.Addr().String())
	defer c2.Close()
	sc2, _ := ln.Accept()
	defer sc2.Close()
	io.WriteString(c2, "PROXY UNKNOWN\r\n")
	sc2.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := sc2.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, proxyproto.ErrBadHeader) {
		t.Errorf("Read after the header: %v, want the caller's deadline", err)
	}
	if h, err := sc2.(*proxyproto.Conn).Header(); err != nil || h.Version != 1 {
		t.Errorf("Header: %+v, %v", h, err)
	}
}

// TestHAProxyClient sends headers with the haproxy: client wrapper to
// tether's own haproxy: server.
func TestHAProxyClient(t *testing.T) {
	ln := listen(t, "haproxy:tcp:0:interface=127.0.0.1")
	cli, err := ParseClient(fmt.Sprintf("haproxy:tcp:127.0.0.1:%d", portOf(ln)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		h          *proxyproto.Header
		wantRemote string
	}{
		{&proxyproto.Header{Version: 2, Source: tcpAddr("[2001:db8::7]:4243"), Destination: tcpAddr("[2001:db8::1]:443"),
			TLVs: []proxyproto.TLV{{Type: 0xe0, Value: []byte("tether")}}}, "[2001:db8::7]:4243"},
		{&proxyproto.Header{Version: 1, Source: tcpAddr("203.0.113.7:4242"), Destination: tcpAddr("198.51.100.1:443")}, "203.0.113.7:4242"},
		{nil, ""}, // no header in the context: UNKNOWN, the real address
	} {
		ctx := context.Background()
		if tt.h != nil {
			ctx = proxyproto.NewContext(ctx, tt.h)
		}
		c, err := cli.Dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "data")
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		want := tt.wantRemote
		if want == "" {
			want = c.LocalAddr().String()
		}
		if got := sc.RemoteAddr().String(); got != want {
			t.Errorf("RemoteAddr %s, want %s", got, want)
		}
		if h, _ := sc.(*proxyproto.Conn).Header(); tt.h != nil && !sameHeader(h, tt.h) {
			t.Errorf("header %+v, want %+v", h, tt.h)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "data" {
			t.Errorf("data %q, %v", buf, err)
		}
		sc.Close()
		c.Close()
	}
	// A header that cannot be written is refused before dialling.
	if _, err := cli.Dial(proxyproto.NewContext(context.Background(), &proxyproto.Header{Version: 7})); !errors.Is(err, proxyproto.ErrBadHeader) {
		t.Errorf("Dial with a bad header: %v", err)
	}
}

func TestHAProxyParse(t *testing.T) {
	if got, want := describe(t, "client", "haproxy:tcp:example.com:443"),
		`{"role":"client","type":"haproxy","args":{},"inner":{"role":"client","type":"tcp","args":{"host":"example.com","port":443,"timeout":30,"bindAddress":null,"attemptDelay":250,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true}}}`; got != want {
		t.Errorf("describe:\n got %s\nwant %s", got, want)
	}
	for in, msg := range map[string]string{
		"haproxy":         "wants an inner endpoint",
		"haproxy:tcp:x":   `port "x" is not a number`,
		"haproxy:nope:80": "unknown server type",
	} {
		if _, err := ParseServer(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseServer(%q) = %v, want %q", in, err, msg)
		}
	}
	if _, err := ParseServer("haproxy:haproxy:unix:" + Quote(t.TempDir()+"/s")); err != nil {
		t.Errorf("nested: %v", err)
	}
}
