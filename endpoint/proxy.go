package endpoint

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/abort"
)

func init() {
	driver.RegisterClient(driver.ClientType{
		Spec: driver.Spec{
			Name: "socks5",
			Help: "connect through a SOCKS5 proxy, which resolves the host name and connects (RFC 1928)",
			Args: tunnelArgs("SOCKS5 proxy", "`tcp\\:127.0.0.1\\:1080`",
				"user name for the proxy (RFC 1929), 1-255 bytes; absent means no authentication",
				"password for the proxy, at most 255 bytes; needs username"),
			FillGaps: true,
			Notes: "Not in Twisted. proxy= is the client endpoint that reaches the proxy, any client string with its " +
				"':' escaped (or written with endpoint.Quote): `socks5:example.com:443:proxy=tcp\\:127.0.0.1\\:1080`, " +
				"`socks5:example.com:443:proxy=unix\\:/run/socks.sock`. The proxy is asked to connect to HOST:PORT: a " +
				"host name is sent as a name, for the proxy to resolve (curl's socks5h), and never looked up here; an " +
				"IP address is sent as an address. With username= the proxy may choose user and password " +
				"authentication (RFC 1929) or none. Dial returns once the proxy has connected, and the connection is " +
				"the one proxy= made, nothing buffered and nothing wrapped (a *net.TCPConn for tcp, so tether relay " +
				"still splices). timeout bounds the whole attempt, reaching the proxy and its handshake included; " +
				"cancelling Dial's context interrupts the handshake and closes the connection. A refusal keeps its " +
				"meaning: reply 5 matches syscall.ECONNREFUSED, 3 ENETUNREACH, 4 EHOSTUNREACH and 2 (not allowed) " +
				"EACCES; every answer that is not a success matches endpoint.ErrProxyFailed, and credentials " +
				"refused or wanted endpoint.ErrProxyAuth. TLS to the host through the proxy (the inner string's " +
				"backslashes escaped once more): " +
				"`tls:example.com:443:endpoint=socks5\\:example.com\\:443\\:proxy=tcp\\\\\\:127.0.0.1\\\\\\:1080`. " +
				proxyPasswordNote,
		},
		New: newSOCKS5Client,
	})
	driver.RegisterClient(driver.ClientType{
		Spec: driver.Spec{
			Name: "httpconnect",
			Help: "connect through an HTTP proxy's tunnel: a CONNECT request, which the proxy resolves and connects",
			Args: tunnelArgs("HTTP proxy", "`tcp\\:127.0.0.1\\:3128`",
				"user name for the proxy's Basic authentication, without ':'; absent sends none",
				"password for the proxy's Basic authentication; needs username"),
			FillGaps: true,
			Notes: "Not in Twisted. Named httpconnect, not http, because it speaks HTTP to the proxy only: it asks " +
				"for a tunnel (an HTTP/1.1 CONNECT request, RFC 9110) to HOST:PORT, and whatever the caller sends " +
				"then goes through it, HTTP or not. proxy= is the client endpoint that reaches the proxy, its ':' " +
				"escaped: `httpconnect:example.com:443:proxy=tcp\\:127.0.0.1\\:3128`; with " +
				"`proxy=tls\\:proxy.example.com\\:3129` it is an HTTPS proxy. The proxy resolves a host name. With " +
				"username= it sends a Basic Proxy-Authorization header, readable by anyone in the path unless proxy= " +
				"is a tls endpoint. A status other than 2xx is Dial's error, quoting the status line, and matches " +
				"endpoint.ErrProxyFailed; 407, and the 401 that some proxies answer a wrong password with, also " +
				"endpoint.ErrProxyAuth. The answer is read up to the end of its header (at most 8 KiB) and not a " +
				"byte further, so the connection returned is the one proxy= made, " +
				"unwrapped (a *net.TCPConn for tcp, so tether relay still splices). timeout bounds the whole " +
				"attempt, reaching the proxy and its answer included; cancelling Dial's context interrupts it and " +
				"closes the connection. TLS to the host through the proxy: " +
				"`tls:example.com:443:endpoint=httpconnect\\:example.com\\:443\\:proxy=tcp\\\\\\:127.0.0.1\\\\\\:3128`. " +
				proxyPasswordNote,
		},
		New: newHTTPConnectClient,
	})
}

const proxyPasswordNote = "The password is a secret argument: error messages, tether's logs and tether describe " +
	"show it as xxxxx (endpoint.Redact). It is still part of the string, so a process given the string on its " +
	"command line shows it to anyone who can list processes: passwordFile= reads it from a file instead."

// The proxy client types' arguments; tunnelArgs gives each type its own
// help where it differs.
var (
	proxyHostParam = hostParam.Help("host name or IP address for the proxy to connect to; a name is resolved by the proxy")
	proxyPortParam = connectPortParam.Help("port for the proxy to connect to")
	proxyParam     = driver.StringParam("proxy", "client endpoint that reaches the proxy").Required()
	userParam      = driver.StringParam("username", "user name for the proxy")
	passwordParam  = driver.StringParam("password", "password for the proxy").Secret()
	passFileParam  = driver.StringParam("passwordFile",
		"file whose first line is the password, read when the string is parsed; keeps it off command lines")
	proxyTimeoutParam = timeoutParam.Help("seconds the whole attempt (reaching the proxy, its handshake) may take")
)

// tunnelArgs declares the arguments of a proxy client type.
func tunnelArgs(what, example, userHelp, passHelp string) []driver.Arg {
	return []driver.Arg{
		proxyHostParam.Arg(), proxyPortParam.Arg(),
		proxyParam.Help("client endpoint that reaches the " + what + ", its ':' escaped: " + example).Arg(),
		userParam.Help(userHelp).Arg(), passwordParam.Help(passHelp).Arg(), passFileParam.Arg(),
		proxyTimeoutParam.Arg(),
	}
}

// Errors of the proxy client types, socks5 and httpconnect.
var (
	// ErrProxyFailed is wrapped when the proxy answers but does not
	// connect: a SOCKS5 reply other than success, an HTTP status other
	// than 2xx, credentials refused, an answer that is not the protocol, or
	// the proxy closing the connection before it answered. A proxy that
	// cannot be reached at all, or a Dial cancelled or out of time, is not
	// this error but the cause itself.
	ErrProxyFailed = errors.New("endpoint: the proxy did not connect")

	// ErrProxyAuth is wrapped, besides ErrProxyFailed, when the proxy
	// refuses the username= and password= given, or wants credentials and
	// none were given.
	ErrProxyAuth = errors.New("endpoint: proxy authentication failed")
)

// tunnelClient is a socks5 or httpconnect client: an endpoint that reaches
// the proxy, and what to ask it for.
type tunnelClient struct {
	input, typ string // for the error of reaching the proxy
	proxy      Client
	host       string
	port       uint16
	auth       bool // username= given
	user, pass string
	// handshake asks the proxy, over conn, to connect to the target.
	handshake func(conn net.Conn) error
}

func newTunnelClient(a *driver.Args) (*tunnelClient, error) {
	c := &tunnelClient{input: a.Input, typ: a.Spec.Name, host: proxyHostParam.Get(a),
		port: proxyPortParam.Get(a)}
	if ip, err := netip.ParseAddr(c.host); err == nil && ip.Zone() != "" {
		return nil, proxyHostParam.Errorf(a, "an IP address without a zone (the proxy cannot use one)")
	}
	for _, b := range []byte(c.host) {
		// The name goes to the proxy as it is, and for httpconnect in a
		// request line: no spaces or control characters.
		if b <= ' ' || b == 0x7f {
			return nil, proxyHostParam.Errorf(a, "a host name or IP address")
		}
	}
	switch {
	case !passwordParam.Absent(a) && !passFileParam.Absent(a):
		return nil, argError(a, "passwordFile", "cannot be given with password=: give one of them", nil)
	case !userParam.Absent(a):
		c.auth, c.user, c.pass = true, userParam.Get(a), passwordParam.Get(a)
		if !passFileParam.Absent(a) {
			pass, err := readPasswordFile(passFileParam.Get(a))
			if err != nil {
				return nil, argError(a, "passwordFile", err.Error(), err)
			}
			c.pass = pass
		}
	case !passwordParam.Absent(a):
		return nil, argError(a, "password", "needs username= (the user it is the password of)", nil)
	case !passFileParam.Absent(a):
		return nil, argError(a, "passwordFile", "needs username= (the user it is the password of)", nil)
	}
	inner, err := a.Env.ParseClient(proxyParam.Get(a))
	if err != nil {
		return nil, argError(a, "proxy", err.Error(), err)
	}
	c.proxy = inner
	return c, nil
}

// maxPasswordFile bounds what is read of a passwordFile=: a password is a
// line, and SOCKS5 sends at most 255 bytes of one.
const maxPasswordFile = 64 << 10

// readPasswordFile returns the first line of a small regular file,
// without its line ending.
func readPasswordFile(path string) (string, error) {
	// O_NONBLOCK: opening a FIFO with no writer would otherwise block.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	if fi.Size() > maxPasswordFile {
		return "", fmt.Errorf("%d bytes, more than a password file needs (at most %d; the password is its first line)",
			fi.Size(), maxPasswordFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFile))
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

func newSOCKS5Client(a *driver.Args) (driver.Client, error) {
	c, err := newTunnelClient(a)
	if err != nil {
		return nil, err
	}
	if len(c.host) > 255 {
		return nil, proxyHostParam.Errorf(a, "a host name of at most 255 bytes (SOCKS5 cannot send a longer one)")
	}
	if c.auth {
		if len(c.user) == 0 || len(c.user) > 255 {
			return nil, userParam.Errorf(a, "a user name of 1-255 bytes (RFC 1929)")
		}
		if len(c.pass) > 255 {
			return nil, argError(a, "password", "longer than 255 bytes, which RFC 1929 cannot send", nil)
		}
	}
	c.handshake = c.socks5
	return c, nil
}

func newHTTPConnectClient(a *driver.Args) (driver.Client, error) {
	c, err := newTunnelClient(a)
	if err != nil {
		return nil, err
	}
	if c.auth && (c.user == "" || strings.Contains(c.user, ":")) {
		return nil, userParam.Errorf(a, "a non-empty user name without ':' (Basic authentication cannot send one)")
	}
	c.handshake = c.httpConnect
	return c, nil
}

// Dial reaches the proxy through its endpoint and asks it to connect. It
// returns the proxy's connection once the proxy has said yes, so that what
// the caller writes goes to the target.
func (c *tunnelClient) Dial(ctx context.Context) (net.Conn, error) {
	conn, err := c.proxy.Dial(ctx)
	if err != nil {
		return nil, &Error{Op: "dial", Input: c.input, Type: c.typ,
			Err: fmt.Errorf("reaching the proxy: %w", contextError(ctx, err))}
	}
	// The handshake's reads and writes block on conn, and the context
	// must interrupt them: an expired deadline does, and leaves the
	// connection as it was if the handshake ends first.
	stop := context.AfterFunc(ctx, func() {
		if conn.SetDeadline(aLongTimeAgo) != nil {
			abort.Conn(conn) // an inner endpoint without deadlines
		}
	})
	err = c.handshake(conn)
	if stop() {
		if err == nil {
			return conn, nil
		}
		abort.Conn(conn)
		return nil, &net.OpError{Op: "dial", Net: c.typ, Addr: conn.RemoteAddr(), Err: err}
	}
	// Whatever the handshake's outcome (an i/o timeout, a closed
	// connection, even success), the context ended it; the error says
	// so, and is a timeout if the context's deadline passed.
	abort.Conn(conn)
	return nil, fmt.Errorf("%s handshake with %s: %w", c.typ, conn.RemoteAddr(), context.Cause(ctx))
}

// target is the host and port the proxy is asked for, as HOST:PORT with
// an IPv6 address in brackets.
func (c *tunnelClient) target() string {
	return net.JoinHostPort(c.host, strconv.Itoa(int(c.port)))
}

// handshakeEOF makes the end of the connection during a handshake an
// ErrProxyFailed; other errors are returned as they are.
func handshakeEOF(err error, proto string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return driver.WrapError(ErrProxyFailed, io.ErrUnexpectedEOF,
			"the proxy closed the connection before its "+proto+" answer was complete")
	}
	return err
}

// SOCKS5 (RFC 1928) and its user and password authentication (RFC 1929).
const (
	socks5Version   = 5
	socks5NoAuth    = 0x00
	socks5UserPass  = 0x02
	socks5NoMethods = 0xff
	socks5Connect   = 0x01
	socks5IPv4      = 0x01
	socks5Name      = 0x03
	socks5IPv6      = 0x04
)

// socks5Replies are the meanings of the reply codes of RFC 1928 section 6,
// with the system error each keeps where there is one.
var socks5Replies = [...]struct {
	msg   string
	errno error
}{
	1: {"general SOCKS server failure", nil},
	2: {"connection not allowed by the proxy's rules", syscall.EACCES},
	3: {"network unreachable", syscall.ENETUNREACH},
	4: {"host unreachable", syscall.EHOSTUNREACH},
	5: {"connection refused", syscall.ECONNREFUSED},
	6: {"TTL expired", nil},
	7: {"command not supported", nil},
	8: {"address type not supported", nil},
}

// socks5 asks a SOCKS5 proxy to connect to the target. It reads exactly
// what the proxy sends in answer and nothing beyond, so that what follows
// is left on conn for the caller.
func (c *tunnelClient) socks5(conn net.Conn) error {
	greeting := []byte{socks5Version, 1, socks5NoAuth}
	if c.auth {
		greeting = []byte{socks5Version, 2, socks5NoAuth, socks5UserPass}
	}
	if _, err := conn.Write(greeting); err != nil {
		return err
	}
	var buf [4 + 1 + 255 + 2]byte // the longest reply: a name of 255 bytes
	if _, err := io.ReadFull(conn, buf[:2]); err != nil {
		return handshakeEOF(err, "SOCKS5")
	}
	if buf[0] != socks5Version {
		return driver.WrapError(ErrProxyFailed, nil, fmt.Sprintf("not a SOCKS5 proxy: it answered % x", buf[:2]))
	}
	switch method := buf[1]; {
	case method == socks5NoAuth:
	case method == socks5UserPass && c.auth:
		if err := c.socks5Auth(conn); err != nil {
			return err
		}
	case method == socks5NoMethods && !c.auth:
		return driver.WrapError(ErrProxyAuth, ErrProxyFailed,
			"the proxy wants authentication: give username= and password=")
	case method == socks5NoMethods:
		return driver.WrapError(ErrProxyAuth, ErrProxyFailed,
			"the proxy accepts neither user and password nor no authentication")
	default:
		return driver.WrapError(ErrProxyFailed, nil,
			fmt.Sprintf("the proxy chose authentication method %#x, which was not offered", method))
	}

	req := append(make([]byte, 0, 4+1+255+2), socks5Version, socks5Connect, 0)
	if ip, err := netip.ParseAddr(c.host); err == nil {
		if ip = ip.Unmap(); ip.Is4() {
			req = append(req, socks5IPv4)
		} else {
			req = append(req, socks5IPv6)
		}
		req = append(req, ip.AsSlice()...)
	} else {
		req = append(req, socks5Name, byte(len(c.host)))
		req = append(req, c.host...)
	}
	req = append(req, byte(c.port>>8), byte(c.port))
	if _, err := conn.Write(req); err != nil {
		return err
	}

	// VER REP RSV ATYP, then the bound address, whose length ATYP says.
	if _, err := io.ReadFull(conn, buf[:4]); err != nil {
		return handshakeEOF(err, "SOCKS5")
	}
	if buf[0] != socks5Version {
		return driver.WrapError(ErrProxyFailed, nil, fmt.Sprintf("not a SOCKS5 reply: % x", buf[:4]))
	}
	if rep := int(buf[1]); rep != 0 {
		msg := "unknown reply code"
		var errno error
		if rep < len(socks5Replies) {
			msg, errno = socks5Replies[rep].msg, socks5Replies[rep].errno
		}
		return driver.WrapError(ErrProxyFailed, errno,
			fmt.Sprintf("the proxy could not connect to %s: %s (reply %d)", c.target(), msg, rep))
	}
	var rest int
	switch buf[3] {
	case socks5IPv4:
		rest = 4 + 2
	case socks5IPv6:
		rest = 16 + 2
	case socks5Name:
		if _, err := io.ReadFull(conn, buf[4:5]); err != nil {
			return handshakeEOF(err, "SOCKS5")
		}
		rest = int(buf[4]) + 2
	default:
		return driver.WrapError(ErrProxyFailed, nil, fmt.Sprintf("the SOCKS5 reply has an unknown address type %#x", buf[3]))
	}
	if _, err := io.ReadFull(conn, buf[5:5+rest]); err != nil {
		return handshakeEOF(err, "SOCKS5")
	}
	return nil
}

// socks5Auth authenticates with user and password (RFC 1929).
func (c *tunnelClient) socks5Auth(conn net.Conn) error {
	req := make([]byte, 0, 3+len(c.user)+len(c.pass))
	req = append(req, 1, byte(len(c.user)))
	req = append(req, c.user...)
	req = append(req, byte(len(c.pass)))
	req = append(req, c.pass...)
	if _, err := conn.Write(req); err != nil {
		return err
	}
	var resp [2]byte
	if _, err := io.ReadFull(conn, resp[:]); err != nil {
		return handshakeEOF(err, "SOCKS5 authentication")
	}
	if resp[1] != 0 {
		return driver.WrapError(ErrProxyAuth, ErrProxyFailed,
			fmt.Sprintf("the proxy refused username %q and its password (status %d)", c.user, resp[1]))
	}
	return nil
}

// httpHeaderMax bounds the proxy's answer to CONNECT.
const httpHeaderMax = 8 << 10

// httpConnect asks an HTTP proxy for a tunnel to the target. It reads the
// answer's header and not a byte further: whatever follows it is the
// target's and stays on conn for the caller.
func (c *tunnelClient) httpConnect(conn net.Conn) error {
	target := c.target()
	var req strings.Builder
	req.WriteString("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n")
	if c.auth {
		req.WriteString("Proxy-Authorization: Basic " +
			base64.StdEncoding.EncodeToString([]byte(c.user+":"+c.pass)) + "\r\n")
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return err
	}
	buf := make([]byte, 0, 256)
	for {
		// A final answer may follow interim (1xx) ones, which a client
		// must read and pass over (RFC 9110 section 15.2).
		start := len(buf)
		var err error
		if buf, err = readHTTPHeader(conn, buf); err != nil {
			return err
		}
		line, _, _ := bytes.Cut(buf[start:], []byte("\n"))
		status := string(bytes.TrimSuffix(line, []byte("\r")))
		code, ok := httpStatus(status)
		switch {
		case !ok:
			return driver.WrapError(ErrProxyFailed, nil, fmt.Sprintf("not an HTTP proxy: it answered %q to CONNECT %s", clip(status), target))
		case code == 407 || code == 401:
			// 401 is what tinyproxy answers a wrong password with; to a
			// CONNECT, only the proxy can have sent it.
			hint := "give username= and password="
			if c.auth {
				hint = "username " + strconv.Quote(c.user) + " and its password are refused"
			}
			return driver.WrapError(ErrProxyAuth, ErrProxyFailed,
				fmt.Sprintf("the proxy answered %q to CONNECT %s: %s", clip(status), target, hint))
		case code >= 100 && code < 200:
			continue
		case code >= 200 && code < 300:
			return nil
		default:
			return driver.WrapError(ErrProxyFailed, nil, fmt.Sprintf("the proxy answered %q to CONNECT %s", clip(status), target))
		}
	}
}

// readHTTPHeader reads one HTTP response header from r onto buf: up to and
// including the empty line that ends it (CRLF or, leniently, LF alone), one
// byte at a time so as to read nothing beyond it. buf may hold at most
// httpHeaderMax bytes in all.
func readHTTPHeader(r io.Reader, buf []byte) ([]byte, error) {
	start := len(buf)
	var b [1]byte
	for {
		if len(buf) >= httpHeaderMax {
			return buf, driver.WrapError(ErrProxyFailed, nil,
				fmt.Sprintf("the proxy's answer has no end of header within %d bytes", httpHeaderMax))
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return buf, handshakeEOF(err, "HTTP")
		}
		buf = append(buf, b[0])
		h := buf[start:]
		if len(h) <= len("HTTP/") && !bytes.HasPrefix([]byte("HTTP/"), h) {
			// Not HTTP: say so now rather than wait for more.
			return buf, driver.WrapError(ErrProxyFailed, nil, fmt.Sprintf("not an HTTP proxy: its answer begins %q", h))
		}
		if bytes.HasSuffix(h, []byte("\n\n")) || bytes.HasSuffix(h, []byte("\n\r\n")) {
			return buf, nil
		}
	}
}

// httpStatus reads the code of a status line, "HTTP/1.1 200 Connection
// established".
func httpStatus(line string) (int, bool) {
	rest, ok := strings.CutPrefix(line, "HTTP/1.")
	if !ok || len(rest) < 5 || rest[0] < '0' || rest[0] > '9' || rest[1] != ' ' ||
		(len(rest) > 5 && rest[5] != ' ') {
		return 0, false
	}
	code, err := strconv.Atoi(rest[2:5])
	if err != nil || code < 100 || code > 999 {
		return 0, false
	}
	return code, true
}

// clip shortens a line from the network for an error message.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
