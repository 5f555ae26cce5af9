//go:build unix

package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/internal/testpeer"
	"github.com/tether-endpoints/tether/proxyproto"
)

// TestRelayFault is the fault-injection suite of issue 9: "a relay's first
// promise is that a cut stream never looks whole". Every listener kind,
// every connect kind and every fault: a stream flows through the relay,
// the fault lands in the middle of it, and neither the client nor the
// upstream may see a clean end (a FIN; for TLS, close_notify) of the
// incomplete stream where its transport can carry a reset. A UNIX stream
// socket cannot: there, an end of file is allowed only if the relay's
// "connection ended" line says so with abort_unsignalled. The relay must
// log every faulted connection with an error.
//
// Each connection is a stream one way and, the other way, a 16-byte
// hello and (after a complete stream) its SHA-256: what an end reads is
// checked against that, so "complete" means exactly the right bytes. The
// sender sends faultPart bytes of the stream and stops until the receiver
// has read them all; only then is the fault injected. So the fault always
// lands mid-way, and it lands with nothing in flight: the kernel's own
// reset for a socket closed with unread data cannot hide a relay that
// closes where it should reset.
func TestRelayFault(t *testing.T) {
	t.Parallel()
	env := newFaultEnv(t)
	for _, listen := range []string{"tcp", "unix", "tls", "haproxy:tcp", "haproxy:tls"} {
		for _, connect := range []string{"tcp", "unix", "tls"} {
			for i, fk := range faultKinds {
				if fk.fin && !isTLSEnd(fk.resets, listen, connect) {
					continue // a bare FIN ends a plain stream cleanly
				}
				// haproxy: listeners get v1 and v2 headers in turn.
				t.Run(listen+"/"+connect+"/"+fk.name, func(t *testing.T) {
					t.Parallel()
					runFaultCase(t, env, listen, connect, fk, 1+i%2)
				})
			}
		}
	}
}

const (
	faultHelloLen = 16
	// faultPart is what is sent before the fault; faultTail what the
	// sender sends after it when the receiving end is the one to reset
	// (a UNIX socket needs unread data to report a reset, see abort).
	faultPart = 64 << 10
	faultTail = 4 << 10
	// faultStreamLen is the whole stream's length; no more than
	// faultPart+faultTail of it is ever sent.
	faultStreamLen = 1<<20 + 7
	// faultDeadline bounds every connection of a case: an end still
	// waiting then was never told that its stream was cut.
	faultDeadline = 10 * time.Second
)

// A faultKind is one fault to inject.
type faultKind struct {
	name   string
	upload bool // the client sends the stream; else the upstream does
	// resets is the end that resets its connection ("peer", the relay's
	// client, or "upstream"); "" if the relay itself cuts the connection.
	resets string
	flags  []string
	// cut, if not nil, makes the relay cut the connection; it is called
	// once the first part of the stream has arrived.
	cut func(p *proc)
	// exits: the relay exits after the cut, with status 0.
	exits bool
	// fin: the end that resets instead ends its TLS stream with a bare
	// TCP FIN and no close_notify, as anyone on the path can forge; the
	// relay must take it as a cut. Only a TLS end is given it.
	fin bool
}

// isTLSEnd says whether the end named ("peer" or "upstream") speaks TLS.
func isTLSEnd(side, listen, connect string) bool {
	if side == "peer" {
		return strings.HasSuffix(listen, "tls")
	}
	return connect == "tls"
}

// faultKinds are the faults of issue 9. The relay's own cuts (the last
// three) are checked at both ends whichever way the stream flows, so each
// runs in one direction; a reset by one end is checked at the other, so
// those run both ways.
var faultKinds = []faultKind{
	{name: "upstream-reset-download", resets: "upstream"},
	{name: "upstream-reset-upload", upload: true, resets: "upstream"},
	{name: "client-reset-download", resets: "peer"},
	{name: "client-reset-upload", upload: true, resets: "peer"},
	{name: "drain-cut", flags: []string{"--drain-timeout", "1s"}, exits: true,
		cut: func(p *proc) { p.signal(syscall.SIGTERM) }},
	{name: "second-signal", upload: true, flags: []string{"--drain-timeout", "1m"}, exits: true,
		cut: func(p *proc) {
			p.signal(syscall.SIGTERM)
			p.waitLog("shutting down: not accepting; draining", nil)
			p.signal(syscall.SIGTERM)
		}},
	// The stream stalls: the sender stops without closing.
	{name: "idle-timeout", flags: []string{"--idle-timeout", "1s"}},
	// A TLS stream ended by a FIN at a record boundary, no close_notify.
	{name: "upstream-fin-download", resets: "upstream", fin: true},
	{name: "client-fin-upload", upload: true, resets: "peer", fin: true},
}

// faultEnv is what the cases share: a CA, the relay's certificate, and
// the stream.
type faultEnv struct {
	ca                  *testpeer.CA
	relayCert, relayKey string
	upstreamTLS         *tls.Config
	clientTLS           *tls.Config
	stream              []byte
}

func newFaultEnv(t *testing.T) *faultEnv {
	ca := testpeer.NewCA(t, "fault-ca")
	cert, key := ca.Issue(ca.Dir, "relay", testpeer.LeafOpts{})
	return &faultEnv{
		ca: ca, relayCert: cert, relayKey: key,
		upstreamTLS: &tls.Config{Certificates: []tls.Certificate{ca.KeyPair("upstream")}},
		clientTLS:   &tls.Config{ServerName: "localhost", RootCAs: ca.Pool()},
		stream:      randomBytes(t, faultStreamLen),
	}
}

// listenString is the relay's LISTEN for a listener kind.
func (env *faultEnv) listenString(t *testing.T, kind string) string {
	tcp := "tcp:0:interface=127.0.0.1"
	tlsListen := "tls:0:interface=127.0.0.1:certificate=" + endpoint.Quote(env.relayCert) +
		":privateKey=" + endpoint.Quote(env.relayKey)
	switch kind {
	case "tcp":
		return tcp
	case "unix":
		return serverEndpoint(t, "unix")
	case "tls":
		return tlsListen
	case "haproxy:tcp":
		return "haproxy:" + tcp
	case "haproxy:tls":
		return "haproxy:" + tlsListen
	}
	t.Fatalf("no listener kind %q", kind)
	return ""
}

// upstream starts the server behind the relay for a connect kind.
func (env *faultEnv) upstream(t *testing.T, kind string) *faultUpstream {
	switch kind {
	case "tcp", "unix":
		ln, target := listenTest(t, kind)
		return &faultUpstream{target: target, ln: ln}
	case "tls":
		ln, _ := listenTest(t, "tcp")
		return &faultUpstream{ln: ln, tls: env.upstreamTLS,
			target: fmt.Sprintf("tls:127.0.0.1:%d:trustRoots=%s", ln.Addr().(*net.TCPAddr).Port, endpoint.Quote(env.ca.File))}
	}
	t.Fatalf("no connect kind %q", kind)
	return nil
}

// dial connects to the relay's listener as its client. For haproxy:tls the
// PROXY header is the first thing inside the TLS stream, as haproxy:
// wraps the tls: server and reads from its connections.
func (env *faultEnv) dial(t *testing.T, kind, addr string, proxyVersion int, deadline time.Time) *faultEnd {
	t.Helper()
	network := "tcp"
	if kind == "unix" {
		network = "unix"
	}
	raw := dialAddr(t, network, addr)
	raw.SetDeadline(deadline)
	e := &faultEnd{side: "peer", conn: raw, raw: raw}
	if strings.HasSuffix(kind, "tls") {
		tc := tls.Client(raw, env.clientTLS)
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake with the relay: %v", err)
		}
		e.conn = tc
	}
	if strings.HasPrefix(kind, "haproxy:") {
		if err := proxyproto.Write(e.conn, proxyVersion, raw.LocalAddr(), raw.RemoteAddr()); err != nil {
			t.Fatalf("writing the PROXY header: %v", err)
		}
	}
	return e
}

// faultHello is what an end sends first, padded to faultHelloLen.
func faultHello(side string) []byte {
	return fmt.Appendf(nil, "%-*s", faultHelloLen, side+" hello")[:faultHelloLen]
}

// A faultAct is what the test tells an end to do once the first part of
// the stream has arrived.
type faultAct int

const (
	actReadOn   faultAct = iota // send nothing more; read to the end
	actSendTail                 // (the sender) send faultTail bytes more, then read to the end
	actReset                    // reset the connection
	actFin                      // end the socket's write half: FIN, no close_notify
)

// faultOutcome is what one end saw.
type faultOutcome struct {
	got      int64 // bytes read
	want     int   // the length of the whole incoming stream
	complete bool  // it read the whole incoming stream, intact, then a clean end
	end      error // how reading ended: nil at a clean end of file
}

// runSender sends hello and the first part of stream, waits to be told
// what to do, and reads what comes back (the other end's hello, and a
// checksum that never comes).
func (e *faultEnd) runSender(hello, stream, want []byte, ready chan<- error, act <-chan faultAct, out chan<- faultOutcome) {
	msg := append(append([]byte(nil), hello...), stream[:faultPart]...)
	if _, err := e.conn.Write(msg); err != nil {
		ready <- fmt.Errorf("the %s, sending: %w", e.who(), err)
		return
	}
	ready <- nil
	a, ok := <-act
	if !ok {
		return
	}
	switch a {
	case actReset:
		out <- faultOutcome{end: e.abort()}
		return
	case actFin:
		out <- faultOutcome{end: e.raw.(*net.TCPConn).CloseWrite()}
		return
	case actSendTail:
		if _, err := e.conn.Write(stream[faultPart : faultPart+faultTail]); err != nil {
			out <- faultOutcome{want: len(want), end: err}
			return
		}
	}
	out <- e.readToEnd(newIncoming(), want)
}

// runReceiver sends its hello, reads the other end's hello and the first
// part of the stream, waits to be told what to do, and reads on.
func (e *faultEnd) runReceiver(hello, want []byte, ready chan<- error, act <-chan faultAct, out chan<- faultOutcome) {
	if _, err := e.conn.Write(hello); err != nil {
		ready <- fmt.Errorf("the %s, sending: %w", e.who(), err)
		return
	}
	in := newIncoming()
	if _, err := io.CopyN(in, e.conn, faultHelloLen+faultPart); err != nil {
		ready <- fmt.Errorf("the %s, after receiving %d bytes: %w", e.who(), in.n, err)
		return
	}
	ready <- nil
	a, ok := <-act
	if !ok {
		return
	}
	switch a {
	case actReset:
		out <- faultOutcome{end: e.abort()}
		return
	case actFin:
		out <- faultOutcome{end: e.raw.(*net.TCPConn).CloseWrite()}
		return
	}
	out <- e.readToEnd(in, want)
}

func (e *faultEnd) readToEnd(in *incoming, want []byte) faultOutcome {
	_, err := io.Copy(in, e.conn)
	return faultOutcome{got: in.n, want: len(want), complete: err == nil && in.is(want), end: err}
}

// runFaultCase runs one relay, makes one connection through it, sends the
// first part of the stream, injects the fault and checks what each end
// that did not cause it saw, and what the relay logged.
func runFaultCase(t *testing.T, env *faultEnv, listen, connect string, fk faultKind, proxyVersion int) {
	deadline := time.Now().Add(faultDeadline)
	up := env.upstream(t, connect)
	args := append([]string{tetherBin, "relay", "--log-format", "json"}, fk.flags...)
	p := startTether(t, append(args, env.listenString(t, listen), up.target)...)
	type acceptResult struct {
		end *faultEnd
		err error
	}
	accepted := make(chan acceptResult, 1)
	go func() {
		e, err := up.accept(deadline)
		accepted <- acceptResult{e, err}
	}()
	t.Cleanup(func() {
		up.ln.Close() // in case the case ended before the relay connected
		if r := <-accepted; r.end != nil {
			r.end.raw.Close()
		}
	})
	client := env.dial(t, listen, p.addr(), proxyVersion, deadline)
	var server *faultEnd
	select {
	case r := <-accepted:
		if r.err != nil {
			t.Fatal(r.err)
		}
		server = r.end
		accepted <- r // for the cleanup
	case <-time.After(faultDeadline):
		t.Fatalf("the relay did not connect to the upstream in %v", faultDeadline)
	}

	sender, receiver := server, client
	if fk.upload {
		sender, receiver = client, server
	}
	senderHello, receiverHello := faultHello(sender.side), faultHello(receiver.side)
	receiverWant := append(append([]byte(nil), senderHello...), env.stream...)
	sum := sha256.Sum256(receiverWant)
	senderWant := append(append([]byte(nil), receiverHello...), sum[:]...)

	ready := make(chan error, 2)
	sendAct, recvAct := make(chan faultAct, 1), make(chan faultAct, 1)
	sendOut, recvOut := make(chan faultOutcome, 1), make(chan faultOutcome, 1)
	t.Cleanup(func() { close(sendAct); close(recvAct) }) // let the ends go if the case stops early
	go sender.runSender(senderHello, env.stream, senderWant, ready, sendAct, sendOut)
	go receiver.runReceiver(receiverHello, receiverWant, ready, recvAct, recvOut)
	for range 2 {
		select {
		case err := <-ready:
			if err != nil {
				t.Fatalf("before the fault: %v", err)
			}
		case <-time.After(faultDeadline):
			t.Fatalf("the first %d bytes of the stream did not get through in %v", faultPart, faultDeadline)
		}
	}

	type observed struct {
		end *faultEnd
		out chan faultOutcome
	}
	var watch []observed
	var resetter *faultEnd
	var resetOut chan faultOutcome
	resetAct := actReset
	if fk.fin {
		resetAct = actFin
	}
	switch fk.resets {
	case "":
		sendAct <- actReadOn
		recvAct <- actReadOn
		if fk.cut != nil {
			fk.cut(p)
		}
		watch = []observed{{sender, sendOut}, {receiver, recvOut}}
	case sender.side:
		sendAct <- resetAct
		recvAct <- actReadOn
		resetter, resetOut = sender, sendOut
		watch = []observed{{receiver, recvOut}}
	case receiver.side:
		// The receiver has read all there is; to reset a UNIX socket it
		// needs something unread, so the sender sends a little more.
		sendAct <- actSendTail
		recvAct <- resetAct
		resetter, resetOut = receiver, recvOut
		watch = []observed{{sender, sendOut}}
	}
	// The ends' deadlines bound these waits; the margin is for a test
	// that is itself broken.
	wait := func(ch chan faultOutcome, what string) faultOutcome {
		t.Helper()
		select {
		case o := <-ch:
			return o
		case <-time.After(faultDeadline + 5*time.Second):
			t.Fatalf("the %s did not end, deadline and all", what)
			return faultOutcome{}
		}
	}
	if resetter != nil {
		if o := wait(resetOut, resetter.who()+"'s reset"); o.end != nil {
			t.Fatalf("the %s could not reset its connection: %v", resetter.who(), o.end)
		}
	}
	seen := make([]faultOutcome, len(watch))
	for i, w := range watch {
		seen[i] = wait(w.out, w.end.who()+"'s reading")
	}

	l := p.lookLog("connection ended", faultDeadline)
	if l == nil {
		t.Errorf("the relay logged no \"connection ended\" line within %v of the fault", faultDeadline)
	} else if e, _ := l["error"].(string); e == "" {
		t.Errorf("the relay's log line %v has no error: a cut connection is logged as a success", l)
	}
	unsignalled := loggedUnsignalled(l)
	for i, w := range watch {
		checkFaultOutcome(t, w.end, seen[i], unsignalled)
	}
	if fk.exits {
		if code := p.exitCode(); code != exitOK {
			t.Errorf("exit code %d after the signal, want %d", code, exitOK)
		}
	}
}

// loggedUnsignalled reads the "abort_unsignalled" attribute of a log line:
// the sides ("peer", "upstream") that the relay could not tell their
// stream was cut, their transport carrying no reset.
func loggedUnsignalled(l map[string]any) []string {
	switch v := l["abort_unsignalled"].(type) {
	case string:
		return strings.Split(v, ",")
	case []any: // a JSON list, should the attribute ever be logged as one
		var sides []string
		for _, s := range v {
			sides = append(sides, fmt.Sprint(s))
		}
		return sides
	}
	return nil
}

// checkFaultOutcome checks what an end saw of a stream cut mid-way: an
// error, or, on a UNIX socket only, an end of file that the relay's log
// line owns up to.
func checkFaultOutcome(t *testing.T, e *faultEnd, o faultOutcome, unsignalled []string) {
	t.Helper()
	switch {
	case o.complete:
		t.Errorf("the %s received its whole stream: the fault did not land mid-way, the test is broken", e.who())
	case errors.Is(o.end, os.ErrDeadlineExceeded):
		t.Errorf("the %s was still connected %v into the case, with %d of %d bytes: the relay never ended the connection",
			e.who(), faultDeadline, o.got, o.want)
	case o.end != nil:
		t.Logf("the %s saw an error after %d of %d bytes, as it should: %v", e.who(), o.got, o.want, o.end)
	case e.isUnix() && slices.Contains(unsignalled, e.side):
		t.Logf("the %s's UNIX socket saw an end of file after %d of %d bytes; the relay logged abort_unsignalled %q",
			e.who(), o.got, o.want, strings.Join(unsignalled, ","))
	case e.isUnix():
		t.Errorf("the %s's UNIX socket saw an end of file after %d of %d bytes, and the relay's log line does not "+
			"say the abort could not be signalled (abort_unsignalled %q, want it to name %q)",
			e.who(), o.got, o.want, strings.Join(unsignalled, ","), e.side)
	default:
		t.Errorf("the %s saw a clean end (%s) of an incomplete stream: %d of %d bytes", e.who(), e.cleanEnd(), o.got, o.want)
	}
}

// helloOnly passes on the first TLS record written through it (a
// client's ClientHello) and swallows everything after it, so that a real
// TLS 1.3 client finishes its side of the handshake while the server
// never receives the client's Finished.
type helloOnly struct {
	net.Conn
	started bool
	rest    int // bytes of the first record still to pass on
}

func (c *helloOnly) Write(p []byte) (int, error) {
	if !c.started {
		if len(p) < 5 {
			return 0, errors.New("test: the first write is shorter than a TLS record header")
		}
		c.started = true
		c.rest = 5 + int(binary.BigEndian.Uint16(p[3:5]))
	}
	if pass := min(c.rest, len(p)); pass > 0 {
		if _, err := c.Conn.Write(p[:pass]); err != nil {
			return 0, err
		}
		c.rest -= pass
	}
	return len(p), nil
}

// TestRelayStalledTLSHandshake: a client that never finishes its TLS
// handshake is disconnected once handshakeTimeout has passed, and the
// relay never connects to the upstream for it.
func TestRelayStalledTLSHandshake(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "stall-ca")
	cert, key := ca.Issue(ca.Dir, "relay", testpeer.LeafOpts{})
	up := startCountedUpstream(t)
	p := startTether(t, tetherBin, "relay", "--log-format", "json",
		"tls:0:interface=127.0.0.1:handshakeTimeout=1:certificate="+endpoint.Quote(cert)+":privateKey="+endpoint.Quote(key),
		up.target)
	addr := p.addr()

	raw := dialAddr(t, "tcp", addr)
	c := tls.Client(&helloOnly{Conn: raw}, &tls.Config{ServerName: "localhost", RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13})
	c.SetDeadline(time.Now().Add(15 * time.Second))
	// In TLS 1.3 the client is done once it has sent its Finished, which
	// helloOnly swallowed: the server is left waiting for it.
	if err := c.Handshake(); err != nil {
		t.Fatalf("the client's side of the handshake: %v", err)
	}
	_, err := c.Read(make([]byte, 1))
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Errorf("a client that never sent its Finished was still connected after 15s (handshakeTimeout=1)")
	case err == nil:
		t.Errorf("a client that never finished its handshake read data")
	default:
		t.Logf("the stalled client was disconnected: %v", err)
		waitPeerLine(p, raw.LocalAddr())
	}
	n := up.settle(t)
	if n != 0 {
		t.Errorf("the relay connected to the upstream %d times for a client whose handshake never finished", n)
	}

	// The relay does serve a client that completes its handshake.
	good, _ := dialTLSListener(t, addr, &tls.Config{ServerName: "localhost", RootCAs: ca.Pool()})
	if _, err := io.WriteString(good, "ping"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(good, got); err != nil || string(got) != "ping" {
		t.Fatalf("a client with a complete handshake: %q, %v", got, err)
	}
	if m := up.settle(t); m != n+1 {
		t.Errorf("the upstream counted %d connections after one good client, want %d", m, n+1)
	}
}

// TestRelayClientCARefusedNoUpstream: a tls: listener with clientCA=
// refuses clients without a certificate, or with one from another CA,
// before anything is dialled for them; a client with a good certificate
// gets through.
func TestRelayClientCARefusedNoUpstream(t *testing.T) {
	t.Parallel()
	ca, other := testpeer.NewCA(t, "client-ca"), testpeer.NewCA(t, "other-ca")
	cert, key := ca.Issue(ca.Dir, "relay", testpeer.LeafOpts{})
	up := startCountedUpstream(t)
	p := startTether(t, tetherBin, "relay", "--log-format", "json",
		"tls:0:interface=127.0.0.1:certificate="+endpoint.Quote(cert)+":privateKey="+endpoint.Quote(key)+
			":clientCA="+endpoint.Quote(ca.File), up.target)
	addr := p.addr()

	intruder := []tls.Certificate{other.KeyPair("intruder")}
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
	}{
		{"no certificate", nil},
		{"no certificate, again", nil},
		{"another CA's certificate", intruder},
		{"another CA's certificate, again", intruder},
	} {
		cfg := &tls.Config{ServerName: "localhost", RootCAs: ca.Pool()}
		if certs := tc.certs; certs != nil {
			// Go's client sends no certificate rather than one that the
			// server's list of acceptable CAs leaves out: force it.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		c, raw := dialTLSListener(t, addr, cfg)
		// In TLS 1.3 the server refuses the client's certificate after the
		// client's side of the handshake is done: the refusal is the
		// first read's error.
		err := c.Handshake()
		if err == nil {
			_, err = c.Read(make([]byte, 1))
		}
		switch {
		case err == nil:
			t.Errorf("%s: the client was served", tc.name)
		case errors.Is(err, os.ErrDeadlineExceeded):
			t.Errorf("%s: the client was neither refused nor served in 15s", tc.name)
		default:
			t.Logf("%s: refused: %v", tc.name, err)
			waitPeerLine(p, raw.LocalAddr())
		}
	}
	n := up.settle(t)
	if n != 0 {
		t.Errorf("the relay connected to the upstream %d times for clients that clientCA= refused", n)
	}

	good, _ := dialTLSListener(t, addr, &tls.Config{ServerName: "localhost", RootCAs: ca.Pool(),
		Certificates: []tls.Certificate{ca.KeyPair("client")}})
	if _, err := io.WriteString(good, "through"); err != nil {
		t.Fatal(err)
	}
	if err := good.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(good); string(got) != "through" || err != nil {
		t.Fatalf("a client with a good certificate: %q, %v", got, err)
	}
	if m := up.settle(t); m != n+1 {
		t.Errorf("the upstream counted %d connections after one good client, want %d", m, n+1)
	}
}

// TestRelayPROXYHeaderBeforeDial: a haproxy: listener dials nothing for a
// connection until its PROXY header has arrived: not while it is silent,
// not for garbage, not for a header cut short.
func TestRelayPROXYHeaderBeforeDial(t *testing.T) {
	t.Parallel()
	up := startCountedUpstream(t)
	p := startTether(t, tetherBin, "relay", "--log-format", "json", "haproxy:tcp:0:interface=127.0.0.1", up.target)
	addr := p.addr()

	silent := dialAddr(t, "tcp", addr) // sends nothing, for now
	garbage := dialAddr(t, "tcp", addr)
	io.WriteString(garbage, "GET / HTTP/1.0\r\n\r\n")
	waitPeerLine(p, garbage.LocalAddr())
	short := dialAddr(t, "tcp", addr)
	io.WriteString(short, "PROXY TCP4 127.0.0.1 ")
	closeWriteT(t, short)
	waitPeerLine(p, short.LocalAddr())
	if n := up.settle(t); n != 0 {
		t.Errorf("with a connection still silent, and two bad headers: the relay connected to the upstream %d times", n)
	}
	closeWriteT(t, silent) // its header never comes
	waitPeerLine(p, silent.LocalAddr())
	n := up.settle(t)
	if n != 0 {
		t.Errorf("the relay connected to the upstream %d times for connections without a PROXY header", n)
	}

	good := dialAddr(t, "tcp", addr)
	good.SetDeadline(time.Now().Add(15 * time.Second))
	if err := proxyproto.Write(good, 2, good.LocalAddr(), good.RemoteAddr()); err != nil {
		t.Fatal(err)
	}
	io.WriteString(good, "hello")
	closeWriteT(t, good)
	if got, err := io.ReadAll(good); string(got) != "hello" || err != nil {
		t.Fatalf("a connection with a header: %q, %v", got, err)
	}
	if m := up.settle(t); m != n+1 {
		t.Errorf("the upstream counted %d connections after one good client, want %d", m, n+1)
	}
}
