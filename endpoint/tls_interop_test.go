package endpoint

// Interoperability with real peers: openssl s_server and s_client in both
// directions, and Twisted (Debian's python3-twisted, run by /usr/bin/python3)
// parsing the same strings. These tests fail, not skip, when a peer is
// missing: CI installs openssl and python3-twisted.

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// systemPython is Debian's Python, which has python3-twisted; a python3
// earlier on PATH (pyenv) may not.
const systemPython = "/usr/bin/python3"

func needOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is needed for this test (apt-get install openssl): %v", err)
	}
	return path
}

// peerEnv is the environment for a peer process, without what would point
// the system Python at another installation's modules.
func peerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHONPATH=") && !strings.HasPrefix(kv, "PYTHONHOME=") {
			env = append(env, kv)
		}
	}
	return env
}

// startPeer starts a long-running peer and returns the first line of its
// standard output that satisfies match, with the process killed at cleanup.
func startPeer(t *testing.T, match func(line string) (string, bool), name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = peerEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := match(sc.Text()); ok {
				found <- v
				break
			}
		}
		close(found)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case v, ok := <-found:
		if !ok {
			t.Fatalf("%s %q exited without saying where it listens; stderr: %s", name, args, stderr.String())
		}
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s %q did not start; stderr: %s", name, args, stderr.String())
	}
	return ""
}

// sServer starts openssl s_server -rev (each line is sent back reversed)
// on a free port and returns its address.
func sServer(t *testing.T, args ...string) string {
	t.Helper()
	openssl := needOpenSSL(t)
	args = append([]string{"s_server", "-accept", "127.0.0.1:0", "-rev"}, args...)
	return startPeer(t, func(line string) (string, bool) {
		addr, ok := strings.CutPrefix(line, "ACCEPT ")
		return addr, ok
	}, openssl, args...)
}

// sClient runs openssl s_client against addr, sending one line, and returns
// everything it printed.
func sClient(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	openssl := needOpenSSL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args = append([]string{"s_client", "-connect", addr, "-brief", "-ign_eof"}, args...)
	cmd := exec.CommandContext(ctx, openssl, args...)
	cmd.Stdin = strings.NewReader("hello from openssl\n")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// serveLine answers each connection's first line with "tether: LINE" and
// closes it, reporting what happened.
func serveLine(t *testing.T, ln net.Listener) <-chan served {
	t.Helper()
	out := make(chan served, 16)
	serveEach(ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			_, err = io.WriteString(c, "tether: "+line)
		}
		out <- served{c, int64(len(line)), err}
	})
	return out
}

func TestTLSInteropOpenSSLClient(t *testing.T) {
	p := newPKI(t, "ca")
	stranger := newPKI(t, "stranger")
	dir := t.TempDir()
	cert, key := p.issue(dir, "server", leafOpts{})
	ccert, ckey := p.issue(dir, "client", leafOpts{})
	scert, skey := stranger.issue(dir, "stranger-client", leafOpts{})
	both := filepath.Join(dir, "both.pem")
	c, k := p.leaf("both", leafOpts{})
	writePEM(t, both, c, k)
	verify := []string{"-CAfile", p.caFile, "-verify_return_error", "-servername", "localhost", "-verify_hostname", "localhost"}

	for _, srv := range []string{
		"tls:0:interface=127.0.0.1:certificate=" + cert + ":privateKey=" + key,
		"ssl:0:privateKey=" + both + ":interface=127.0.0.1",
		"ssl:0:" + key + ":" + cert + ":TLSv1_2_METHOD:127.0.0.1",
	} {
		ln := tlsListen(t, srv)
		seen := serveLine(t, ln)
		out, err := sClient(t, ln.Addr().String(), verify...)
		if err != nil || !strings.Contains(out, "Verification: OK") || !strings.Contains(out, "tether: hello from openssl") {
			t.Fatalf("s_client to %s: %v\n%s", srv, err, out)
		}
		if s := <-seen; s.err != nil {
			t.Fatalf("%s: server saw %v", srv, s.err)
		}
	}

	// Client certificates: required by the server.
	ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key+":clientCA="+p.caFile)
	seen := serveLine(t, ln)
	out, err := sClient(t, ln.Addr().String(), append(verify, "-cert", ccert, "-key", ckey)...)
	if err != nil || !strings.Contains(out, "tether: hello from openssl") {
		t.Fatalf("s_client with a client certificate: %v\n%s", err, out)
	}
	if s := <-seen; s.err != nil || peerCN(s.conn.(*tls.Conn)) != "client" {
		t.Fatalf("server saw %q, %v", peerCN(s.conn.(*tls.Conn)), s.err)
	}
	for _, tt := range []struct {
		name  string
		args  []string
		error string // what the server says
	}{
		{"no client certificate", nil, "didn't provide a certificate"},
		{"client certificate of an unknown CA", []string{"-cert", scert, "-key", skey}, "unknown authority"},
	} {
		out, _ := sClient(t, ln.Addr().String(), append(verify, tt.args...)...)
		if strings.Contains(out, "tether:") {
			t.Fatalf("%s: s_client got an answer:\n%s", tt.name, out)
		}
		s := <-seen
		if s.n != 0 || s.err == nil || !strings.Contains(s.err.Error(), tt.error) {
			t.Fatalf("%s: server read %d bytes, error %v; want none and an error saying %q", tt.name, s.n, s.err, tt.error)
		}
	}
}

func TestTLSInteropOpenSSLServer(t *testing.T) {
	p := newPKI(t, "ca")
	dir := t.TempDir()
	cert, key := p.issue(dir, "server", leafOpts{})
	ccert, ckey := p.issue(dir, "client", leafOpts{})

	addr := sServer(t, "-cert", cert, "-key", key, "-alpn", "h2,http/1.1")
	_, port, _ := net.SplitHostPort(addr)
	for _, s := range []string{
		"tls:localhost:" + port + ":trustRoots=" + p.dir + ":alpn=http/1.1",
		"tls:127.0.0.1:" + port + ":trustRoots=" + p.caFile,
		"ssl:127.0.0.1:" + port + ":caCertsDir=" + p.dir + ":hostname=localhost:alpn=http/1.1",
	} {
		tc := tlsDial(t, s)
		if strings.Contains(s, "alpn") && tc.ConnectionState().NegotiatedProtocol != "http/1.1" {
			t.Errorf("%s: ALPN gave %q", s, tc.ConnectionState().NegotiatedProtocol)
		}
		revLine(t, tc, "hello from tether")
	}
	// The system roots do not know this CA; nor is the certificate for this name.
	for s, says := range map[string]string{
		"tls:localhost:" + port: "unknown authority",
		"ssl:localhost:" + port + ":caCertsDir=" + p.dir + ":hostname=a.test": "not a.test",
	} {
		if _, err := Dial(context.Background(), s); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v; want an error saying %q", s, err, says)
		}
	}

	// A server that requires a client certificate (-Verify).
	addr = sServer(t, "-cert", cert, "-key", key, "-Verify", "1", "-CAfile", p.caFile, "-verify_return_error")
	_, port, _ = net.SplitHostPort(addr)
	for _, s := range []string{
		"ssl:localhost:" + port + ":caCertsDir=" + p.dir + ":certKey=" + ccert + ":privateKey=" + ckey,
		"tls:localhost:" + port + ":trustRoots=" + p.dir + ":certificate=" + ccert + ":privateKey=" + ckey,
	} {
		revLine(t, tlsDial(t, s), "with a client certificate")
	}
	c, err := Dial(context.Background(), "tls:localhost:"+port+":trustRoots="+p.dir)
	if err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "no certificate\n")
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil {
		t.Fatal("s_server -Verify 1 accepted a client without a certificate")
	}
}

// revLine sends a line to s_server -rev and checks it comes back reversed.
func revLine(t *testing.T, c net.Conn, line string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	r := []rune(line)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	if err != nil || got != string(r)+"\n" {
		t.Fatalf("s_server -rev answered %q, %v; want %q", got, err, string(r))
	}
	c.Close()
}

// twistedScript connects with clientFromString (client STRING) and prints
// what the server sends, or listens with serverFromString (server STRING),
// prints the port and echoes.
const twistedScript = `
import sys
from twisted.internet import defer, protocol, task
from twisted.internet.endpoints import clientFromString, connectProtocol, serverFromString

class Client(protocol.Protocol):
    def __init__(self):
        self.done = defer.Deferred()
        self.buf = b""
    def connectionMade(self):
        self.transport.write(b"hello from twisted\n")
    def dataReceived(self, data):
        self.buf += data
    def connectionLost(self, reason):
        if self.buf:
            self.done.callback(self.buf)
        else:
            self.done.errback(reason)

class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)

async def main(reactor, mode, desc):
    if mode == "client":
        p = Client()
        await connectProtocol(clientFromString(reactor, desc), p)
        sys.stdout.write((await p.done).decode())
    else:
        port = await serverFromString(reactor, desc).listen(protocol.Factory.forProtocol(Echo))
        print("PORT", port.getHost().port, flush=True)
        await defer.Deferred()

task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1], sys.argv[2])))
`

func twisted(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(systemPython); err != nil {
		t.Fatalf("%s with python3-twisted is needed for this test: %v", systemPython, err)
	}
	script := filepath.Join(t.TempDir(), "twisted_peer.py")
	if err := os.WriteFile(script, []byte(twistedScript), 0o644); err != nil {
		t.Fatal(err)
	}
	return script
}

// TestTLSInteropTwistedClient: Twisted's tls: client, given the strings a
// Twisted user writes, against tether's tls: server.
func TestTLSInteropTwistedClient(t *testing.T) {
	script := twisted(t)
	p := newPKI(t, "ca")
	dir := t.TempDir()
	cert, key := p.issue(dir, "server", leafOpts{})
	ccert, ckey := p.issue(dir, "client", leafOpts{})
	ln := tlsListen(t, "tls:0:interface=127.0.0.1:certificate="+cert+":privateKey="+key+":clientCA="+p.caFile+":clientAuth=optional")
	seen := serveLine(t, ln)
	port := tlsPort(ln)

	for _, tt := range []struct{ client, wantCN string }{
		{fmt.Sprintf("tls:localhost:%d:trustRoots=%s", port, p.dir), ""},
		// The same string tether's tls client takes: an inner endpoint, escaped, and a client certificate.
		{fmt.Sprintf(`tls:localhost:1:trustRoots=%s:certificate=%s:privateKey=%s:endpoint=tcp\:127.0.0.1\:%d`, p.dir, ccert, ckey, port), "client"},
	} {
		if _, err := ParseClient(tt.client); err != nil {
			t.Fatalf("tether does not parse Twisted's string: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, systemPython, script, "client", tt.client)
		cmd.Env = peerEnv()
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil || string(out) != "tether: hello from twisted\n" {
			t.Fatalf("Twisted %s: %v\n%s", tt.client, err, out)
		}
		s := <-seen
		if s.err != nil || peerCN(s.conn.(*tls.Conn)) != tt.wantCN {
			t.Fatalf("server saw client certificate %q, %v; want %q", peerCN(s.conn.(*tls.Conn)), s.err, tt.wantCN)
		}
	}
}

// TestTLSInteropTwistedSSLServer: one ssl: server string, listened on by
// Twisted and by tether, means the same to tether's ssl client.
func TestTLSInteropTwistedSSLServer(t *testing.T) {
	script := twisted(t)
	root := newPKI(t, "root")
	mid := root.intermediate("mid")
	dir := t.TempDir()
	cert, key := mid.issue(dir, "server", leafOpts{})
	// Positional privateKey and certKey, then the chain by name, as Twisted's docs write it.
	srv := fmt.Sprintf("ssl:0:%s:%s:interface=127.0.0.1:extraCertChain=%s", key, cert, mid.caFile)

	portText := startPeer(t, func(line string) (string, bool) {
		return strings.CutPrefix(line, "PORT ")
	}, systemPython, script, "server", srv)
	twistedPort, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatal(err)
	}
	ln := tlsListen(t, srv)
	serveEcho(t, ln)
	for who, port := range map[string]int{"Twisted": twistedPort, "tether": tlsPort(ln)} {
		tc := tlsDial(t, fmt.Sprintf("ssl:127.0.0.1:%d:caCertsDir=%s:hostname=localhost", port, root.dir))
		if n := len(tc.ConnectionState().PeerCertificates); n != 2 {
			t.Errorf("%s's ssl server sent %d certificates, want the certificate and extraCertChain", who, n)
		}
		echo(t, tc, "hello, "+who)
	}
}
