package endpoint

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/internal/testpeer"
)

// testPKI is a test CA (testpeer.CA) under the short names these tests
// use.
type testPKI struct {
	*testpeer.CA
	ca     *x509.Certificate
	caFile string // the CA certificate, PEM
	dir    string
	t      *testing.T
}

func newPKI(t *testing.T, name string) *testPKI { return wrapPKI(t, testpeer.NewCA(t, name)) }

func wrapPKI(t *testing.T, c *testpeer.CA) *testPKI {
	return &testPKI{CA: c, ca: c.Cert, caFile: c.File, dir: c.Dir, t: t}
}

// intermediate makes a CA signed by p.
func (p *testPKI) intermediate(name string) *testPKI { return wrapPKI(p.t, p.Intermediate(name)) }

type leafOpts = testpeer.LeafOpts

// leaf makes a certificate with common name cn and returns it and its key
// as PEM blocks.
func (p *testPKI) leaf(cn string, o leafOpts) (cert, key *pem.Block) { return p.Leaf(cn, o) }

// replaceable writes a certificate for cn and its key to cert.pem and
// key.pem in a directory of their own, for tests that replace them later,
// and returns the files and the blocks written.
func (p *testPKI) replaceable(cn string) (certFile, keyFile string, cert, key *pem.Block) {
	dir := p.t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert, key = p.leaf(cn, leafOpts{})
	writePEM(p.t, certFile, cert)
	writePEM(p.t, keyFile, key)
	return certFile, keyFile, cert, key
}

// issue writes a certificate to DIR/CN.crt and its key to DIR/CN.key.
func (p *testPKI) issue(dir, cn string, o leafOpts) (certFile, keyFile string) {
	return p.Issue(dir, cn, o)
}

func newKey(t *testing.T) *ecdsa.PrivateKey                    { return testpeer.NewKey(t) }
func keyBlock(t *testing.T, k *ecdsa.PrivateKey) *pem.Block    { return testpeer.KeyBlock(t, k) }
func writePEM(t *testing.T, path string, blocks ...*pem.Block) { testpeer.WritePEM(t, path, blocks...) }

// served is what a test server saw of one connection.
type served struct {
	conn net.Conn
	n    int64 // bytes received
	err  error // why reading stopped (nil at EOF)
}

// serveEcho accepts connections until the listener closes, echoing each
// and reporting it when it ends.
func serveEcho(t *testing.T, ln net.Listener) <-chan served {
	t.Helper()
	out := make(chan served, 16)
	serveEach(ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(c, c)
		out <- served{c, n, err}
	})
	return out
}

func tlsListen(t *testing.T, s string) *tlsListener {
	t.Helper()
	ln, err := Listen(context.Background(), s)
	if err != nil {
		t.Fatalf("Listen(%q): %v", s, err)
	}
	t.Cleanup(func() { ln.Close() })
	tl, ok := ln.(*tlsListener)
	if !ok {
		t.Fatalf("Listen(%q) returned a %T, want *tlsListener", s, ln)
	}
	return tl
}

func tlsDial(t *testing.T, s string) *tls.Conn {
	t.Helper()
	c, err := Dial(context.Background(), s)
	if err != nil {
		t.Fatalf("Dial(%q): %v", s, err)
	}
	t.Cleanup(func() { c.Close() })
	tc, ok := c.(*tls.Conn)
	if !ok {
		t.Fatalf("Dial(%q) returned a %T, want *tls.Conn", s, c)
	}
	return tc
}

// echo writes msg and reads it back.
func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: %q, %v; want %q", buf, err, msg)
	}
}

func peerCN(c *tls.Conn) string {
	cs := c.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return cs.PeerCertificates[0].Subject.CommonName
}

func tlsPort(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// TestTLSDescribe checks Twisted's names, positional orders and defaults,
// including the defaults taken from another argument (ssl's certKey is
// its privateKey, as in Twisted).
func TestTLSDescribe(t *testing.T) {
	tests := []struct{ role, in, want string }{
		{"server", "ssl:443", `{"role":"server","type":"ssl","args":{"port":443,"privateKey":"server.pem","certKey":"server.pem","sslmethod":null,"interface":"","backlog":50,"extraCertChain":null,"dhParameters":null,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true,"reusePort":false,"ipv6Only":null}}`},
		{"server", "SSL:443:k.pem:c.pem:TLSv1_2_METHOD:127.0.0.1:5:chain.pem:dh.pem", `{"role":"server","type":"ssl","args":{"port":443,"privateKey":"k.pem","certKey":"c.pem","sslmethod":"TLSv1_2_METHOD","interface":"127.0.0.1","backlog":5,"extraCertChain":"chain.pem","dhParameters":"dh.pem","keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true,"reusePort":false,"ipv6Only":null}}`},
		{"server", "tls:443:[::1]:7:certificate=c.pem:alpn=h2,http/1.1", `{"role":"server","type":"tls","args":{"port":443,"interface":"::1","backlog":7,"certificate":"c.pem","privateKey":"c.pem","certDir":null,"clientCA":null,"clientAuth":null,"alpn":"h2,http/1.1","minVersion":"1.2","handshakeTimeout":10,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true,"reusePort":false,"ipv6Only":null}}`},
		{"client", "ssl:example.com:443", `{"role":"client","type":"ssl","args":{"host":"example.com","port":443,"timeout":30,"bindAddress":null,"certKey":null,"privateKey":null,"caCertsDir":null,"hostname":"example.com","alpn":null,"insecureSkipVerify":false,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true}}`},
		{"client", "ssl:host=example.com:443:hostname=www.example.com", `{"role":"client","type":"ssl","args":{"host":"example.com","port":443,"timeout":30,"bindAddress":null,"certKey":null,"privateKey":null,"caCertsDir":null,"hostname":"www.example.com","alpn":null,"insecureSkipVerify":false,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true}}`},
		{"client", "tls:example.com:443", `{"role":"client","type":"tls","args":{"host":"example.com","port":443,"timeout":30,"bindAddress":null,"certificate":null,"privateKey":null,"trustRoots":null,"endpoint":null,"alpn":null,"insecureSkipVerify":false,"fingerprint":null,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true}}`},
		{"client", `tls:h:443:10:[::1]:c.pem:k.pem:roots:tcp\:10.0.0.1\:443`, `{"role":"client","type":"tls","args":{"host":"h","port":443,"timeout":10,"bindAddress":"::1","certificate":"c.pem","privateKey":"k.pem","trustRoots":"roots","endpoint":"tcp:10.0.0.1:443","alpn":null,"insecureSkipVerify":false,"fingerprint":null,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true}}`},
	}
	for _, tt := range tests {
		if got := describe(t, tt.role, tt.in); got != tt.want {
			t.Errorf("%s %q:\n got %s\nwant %s", tt.role, tt.in, got, tt.want)
		}
	}
}

// TestTLSParseErrors: files are read and checked when the string is
// parsed, and each problem names the argument and the file.
func TestTLSParseErrors(t *testing.T) {
	p := newPKI(t, "ca")
	dir := t.TempDir()
	cert, key := p.issue(dir, "good", leafOpts{})
	_, otherKey := p.issue(dir, "other", leafOpts{})
	expCert, expKey := p.issue(dir, "expired", leafOpts{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	futCert, futKey := p.issue(dir, "future", leafOpts{NotBefore: time.Now().Add(time.Hour)})
	missing := filepath.Join(dir, "missing.pem")
	empty := t.TempDir()
	noKeyDir := t.TempDir()
	b, _ := p.leaf("b", leafOpts{})
	writePEM(t, filepath.Join(noKeyDir, "b.pem"), b)
	garbage := filepath.Join(dir, "garbage.pem")
	writePEM(t, garbage, &pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})

	tests := []struct {
		role, in, arg string
		says          []string
		is            error
	}{
		{"server", "ssl:0:privateKey=" + missing, "privateKey", []string{missing, "no such file"}, fs.ErrNotExist},
		{"server", "ssl:0:" + otherKey + ":" + cert, "privateKey", []string{otherKey, "cannot be used with the certificate in " + cert}, nil},
		{"server", "ssl:0:" + expKey + ":" + expCert, "certKey", []string{expCert, "expired at"}, nil},
		{"server", "ssl:0:" + futKey + ":" + futCert, "certKey", []string{futCert, "not valid until"}, nil},
		{"server", "ssl:0:privateKey=", "privateKey", []string{"the file name is empty"}, nil},
		{"server", "ssl:0:" + key + ":" + cert + "::127.0.0.1", "sslmethod", nil, nil}, // "" is no method, in Twisted too
		{"server", "ssl:0:privateKey=" + cert, "privateKey", []string{cert, "no PEM private key"}, nil},
		{"server", "ssl:0:privateKey=" + key, "privateKey", []string{key, "no PEM certificate"}, nil},
		{"server", "ssl:0:" + key + ":" + garbage, "certKey", []string{garbage, "cannot be parsed"}, nil},
		{"server", "ssl:0:" + key + ":" + cert + ":extraCertChain=" + key, "extraCertChain", []string{key, "no PEM certificate"}, nil},
		{"server", "ssl:0:" + key + ":" + cert + ":TLSv1_METHOD", "sslmethod", []string{"broken"}, nil},
		{"server", "ssl:0:" + key + ":" + cert + ":sslmethod=SSLv9", "sslmethod", []string{"TLSv1_2_METHOD"}, nil},
		{"server", "ssl:0:" + key + ":" + cert + ":dhParameters=" + cert, "dhParameters", []string{cert, "DH PARAMETERS"}, nil},
		{"server", "ssl:0:" + key + ":" + cert + ":dhParameters=" + missing, "dhParameters", []string{missing}, fs.ErrNotExist},
		{"server", "tls:0", "certificate", []string{"certDir"}, nil},
		{"server", "tls:0:privateKey=" + key, "privateKey", []string{"needs certificate="}, nil},
		{"server", "tls:0:certificate=" + cert + ":privateKey=" + key + ":clientAuth=required", "clientAuth", []string{"clientCA"}, nil},
		{"server", "tls:0:certificate=" + cert + ":privateKey=" + key + ":clientCA=" + p.caFile + ":clientAuth=maybe", "clientAuth", []string{"required or optional"}, nil},
		{"server", "tls:0:certificate=" + cert + ":privateKey=" + key + ":clientCA=" + empty, "clientCA", []string{empty, "no .pem file"}, nil},
		{"server", "tls:0:certificate=" + cert + ":privateKey=" + key + ":minVersion=1.1", "minVersion", []string{"1.2 or 1.3"}, nil},
		{"server", "tls:0:certificate=" + cert + ":privateKey=" + key + ":alpn=h2,,x", "alpn", []string{"comma-separated"}, nil},
		{"server", "tls:0:certDir=" + empty, "certDir", []string{empty, "no .pem file"}, nil},
		{"server", "tls:0:certDir=" + noKeyDir, "certDir", []string{filepath.Join(noKeyDir, "b.key")}, fs.ErrNotExist},
		{"client", "tls:localhost:443:privateKey=" + key, "privateKey", []string{"needs certificate="}, nil},
		{"client", "tls:localhost:443:certificate=" + cert, "certificate", []string{cert, "no PEM private key"}, nil},
		{"client", "tls:localhost:443:trustRoots=" + missing, "trustRoots", []string{missing}, fs.ErrNotExist},
		{"client", "tls:localhost:443:trustRoots=" + empty, "trustRoots", []string{empty, "no .pem file"}, nil},
		{"client", `tls:localhost:443:endpoint=nosuch\:1`, "endpoint", []string{"nosuch"}, ErrUnknownType},
		{"client", `tls:localhost:443:bindAddress=127.0.0.1:endpoint=tcp\:localhost\:443`, "bindAddress", []string{"endpoint="}, nil},
		{"client", "ssl:localhost:443:privateKey=" + key, "privateKey", []string{"needs certKey="}, nil},
		{"client", "ssl:localhost:443:certKey=" + expCert + ":privateKey=" + expKey, "certKey", []string{"expired"}, nil},
		{"client", "ssl:localhost:443:caCertsDir=" + key, "caCertsDir", []string{key, "no PEM certificate"}, nil},
		{"client", "ssl:localhost:443:alpn=,", "alpn", nil, nil},
		{"client", "ssl:localhost:443:insecureSkipVerify=yes", "insecureSkipVerify", nil, nil},
	}
	for _, tt := range tests {
		var err error
		if tt.role == "server" {
			_, err = ParseServer(tt.in)
		} else {
			_, err = ParseClient(tt.in)
		}
		var e *Error
		if !errors.As(err, &e) || e.Op != "parse" || e.Arg != tt.arg || !errors.Is(err, ErrBadArgument) {
			t.Errorf("%s %q: %v; want a parse *Error about %s", tt.role, tt.in, err, tt.arg)
			continue
		}
		for _, s := range tt.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s %q: %q does not say %q", tt.role, tt.in, err, s)
			}
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s %q: %v does not match %v", tt.role, tt.in, err, tt.is)
		}
	}
	// A string with a positional too many is refused as for tcp.
	if _, err := ParseClient("ssl:localhost:443:30"); !errors.Is(err, ErrBadArgument) {
		t.Errorf("ssl client with three positional arguments: %v", err)
	}
}

func TestTLSServerAndClients(t *testing.T) {
	p := newPKI(t, "ca")
	dir := t.TempDir()
	cert, key := p.issue(dir, "server", leafOpts{})
	// One PEM file holding both, the form Twisted's default server.pem has.
	both := filepath.Join(dir, "both.pem")
	c, k := p.leaf("both", leafOpts{})
	writePEM(t, both, c, k)

	for _, srv := range []string{
		"tls:0:interface=127.0.0.1:certificate=" + cert + ":privateKey=" + key,
		"tls:0:127.0.0.1:certificate=" + both,
		"ssl:0:" + key + ":" + cert + ":interface=127.0.0.1",
		"ssl:0:privateKey=" + both + ":interface=127.0.0.1",
		"ssl:0:" + key + ":" + cert + ":SSLv23_METHOD:127.0.0.1:5",
	} {
		ln := tlsListen(t, srv)
		seen := serveEcho(t, ln)
		port := tlsPort(ln)
		for _, cli := range []string{
			fmt.Sprintf("tls:localhost:%d:trustRoots=%s", port, p.dir),
			fmt.Sprintf("tls:127.0.0.1:%d:trustRoots=%s", port, p.caFile),
			fmt.Sprintf("tls:localhost:%d:5:trustRoots=%s", port, p.dir),
			fmt.Sprintf("ssl:127.0.0.1:%d:caCertsDir=%s", port, p.dir),
			fmt.Sprintf("ssl:host=127.0.0.1:%d:caCertsDir=%s:hostname=localhost", port, p.caFile),
			fmt.Sprintf(`tls:localhost:1:trustRoots=%s:endpoint=tcp\:127.0.0.1\:%d`, p.dir, port),
		} {
			tc := tlsDial(t, cli)
			if !tc.ConnectionState().HandshakeComplete {
				t.Fatalf("%s: Dial returned before the handshake", cli)
			}
			echo(t, tc, "hello over "+cli)
			tc.Close()
			if s := <-seen; s.err != nil {
				t.Fatalf("%s -> %s: server saw %v", cli, srv, s.err)
			}
		}
	}
}

// TestTLSChain: the chain is sent, so a client trusting only the root
// verifies a certificate issued by an intermediate.
func TestTLSChain(t *testing.T) {
	root := newPKI(t, "root")
	mid := root.intermediate("mid")
	dir := t.TempDir()
	cert, key := mid.issue(dir, "leaf", leafOpts{})
	dh := filepath.Join(dir, "dh.pem")
	writePEM(t, dh, &pem.Block{Type: "DH PARAMETERS", Bytes: []byte{0x30, 0}})
	// All eight positional arguments, in Twisted's order.
	ln := tlsListen(t, fmt.Sprintf("ssl:0:%s:%s:TLSv1_2_METHOD:127.0.0.1:50:%s:%s", key, cert, mid.caFile, dh))
	serveEcho(t, ln)
	tc := tlsDial(t, fmt.Sprintf("tls:localhost:%d:trustRoots=%s", tlsPort(ln), root.caFile))
	if v := tc.ConnectionState().Version; v != tls.VersionTLS12 {
		t.Errorf("sslmethod=TLSv1_2_METHOD negotiated %x", v)
	}
	echo(t, tc, "chained")
	// Without extraCertChain the intermediate is missing.
	ln2 := tlsListen(t, fmt.Sprintf("ssl:0:%s:%s:interface=127.0.0.1", key, cert))
	serveEcho(t, ln2)
	_, err := Dial(context.Background(), fmt.Sprintf("tls:localhost:%d:trustRoots=%s", tlsPort(ln2), root.caFile))
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("no chain: %v, want x509.UnknownAuthorityError", err)
	}
}

// plainTLSServer serves a certificate with crypto/tls directly, for
// certificates that tether's own servers refuse to load.
func plainTLSServer(t *testing.T, cert, key string) (net.Listener, <-chan served) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, serveEcho(t, ln)
}

// TestTLSRefusals: each failure says which, and the server reads no
// application byte.
func TestTLSRefusals(t *testing.T) {
	p := newPKI(t, "ca")
	stranger := newPKI(t, "stranger")
	dir := t.TempDir()
	cert, key := p.issue(dir, "server", leafOpts{})
	expCert, expKey := p.issue(dir, "expired", leafOpts{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	ccert, ckey := p.issue(dir, "client", leafOpts{})

	ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key)
	seen := serveEcho(t, ln)
	port := tlsPort(ln)
	expLn, expSeen := plainTLSServer(t, expCert, expKey)
	mtls := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key+":clientCA="+p.caFile)
	mtlsSeen := serveEcho(t, mtls)

	tests := []struct {
		name, client string
		seen         <-chan served
		check        func(error) bool
		says         string
	}{
		{"wrong host name", fmt.Sprintf("ssl:127.0.0.1:%d:caCertsDir=%s:hostname=wrong.example", port, p.dir), seen,
			func(err error) bool { var h x509.HostnameError; return errors.As(err, &h) }, "not wrong.example"},
		{"unknown issuer (system roots)", fmt.Sprintf("tls:localhost:%d", port), seen,
			func(err error) bool { var u x509.UnknownAuthorityError; return errors.As(err, &u) }, "unknown authority"},
		{"unknown issuer (trustRoots)", fmt.Sprintf("tls:localhost:%d:trustRoots=%s", port, stranger.dir), seen,
			func(err error) bool { var u x509.UnknownAuthorityError; return errors.As(err, &u) }, "unknown authority"},
		{"expired", fmt.Sprintf("tls:localhost:%d:trustRoots=%s", tlsPort(expLn), p.dir), expSeen,
			func(err error) bool {
				var ci x509.CertificateInvalidError
				return errors.As(err, &ci) && ci.Reason == x509.Expired
			}, "expired"},
		{"no client certificate", fmt.Sprintf("tls:localhost:%d:trustRoots=%s", tlsPort(mtls), p.dir), mtlsSeen,
			func(err error) bool { return err != nil }, "certificate required"},
		// A client certificate of a CA the server does not trust is in
		// tls_interop_test.go: crypto/tls's client does not send one that
		// the server's list of acceptable CAs rules out.
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(context.Background(), tt.client)
			if err == nil {
				// In TLS 1.3 the client's handshake ends before the server
				// has checked the client's certificate: the refusal is the
				// first read's error.
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("secret"))
				_, err = c.Read(make([]byte, 1))
				c.Close()
			}
			if err == nil || !tt.check(err) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("%s: %v; want an error saying %q", tt.client, err, tt.says)
			}
			s := <-tt.seen
			if s.n != 0 || s.err == nil {
				t.Fatalf("server read %d bytes, error %v; want none and a handshake error", s.n, s.err)
			}
			t.Logf("client: %v\nserver: %v", err, s.err)
		})
	}
	// With the right client certificate, the server sees who it is.
	tc := tlsDial(t, fmt.Sprintf("tls:localhost:%d:trustRoots=%s:certificate=%s:privateKey=%s", tlsPort(mtls), p.dir, ccert, ckey))
	echo(t, tc, "me")
	tc.Close()
	s := <-mtlsSeen
	if cn := peerCN(s.conn.(*tls.Conn)); cn != "client" || s.err != nil {
		t.Fatalf("server saw client %q, %v", cn, s.err)
	}
	// insecureSkipVerify=1 accepts what nothing else would.
	tc = tlsDial(t, fmt.Sprintf("ssl:localhost:%d:hostname=wrong.example:insecureSkipVerify=1", tlsPort(expLn)))
	echo(t, tc, "insecure")
}

func TestTLSClientAuthOptional(t *testing.T) {
	p := newPKI(t, "ca")
	dir := t.TempDir()
	cert, key := p.issue(dir, "server", leafOpts{})
	ccert, ckey := p.issue(dir, "client", leafOpts{})
	ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key+":clientCA="+p.dir+":clientAuth=optional")
	seen := serveEcho(t, ln)
	for _, extra := range []string{"", ":certificate=" + ccert + ":privateKey=" + ckey} {
		tc := tlsDial(t, fmt.Sprintf("tls:localhost:%d:trustRoots=%s%s", tlsPort(ln), p.dir, extra))
		echo(t, tc, "optional")
		tc.Close()
		s := <-seen
		want := ""
		if extra != "" {
			want = "client"
		}
		if cn := peerCN(s.conn.(*tls.Conn)); cn != want {
			t.Fatalf("client certificate %q, want %q", cn, want)
		}
	}
}

func TestTLSSNI(t *testing.T) {
	p := newPKI(t, "ca")
	certs := t.TempDir()
	a, ak := p.leaf("a", leafOpts{Names: []string{"a.test"}})
	writePEM(t, filepath.Join(certs, "a.pem"), a, ak) // certificate and key in one file
	b, bk := p.leaf("b", leafOpts{Names: []string{"*.b.test"}})
	writePEM(t, filepath.Join(certs, "b.pem"), b) // the key in b.key
	writePEM(t, filepath.Join(certs, "b.key"), bk)
	writePEM(t, filepath.Join(certs, "lone-key.pem"), bk) // no certificate: skipped
	os.WriteFile(filepath.Join(certs, "README"), []byte("not a certificate"), 0o644)
	dir := t.TempDir()
	dcert, dkey := p.issue(dir, "default", leafOpts{})

	for _, tt := range []struct{ server, name, want string }{
		{"certDir=" + certs, "a.test", "a"},
		{"certDir=" + certs, "x.b.test", "b"},
		{"certDir=" + certs, "localhost", "a"}, // no match: the first file
		{"certDir=" + certs + ":certificate=" + dcert + ":privateKey=" + dkey, "x.b.test", "b"},
		{"certDir=" + certs + ":certificate=" + dcert + ":privateKey=" + dkey, "localhost", "default"},
	} {
		ln := tlsListen(t, "tls:0:interface=127.0.0.1:"+tt.server)
		serveEcho(t, ln)
		client := fmt.Sprintf(`tls:%s:1:trustRoots=%s:endpoint=tcp\:127.0.0.1\:%d`, tt.name, p.dir, tlsPort(ln))
		c, err := Dial(context.Background(), client)
		if tt.name == "localhost" && tt.want == "a" {
			// a's certificate is not for localhost: verification fails,
			// which is what a client should see.
			var h x509.HostnameError
			if !errors.As(err, &h) || h.Certificate.Subject.CommonName != "a" {
				t.Errorf("%s with SNI %s: %v, want a HostnameError about a", tt.server, tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s with SNI %s: %v", tt.server, tt.name, err)
		}
		if cn := peerCN(c.(*tls.Conn)); cn != tt.want {
			t.Errorf("%s with SNI %s: got certificate %q, want %q", tt.server, tt.name, cn, tt.want)
		}
		c.Close()
	}
}

// replaceFile writes data to path by renaming a new file over it, as
// certificate renewal tools do.
func replaceFile(t *testing.T, path string, blocks ...*pem.Block) {
	t.Helper()
	tmp := path + ".new"
	writePEM(t, tmp, blocks...)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestTLSReload(t *testing.T) {
	p := newPKI(t, "ca")
	certFile, keyFile, _, k1 := p.replaceable("one")
	client := func(ln net.Listener) string {
		return fmt.Sprintf("tls:localhost:%d:trustRoots=%s", tlsPort(ln), p.dir)
	}

	t.Run("on change", func(t *testing.T) {
		ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+certFile+":privateKey="+keyFile)
		ln.store.every = 0 // look at the files at every handshake, not once a second
		ln.store.next.Store(0)
		port := tlsPort(ln)
		serveEcho(t, ln)
		open := tlsDial(t, client(ln))
		echo(t, open, "before")
		if cn := peerCN(open); cn != "one" {
			t.Fatalf("first certificate %q", cn)
		}

		c2, k2 := p.leaf("two", leafOpts{})
		replaceFile(t, certFile, c2)
		replaceFile(t, keyFile, k2)
		echo(t, open, "the open connection keeps working")
		if cn := peerCN(tlsDial(t, client(ln))); cn != "two" {
			t.Fatalf("after the files changed: certificate %q, want two", cn)
		}

		// A broken replacement leaves the last good certificate in use.
		replaceFile(t, keyFile, k1)
		if cn := peerCN(tlsDial(t, client(ln))); cn != "two" {
			t.Fatalf("after a mismatched key: certificate %q, want two", cn)
		}
		echo(t, open, "still")
		if tlsPort(ln) != port {
			t.Fatal("the port changed")
		}
		replaceFile(t, keyFile, k2) // for the next subtest
	})

	t.Run("on demand", func(t *testing.T) {
		ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+certFile+":privateKey="+keyFile)
		ln.store.every = time.Hour // only Reload reads the files
		ln.store.next.Store(time.Now().Add(time.Hour).UnixNano())
		serveEcho(t, ln)
		open := tlsDial(t, client(ln))
		echo(t, open, "before")

		c3, k3 := p.leaf("three", leafOpts{})
		replaceFile(t, certFile, c3)
		if cn := peerCN(tlsDial(t, client(ln))); cn != "two" {
			t.Fatalf("before Reload: certificate %q, want two", cn)
		}
		err := ln.Reload()
		var e *Error
		if !errors.As(err, &e) || e.Op != "reload" || e.Arg != "privateKey" || !strings.Contains(err.Error(), keyFile) {
			t.Fatalf("Reload with a mismatched key: %v, want an error about privateKey naming %s", err, keyFile)
		}
		replaceFile(t, keyFile, k3)
		if err := ln.Reload(); err != nil {
			t.Fatal(err)
		}
		if cn := peerCN(tlsDial(t, client(ln))); cn != "three" {
			t.Fatalf("after Reload: certificate %q, want three", cn)
		}
		echo(t, open, "the open connection keeps working")
	})

	t.Run("client CAs", func(t *testing.T) {
		caDir := t.TempDir()
		other := newPKI(t, "other")
		writePEM(t, filepath.Join(caDir, "ca.pem"), &pem.Block{Type: "CERTIFICATE", Bytes: other.ca.Raw})
		ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+certFile+":privateKey="+keyFile+":clientCA="+caDir)
		serveEcho(t, ln)
		cc, ck := p.issue(t.TempDir(), "client", leafOpts{})
		s := fmt.Sprintf("tls:localhost:%d:trustRoots=%s:certificate=%s:privateKey=%s", tlsPort(ln), p.dir, cc, ck)
		refused := func() bool {
			c, err := Dial(context.Background(), s)
			if err == nil {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("x"))
				_, err = c.Read(make([]byte, 1))
				c.Close()
			}
			return err != nil
		}
		if !refused() {
			t.Fatal("a client of an untrusted CA was accepted")
		}
		// A new CA file in the directory is trusted once reloaded.
		writePEM(t, filepath.Join(caDir, "ca2.pem"), &pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw})
		if err := ln.Reload(); err != nil {
			t.Fatal(err)
		}
		if refused() {
			t.Fatal("after Reload the new client CA is not trusted")
		}
	})
}

// TestTLSHandshakeInConnGoroutine: Accept does not wait for a client that
// says nothing; its handshake times out in the connection's goroutine; the
// deadline ends with the handshake.
func TestTLSHandshakeInConnGoroutine(t *testing.T) {
	p := newPKI(t, "ca")
	cert, key := p.issue(t.TempDir(), "server", leafOpts{})
	ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key+":handshakeTimeout=1")
	addr := ln.Addr().String()

	silent, err := net.Dial("tcp", addr) // connects, never says hello
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	first, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := first.(*tls.Conn); !ok {
		t.Fatalf("Accept returned a %T, want *tls.Conn", first)
	}
	// The silent client does not hold up the next Accept.
	seen := serveEcho(t, ln)
	good := tlsDial(t, fmt.Sprintf("tls:localhost:%d:trustRoots=%s", tlsPort(ln), p.dir))
	echo(t, good, "not held up")

	start := time.Now()
	_, err = first.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silent client: Read = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the handshake deadline took %v", d)
	}
	first.Close()
	// The good connection has now been idle longer than handshakeTimeout,
	// and its deadline is the server's own (10 s in serveEcho), not the
	// handshake's.
	echo(t, good, "still here after the handshake timeout")
	good.Close()
	if s := <-seen; s.err != nil {
		t.Fatalf("server: %v", s.err)
	}
}

// TestTLSDeadlinesDuringHandshake: a deadline the user sets before the
// handshake is kept when the handshake ends.
func TestTLSUserDeadlineKept(t *testing.T) {
	p := newPKI(t, "ca")
	cert, key := p.issue(t.TempDir(), "server", leafOpts{})
	ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		err = c.(*tls.Conn).Handshake()
		if err == nil {
			_, err = c.Read(make([]byte, 1)) // the client sends nothing
		}
		done <- err
	}()
	tlsDial(t, fmt.Sprintf("tls:localhost:%d:trustRoots=%s", tlsPort(ln), p.dir))
	select {
	case err := <-done:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read after the handshake: %v, want the user's deadline to expire", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the user's read deadline was lost at the end of the handshake")
	}
}

// TestTLSDialCancel: cancelling stops a handshake in progress, and the
// timeout bounds it, leaving nothing open.
func TestTLSDialCancel(t *testing.T) {
	// A TCP server that accepts and never answers the ClientHello, and
	// says how each connection ended.
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	ends := make(chan error, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, err := io.Copy(io.Discard, c)
				ends <- err
				c.Close()
			}()
		}
	}()
	s := fmt.Sprintf("tls:localhost:%d", portOf(ln))
	cli, err := ParseClient(s)
	if err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = cli.Dial(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "TLS handshake") {
		t.Fatalf("cancelled handshake: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Dial returned %v after cancel", d)
	}
	// The abandoned connection is reset, not ended: crypto/tls's own
	// cancellation would close it with a FIN first.
	if err := <-ends; !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the server saw the cancelled handshake's connection end with %v; want a reset", err)
	}
	// The server's end closes when it sees the client's go.
	for i := 0; openFDs(t) > before; i++ {
		if i == 100 {
			t.Fatalf("cancelled Dial left %d file descriptors open", openFDs(t)-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err = Dial(context.Background(), s+":timeout=1")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timeout=1") {
		t.Fatalf("timeout=1: %v, want context.DeadlineExceeded", err)
	}
	if err := <-ends; !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the server saw the timed-out handshake's connection end with %v; want a reset", err)
	}
}

func TestTLSALPNAndHTTP(t *testing.T) {
	p := newPKI(t, "ca")
	cert, key := p.issue(t.TempDir(), "server", leafOpts{})
	ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key+":alpn=h2,http/1.1")
	srv := &http.Server{ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			http.Error(w, "no TLS state", 500)
			return
		}
		fmt.Fprintf(w, "%s %s", r.Proto, r.TLS.NegotiatedProtocol)
	})}
	go srv.Serve(ln)
	defer srv.Close()

	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(fmt.Sprintf("https://localhost:%d/", tlsPort(ln)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0 h2" {
		t.Fatalf("net/http over a tls: listener: %q, want HTTP/2 negotiated by ALPN", body)
	}

	// The clients ask for protocols with alpn=.
	for _, s := range []string{"tls:localhost:%d:trustRoots=%s:alpn=http/1.1", "ssl:localhost:%d:caCertsDir=%s:alpn=x,http/1.1"} {
		tc := tlsDial(t, fmt.Sprintf(s, tlsPort(ln), p.dir))
		if got := tc.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
			t.Errorf("%s: negotiated %q", s, got)
		}
	}
}

func TestTLSMinVersion(t *testing.T) {
	p := newPKI(t, "ca")
	cert, key := p.issue(t.TempDir(), "server", leafOpts{})
	ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key+":minVersion=1.3")
	serveEcho(t, ln)
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	_, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12})
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.2 client against minVersion=1.3: %v", err)
	}
	if v := tlsDial(t, fmt.Sprintf("tls:localhost:%d:trustRoots=%s", tlsPort(ln), p.dir)).ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("version %x", v)
	}
}

// TestTLSClientReload: a client parsed once reads its trust roots (and
// client certificate) again when their files change, so a long-running
// relay follows a CA rotation without a restart.
func TestTLSClientReload(t *testing.T) {
	a, b := newPKI(t, "ca-a"), newPKI(t, "ca-b")
	dir := t.TempDir()
	certFile, keyFile, roots := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "roots.pem")
	c1, k1 := a.leaf("one", leafOpts{})
	writePEM(t, certFile, c1)
	writePEM(t, keyFile, k1)
	writePEM(t, roots, &pem.Block{Type: "CERTIFICATE", Bytes: a.ca.Raw})

	ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+certFile+":privateKey="+keyFile)
	ln.store.every = 0
	ln.store.next.Store(0)
	serveEcho(t, ln)

	cli, err := ParseClient(fmt.Sprintf("tls:localhost:%d:trustRoots=%s", tlsPort(ln), roots))
	if err != nil {
		t.Fatal(err)
	}
	store := cli.(*client).c.(*tlsClient).store
	store.every = 0 // look at the files at every Dial, not once a second
	store.next.Store(0)
	dial := func() (*tls.Conn, error) {
		c, err := cli.Dial(context.Background())
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.Close() })
		return c.(*tls.Conn), nil
	}
	first, err := dial()
	if err != nil || peerCN(first) != "one" {
		t.Fatalf("first dial: %v", err)
	}

	// The server moves to CA B; until the client's roots follow, it refuses.
	c2, k2 := b.leaf("two", leafOpts{})
	replaceFile(t, certFile, c2)
	replaceFile(t, keyFile, k2)
	if _, err := dial(); err == nil {
		t.Fatal("a certificate from CA B accepted with roots of CA A")
	}
	replaceFile(t, roots, &pem.Block{Type: "CERTIFICATE", Bytes: b.ca.Raw})
	second, err := dial()
	if err != nil || peerCN(second) != "two" {
		t.Fatalf("after the roots file changed: %v", err)
	}
	echo(t, first, "the first connection is untouched")

	// A broken roots file keeps the roots in use.
	os.WriteFile(roots, []byte("not PEM"), 0600)
	if _, err := dial(); err != nil {
		t.Fatalf("after a broken roots file: %v, want the last good roots kept", err)
	}
}

// TestTLSUnknownAuthorityHint: a client that does not trust the server's
// CA is told which argument fixes it.
func TestTLSUnknownAuthorityHint(t *testing.T) {
	p := newPKI(t, "ca")
	cert, key := p.issue(t.TempDir(), "server", leafOpts{})
	ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key)
	serveEcho(t, ln)
	for typ, arg := range map[string]string{"tls": "trustRoots=", "ssl": "caCertsDir="} {
		s := fmt.Sprintf("%s:localhost:%d", typ, tlsPort(ln))
		_, err := Dial(context.Background(), s)
		var e *Error
		if !errors.As(err, &e) || e.Input != s || !strings.Contains(err.Error(), arg) ||
			!strings.Contains(err.Error(), "unknown authority") {
			t.Errorf("%s: %v; want the unknown authority and a hint naming %s", s, err, arg)
		}
	}
}

// TestTLSFingerprint: fingerprint= trusts exactly the one certificate it
// names, whatever signed it; any other is refused, a TLSConfig hook cannot
// remove the check, and it cannot be combined with trust roots.
func TestTLSFingerprint(t *testing.T) {
	p := newPKI(t, "ca")
	certBlock, keyBlock := p.leaf("dev", leafOpts{})
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, cert, certBlock)
	writePEM(t, key, keyBlock)
	ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key)
	serveEcho(t, ln)
	sum := sha256.Sum256(certBlock.Bytes)
	var pairs []string
	for _, b := range sum {
		pairs = append(pairs, fmt.Sprintf("%02X", b))
	}
	good := strings.Join(pairs, ":")
	c := tlsDial(t, fmt.Sprintf("tls:localhost:%d:fingerprint=%s", tlsPort(ln), Quote(good)))
	echo(t, c, "pinned")

	other := sha256.Sum256([]byte("another certificate"))
	if _, err := Dial(context.Background(), fmt.Sprintf("tls:localhost:%d:fingerprint=%x", tlsPort(ln), other)); err == nil ||
		!strings.Contains(err.Error(), "not the one pinned") {
		t.Errorf("a wrong fingerprint: %v; want a refusal", err)
	}
	loose := &Options{TLSConfig: func(c *tls.Config) { c.VerifyConnection = nil }}
	if _, err := loose.Dial(context.Background(), fmt.Sprintf("tls:localhost:%d:fingerprint=%x", tlsPort(ln), other)); err == nil {
		t.Error("a TLSConfig hook removed the fingerprint check")
	}
	for _, s := range []string{
		fmt.Sprintf("tls:localhost:%d:fingerprint=abc", tlsPort(ln)),
		fmt.Sprintf("tls:localhost:%d:fingerprint=%x:trustRoots=%s", tlsPort(ln), other, p.caFile),
		fmt.Sprintf("tls:localhost:%d:fingerprint=%x:insecureSkipVerify=1", tlsPort(ln), other),
	} {
		if _, err := ParseClient(s); !errors.Is(err, ErrBadArgument) {
			t.Errorf("%s: %v; want ErrBadArgument", s, err)
		}
	}
}
