package endpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/abort"
)

// defaultHandshakeTimeout bounds a server handshake when the string does
// not say (the ssl server, which has no argument for it).
const defaultHandshakeTimeout = 10 * time.Second

// defaultAttemptDelay is the tcp client's attemptDelay default, used by the
// TLS clients for their TCP part.
const defaultAttemptDelay = 250 * time.Millisecond

const verifyNotes = "The server's certificate is always verified, against the given roots or else the system's, " +
	"and for the host name (or IP address) connected to; a failure is Dial's error, and Dial returns only after " +
	"the handshake. insecureSkipVerify=1 turns every check off, so that anyone in the path can read and change " +
	"the connection: use it only to test. The name is sent as SNI unless it is an IP address. " +
	"timeout bounds the whole attempt, handshake included. In TLS 1.3 a server's refusal of the client's " +
	"certificate comes after the client's handshake is done: it is the first Read's error, not Dial's. " +
	"The client certificate and trust roots are read when the string is parsed and again, at a Dial, when " +
	"their files have changed (looked at, at most once a second); files that fail to load leave the last " +
	"good ones in use. "

// Arguments the ssl and tls clients share, declared once.
var (
	clientKeyParam  = driver.StringParam("privateKey", "PEM file of the client certificate's private key")
	clientALPNParam = driver.StringParam("alpn", "ALPN protocols to offer, comma-separated, most preferred first")
	insecureParam   = driver.BoolParam("insecureSkipVerify", "1 accepts any certificate for any name: INSECURE, for tests only").Default("0")
	tlsTimeoutParam = timeoutParam.Help("seconds the whole attempt (resolving, connecting, handshake) may take")
)

// The ssl server's own arguments, in Twisted's positional order.
var (
	sslKeyParam = driver.StringParam("privateKey",
		"PEM file of the private key (and of the certificate, if certKey is absent)").Positional().Default("server.pem")
	sslCertParam = driver.StringParam("certKey",
		"PEM file of the certificate, then any chain; absent means the privateKey file").Positional().DefaultFrom("privateKey")
	sslMethodParam = driver.StringParam("sslmethod",
		"SSLv23_METHOD, TLS_METHOD or TLS_SERVER_METHOD (TLS 1.2 or 1.3), or TLSv1_2_METHOD (1.2 only); absent is TLS 1.2 or 1.3").Positional()
	sslChainParam = driver.StringParam("extraCertChain",
		"PEM file of chain certificates sent after the certificate; it must hold one at least").Positional()
	sslDHParam = driver.StringParam("dhParameters",
		"PEM file of DH parameters: checked, then unused (Go offers forward secrecy through ECDHE only)").Positional()
)

// The tls server's own arguments.
var (
	tlsCertParam = driver.StringParam("certificate",
		"PEM file of the certificate, then any chain (the key too, if privateKey is absent)")
	tlsKeyParam = driver.StringParam("privateKey",
		"PEM file of the certificate's private key; absent means the certificate file").DefaultFrom("certificate")
	tlsCertDirParam = driver.StringParam("certDir",
		"directory of NAME.pem files (chain and key, or the key in NAME.key), chosen by the name the client asks for (SNI)")
	tlsClientCAParam = driver.StringParam("clientCA",
		"PEM file, or directory of .pem files, of the CAs that client certificates must chain to")
	tlsClientAuthParam = driver.StringParam("clientAuth",
		"with clientCA: required (the default) refuses a client without a certificate, optional verifies one if sent")
	tlsServerALPNParam = driver.StringParam("alpn",
		"ALPN protocols to agree on, comma-separated, most preferred first (h2,http/1.1)")
	tlsMinVersionParam = driver.StringParam("minVersion", "lowest TLS version accepted: 1.2 or 1.3").Default("1.2")
	handshakeParam     = driver.SecondsParam("handshakeTimeout",
		"seconds a client has to get through the handshake").Default(strconv.Itoa(int(defaultHandshakeTimeout / time.Second)))
)

// The ssl client's own arguments.
var (
	sslClientCertParam = driver.StringParam("certKey",
		"PEM file of a client certificate (and its key, if privateKey is absent)")
	sslRootsParam = driver.StringParam("caCertsDir",
		"directory of .pem files (or one PEM file) of the CAs to trust instead of the system's")
	sslHostnameParam = driver.HostParam("hostname",
		"name to verify the certificate against and send as SNI; absent means host").DefaultFrom("host")
	sslClientKeyParam = clientKeyParam.DefaultFrom("certKey")
)

// The tls client's own arguments, all positional in Twisted's order.
var (
	tlsHostParam = driver.HostParam("host",
		"host name or IP address to connect to, verify the certificate against, and send as SNI").Positional().Required()
	tlsPortParam = driver.PortParam("port",
		"port to connect to (unused with endpoint=, but required as in Twisted)").Positional().Required()
	tlsClientCertParam = driver.StringParam("certificate",
		"PEM file of a client certificate (and its key, if privateKey is absent)").Positional()
	tlsRootsParam = driver.StringParam("trustRoots",
		"directory of .pem files (or one PEM file) of the CAs to trust instead of the system's").Positional()
	tlsClientKeyParam = clientKeyParam.Positional().DefaultFrom("certificate")
	tlsPinParam       = driver.StringParam("fingerprint",
		"SHA-256 fingerprint of the one certificate to trust, as tether --dev-cert prints it (AB:CD:...); for development only")
	tlsEndpointParam = driver.StringParam("endpoint",
		"client endpoint to connect through instead of TCP to host:port, its ':' escaped (tcp\\:10.0.0.1\\:443)").Positional()
)

func init() {
	driver.RegisterServer(driver.ServerType{
		Spec: driver.Spec{
			Name: "ssl",
			Help: "listen for TLS connections over TCP, with Twisted's ssl arguments",
			Args: append([]driver.Arg{listenPortParam.Arg(), sslKeyParam.Arg(), sslCertParam.Arg(), sslMethodParam.Arg(),
				interfaceParam.Arg(), backlogParam.Arg(), sslChainParam.Arg(), sslDHParam.Arg()}, listenSocketArgs()...),
			Notes: "Twisted's arguments, positional order and defaults. The files are read and checked when the " +
				"string is parsed: a missing file, a key that does not match its certificate, or an expired " +
				"certificate is reported then, naming the file, not at the first connection. Unlike Twisted, " +
				"every certificate in the certKey file is sent, the first as the server's and the rest as its " +
				"chain, before those of extraCertChain. sslmethod TLSv1_METHOD and TLSv1_1_METHOD (and SSLv2, " +
				"SSLv3) are refused: those versions are broken. dhParameters must be a PEM \"DH PARAMETERS\" file " +
				"but is not used: crypto/tls has no finite-field DHE, and its ECDHE key exchange (X25519, P-256) " +
				"gives forward secrecy to every TLS 1.2 or 1.3 client. The files are read again when they change " +
				"(looked at, at most once a second, when a client connects) and on demand through tlsListener.Reload, " +
				"without closing the port or any connection; files that fail to load leave the old certificate in use. " +
				"The handshake runs in the connection's goroutine, at its first Read or Write, and must be done within " +
				"10 seconds. Accept returns a *tls.Conn, so net/http sees TLS. " + closeNotifyNotes,
		},
		New: newSSLServer,
	})
	driver.RegisterServer(driver.ServerType{
		Spec: driver.Spec{
			Name: "tls",
			Help: "listen for TLS connections over TCP: SNI, client certificates, ALPN, reload",
			Args: append([]driver.Arg{listenPortParam.Arg(), interfaceParam.Arg(), backlogParam.Arg(),
				tlsCertParam.Arg(), tlsKeyParam.Arg(), tlsCertDirParam.Arg(), tlsClientCAParam.Arg(),
				tlsClientAuthParam.Arg(), tlsServerALPNParam.Arg(), tlsMinVersionParam.Arg(), handshakeParam.Arg()},
				listenSocketArgs()...),
			Notes: "tether's own TLS server (Twisted has no tls server type); port, interface and backlog are the " +
				"tcp server's. certificate= and privateKey= are the names Twisted's tls client uses. It needs " +
				"certificate=, certDir= or both: with several certificates the first whose names match the " +
				"client's SNI is used, else certificate=, else the first file of certDir. Keys and certificates are " +
				"read and checked when the string is parsed, as for ssl. The certificate files, certDir and clientCA " +
				"are read again when they change (looked at, at most once a second, when a client connects) and on " +
				"demand through tlsListener.Reload, without closing the port or any connection; files that fail to " +
				"load leave the old configuration in use, and Reload returns why. The handshake runs in the " +
				"connection's goroutine, at its first Read or Write, within handshakeTimeout. Accept returns a " +
				"*tls.Conn, so net/http sees TLS (and HTTP/2 with alpn=h2,http/1.1). " + closeNotifyNotes,
		},
		New: newTLSServer,
	})
	driver.RegisterClient(driver.ClientType{
		Spec: driver.Spec{
			Name: "ssl",
			Help: "connect over TCP and TLS, verifying the server, with Twisted's ssl arguments",
			Args: append([]driver.Arg{hostParam.Arg(), connectPortParam.Arg(), tlsTimeoutParam.Arg(), bindAddressParam.Arg(),
				sslClientCertParam.Arg(), sslClientKeyParam.Arg(), sslRootsParam.Arg(), sslHostnameParam.Arg(),
				clientALPNParam.Arg(), insecureParam.Arg()}, socketArgs()...),
			FillGaps: true,
			Notes: "Twisted's ssl client verifies nothing unless hostname= is given; this one always verifies. " +
				verifyNotes + "privateKey= without certKey= is an error (Twisted ignores it). " +
				"As in Twisted, positional arguments fill what keywords left: ssl:host=example.com:443 is port 443. " +
				closeNotifyNotes,
		},
		New: newSSLClient,
	})
	driver.RegisterClient(driver.ClientType{
		Spec: driver.Spec{
			Name: "tls",
			Help: "connect with TLS over TCP or over another client endpoint, verifying the server",
			Args: append([]driver.Arg{tlsHostParam.Arg(), tlsPortParam.Arg(), tlsTimeoutParam.Positional().Arg(),
				bindAddressParam.Positional().Arg(), tlsClientCertParam.Arg(), tlsClientKeyParam.Arg(),
				tlsRootsParam.Arg(), tlsEndpointParam.Arg(), clientALPNParam.Arg(), insecureParam.Arg(),
				tlsPinParam.Arg()}, socketArgs()...),
			Notes: "Twisted's tls client, whose arguments may all be given positionally in the order shown. " +
				verifyNotes + "Twisted's timeout covers connecting only. With endpoint= the connection is made by " +
				"that endpoint (\"tls:example.com:443:endpoint=unix\\:/run/proxy.sock\") and host is only the name " +
				"verified and sent; bindAddress then belongs in the inner string. privateKey= without certificate= " +
				"is an error (Twisted ignores it). fingerprint= (not Twisted's) trusts exactly one certificate, by " +
				"its SHA-256, as tether --dev-cert prints it: its names, issuer and dates are not checked, so " +
				"whoever holds its key is trusted; it is for development, and excludes trustRoots= and insecureSkipVerify=. " +
				closeNotifyNotes,
		},
		New: newTLSClient,
	})
}

// clientHandshake runs tc's handshake over raw, bounded by ctx through
// raw's deadlines rather than with HandshakeContext, whose cancellation
// closes the connection itself, with a FIN, before the caller can reset
// it. A context that ends as the handshake succeeds is its error all the
// same.
func clientHandshake(ctx context.Context, tc *tls.Conn, raw net.Conn) error {
	cut := func() { raw.SetDeadline(aLongTimeAgo) }
	if raw.SetDeadline(time.Time{}) != nil {
		// A connection without deadlines (a pipe on Windows, a terminal,
		// another package's): only closing it ends the handshake, and
		// that close is a reset.
		cut = func() { abort.Conn(raw) }
	} else if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, cut)
	err := tc.Handshake()
	if !stop() && err == nil {
		err = context.Cause(ctx)
	}
	raw.SetDeadline(time.Time{})
	return err
}

// closeNotifyNotes says, in every TLS type's notes, how a stream that
// ends without close_notify reads.
const closeNotifyNotes = "A peer that ends the TCP connection without a TLS close_notify makes Read return " +
	"endpoint.ErrNoCloseNotify, not io.EOF, as Twisted reports ConnectionLost, not ConnectionDone: the stream may " +
	"have been cut. " + fileGuardNotes

// fileGuardNotes says, in every TLS type's notes, which key, certificate
// and trust files are refused.
const fileGuardNotes = "A key, certificate, trust or parameters file, or a directory of them, that another user " +
	"could change is refused, when the string is parsed and when it is reloaded (OpenSSH's rule for " +
	"authorized_keys): the file, every directory its path passes through and every symbolic link it follows must " +
	"be owned by root or by tether's user, and be writable neither by every user nor by a group with other " +
	"members, nor through a POSIX access list, except a directory passed through with the sticky bit, such as " +
	"/tmp, and a sticky directory on a read-only mount. A private key every user can read is used, and logged " +
	"as a warning. Not checked on Windows."

// argError is an *Error about argument name with a message of its own.
func argError(a *driver.Args, name, msg string, cause error) error {
	return &Error{Op: "parse", Input: a.Input, Type: a.Spec.Name, Arg: name, Value: a.Value(name).Text,
		Err: driver.WrapError(ErrBadArgument, cause, msg)}
}

// alpnList reads a comma-separated list of ALPN protocol names.
func alpnList(a *driver.Args, p driver.Param[string]) ([]string, error) {
	if p.Absent(a) {
		return nil, nil
	}
	var out []string
	for _, name := range strings.Split(p.Get(a), ",") {
		name = strings.TrimSpace(name)
		if name == "" || len(name) > 255 {
			return nil, p.Errorf(a, "a comma-separated list of protocol names, such as h2,http/1.1")
		}
		out = append(out, name)
	}
	return out, nil
}

// sslMethod reads Twisted's sslmethod, the name of a pyOpenSSL method.
func sslMethod(a *driver.Args) (lo, hi uint16, err error) {
	if sslMethodParam.Absent(a) {
		return tls.VersionTLS12, 0, nil
	}
	switch m := sslMethodParam.Get(a); m {
	case "SSLv23_METHOD", "TLS_METHOD", "TLS_SERVER_METHOD":
		return tls.VersionTLS12, 0, nil
	case "TLSv1_2_METHOD":
		return tls.VersionTLS12, tls.VersionTLS12, nil
	case "TLSv1_METHOD", "TLSv1_1_METHOD", "SSLv2_METHOD", "SSLv3_METHOD":
		return 0, 0, sslMethodParam.Errorf(a, "a method tether allows: that protocol version is broken "+
			"(use SSLv23_METHOD for TLS 1.2 or 1.3, or TLSv1_2_METHOD)")
	default:
		return 0, 0, sslMethodParam.Errorf(a, "SSLv23_METHOD, TLS_METHOD, TLS_SERVER_METHOD or TLSv1_2_METHOD")
	}
}

func newSSLServer(a *driver.Args) (driver.Server, error) {
	files := &serverFiles{certArg: "privateKey", certPath: sslKeyParam.Get(a),
		keyArg: "privateKey", keyPath: sslKeyParam.Get(a)}
	if sslCertParam.Given(a) {
		files.certArg, files.certPath = "certKey", sslCertParam.Get(a)
	}
	files.chainPath = sslChainParam.Get(a)
	var err error
	if files.minVersion, files.maxVersion, err = sslMethod(a); err != nil {
		return nil, err
	}
	if !sslDHParam.Absent(a) {
		if err := dhParamsCheck(sslDHParam.Get(a)); err != nil {
			return nil, fileArgError(a, err)
		}
	}
	store, err := newCertStore(a, files.load)
	if err != nil {
		return nil, fileArgError(a, err)
	}
	host := interfaceParam.Get(a)
	return &tlsServer{tcp: newTCPServer(tcpNetwork(host), host, a), store: store,
		timeout: defaultHandshakeTimeout}, nil
}

func newTLSServer(a *driver.Args) (driver.Server, error) {
	files := &serverFiles{}
	switch {
	case !tlsCertParam.Absent(a):
		files.certArg, files.certPath = "certificate", tlsCertParam.Get(a)
		files.keyArg, files.keyPath = "certificate", files.certPath
		if tlsKeyParam.Given(a) {
			files.keyArg, files.keyPath = "privateKey", tlsKeyParam.Get(a)
		}
	case tlsKeyParam.Given(a):
		return nil, argError(a, "privateKey", "needs certificate= (the certificate it is the key of)", nil)
	case tlsCertDirParam.Absent(a):
		return nil, argError(a, "certificate", "missing: give certificate= (and privateKey=), or certDir=", nil)
	}
	files.dirPath = tlsCertDirParam.Get(a)
	switch {
	case !tlsClientCAParam.Absent(a):
		files.caPath = tlsClientCAParam.Get(a)
		files.clientAuth = tls.RequireAndVerifyClientCert
		if !tlsClientAuthParam.Absent(a) {
			switch tlsClientAuthParam.Get(a) {
			case "required":
			case "optional":
				files.clientAuth = tls.VerifyClientCertIfGiven
			default:
				return nil, tlsClientAuthParam.Errorf(a, "required or optional")
			}
		}
	case !tlsClientAuthParam.Absent(a):
		return nil, argError(a, "clientAuth", "needs clientCA= (the CAs to verify client certificates against)", nil)
	}
	switch tlsMinVersionParam.Get(a) {
	case "1.2":
		files.minVersion = tls.VersionTLS12
	case "1.3":
		files.minVersion = tls.VersionTLS13
	default:
		return nil, tlsMinVersionParam.Errorf(a, "1.2 or 1.3 (older versions are broken)")
	}
	var err error
	if files.alpn, err = alpnList(a, tlsServerALPNParam); err != nil {
		return nil, err
	}
	store, err := newCertStore(a, files.load)
	if err != nil {
		return nil, fileArgError(a, err)
	}
	host := interfaceParam.Get(a)
	return &tlsServer{tcp: newTCPServer(tcpNetwork(host), host, a), store: store,
		timeout: handshakeParam.Get(a)}, nil
}

type tlsServer struct {
	tcp     *tcpServer
	store   *certStore
	timeout time.Duration
}

func (s *tlsServer) Listen(ctx context.Context) (net.Listener, error) {
	ln, err := s.tcp.Listen(ctx)
	if err != nil {
		return nil, err
	}
	l := &tlsListener{inner: ln, store: s.store, timeout: s.timeout}
	l.config = &tls.Config{GetConfigForClient: l.configFor}
	return l, nil
}

// tlsListener is the listener of the ssl and tls server types: a TCP
// listener whose Accept returns a *tls.Conn, as tls.NewListener's does, so
// that code such as net/http sees the TLS state. Accept does not wait for
// the handshake: it runs in the connection's goroutine, at its first Read
// or Write (or an explicit Handshake), and must be done within the type's
// handshake timeout, after which Read and Write fail with a timeout.
//
// The certificates (and the tls server's client CAs) are read again when
// their files change, looked at, at most once a second, when a client
// connects; Reload reads them at once. Either way the port stays open and
// open connections are not touched: the next handshake uses the new files.
// Listeners from the same Server share their certificates.
type tlsListener struct {
	inner   net.Listener
	store   *certStore
	config  *tls.Config
	timeout time.Duration
}

// Accept waits for the next connection and returns it as a *tls.Conn whose
// handshake has not yet run.
func (l *tlsListener) Accept() (net.Conn, error) {
	raw, err := l.inner.Accept()
	if err != nil {
		return nil, err
	}
	hc := &handshakeConn{Conn: raw, until: time.Now().Add(l.timeout)}
	raw.SetDeadline(hc.until)
	hc.tls = tls.Server(hc, l.config)
	return hc.tls, nil
}

// Close closes the port; connections already accepted stay open.
func (l *tlsListener) Close() error { return l.inner.Close() }

// Addr returns the TCP address listened on.
func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }

// SyscallConn returns the listening TCP socket's raw connection, as
// net.TCPListener's does (for a Service's MaxConns accounting, say), or
// an error if the inner listener has none.
func (l *tlsListener) SyscallConn() (syscall.RawConn, error) {
	sc, ok := l.inner.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// Reload reads the certificate and key files (and client CAs) now, whether
// or not they changed, for the handshakes that follow. If they cannot be
// used, Reload returns an *Error naming the argument and the file, and the
// configuration in use stays. Call it, say, on SIGHUP, after renewing a
// certificate with files that do not change atomically.
func (l *tlsListener) Reload() error { return l.store.reload() }

// configFor gives each handshake the current configuration, and starts
// the watch that ends the handshake deadline when the handshake is over.
func (l *tlsListener) configFor(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	l.store.check()
	if hc, ok := hello.Conn.(*handshakeConn); ok {
		hc.watchOnce.Do(func() { go hc.watch() })
	}
	return l.store.state.Load().config, nil
}

// handshakeConn is the TCP connection under a server's *tls.Conn. Until the
// handshake is over it keeps a deadline on the socket, the earlier of the
// handshake's and the one the user set; then the user's alone.
//
// crypto/tls has no hook at the end of a server handshake, and its last
// callback (VerifyConnection) comes, in TLS 1.3 without client
// certificates, before the client's last flight: ending the deadline there
// let a client that stops after its ClientHello hold the connection
// forever. So the end is learned exactly: the handshake holds the
// connection's handshake lock from start to end, and a goroutine started
// inside it (from GetConfigForClient) waits for that lock with
// ConnectionState, which returns only when the handshake has finished or
// failed. The goroutine lives as long as the handshake, no longer.
type handshakeConn struct {
	net.Conn
	tls       *tls.Conn
	watchOnce sync.Once

	got bool // a byte has been read

	mu     sync.Mutex
	until  time.Time // the handshake deadline; zero once done
	rd, wd time.Time // the user's deadlines
}

// watch waits for the handshake that is running to end, and lifts its
// deadline if it succeeded. A failed handshake keeps it: the connection is
// of no further use.
func (c *handshakeConn) watch() {
	if c.tls.ConnectionState().HandshakeComplete {
		c.handshakeDone()
	}
}

// NetConn returns the TCP connection, so that endpoint.Abort reaches it.
func (c *handshakeConn) NetConn() net.Conn { return c.Conn }

// Read reports the end of the TCP stream as ErrNoCloseNotify (see
// readBelowTLS), unless the client sent nothing at all: a health check or
// a port scan that connects and closes cut no stream, and is io.EOF ("EOF"
// in the handshake's error), not a warning of a cut. Whether the handshake
// has ended cannot be told here (the goroutine that learns it may not have
// run yet when the first records arrive, and a cut then must not read as a
// clean end), but a stream cannot have started before any byte came.
// crypto/tls never reads concurrently, so got needs no lock.
func (c *handshakeConn) Read(b []byte) (int, error) {
	if !c.got {
		n, err := c.Conn.Read(b)
		c.got = n > 0
		return n, err
	}
	return readBelowTLS(c.Conn, b)
}

func earlier(user, hs time.Time) time.Time {
	if hs.IsZero() || (!user.IsZero() && user.Before(hs)) {
		return user
	}
	return hs
}

func (c *handshakeConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd, c.wd = t, t
	if err := c.Conn.SetReadDeadline(earlier(c.rd, c.until)); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(earlier(c.wd, c.until))
}

func (c *handshakeConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd = t
	return c.Conn.SetReadDeadline(earlier(c.rd, c.until))
}

func (c *handshakeConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wd = t
	return c.Conn.SetWriteDeadline(earlier(c.wd, c.until))
}

func (c *handshakeConn) handshakeDone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.until.IsZero() {
		return
	}
	c.until = time.Time{}
	c.Conn.SetReadDeadline(c.rd)
	c.Conn.SetWriteDeadline(c.wd)
}

// pinCertificate makes cfg trust exactly the certificate whose SHA-256
// fingerprint= gives, whatever its names, issuer or dates: what a client
// of a development server (tether --dev-cert) needs, and nothing more. The
// chain is not verified; the pinned certificate is checked by
// VerifyConnection, which a TLSConfig hook cannot remove (driver.Env.AdjustTLS).
func pinCertificate(a *driver.Args, cfg *tls.Config, f clientFiles) error {
	text := tlsPinParam.Get(a)
	want, err := hex.DecodeString(strings.NewReplacer(":", "", " ", "").Replace(text))
	if err != nil || len(want) != sha256.Size {
		return tlsPinParam.Errorf(a, "a SHA-256 fingerprint: 32 bytes in hex, pairs optionally separated by ':'")
	}
	switch {
	case !f.roots.Absent(a):
		return argError(a, "fingerprint", "cannot be given with "+f.roots.Arg().Name+"= (it trusts one certificate, not a CA)", nil)
	case cfg.InsecureSkipVerify:
		return argError(a, "fingerprint", "cannot be given with insecureSkipVerify=1 (which trusts everything)", nil)
	}
	cfg.InsecureSkipVerify = true // the chain: the pin below is the whole check
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("fingerprint=: the server sent no certificate")
		}
		got := sha256.Sum256(cs.PeerCertificates[0].Raw)
		if !bytes.Equal(got[:], want) {
			return fmt.Errorf("fingerprint=: the server's certificate is %X, not the one pinned", got)
		}
		return nil
	}
	return nil
}

// clientFiles are the arguments that name a TLS client's files: its
// certificate, its key and its trust roots (ssl's and tls's differ).
type clientFiles struct {
	cert, key, roots driver.Param[string]
}

// clientTLSConfig makes a client's configuration from its arguments, for
// the server name name. The files are read now, and again when they
// change (see certStore), so that a client whose certificate is renewed
// on disk, or whose roots change, picks that up at its next Dial.
func clientTLSConfig(a *driver.Args, name string, f clientFiles) (*certStore, error) {
	base := &tls.Config{ServerName: name, InsecureSkipVerify: insecureParam.Get(a)}
	if tlsPinParam.In(a.Spec) && !tlsPinParam.Absent(a) {
		if err := pinCertificate(a, base, f); err != nil {
			return nil, err
		}
	}
	var err error
	if base.NextProtos, err = alpnList(a, clientALPNParam); err != nil {
		return nil, err
	}
	certArg, keyArg, rootsArg := f.cert.Arg().Name, f.key.Arg().Name, f.roots.Arg().Name
	var certPath, keyPath, kArg string
	switch {
	case !f.cert.Absent(a):
		certPath, keyPath, kArg = f.cert.Get(a), f.cert.Get(a), certArg
		if f.key.Given(a) {
			keyPath, kArg = f.key.Get(a), keyArg
		}
	case f.key.Given(a):
		return nil, argError(a, keyArg, "needs "+certArg+"= (the certificate it is the key of)", nil)
	}
	rootsPath := f.roots.Get(a)
	load := func() (*tlsState, []fileStamp, error) {
		l := &tlsLoader{now: time.Now()}
		cfg := base.Clone()
		if certPath != "" {
			pair, err := l.keyPair(certArg, certPath, kArg, keyPath)
			if err != nil {
				return nil, l.stamps, err
			}
			cfg.Certificates = []tls.Certificate{*pair}
		}
		if rootsPath != "" {
			pool, err := l.certPool(rootsArg, rootsPath)
			if err != nil {
				return nil, l.stamps, err
			}
			cfg.RootCAs = pool
		}
		return &tlsState{config: cfg, warnings: l.warnings}, l.stamps, nil
	}
	store, err := newCertStore(a, load)
	if err != nil {
		return nil, fileArgError(a, err)
	}
	return store, nil
}

func newSSLClient(a *driver.Args) (driver.Client, error) {
	store, err := clientTLSConfig(a, sslHostnameParam.Get(a), clientFiles{sslClientCertParam, sslClientKeyParam, sslRootsParam})
	if err != nil {
		return nil, err
	}
	return &tlsClient{rootsArg: "caCertsDir", dial: tcpPart(a, hostParam, connectPortParam).dial, store: store}, nil
}

func newTLSClient(a *driver.Args) (driver.Client, error) {
	store, err := clientTLSConfig(a, tlsHostParam.Get(a), clientFiles{tlsClientCertParam, tlsClientKeyParam, tlsRootsParam})
	if err != nil {
		return nil, err
	}
	c := &tlsClient{rootsArg: "trustRoots", store: store}
	if tlsEndpointParam.Absent(a) {
		c.dial = tcpPart(a, tlsHostParam, tlsPortParam).dial
		return c, nil
	}
	if !bindAddressParam.Absent(a) {
		return nil, argError(a, "bindAddress", "cannot be used with endpoint= (give it to the inner endpoint)", nil)
	}
	inner, err := a.Env.ParseClient(tlsEndpointParam.Get(a))
	if err != nil {
		return nil, argError(a, "endpoint", err.Error(), err)
	}
	c.dial, c.inner = inner.Dial, inner
	return c, nil
}

// tcpPart is the tcp client that a TLS client connects with, to the host
// and port its arguments host and port name.
func tcpPart(a *driver.Args, host driver.Param[string], port driver.Param[uint16]) *tcpClient {
	return &tcpClient{resolver: a.Env.Resolver, host: host.Get(a), port: port.Get(a),
		delay: defaultAttemptDelay, bind: bindAddressParam.Get(a), opts: readSockOpts(a)}
}

type tlsClient struct {
	rootsArg string // the argument that names trust roots, for hints
	dial     func(ctx context.Context) (net.Conn, error)
	inner    Client // with endpoint=, the endpoint dial connects through
	store    *certStore
}

// Dial connects and completes the handshake before returning, so that a
// certificate the client does not accept is Dial's error. The context
// (bounded by timeout= in the client endpoint's wrapper) bounds both;
// cancelling it interrupts the handshake.
func (c *tlsClient) Dial(ctx context.Context) (net.Conn, error) {
	raw, err := c.dial(ctx)
	if err != nil {
		return nil, contextError(ctx, err)
	}
	c.store.check()
	cfg := c.store.state.Load().config
	below := &closeNotifyConn{Conn: raw}
	tc := tls.Client(below, cfg)
	if err := clientHandshake(ctx, tc, raw); err != nil {
		abort.Conn(raw)
		err = contextError(ctx, fmt.Errorf("TLS handshake with %s (%s): %w", cfg.ServerName, raw.RemoteAddr(), err))
		if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
			err = &Error{Op: "dial", Err: err, Hint: "to trust this server, give the CA that signed its certificate, or the " +
				"certificate itself, with " + c.rootsArg + "=FILE; a tether --dev-cert server prints its certificate's " +
				"SHA-256 fingerprint when it starts"}
		}
		return nil, err
	}
	below.established = true
	return tc, nil
}
