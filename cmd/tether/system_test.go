package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/internal/testpeer"
)

// These tests run tether with real peers: Debian's haproxy and
// systemd-socket-activate, and openssl (devcert_test.go). Without them they
// fail, not skip: CI installs them (apt-get install haproxy systemd openssl).

const sdActivateBin = "/usr/bin/systemd-socket-activate"

// waitRaw waits for a line of tether's stderr (JSON or not) containing s.
func (p *proc) waitRaw(s string) string {
	p.t.Helper()
	var line string
	seen := 0
	p.waitUntil(fmt.Sprintf("a line with %q", s), func() bool {
		for ; seen < len(p.raw); seen++ {
			if strings.Contains(p.raw[seen], s) {
				line = p.raw[seen]
				return true
			}
		}
		return false
	})
	return line
}

// peerIs matches a log line whose peer is addr.
func peerIs(addr string) func(map[string]any) bool {
	return func(l map[string]any) bool { return l["peer"] == addr }
}

// startHAProxy runs haproxy with cfg, waiting until its frontend on
// 127.0.0.1:probe (one without accept-proxy) accepts connections.
func startHAProxy(t *testing.T, cfg string, probe int) *testpeer.Buffer {
	t.Helper()
	return testpeer.StartHAProxy(t, cfg, fmt.Sprintf("127.0.0.1:%d", probe))
}

// echoThrough sends msg on a new connection to addr, half-closes, and
// checks that msg, and only msg, comes back. It returns the client's
// address.
func echoThrough(t *testing.T, addr, msg string) string {
	t.Helper()
	c := dialAddr(t, "tcp", addr)
	c.SetDeadline(time.Now().Add(15 * time.Second))
	io.WriteString(c, msg)
	closeWriteT(t, c)
	if got, err := io.ReadAll(c); string(got) != msg || err != nil {
		t.Fatalf("through %s: got %q, %v; want %q", addr, got, err, msg)
	}
	c.Close()
	return c.LocalAddr().String()
}

// TestRelayProxyProtocolIntoHAProxy: tether relay --proxy-protocol in
// front of haproxy's accept-proxy listener, whose log names the original
// client, and the address it connected to, as the relay's header gave
// them. A haproxy: CONNECT sends the header itself, once.
func TestRelayProxyProtocolIntoHAProxy(t *testing.T) {
	echo, _ := listenTest(t, "tcp")
	echoServer(echo)
	plain, accept := testpeer.FreePort(t), testpeer.FreePort(t)
	logs := startHAProxy(t, fmt.Sprintf(`
frontend plain
    bind 127.0.0.1:%d
    default_backend echo
frontend accept
    bind 127.0.0.1:%d accept-proxy
    log-format "accepted client=%%ci:%%cp dst=%%fi:%%fp"
    default_backend echo
backend echo
    server echo %s
`, plain, accept, echo.Addr()), plain)

	for i, tc := range []struct{ name, flag, connect string }{
		{"v1", "v1", fmt.Sprintf("tcp:127.0.0.1:%d", accept)},
		{"v2", "v2", fmt.Sprintf("tcp:127.0.0.1:%d", accept)},
		{"v2 to haproxy:", "v2", fmt.Sprintf("haproxy:tcp:127.0.0.1:%d", accept)},
		{"haproxy: alone", "", fmt.Sprintf("haproxy:tcp:127.0.0.1:%d", accept)}, // v1, from the wrapper
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{tetherBin, "relay", "--log-format", "json"}
			if tc.flag != "" {
				args = append(args, "--proxy-protocol", tc.flag)
			}
			p := startTether(t, append(args, "tcp:0:interface=127.0.0.1", tc.connect)...)
			relayAddr := p.addr()
			client := echoThrough(t, relayAddr, fmt.Sprintf("hello %d", i))
			logs.WaitFor(t, fmt.Sprintf("accepted client=%s dst=%s", client, relayAddr))
			if l := p.waitLog("connection ended", nil); l["peer"] != client || l["error"] != nil {
				t.Errorf("relay's log line %v; want peer %s", l, client)
			}
		})
	}
}

// TestRelayProxyProtocolIntoTether: tether relay --proxy-protocol into
// tether's own haproxy: server: the program that serve runs, and serve's
// log, see the original client, not the relay.
func TestRelayProxyProtocolIntoTether(t *testing.T) {
	serve := startTether(t, tetherBin, "serve", "--log-format", "json", "haproxy:tcp:0:interface=127.0.0.1",
		"exec", "--", "/bin/sh", "-c", `echo "$TETHER_PEER $TETHER_LOCAL"`)
	target := "tcp:" + serve.addr()
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			p := startTether(t, tetherBin, "relay", "--log-format", "json", "--proxy-protocol", v,
				"tcp:0:interface=127.0.0.1", target)
			relayAddr := p.addr()
			c := dialAddr(t, "tcp", relayAddr)
			c.SetDeadline(time.Now().Add(15 * time.Second))
			got, err := io.ReadAll(c)
			if want := c.LocalAddr().String() + " " + relayAddr + "\n"; string(got) != want || err != nil {
				t.Errorf("TETHER_PEER TETHER_LOCAL = %q, %v; want %q", got, err, want)
			}
			c.Close() // serve waits for our end of file
			peer := peerIs(c.LocalAddr().String())
			if l := serve.waitLog("connection ended", peer); l["error"] != nil {
				t.Errorf("serve's log line %v", l)
			}
			p.waitLog("connection ended", peer)
		})
	}
}

// TestServeBehindHAProxy: haproxy with send-proxy and send-proxy-v2 in
// front of tether serve haproxy:...: serve's log line names the client
// that connected to haproxy. A connection without a header is closed and
// logged.
func TestServeBehindHAProxy(t *testing.T) {
	p := startTether(t, tetherBin, "serve", "--log-format", "json", "haproxy:tcp:0:interface=127.0.0.1")
	serveAddr := p.addr()
	v1, v2 := testpeer.FreePort(t), testpeer.FreePort(t)
	startHAProxy(t, fmt.Sprintf(`
frontend send_v1
    bind 127.0.0.1:%d
    default_backend tether_v1
backend tether_v1
    server tether %s send-proxy
frontend send_v2
    bind 127.0.0.1:%d
    default_backend tether_v2
backend tether_v2
    server tether %s send-proxy-v2
`, v1, serveAddr, v2, serveAddr), v1)
	for _, port := range []int{v1, v2} {
		front := fmt.Sprintf("127.0.0.1:%d", port)
		client := echoThrough(t, front, "through haproxy to "+front)
		l := p.waitLog("connection ended", peerIs(client))
		if l["error"] != nil || l["from_peer"] != float64(len("through haproxy to "+front)) {
			t.Errorf("via %s: log line %v", front, l)
		}
	}

	c := dialAddr(t, "tcp", serveAddr)
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, _ := io.ReadAll(c); len(got) != 0 {
		t.Errorf("a connection without a PROXY header was answered: %q", got)
	}
	l := p.waitLog("bad PROXY protocol header; connection reset", nil)
	if e, _ := l["error"].(string); l["peer"] != c.LocalAddr().String() || !strings.Contains(e, "PROXY") {
		t.Errorf("log line %v", l)
	}
}

// TestServeSystemdActivation: systemd-socket-activate starts tether serve
// on an INET socket, a UNIX socket, and sockets chosen by name; a name
// that was not passed fails clearly.
func TestServeSystemdActivation(t *testing.T) {
	testpeer.Need(t, sdActivateBin, "systemd")
	// activate runs tether serve under systemd-socket-activate with one
	// -l per address, and connects to dial, which starts tether.
	activate := func(t *testing.T, sdArgs []string, listen string) *proc {
		args := append([]string{sdActivateBin}, sdArgs...)
		return startTether(t, append(args, tetherBin, "serve", "--log-format", "json", listen)...)
	}
	echo := func(t *testing.T, p *proc, network, addr string) {
		t.Helper()
		p.waitRaw("Listening on " + addr)
		c := dialAddr(t, network, addr) // systemd-socket-activate starts tether now
		c.SetDeadline(time.Now().Add(15 * time.Second))
		io.WriteString(c, "activated")
		closeWriteT(t, c)
		if got, err := io.ReadAll(c); string(got) != "activated" || err != nil {
			t.Fatalf("echo: %q, %v", got, err)
		}
		if l := p.waitLog("connection ended", nil); l["from_peer"] != float64(len("activated")) {
			t.Errorf("log line %v", l)
		}
	}

	t.Run("INET index", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
		p := activate(t, []string{"-l", addr}, "systemd:domain=INET:index=0")
		echo(t, p, "tcp", addr)
		if got := p.addr(); got != addr {
			t.Errorf("tether listens on %s, want %s", got, addr)
		}
	})
	t.Run("UNIX", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "activated.sock")
		p := activate(t, []string{"-l", path}, "systemd:domain=UNIX:index=0")
		echo(t, p, "unix", path)
	})
	t.Run("names", func(t *testing.T) {
		first, second := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
		p := activate(t, []string{"-l", first, "-l", second, "--fdname=admin:web"}, "systemd:domain=INET:name=web")
		p.waitRaw("Listening on " + first)
		echo(t, p, "tcp", second)
		if got := p.addr(); got != second {
			t.Errorf("name=web listens on %s, want %s", got, second)
		}
	})
	t.Run("wrong name", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
		p := activate(t, []string{"-l", addr, "--fdname=web"}, "systemd:domain=INET:name=www")
		p.waitRaw("Listening on " + addr)
		dialAddr(t, "tcp", addr)
		if code := p.exitCode(); code != exitUsage {
			t.Errorf("exit code %d, want %d", code, exitUsage)
		}
		l := p.waitRaw("tether serve:")
		if !strings.Contains(l, "name=www") || !strings.Contains(l, "LISTEN_FDNAMES: web") {
			t.Errorf("error %q; want it to name www and the names passed", l)
		}
	})
}

// TestRelayExec relays to programs through exec:: bytes and half-close
// pass, and the relay's log line has the program's exit status.
func TestRelayExec(t *testing.T) {
	t.Run("cat", func(t *testing.T) {
		p := startTether(t, tetherBin, "relay", "--log-format", "json", "tcp:0:interface=127.0.0.1", "exec:cat")
		data := randomBytes(t, 1<<20)
		c := dialAddr(t, "tcp", p.addr())
		c.SetDeadline(time.Now().Add(15 * time.Second))
		go func() {
			c.Write(data)
			closeWriteT(t, c)
		}()
		if got, err := io.ReadAll(c); !bytes.Equal(got, data) || err != nil {
			t.Fatalf("through cat: %d bytes, %v; want %d", len(got), err, len(data))
		}
		l := p.waitLog("connection ended", nil)
		if l["exit"] != "exit status 0" || l["error"] != nil || l["from_peer"] != float64(len(data)) ||
			l["to_peer"] != float64(len(data)) || l["peer"] != c.LocalAddr().String() {
			t.Errorf("log line %v; want exit status 0, %d bytes each way", l, len(data))
		}
	})
	t.Run("sh exit 3", func(t *testing.T) {
		// tr ends at the client's half-close; what sh writes after that
		// still reaches the client, then sh exits 3.
		p := startTether(t, tetherBin, "relay", "--log-format", "json", "tcp:0:interface=127.0.0.1",
			`exec:sh:-c:tr a-z A-Z; echo done; echo complaint >&2; exit 3`)
		c := dialAddr(t, "tcp", p.addr())
		c.SetDeadline(time.Now().Add(15 * time.Second))
		io.WriteString(c, "hello\n")
		closeWriteT(t, c)
		if got, err := io.ReadAll(c); string(got) != "HELLO\ndone\n" || err != nil {
			t.Errorf("got %q, %v", got, err)
		}
		l := p.waitLog("connection ended", nil)
		if e, _ := l["error"].(string); l["exit"] != "exit status 3" || !strings.Contains(e, "exit status 3") {
			t.Errorf("log line %v; want exit status 3", l)
		}
		p.waitLog("exec: stderr", func(l map[string]any) bool { return l["line"] == "complaint" })
	})
}

// TestRelayInetdSilentPeer: under inetd (systemd-socket-activate
// --inetd), standard input and output are the connection's socket, in
// blocking mode; a client that connects and sends nothing is still cut by
// --idle-timeout, and the process exits. Before, a blocking read of
// standard input could be neither timed out nor interrupted.
func TestRelayInetdSilentPeer(t *testing.T) {
	testpeer.Need(t, sdActivateBin, "systemd")
	ln, target := listenTest(t, "tcp")
	acceptOne(t, ln, func(c net.Conn) { io.Copy(io.Discard, c) })
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	p := startTether(t, sdActivateBin, "--inetd", "--accept", "-l", addr, tetherBin, "relay", "--log-format", "json",
		"--idle-timeout", "1s", "stdio:", target)
	p.waitRaw("Listening on " + addr)
	c := dialAddr(t, "tcp", addr)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if d := time.Since(start); errors.Is(err, os.ErrDeadlineExceeded) || d > 10*time.Second {
		t.Errorf("a silent client of an inetd relay was still connected after %v (%v); want it cut after 1s", d, err)
	}
	if l := p.waitLog("connection ended", nil); !strings.Contains(fmt.Sprint(l["error"]), "idle timeout") {
		t.Errorf("log line %v; want the idle timeout", l)
	}
}

// TestRelayInetdPassesReset: under inetd, standard input is the client's
// TCP socket, which can carry a reset: an upstream that resets mid-stream
// is passed on as one, not as the clean end (FIN) that a plain close of
// standard input and output would send.
func TestRelayInetdPassesReset(t *testing.T) {
	testpeer.Need(t, sdActivateBin, "systemd")
	ln, target := listenTest(t, "tcp")
	acceptOne(t, ln, func(c net.Conn) {
		c.Write([]byte("partial"))
		time.Sleep(200 * time.Millisecond) // for the bytes to reach the client
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	p := startTether(t, sdActivateBin, "--inetd", "--accept", "-l", addr, tetherBin, "relay", "--log-format", "json",
		"stdio:", target)
	p.waitRaw("Listening on " + addr)
	c := dialAddr(t, "tcp", addr)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if string(got) != "partial" || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the client read %q, then %v; want \"partial\", then a reset", got, err)
	}
	if l := p.waitLog("connection ended", nil); l["abort_unsignalled"] != nil {
		t.Errorf("log line %v: the client's socket could be reset", l)
	}
}
