package endpoint

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// TestOptionsResolver: a tcp client, and a tls client's TCP part, look
// names up with the Options' Resolver (a real DNS server on loopback that
// knows a name the system's resolver does not).
func TestOptionsResolver(t *testing.T) {
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	serveEach(ln, func(c net.Conn) { c.Write([]byte("x")); c.Close() })
	opts := &Options{Resolver: dnsServer(t, "only-here.test", netip.MustParseAddr("127.0.0.1"))}
	c, err := opts.Dial(context.Background(), fmt.Sprintf("tcp:only-here.test:%d", portOf(ln)))
	if err != nil {
		t.Fatalf("Dial through the Options' resolver: %v", err)
	}
	c.Close()
	// Inside a wrapper too: the inner string gets the same Options.
	c, err = opts.Dial(context.Background(), fmt.Sprintf("haproxy:tcp:only-here.test:%d", portOf(ln)))
	if err != nil {
		t.Fatalf("Dial haproxy:tcp through the Options' resolver: %v", err)
	}
	c.Close()
	if _, err := Dial(context.Background(), fmt.Sprintf("tcp:only-here.test:%d:timeout=5", portOf(ln))); err == nil {
		t.Fatal("the zero Options found a name only the test's DNS server knows")
	}
}

// TestOptionsTLSConfig: the hook adjusts every configuration a TLS
// endpoint makes, server and client, nested ones included, but cannot turn
// verification off.
func TestOptionsTLSConfig(t *testing.T) {
	p := newPKI(t, "ca")
	cert, key := p.issue(t.TempDir(), "server", leafOpts{})
	var mu sync.Mutex
	seen := map[string]int{}
	only13 := &Options{TLSConfig: func(c *tls.Config) {
		mu.Lock()
		seen[fmt.Sprint(c.ServerName != "")]++ // a client names its server
		mu.Unlock()
		c.MinVersion = tls.VersionTLS13
		c.InsecureSkipVerify = true // must be undone
	}}
	ln, err := only13.Listen(context.Background(), "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serveEcho(t, ln)
	roots := x509Pool(t, p)
	old := &tls.Config{ServerName: "localhost", RootCAs: roots, MaxVersion: tls.VersionTLS12}
	if raw, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		if err := tls.Client(raw, old).Handshake(); err == nil {
			t.Error("a TLS 1.2 client was served by a server whose hook asked for 1.3")
		}
		raw.Close()
	}
	c, err := only13.Dial(context.Background(), fmt.Sprintf("tls:localhost:%d:trustRoots=%s", tlsPort(ln), p.caFile))
	if err != nil {
		t.Fatal(err)
	}
	if v := c.(*tls.Conn).ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("version %x, want TLS 1.3", v)
	}
	c.Close()
	// The client's hook set InsecureSkipVerify: undone, so an untrusted
	// server is still refused.
	if c, err := only13.Dial(context.Background(), fmt.Sprintf("tls:localhost:%d", tlsPort(ln))); err == nil {
		c.Close()
		t.Fatal("a hook turned certificate verification off")
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["false"] == 0 || seen["true"] == 0 {
		t.Errorf("the hook saw %v; want server and client configurations", seen)
	}
}

// TestOptionsLogger: a failed automatic reload is logged to the Options'
// Logger, and with no Logger to nothing at all (never slog's default).
func TestOptionsLogger(t *testing.T) {
	p := newPKI(t, "ca")
	certFile, keyFile, c1, _ := p.replaceable("one")

	var global bytes.Buffer
	saved := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&global, nil)))
	defer slog.SetDefault(saved)

	var mine bytes.Buffer
	for _, opts := range []*Options{{Logger: slog.New(slog.NewTextHandler(&mine, nil))}, nil} {
		ln, err := opts.Listen(context.Background(), "tls:0:interface=127.0.0.1:certificate="+certFile+":privateKey="+keyFile)
		if err != nil {
			t.Fatal(err)
		}
		tl := ln.(*tlsListener)
		tl.store.every = 0
		tl.store.next.Store(0)
		serveEcho(t, ln)
		c2, _ := p.leaf("two", leafOpts{})
		replaceFile(t, certFile, c2) // and not its key: does not load
		tlsDial(t, fmt.Sprintf("tls:localhost:%d:trustRoots=%s", tlsPort(ln), p.dir))
		ln.Close()
		writePEM(t, certFile, c1)
	}
	if !strings.Contains(mine.String(), "do not load") {
		t.Errorf("the Options' logger got %q; want the failed reload", mine.String())
	}
	if global.Len() != 0 {
		t.Errorf("the global logger got %q; the package must not write to it", global.String())
	}
}

// TestReloadThroughWrappers: a haproxy:tls server and a tls client that
// connects through another endpoint reload from the parsed Server and
// Client, whatever their listener's or connection's type; an endpoint
// with no files says there is nothing to reload.
func TestReloadThroughWrappers(t *testing.T) {
	p := newPKI(t, "ca")
	certFile, keyFile, _, k1 := p.replaceable("one")
	srv, err := ParseServer("haproxy:tls:0:interface=127.0.0.1:certificate=" + certFile + ":privateKey=" + keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c2, k2 := p.leaf("two", leafOpts{})
	writePEM(t, certFile, c2)
	writePEM(t, keyFile, k2)
	if err := srv.(Reloader).Reload(); err != nil {
		t.Fatalf("Reload through haproxy: %v", err)
	}
	// The listener opened now uses the reloaded certificate.
	ln, err := srv.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serveEach(ln, func(c net.Conn) { c.Read(make([]byte, 1)); c.Close() })
	cli, err := ParseClient(fmt.Sprintf("tls:localhost:%d:trustRoots=%s:endpoint=%s", portOf(ln), p.dir,
		Quote(fmt.Sprintf("tcp:127.0.0.1:%d", portOf(ln)))))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := cli.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cn := peerCN(conn.(*tls.Conn)); cn != "two" {
		t.Errorf("after Reload the server shows %q, want two", cn)
	}
	conn.Close()
	if err := cli.(Reloader).Reload(); err != nil {
		t.Errorf("Reload of a tls client over tcp: %v", err)
	}

	writePEM(t, keyFile, k1) // a key that does not match: refused, old kept
	var e *Error
	if err := srv.(Reloader).Reload(); !errors.As(err, &e) || e.Arg == "" {
		t.Errorf("Reload of mismatched files = %v; want an *Error naming the argument", err)
	}

	plain, _ := ParseServer("haproxy:tcp:0")
	if err := plain.(Reloader).Reload(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Reload of haproxy:tcp = %v; want errors.ErrUnsupported", err)
	}
}
