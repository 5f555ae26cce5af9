package endpoint

import (
	"bytes"
	"context"
	"encoding/base64"
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

	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/testpeer"
)

// The socks5 and httpconnect tests run real proxies: Debian's microsocks
// and tinyproxy. Without them they fail, not skip (CI installs them:
// apt-get install microsocks tinyproxy). A proxy written here stands in
// only for what those cannot be made to do: a silent proxy, SOCKS5 reply
// codes other than refused, answers cut short or malformed.

// startMicrosocks runs a SOCKS5 proxy; with user and pass, it requires them.
func startMicrosocks(t *testing.T, user, pass string) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	_, port, _ := net.SplitHostPort(addr)
	args := []string{"-i", "127.0.0.1", "-p", port}
	if user != "" {
		args = append(args, "-u", user, "-P", pass)
	}
	testpeer.StartListening(t, "microsocks", "microsocks", args, addr)
	return addr
}

// startTinyproxy runs an HTTP proxy that may CONNECT to any port; with
// user and pass, it requires them.
func startTinyproxy(t *testing.T, user, pass string) string {
	t.Helper()
	port := testpeer.FreePort(t)
	// No ConnectPort line: CONNECT to every port is allowed.
	cfg := fmt.Sprintf("Port %d\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nMaxClients 20\nLogLevel Info\n", port)
	if user != "" {
		cfg += fmt.Sprintf("BasicAuth %s %s\n", user, pass)
	}
	path := filepath.Join(t.TempDir(), "tinyproxy.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testpeer.StartListening(t, "tinyproxy", "tinyproxy", []string{"-d", "-c", path}, addr)
	return addr
}

// echoServer echoes every connection, on IPv6 and IPv4 loopback both, so
// that a proxy that resolves localhost to either reaches it.
func echoServer(t *testing.T) int {
	t.Helper()
	ln := listen(t, "tcp6:0")
	serveEach(ln, func(c net.Conn) { io.Copy(c, c) })
	return portOf(ln)
}

// proxyString is the string of a client of type typ to host:port through
// the proxy at proxyAddr, with extra arguments.
func proxyString(typ, host string, port int, proxyAddr, extra string) string {
	ph, pp, _ := net.SplitHostPort(proxyAddr)
	return fmt.Sprintf("%s:%s:%d:proxy=%s%s", typ, host, port, Quote("tcp:"+ph+":"+pp), extra)
}

// checkRaw says whether c is the proxy's TCP connection itself, as tether
// relay needs it for splice: not a wrapper, its peer the proxy.
func checkRaw(t *testing.T, c net.Conn, proxyAddr string) {
	t.Helper()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		t.Fatalf("Dial returned a %T, want the proxy's *net.TCPConn", c)
	}
	if got := tc.RemoteAddr().String(); got != proxyAddr {
		t.Fatalf("connection's peer is %s, want the proxy %s", got, proxyAddr)
	}
}

func TestSOCKS5Echo(t *testing.T) {
	proxy := startMicrosocks(t, "", "")
	port := echoServer(t)
	for _, host := range []string{"127.0.0.1", "localhost", "[::1]"} {
		s := proxyString("socks5", host, port, proxy, "")
		c, err := Dial(context.Background(), s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		checkRaw(t, c, proxy)
		roundTrip(t, c)
	}
}

func TestSOCKS5Auth(t *testing.T) {
	proxy := startMicrosocks(t, "alice", "s3cret")
	port := echoServer(t)
	c, err := Dial(context.Background(), proxyString("socks5", "127.0.0.1", port, proxy, ":username=alice:password=s3cret"))
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	checkRaw(t, c, proxy)
	roundTrip(t, c)

	// The password from a file, its line ending dropped.
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("s3cret\n"), 0600)
	c, err = Dial(context.Background(), proxyString("socks5", "127.0.0.1", port, proxy, ":username=alice:passwordFile="+Quote(pwFile)))
	if err != nil {
		t.Fatalf("password from a file: %v", err)
	}
	roundTrip(t, c)

	for _, extra := range []string{":username=alice:password=wrong", ""} {
		s := proxyString("socks5", "127.0.0.1", port, proxy, extra)
		_, err := Dial(context.Background(), s)
		if !errors.Is(err, ErrProxyAuth) || !errors.Is(err, ErrProxyFailed) {
			t.Fatalf("%s: %v, want ErrProxyAuth and ErrProxyFailed", s, err)
		}
		var e *Error
		if !errors.As(err, &e) || e.Input != s || e.Op != "dial" {
			t.Fatalf("%s: %#v is not an *Error naming the string", s, err)
		}
		t.Logf("%s: %v", extra, err)
	}
}

func TestSOCKS5TargetRefused(t *testing.T) {
	proxy := startMicrosocks(t, "", "")
	_, err := Dial(context.Background(), proxyString("socks5", "127.0.0.1", closedPort(t), proxy, ""))
	if !errors.Is(err, syscall.ECONNREFUSED) || !errors.Is(err, ErrProxyFailed) {
		t.Fatalf("closed port through socks5: %v, want ECONNREFUSED and ErrProxyFailed", err)
	}
	if !strings.Contains(err.Error(), "reply 5") {
		t.Fatalf("error %q does not give the reply code", err)
	}
	t.Log(err)
}

// closedPort returns a loopback port that nothing listens on.
func closedPort(t *testing.T) int {
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	port := portOf(ln)
	ln.Close()
	return port
}

func TestProxyUnreachable(t *testing.T) {
	// The proxy itself refuses: the error is the inner endpoint's, inside
	// one naming the whole string, and not ErrProxyFailed.
	for _, typ := range []string{"socks5", "httpconnect"} {
		s := proxyString(typ, "127.0.0.1", 80, fmt.Sprintf("127.0.0.1:%d", closedPort(t)), "")
		_, err := Dial(context.Background(), s)
		var e *Error
		if !errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, ErrProxyFailed) || !errors.As(err, &e) || e.Input != s {
			t.Fatalf("%s: %v, want ECONNREFUSED reaching the proxy, in an *Error naming the string", s, err)
		}
		if !strings.Contains(err.Error(), "reaching the proxy") {
			t.Fatalf("%s: %q does not say the proxy was not reached", s, err)
		}
	}
}

func TestHTTPConnectEcho(t *testing.T) {
	proxy := startTinyproxy(t, "", "")
	port := echoServer(t)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		s := proxyString("httpconnect", host, port, proxy, "")
		c, err := Dial(context.Background(), s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		checkRaw(t, c, proxy)
		roundTrip(t, c)
	}
}

func TestHTTPConnectAuth(t *testing.T) {
	proxy := startTinyproxy(t, "alice", "s3cret")
	port := echoServer(t)
	c, err := Dial(context.Background(), proxyString("httpconnect", "127.0.0.1", port, proxy, ":username=alice:password=s3cret"))
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	checkRaw(t, c, proxy)
	roundTrip(t, c)

	for _, extra := range []string{":username=alice:password=wrong", ""} {
		s := proxyString("httpconnect", "127.0.0.1", port, proxy, extra)
		_, err := Dial(context.Background(), s)
		// tinyproxy answers 407 when no credentials come, 401 when
		// they are wrong; both are the proxy's refusal.
		if !errors.Is(err, ErrProxyAuth) || !errors.Is(err, ErrProxyFailed) || !strings.Contains(err.Error(), `answered "HTTP/1.`) {
			t.Fatalf("%s: %v, want ErrProxyAuth quoting the status line", s, err)
		}
		t.Logf("%s: %v", extra, err)
	}
}

func TestHTTPConnectTargetRefused(t *testing.T) {
	proxy := startTinyproxy(t, "", "")
	_, err := Dial(context.Background(), proxyString("httpconnect", "127.0.0.1", closedPort(t), proxy, ""))
	if !errors.Is(err, ErrProxyFailed) || !strings.Contains(err.Error(), `"HTTP/1.1 500 Unable to connect"`) {
		t.Fatalf("closed port through httpconnect: %v, want ErrProxyFailed quoting the status line", err)
	}
	t.Log(err)
}

// TestProxyUnderTLS composes: tls over socks5 over tcp, and tls over
// httpconnect over tcp, with the certificate verified for the name the
// proxy resolved.
func TestProxyUnderTLS(t *testing.T) {
	pki := newPKI(t, "ca")
	certFile, keyFile := pki.issue(t.TempDir(), "localhost", leafOpts{})
	ln := listen(t, "tls:0:interface=[::]:certificate="+Quote(certFile)+":privateKey="+Quote(keyFile))
	serveEach(ln, func(c net.Conn) { io.Copy(c, c) })
	for _, proxy := range []string{
		proxyString("socks5", "localhost", portOf(ln), startMicrosocks(t, "", ""), ""),
		proxyString("httpconnect", "localhost", portOf(ln), startTinyproxy(t, "", ""), ""),
	} {
		s := fmt.Sprintf("tls:localhost:%d:trustRoots=%s:endpoint=%s", portOf(ln), Quote(pki.caFile), Quote(proxy))
		c, err := Dial(context.Background(), s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		roundTrip(t, c)
	}
}

// TestProxyNestedString: the example of the reference parses, escaped by
// hand as written there or by Quote, to the same inner strings.
func TestProxyNestedString(t *testing.T) {
	byHand := `tls:example.com:443:endpoint=socks5\:example.com\:443\:proxy=tcp\\\:127.0.0.1\\\:1080`
	byQuote := "tls:example.com:443:endpoint=" + Quote("socks5:example.com:443:proxy="+Quote("tcp:127.0.0.1:1080"))
	for _, s := range []string{byHand, byQuote} {
		if _, err := ParseClient(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		outer, err := driver.ClientArgs(s)
		if err != nil {
			t.Fatal(err)
		}
		socks := outer.Value("endpoint").Str
		if want := `socks5:example.com:443:proxy=tcp\:127.0.0.1\:1080`; socks != want {
			t.Fatalf("%s: endpoint= is %q, want %q", s, socks, want)
		}
		inner, err := driver.ClientArgs(socks)
		if err != nil {
			t.Fatal(err)
		}
		if got := inner.Value("proxy").Str; got != "tcp:127.0.0.1:1080" {
			t.Fatalf("%s: proxy= is %q", socks, got)
		}
	}
	// The same for httpconnect, and a proxy chain (SOCKS through an HTTP
	// proxy's tunnel), and an IPv6 proxy address, which needs its ':'
	// escaped: brackets protect only a value's beginning.
	for _, s := range []string{
		`tls:example.com:443:endpoint=httpconnect\:example.com\:443\:proxy=tcp\\\:127.0.0.1\\\:3128`,
		"socks5:example.com:443:proxy=" + Quote("httpconnect:socks.example:1080:proxy="+Quote("tcp:127.0.0.1:3128")),
		"socks5:[2001:db8::1]:443:proxy=" + Quote("tcp:[::1]:1080"),
		`httpconnect:host=example.com:443:proxy=tcp\:[\:\:1]\:3128`,
	} {
		if _, err := ParseClient(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestProxyParseErrors(t *testing.T) {
	for _, tc := range []struct{ s, arg, want string }{
		{"socks5:example.com:443", "proxy", "missing"},
		{"httpconnect:example.com:443", "proxy", "missing"},
		{"socks5:example.com:443:proxy=", "proxy", "empty, but required"},
		{`socks5:example.com:443:proxy=tcp\:127.0.0.1\:http`, "proxy", `port "http"`},
		{`socks5:example.com:443:proxy=nosuch\:x`, "proxy", "unknown client type"},
		{`httpconnect:example.com:443:proxy=tcp\:127.0.0.1`, "proxy", "port"},
		{`socks5:example.com:443:proxy=tcp\:127.0.0.1\:1080:password=x`, "password", "needs username"},
		{`httpconnect:example.com:443:proxy=tcp\:127.0.0.1\:1080:password=x`, "password", "needs username"},
		{`socks5:example.com:443:proxy=tcp\:127.0.0.1\:1080:username=`, "username", "1-255 bytes"},
		{`socks5:example.com:443:proxy=tcp\:127.0.0.1\:1080:username=` + strings.Repeat("u", 256), "username", "1-255 bytes"},
		{`socks5:example.com:443:proxy=tcp\:127.0.0.1\:1080:username=u:password=` + strings.Repeat("p", 256), "password", "255"},
		{`httpconnect:example.com:443:proxy=tcp\:127.0.0.1\:1080:username=a\:b`, "username", "without ':'"},
		{`socks5:` + strings.Repeat("h", 256) + `:443:proxy=tcp\:127.0.0.1\:1080`, "host", "255 bytes"},
		{"httpconnect:example.com\r\n:443:proxy=tcp\\:127.0.0.1\\:1080", "host", "host name"},
		{`socks5:[fe80::1%eth0]:443:proxy=tcp\:127.0.0.1\:1080`, "host", "zone"},
		{`socks5:example.com:http:proxy=tcp\:127.0.0.1\:1080`, "port", "0-65535"},
		{`socks5:example.com:443:proxy=tcp\:127.0.0.1\:1080:timeout=0`, "timeout", "seconds"},
		{`socks5:example.com:443:proxy=tcp\:127.0.0.1\:1080:username=u:password=p:passwordFile=/x`, "passwordFile", "one of them"},
		{`socks5:example.com:443:proxy=tcp\:127.0.0.1\:1080:passwordFile=/x`, "passwordFile", "needs username"},
		{`socks5:example.com:443:proxy=tcp\:127.0.0.1\:1080:username=u:passwordFile=/nonexistent/pw`, "passwordFile", "no such file"},
		{`httpconnect:example.com:443:proxy=tcp\:127.0.0.1\:1080:username=u:passwordFile=/dev/zero`, "passwordFile", "not a regular file"},
	} {
		_, err := ParseClient(tc.s)
		var e *Error
		if !errors.As(err, &e) || e.Op != "parse" || e.Arg != tc.arg || !errors.Is(err, ErrBadArgument) {
			t.Errorf("%q: %v, want a parse *Error about %s", tc.s, err, tc.arg)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %q does not say %q", tc.s, err, tc.want)
		}
	}
}

// silentProxy accepts connections and never answers. closed receives once
// for each connection that the client closed.
func silentProxy(t *testing.T) (addr string, closed <-chan struct{}) {
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	ch := make(chan struct{}, 10)
	serveEach(ln, func(c net.Conn) {
		io.Copy(io.Discard, c)
		c.Close() // before telling: the test counts file descriptors
		ch <- struct{}{}
	})
	return ln.Addr().String(), ch
}

// TestProxyHandshakeTimeout: a proxy that never answers holds Dial no
// longer than timeout= or the caller's context, and cancelling the context
// ends Dial at once; either way the connection to the proxy is closed.
func TestProxyHandshakeTimeout(t *testing.T) {
	for _, typ := range []string{"socks5", "httpconnect"} {
		t.Run(typ, func(t *testing.T) {
			proxy, closed := silentProxy(t)
			waitClosed := func(what string) {
				select {
				case <-closed:
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: the connection to the proxy was not closed", what)
				}
			}

			_, err := Dial(context.Background(), proxyString(typ, "example.com", 443, proxy, ":timeout=1"))
			var ne net.Error
			if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("timeout=1: %v, want context.DeadlineExceeded and a net.Error timeout", err)
			}
			if !strings.Contains(err.Error(), "timeout=1") {
				t.Fatalf("timeout=1: %q does not name the argument", err)
			}
			waitClosed("timeout=1")

			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_, err = Dial(ctx, proxyString(typ, "example.com", 443, proxy, ""))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("context deadline: %v, want context.DeadlineExceeded", err)
			}
			waitClosed("context deadline")

			cli, err := ParseClient(proxyString(typ, "example.com", 443, proxy, ""))
			if err != nil {
				t.Fatal(err)
			}
			before := openFDs(t)
			dialCancelled(t, cli)
			waitClosed("cancel")
			if after := openFDs(t); after > before {
				t.Fatalf("cancelled Dial left %d file descriptors open", after-before)
			}
		})
	}
}

// fakeProxy runs answer for each connection to a proxy written here.
func fakeProxy(t *testing.T, answer func(c net.Conn)) string {
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	serveEach(ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		answer(c)
	})
	return ln.Addr().String()
}

// readSOCKS5Request reads a client's greeting (answering no
// authentication) and CONNECT request, and returns the request.
func readSOCKS5Request(c net.Conn) ([]byte, error) {
	var b [2 + 255]byte
	if _, err := io.ReadFull(c, b[:2]); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(c, b[:b[1]]); err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{5, 0}); err != nil {
		return nil, err
	}
	req := make([]byte, 4, 4+1+255+2)
	if _, err := io.ReadFull(c, req); err != nil {
		return nil, err
	}
	n := map[byte]int{1: 4, 4: 16}[req[3]]
	if req[3] == 3 {
		if _, err := io.ReadFull(c, b[:1]); err != nil {
			return nil, err
		}
		req = append(req, b[0])
		n = int(b[0])
	}
	req = req[:len(req)+n+2]
	_, err := io.ReadFull(c, req[len(req)-n-2:])
	return req, err
}

// TestSOCKS5Protocol checks what goes over the wire: the address types of
// the request, every bound address form of the reply, and that bytes the
// proxy sends right behind its reply are left for the caller to read.
func TestSOCKS5Protocol(t *testing.T) {
	requests := make(chan []byte, 1)
	replies := map[string][]byte{
		"IPv4": {5, 0, 0, 1, 127, 0, 0, 1, 0x12, 0x34},
		"name": append(append([]byte{5, 0, 0, 3, 9}, "localhost"...), 0x12, 0x34),
		"IPv6": append(append([]byte{5, 0, 0, 4}, make([]byte, 16)...), 0x12, 0x34),
	}
	next := make(chan []byte, 1) // the reply to send
	proxy := fakeProxy(t, func(c net.Conn) {
		reply := <-next
		req, err := readSOCKS5Request(c)
		if err != nil {
			requests <- nil
			return
		}
		requests <- req
		// The reply and the target's first bytes in one write.
		c.Write(append(append([]byte{}, reply...), "hello from the target"...))
		io.Copy(io.Discard, c)
	})
	for _, tc := range []struct {
		host, reply string
		want        []byte
	}{
		{"192.0.2.7", "IPv4", []byte{5, 1, 0, 1, 192, 0, 2, 7, 1, 187}},
		{"example.com", "name", append(append([]byte{5, 1, 0, 3, 11}, "example.com"...), 1, 187)},
		{"[2001:db8::9]", "IPv6", append(append([]byte{5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8}, make([]byte, 11)...), 9, 1, 187)},
		{"[::ffff:192.0.2.7]", "IPv4", []byte{5, 1, 0, 1, 192, 0, 2, 7, 1, 187}},
	} {
		next <- replies[tc.reply]
		c, err := Dial(context.Background(), proxyString("socks5", tc.host, 443, proxy, ""))
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		if got := <-requests; !bytes.Equal(got, tc.want) {
			t.Fatalf("%s: request % x, want % x", tc.host, got, tc.want)
		}
		checkRaw(t, c, proxy)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(io.LimitReader(c, int64(len("hello from the target"))))
		if string(got) != "hello from the target" {
			t.Fatalf("%s, reply with %s: read %q, %v after Dial; Dial read too far", tc.host, tc.reply, got, err)
		}
		c.Close()
	}
}

// TestSOCKS5Replies: every failure code keeps its meaning.
func TestSOCKS5Replies(t *testing.T) {
	codes := make(chan byte, 1)
	proxy := fakeProxy(t, func(c net.Conn) {
		code := <-codes
		if _, err := readSOCKS5Request(c); err == nil {
			c.Write([]byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0})
		}
	})
	for _, tc := range []struct {
		code  byte
		errno error
		text  string
	}{
		{1, nil, "general SOCKS server failure (reply 1)"},
		{2, syscall.EACCES, "connection not allowed by the proxy's rules (reply 2)"},
		{3, syscall.ENETUNREACH, "network unreachable (reply 3)"},
		{4, syscall.EHOSTUNREACH, "host unreachable (reply 4)"},
		{5, syscall.ECONNREFUSED, "connection refused (reply 5)"},
		{7, nil, "command not supported (reply 7)"},
		{9, nil, "unknown reply code (reply 9)"},
		{255, nil, "unknown reply code (reply 255)"},
	} {
		codes <- tc.code
		_, err := Dial(context.Background(), proxyString("socks5", "example.com", 443, proxy, ""))
		if !errors.Is(err, ErrProxyFailed) || !strings.Contains(err.Error(), "could not connect to example.com:443: "+tc.text) {
			t.Fatalf("reply %d: %v", tc.code, err)
		}
		if tc.errno != nil && !errors.Is(err, tc.errno) {
			t.Fatalf("reply %d: %v does not match %v", tc.code, err, tc.errno)
		}
		if tc.errno == nil && (errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EACCES)) {
			t.Fatalf("reply %d: %v matches a system error it should not", tc.code, err)
		}
	}
}

// answerAndDrain writes answer, ends its side of c (so that a client
// reading more sees end of file, not a reset) and reads what the client
// still sends.
func answerAndDrain(c net.Conn, answer string) {
	c.Write([]byte(answer))
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
}

// TestSOCKS5BadAnswers: a proxy that is not SOCKS5, or closes early.
func TestSOCKS5BadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, answer, want string
	}{
		{"HTTP", "HTTP/1.1 400 Bad Request\r\n\r\n", "not a SOCKS5 proxy"},
		{"closed", "", "closed the connection"},
		{"cut short", "\x05\x00\x05\x00\x00\x01\x7f", "closed the connection"},
		{"method not offered", "\x05\x02", "method 0x2, which was not offered"},
		{"bad address type", "\x05\x00\x05\x00\x00\x07", "unknown address type 0x7"},
	} {
		proxy := fakeProxy(t, func(c net.Conn) {
			c.Read(make([]byte, 3))
			answerAndDrain(c, tc.answer)
		})
		_, err := Dial(context.Background(), proxyString("socks5", "example.com", 443, proxy, ""))
		if !errors.Is(err, ErrProxyFailed) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want ErrProxyFailed saying %q", tc.name, err, tc.want)
		}
	}
}

// TestHTTPConnectProtocol checks the request, and that the answer is read
// to the end of its header and no further, interim answers passed over.
func TestHTTPConnectProtocol(t *testing.T) {
	requests := make(chan string, 1)
	answers := make(chan string, 1)
	proxy := fakeProxy(t, func(c net.Conn) {
		answer := <-answers
		var req []byte
		b := make([]byte, 1)
		for !bytes.HasSuffix(req, []byte("\r\n\r\n")) {
			if _, err := c.Read(b); err != nil {
				requests <- ""
				return
			}
			req = append(req, b[0])
		}
		requests <- string(req)
		c.Write([]byte(answer + "hello from the target"))
		io.Copy(io.Discard, c)
	})
	for _, tc := range []struct {
		host, extra, answer, want string
	}{
		{"example.com", "", "HTTP/1.1 200 Connection established\r\n\r\n",
			"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"},
		{"[2001:db8::1]", `:username=alice:password=s3cr\:et`, "HTTP/1.0 200 OK\r\nProxy-agent: x\r\n\r\n",
			"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\nProxy-Authorization: Basic " +
				base64.StdEncoding.EncodeToString([]byte("alice:s3cr:et")) + "\r\n\r\n"},
		{"192.0.2.1", "", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\n\n",
			"CONNECT 192.0.2.1:443 HTTP/1.1\r\nHost: 192.0.2.1:443\r\n\r\n"},
	} {
		answers <- tc.answer
		c, err := Dial(context.Background(), proxyString("httpconnect", tc.host, 443, proxy, tc.extra))
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		if got := <-requests; got != tc.want {
			t.Fatalf("%s: request %q, want %q", tc.host, got, tc.want)
		}
		checkRaw(t, c, proxy)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(io.LimitReader(c, int64(len("hello from the target"))))
		if string(got) != "hello from the target" {
			t.Fatalf("%s, answer %q: read %q, %v after Dial; Dial read too far", tc.host, tc.answer, got, err)
		}
		c.Close()
	}
}

// TestHTTPConnectBadAnswers: statuses other than 2xx, and answers that are
// not HTTP, too long or cut short.
func TestHTTPConnectBadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, answer, want string
		auth               bool
	}{
		{"forbidden", "HTTP/1.1 403 Forbidden\r\n\r\n", `answered "HTTP/1.1 403 Forbidden" to CONNECT example.com:443`, false},
		{"redirect", "HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n", `"HTTP/1.1 301 Moved"`, false},
		{"auth wanted", "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", "give username= and password=", true},
		{"unauthorized", "HTTP/1.1 401 Unauthorized\r\n\r\n", "give username= and password=", true},
		{"SOCKS", "\x05\xff", "not an HTTP proxy", false},
		{"no status text", "HTTP/1.1 200\r\n\r\n", "", false},
		{"bad code", "HTTP/1.1 2x0 OK\r\n\r\n", "not an HTTP proxy", false},
		{"endless", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: 0123456789\r\n", 500), "no end of header within 8192 bytes", false},
		{"closed", "HTTP/1.1 200 OK\r\n", "closed the connection", false},
	} {
		proxy := fakeProxy(t, func(c net.Conn) {
			c.Read(make([]byte, 512))
			answerAndDrain(c, tc.answer)
		})
		c, err := Dial(context.Background(), proxyString("httpconnect", "example.com", 443, proxy, ""))
		if tc.want == "" {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			c.Close()
			continue
		}
		if !errors.Is(err, ErrProxyFailed) || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrProxyAuth) != tc.auth {
			t.Fatalf("%s: %v, want ErrProxyFailed saying %q (ErrProxyAuth: %v)", tc.name, err, tc.want, tc.auth)
		}
	}
}

func TestPasswordFileTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, bytes.Repeat([]byte("p"), maxPasswordFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ParseClient(`socks5:h:1:proxy=tcp\:p\:1:username=u:passwordFile=` + Quote(path))
	if err == nil || !strings.Contains(err.Error(), "more than a password file needs") || strings.Contains(err.Error(), "PEM") {
		t.Errorf("err = %v; want it to say the file is too large for a password file", err)
	}
}
