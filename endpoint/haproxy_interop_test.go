package endpoint

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/internal/testpeer"
	"github.com/tether-endpoints/tether/proxyproto"
)

// These tests run real peers: Debian's haproxy, and Twisted's haproxy
// wrapper under Debian's python3. Without them they fail, not skip (CI
// installs them: apt-get install haproxy python3-twisted).

// TestHAProxyBehindHAProxy puts haproxy with send-proxy and send-proxy-v2
// in front of tether's haproxy: server: the served connection sees the
// address of the client that connected to haproxy.
func TestHAProxyBehindHAProxy(t *testing.T) {
	ln := listen(t, "haproxy:tcp:0:interface=127.0.0.1")
	type served struct {
		remote, local string
		err           error
	}
	results := make(chan served, 10)
	serveEach(ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		// The peer's address, as the application sees it, is echoed
		// before the data.
		fmt.Fprintf(c, "%s\n", c.RemoteAddr())
		_, err := io.Copy(c, c)
		results <- served{c.RemoteAddr().String(), c.LocalAddr().String(), err}
	})
	v1, v2 := testpeer.FreePort(t), testpeer.FreePort(t)
	cfg := fmt.Sprintf(`
frontend send_v1
    bind 127.0.0.1:%d
    default_backend tether_v1
backend tether_v1
    server tether 127.0.0.1:%d send-proxy
frontend send_v2
    bind 127.0.0.1:%d
    default_backend tether_v2
backend tether_v2
    server tether 127.0.0.1:%d send-proxy-v2
`, v1, portOf(ln), v2, portOf(ln))
	testpeer.StartHAProxy(t, cfg, fmt.Sprintf("127.0.0.1:%d", v1))
	<-results // startHAProxy's own probe
	for _, port := range []int{v2, v1} {
		front := fmt.Sprintf("127.0.0.1:%d", port)
		c, err := net.Dial("tcp", front)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		io.WriteString(c, "through haproxy")
		c.(*net.TCPConn).CloseWrite()
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", front, err)
		}
		rest, _ := io.ReadAll(br)
		c.Close()
		if got := strings.TrimSpace(line); got != c.LocalAddr().String() || string(rest) != "through haproxy" {
			t.Errorf("via %s: served peer %q and data %q; want peer %s", front, got, rest, c.LocalAddr())
		}
		if r := <-results; r.remote != c.LocalAddr().String() || r.local != front || r.err != nil {
			t.Errorf("via %s: served %+v; want remote %s, local %s", front, r, c.LocalAddr(), front)
		}
	}
}

// TestHAProxyIntoHAProxy has tether send PROXY headers, with the haproxy:
// client wrapper and with proxyproto.Write, to haproxy's accept-proxy
// listener, whose log then names the original client.
func TestHAProxyIntoHAProxy(t *testing.T) {
	echo := listen(t, "tcp:0:interface=127.0.0.1")
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	accept, plain := testpeer.FreePort(t), testpeer.FreePort(t)
	cfg := fmt.Sprintf(`
frontend plain
    bind 127.0.0.1:%d
    default_backend echo
frontend accept
    bind 127.0.0.1:%d accept-proxy
    log-format "accepted client=%%ci:%%cp dst=%%fi:%%fp"
    default_backend echo
backend echo
    server echo 127.0.0.1:%d
`, plain, accept, portOf(echo))
	logs := testpeer.StartHAProxy(t, cfg, fmt.Sprintf("127.0.0.1:%d", plain))

	cli, err := ParseClient(fmt.Sprintf("haproxy:tcp:127.0.0.1:%d", accept))
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range []struct {
		h    *proxyproto.Header
		want string
	}{
		{&proxyproto.Header{Version: 1, Source: tcpAddr("203.0.113.7:4242"), Destination: tcpAddr("198.51.100.1:443")},
			"accepted client=203.0.113.7:4242 dst=198.51.100.1:443"},
		{&proxyproto.Header{Version: 2, Source: tcpAddr("[2001:db8::7]:4243"), Destination: tcpAddr("[2001:db8::1]:443"),
			TLVs: []proxyproto.TLV{{Type: 0x01, Value: []byte("h2")}}},
			"accepted client=2001:db8::7:4243 dst=2001:db8::1:443"},
		{&proxyproto.Header{Version: 1}, ""}, // PROXY UNKNOWN: the real address
		{nil, "proxyproto.Write"},            // as tether relay --proxy-protocol v2 does it
	} {
		var c net.Conn
		if tt.h != nil {
			c, err = cli.Dial(proxyproto.NewContext(context.Background(), tt.h))
			if err == nil && tt.want == "" {
				tt.want = "accepted client=" + c.LocalAddr().String()
			}
		} else {
			c, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", accept))
			if err == nil {
				err = proxyproto.Write(c, 2, tcpAddr("192.0.2.9:5555"), tcpAddr("192.0.2.1:80"))
			}
			tt.want = "accepted client=192.0.2.9:5555 dst=192.0.2.1:80"
		}
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		msg := fmt.Sprintf("hello %d", i)
		io.WriteString(c, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo through haproxy: %q, %v\n%s", buf, err, logs)
		}
		c.Close()
		// haproxy logs a TCP session when it ends.
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(logs.String(), tt.want) {
			if time.Now().After(deadline) {
				t.Fatalf("haproxy did not log %q:\n%s", tt.want, logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestHAProxyTwisted sends the same headers to Twisted's haproxy: server
// and to proxyproto.Read: both must find the same peer and host.
func TestHAProxyTwisted(t *testing.T) {
	const python = "/usr/bin/python3" // Debian's, with python3-twisted
	cmd := exec.Command(python, "testdata/twisted_haproxy.py")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := testpeer.Start(t, cmd)
	br := bufio.NewReader(out)
	portLine := make(chan string, 1)
	go func() {
		l, _ := br.ReadString('\n')
		portLine <- strings.TrimSpace(l)
	}()
	var port int
	select {
	case l := <-portLine:
		if port, err = strconv.Atoi(l); err != nil {
			t.Fatalf("%s did not start Twisted (install python3-twisted): %q\n%s", python, l, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Twisted did not start:\n%s", stderr)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	headers := []struct {
		name         string
		h            proxyproto.Header
		raw          []byte // sent instead of h when set
		twistedDrops bool   // a known difference
	}{
		{name: "v1 TCP4", h: proxyproto.Header{Version: 1, Source: tcpAddr("203.0.113.7:4242"), Destination: tcpAddr("198.51.100.1:443")}},
		{name: "v1 TCP6", h: proxyproto.Header{Version: 1, Source: tcpAddr("[2001:db8::7]:4243"), Destination: tcpAddr("[2001:db8::1]:8443")}},
		// Twisted 22.4 drops the line that the protocol's document, and
		// haproxy, write for UNKNOWN: its parser wants a space after it.
		{name: "v1 UNKNOWN", h: proxyproto.Header{Version: 1}, twistedDrops: true},
		{name: "v1 UNKNOWN with addresses", raw: []byte("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n")},
		{name: "v2 TCP4", h: proxyproto.Header{Version: 2, Source: tcpAddr("203.0.113.7:4242"), Destination: tcpAddr("198.51.100.1:443")}},
		{name: "v2 TCP6", h: proxyproto.Header{Version: 2, Source: tcpAddr("[2001:db8::7]:4243"), Destination: tcpAddr("[2001:db8::1]:8443")}},
		{name: "v2 TCP4 TLVs", h: proxyproto.Header{Version: 2, Source: tcpAddr("192.0.2.1:1"), Destination: tcpAddr("192.0.2.2:2"),
			TLVs: []proxyproto.TLV{{Type: 0x01, Value: []byte("h2")}, {Type: 0x02, Value: []byte("example.com")}}}},
		{name: "v2 UDP4", h: proxyproto.Header{Version: 2, Source: net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:53")),
			Destination: net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.2:53"))}},
		{name: "v2 UNIX", h: proxyproto.Header{Version: 2, Source: &net.UnixAddr{Name: "/run/a.sock", Net: "unix"},
			Destination: &net.UnixAddr{Name: "/run/b.sock", Net: "unix"}}},
		{name: "v2 LOCAL", h: proxyproto.Header{Version: 2, Local: true}},
		{name: "v2 AF_UNSPEC", h: proxyproto.Header{Version: 2}},
		{name: "no header", raw: []byte("GET / HTTP/1.0\r\n\r\n")},
		{name: "v2 bad version", raw: append(v2(0x21, 0x11, make([]byte, 12))[:12:12], 0x31, 0x11, 0, 12)},
		{name: "v1 cut short", raw: []byte("PROXY TCP4 1.2.3.4\r\n")},
	}
	for _, tt := range headers {
		b := tt.raw
		if b == nil {
			if b, err = tt.h.Format(); err != nil {
				t.Fatal(err)
			}
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		// One write: Twisted's v2 parser wants the fixed part in one piece.
		c.Write(append(append([]byte(nil), b...), "report\n"...))
		reply, _ := io.ReadAll(c)
		c.Close()

		// What tether makes of the same bytes, on a connection whose own
		// addresses are c's.
		mine := ""
		if h, err := proxyproto.Read(bytes.NewReader(b)); err == nil {
			peer, host := h.Source, h.Destination
			if peer == nil {
				peer, host = c.LocalAddr(), c.RemoteAddr()
			}
			mine = addrText(peer) + " " + addrText(host)
		}
		theirs := ""
		if len(reply) > 0 {
			var r struct{ Peer, Host twistedAddr }
			if err := json.Unmarshal(reply, &r); err != nil {
				t.Fatalf("%s: Twisted said %q", tt.name, reply)
			}
			theirs = r.Peer.text() + " " + r.Host.text()
		}
		if tt.twistedDrops {
			if theirs != "" || mine == "" {
				t.Errorf("%s: tether reads %q, Twisted %q; want Twisted to drop the connection", tt.name, mine, theirs)
			}
		} else if mine != theirs {
			t.Errorf("%s: tether reads %q, Twisted %q", tt.name, mine, theirs)
		} else {
			t.Logf("%s: both read %q", tt.name, mine)
		}
	}
}

// twistedAddr is an address as testdata/twisted_haproxy.py describes it.
type twistedAddr struct {
	Kind, Host, Name string
	Port             int
}

func (a twistedAddr) text() string {
	if a.Kind == "UNIX" {
		return "unix " + a.Name
	}
	ip, err := netip.ParseAddr(a.Host)
	if err != nil {
		return "bad " + a.Host
	}
	return strings.ToLower(a.Kind) + " " + netip.AddrPortFrom(ip, uint16(a.Port)).String()
}

// addrText writes a Go address as twistedAddr.text writes Twisted's.
func addrText(a net.Addr) string {
	switch a := a.(type) {
	case *net.TCPAddr:
		return "tcp " + a.AddrPort().String()
	case *net.UDPAddr:
		return "udp " + a.AddrPort().String()
	case *net.UnixAddr:
		return "unix " + a.Name
	}
	return fmt.Sprintf("%T %v", a, a)
}
