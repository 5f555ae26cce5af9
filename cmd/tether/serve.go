package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync/atomic"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/internal/pathguard"
	"github.com/tether-endpoints/tether/internal/relay"
)

func init() {
	register(&command{name: "serve", summary: "run a test service (echo, discard, chargen) or a command per connection", run: runServe})
}

const serveUsage = `Usage: tether serve [FLAGS] LISTEN [SERVICE]

Accepts connections on the server endpoint LISTEN and serves each with
SERVICE (default echo):

  echo      send back what arrives; the peer's end of file ends the reply
  discard   read and throw away what arrives, send nothing
  chargen   send RFC 864's rotating lines of characters until the peer closes
  exec -- COMMAND [ARGS...]
            inetd-style: start COMMAND for each connection, with the
            connection as its standard input and output (its standard error
            is tether's). The peer's end of file closes COMMAND's standard
            input; COMMAND's exit (its standard output closing) closes the
            connection's write half, and its death by a signal resets
            the connection (its output may be cut short). TETHER_PEER and TETHER_LOCAL hold the
            connection's addresses. COMMAND is refused if another user
            could change it: it and each directory above it must be
            owned by root or tether's user and writable by no one else.

  $ tether serve tcp:7777
  $ tether serve unix:/tmp/discard.sock discard
  $ tether serve tcp:8080:interface=127.0.0.1 exec -- /bin/cat
  $ tether serve tcp:2000 exec -- sh -c 'echo "hello $TETHER_PEER"; date'
  $ tether serve haproxy:tcp:7000 exec -- sh -c 'echo "you are $TETHER_PEER"'
  $ tether serve --dev-cert tls:8443:interface=127.0.0.1
  $ systemd-socket-activate -l 7777 tether serve systemd:domain=INET6:index=0

--idle-timeout D resets a connection once nothing has moved either way
for D (a client that connects and sends nothing, or stops reading
chargen's lines), logged with the error "idle timeout"; by default (0) a
connection may stay idle for ever, as with tether relay.

Logging, --max-conns, --max-conns-per-peer, --metrics and the handling of SIGINT, SIGTERM and
SIGHUP (a restart that drops no connection) are those of tether relay: one log line per connection as it ends, naming the peer as
LISTEN reports it (a haproxy: LISTEN: the original client that the PROXY
protocol header names, which TETHER_PEER holds too; a connection whose
header is missing or malformed is closed and logged); a signal stops
listening, lets connections finish for up to --drain-timeout (an exec
COMMAND still running then is killed), and exits 0.

--dev-cert is for development, when LISTEN is a tls: server with neither
certificate= nor certDir=, or an ssl: server with neither privateKey nor
certKey whose default privateKey file (server.pem in the current
directory) does not exist, also inside haproxy:. tether then makes a
throwaway self-signed certificate for localhost, 127.0.0.1, ::1 and the
interface (if one is given and is not every address), writes it to a
private temporary directory deleted when tether exits, adds it to LISTEN
(certificate= and privateKey= for tls:, privateKey= and certKey= for
ssl:) and says so on stderr, with its SHA-256 fingerprint for clients to
check or pin. Without --dev-cert nothing is made, and such a LISTEN is an
error. --dev-cert with any other LISTEN is a usage error; with a LISTEN
that names a certificate it makes nothing.

Exit codes: 0 after a signal, 1 if listening (or making the --dev-cert
certificate) fails, 2 for bad usage, an endpoint string that does not
parse, or a COMMAND that cannot be found. Flags may come before or after
LISTEN and SERVICE; after exec, everything is COMMAND's.

Flags:
`

// A service serves one connection and reports the bytes it read and wrote.
type service func(ctx context.Context, c net.Conn) (fromPeer, toPeer int64, err error)

func runServe(e *env, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var sf serverFlags
	sf.register(fs)
	idle := fs.Duration("idle-timeout", 0, "close a connection once nothing has moved either way for this long (0: never)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	// Flags may come anywhere before SERVICE exec; all that follows exec
	// is COMMAND's.
	rest, code, done := parseFlags(fs, args, e, func(pos []string) bool {
		return len(pos) == 2 && pos[1] == "exec"
	})
	if done {
		return code
	}
	if len(rest) == 0 {
		fmt.Fprintln(e.stderr, "tether serve: want a LISTEN endpoint string (run tether serve --help)")
		return exitUsage
	}
	name := "echo"
	if len(rest) > 1 {
		name = rest[1]
	}
	var svc service
	switch name {
	case "echo":
		svc = serveEcho
	case "discard":
		svc = serveDiscard
	case "chargen":
		svc = serveChargen
	case "exec":
		argv := rest[2:]
		if len(argv) > 0 && argv[0] == "--" {
			argv = argv[1:]
		}
		if len(argv) == 0 {
			fmt.Fprintln(e.stderr, "tether serve: exec wants a COMMAND: exec -- COMMAND [ARGS...]")
			return exitUsage
		}
		path, err := exec.LookPath(argv[0])
		if err != nil {
			fmt.Fprintln(e.stderr, "tether serve:", err)
			return exitUsage
		}
		if _, why := pathguard.Check(path, false); why != "" {
			fmt.Fprintf(e.stderr, "tether serve: exec: the program %s can be changed by other users, so it is not run: %s\n", path, why)
			return exitUsage
		}
		x := &execService{path: path, args: argv[1:], stderr: e.stderr}
		svc = x.serve
	default:
		fmt.Fprintf(e.stderr, "tether serve: unknown service %q: want echo, discard, chargen or exec\n", endpoint.Redact(name))
		return exitUsage
	}
	if name != "exec" && len(rest) > 2 {
		fmt.Fprintf(e.stderr, "tether serve: %s takes no arguments; got %q\n", name, redactAll(rest[2:]))
		return exitUsage
	}
	log, err := sf.logger(e.stderr)
	if err == nil && *idle < 0 {
		err = fmt.Errorf("--idle-timeout %v is negative", *idle)
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "tether serve:", err)
		return exitUsage
	}
	listen, attrs, cleanup, code := devCert(e, "serve", rest[0], sf.devCert)
	defer cleanup()
	if code >= 0 {
		return code
	}
	sf.restart, sf.noRestart = newRestarter(e, listen)
	srv, err := (&endpoint.Options{Logger: log, Inherit: sf.inherit()}).ParseServer(listen)
	if err != nil {
		fmt.Fprintln(e.stderr, "tether serve:", err)
		devCertHint(e, "serve", rest[0], sf.devCert)
		return exitUsage
	}
	setDefaultLogger(e, log)
	return serveUntilSignal(e, "serve", srv, serviceHandler(svc, log, sf.metricsOn(), sf.peers, *idle), &sf, log,
		append([]any{"endpoint", endpoint.Redact(rest[0]), "service", name}, attrs...)...)
}

// serviceHandler runs svc for a connection once it is established, resets
// the connection when the server gives up draining or the service fails
// mid-stream, and logs the connection's end.
func serviceHandler(svc service, log *slog.Logger, m *metrics, peers *relay.PeerCounter, idle time.Duration) endpoint.Handler {
	return endpoint.HandlerFunc(func(ctx context.Context, c net.Conn) {
		start := time.Now()
		release, ok := establishAdmitted(ctx, peers, log, m, c, start)
		if !ok {
			return
		}
		if idle > 0 {
			c = newIdleConn(c, idle)
		}
		peer := peerString(c)
		cut := make(chan error, 1)
		stop := context.AfterFunc(ctx, func() { cut <- endpoint.Abort(c) })
		fromPeer, toPeer, err := svc(ctx, c)
		var more []any
		var exited *exec.ExitError
		switch {
		case !stop():
			err = context.Cause(ctx)
			more = unsignalled(<-cut, nil)
		case err != nil && !errors.As(err, &exited):
			// A transport error: the peer must not take what it got
			// for the whole stream. (An exec: COMMAND's exit status is
			// no such error: its output ended where it chose.)
			more = unsignalled(endpoint.Abort(c), nil)
		}
		release() // before the close that the client may answer by connecting again
		c.Close()
		logEnd(log, m, peer, start, fromPeer, toPeer, err, more...)
	})
}

// countReader and countWriter count bytes; they also hide the connection's
// ReadFrom and WriteTo, so that echo copies through its own buffer rather
// than splicing a socket into itself.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type countWriter struct {
	w   io.Writer
	n   atomic.Int64
	err error // the first write error
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func serveEcho(ctx context.Context, c net.Conn) (int64, int64, error) {
	r, w := &countReader{r: c}, &countWriter{w: c}
	_, err := io.CopyBuffer(w, r, make([]byte, 32<<10))
	if err == nil {
		err = closeWrite(c)
	}
	return r.n, w.n.Load(), err
}

func serveDiscard(ctx context.Context, c net.Conn) (int64, int64, error) {
	r := &countReader{r: c}
	_, err := io.Copy(io.Discard, r)
	return r.n, 0, err
}

// chargenCycle is RFC 864's pattern: 95 lines of 72 printable characters,
// each starting one character further on, each ended by CR LF.
var chargenCycle = func() []byte {
	var b []byte
	for i := 0; i < 95; i++ {
		for j := 0; j < 72; j++ {
			b = append(b, byte(' '+(i+j)%95))
		}
		b = append(b, '\r', '\n')
	}
	return b
}()

func serveChargen(ctx context.Context, c net.Conn) (int64, int64, error) {
	r := &countReader{r: c}
	read := make(chan struct{})
	go func() { // what the peer sends is ignored
		defer close(read)
		io.Copy(io.Discard, r)
	}()
	var sent int64
	for {
		n, err := c.Write(chargenCycle)
		sent += int64(n)
		if errors.Is(err, relay.ErrIdle) {
			// The peer stopped reading: a cut, which the caller
			// makes a reset, not an end. The idle watchdog has ended
			// the reader too.
			<-read
			return r.n, sent, err
		}
		if err != nil {
			break // the peer has gone: chargen's only way to end
		}
	}
	c.Close()
	<-read
	return r.n, sent, nil
}

// aLongTimeAgo is a deadline in the past: it ends a Read at once.
var aLongTimeAgo = time.Unix(1, 0)

type execService struct {
	path   string
	args   []string
	stderr io.Writer
}

// execEndWait is how long the end of COMMAND's output waits for COMMAND
// to exit, to learn whether a signal killed it.
const execEndWait = 50 * time.Millisecond

// execLinger is how long a connection whose COMMAND has exited waits for
// the peer to finish sending before it is closed. Closing with unread data
// would reset the connection, and a reset can destroy output the peer has
// not read yet.
const execLinger = 2 * time.Second

func (x *execService) serve(ctx context.Context, c net.Conn) (fromPeer, toPeer int64, err error) {
	cmd := exec.CommandContext(ctx, x.path, x.args...)
	cmd.Env = append(os.Environ(), "TETHER_PEER="+addrString(c.RemoteAddr()), "TETHER_LOCAL="+addrString(c.LocalAddr()))
	cmd.Stderr = x.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}

	in := &countReader{r: c}
	inErr := make(chan error, 1)
	go func() {
		w := &countWriter{w: stdin}
		_, err := io.Copy(w, in)
		stdin.Close() // the peer's end of file is COMMAND's
		if w.err != nil {
			// COMMAND stopped reading: take the rest so the peer is
			// not reset while we still have output for it.
			_, err = io.Copy(io.Discard, in)
		}
		inErr <- err
	}()

	out := &countWriter{w: c}
	_, outErr := io.Copy(out, stdout)
	if outErr == nil && out.err == nil && killedAtEnd(cmd.Process, execEndWait) {
		// Its output ended because a signal killed it: a cut, which the
		// caller resets, not an end to pass on.
		outErr = fmt.Errorf("%s was killed by a signal: its output may be cut short", x.path)
		stdout.Close()
	} else if outErr == nil && out.err == nil {
		outErr = closeWrite(c) // COMMAND is done writing, and so are we
	} else {
		stdout.Close() // the peer has gone: COMMAND gets EPIPE
	}
	waitErr := cmd.Wait()

	if outErr != nil {
		c.SetReadDeadline(aLongTimeAgo) // a cut: nothing to linger for
	} else {
		c.SetReadDeadline(time.Now().Add(execLinger))
	}
	rerr := <-inErr
	if errors.Is(rerr, os.ErrDeadlineExceeded) {
		rerr = nil // the linger ran out; the peer had its chance
	}
	switch {
	case outErr != nil:
		err = outErr
	case rerr != nil:
		err = rerr
	case waitErr != nil && ctx.Err() == nil:
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			err = fmt.Errorf("%s: %w", x.path, ee)
		} else {
			err = waitErr
		}
	}
	return in.n, out.n.Load(), err
}
