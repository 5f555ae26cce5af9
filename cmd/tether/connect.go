package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
)

func init() {
	register(&command{name: "connect", summary: "connect to an endpoint and join it to stdin and stdout, like netcat", run: runConnect})
}

const connectUsage = `Usage: tether connect [FLAGS] CONNECT

Connects to the client endpoint CONNECT, copies standard input to the
connection and the connection to standard output. The end of standard input
closes the connection's write half (the peer sees end of file) and the
connection stays open for the reply; tether exits when the peer has finished
sending.

  $ printf 'GET / HTTP/1.0\r\nHost: example.com\r\n\r\n' | tether connect tcp:example.com:80
  $ tether connect unix:/run/app.sock < request.bin > reply.bin
  $ tar c dir | tether connect 'tcp:[2001:db8::7]:9000:timeout=5'

--wait DURATION is for a server that is still starting: while connecting
fails because nothing is there yet (the connection is refused, a UNIX
socket's file does not exist yet, or with checkPID=1 no live process
holds its lock file yet), tether tries again, after 10ms at
first and then up to 250ms apart, until DURATION has passed; any other
failure ends it at once. Standard input is not read before the
connection is made. A script that starts a server in the background
waits for it so:

  $ tether serve tcp:7777:interface=127.0.0.1 &
  $ tether connect --wait 5s tcp:127.0.0.1:7777 < /dev/null   # returns once it listens

A stream that ends in error says which side failed and how: the peer
reset the connection, receiving from it or sending to it failed (a TLS
peer that ends without close_notify, say: its stream may have been cut),
or reading standard input or writing standard output did. The connection is
then reset, so that the peer does not take the cut stream for a whole one.
So it is when SIGINT, SIGTERM or SIGHUP stops tether (exit 128 plus the
signal's number, as if it had died of it), and when the peer finishes
while standard input is still being sent (tether exits 0: the peer did
not wait for the rest, and a peer that reads on learns it was cut).

insecureSkipVerify=1 in CONNECT (at any depth) is warned about on stderr.

Exit codes: 0 when the peer finished, 1 if connecting or the transfer
failed, 2 for bad usage or an endpoint string that does not parse.

Flags:
`

// Retrying with --wait: the first pause, and the longest.
const (
	waitFirstPause = 10 * time.Millisecond
	waitMaxPause   = 250 * time.Millisecond
)

func runConnect(e *env, args []string) int {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	wait := fs.Duration("wait", 0, "retry connecting while nothing listens there yet (refused, or no such socket file), for up to this `duration`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), connectUsage)
		fs.PrintDefaults()
	}
	pos, code, done := parseFlags(fs, args, e, nil)
	if done {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(e.stderr, "tether connect: want one CONNECT endpoint string (run tether connect --help)")
		return exitUsage
	}
	if *wait < 0 {
		fmt.Fprintf(e.stderr, "tether connect: --wait %v is negative\n", *wait)
		return exitUsage
	}
	cli, err := endpoint.ParseClient(pos[0])
	if err != nil {
		fmt.Fprintln(e.stderr, "tether connect:", err)
		return exitUsage
	}
	warnInsecure(e, "connect", pos[0])
	conn, err := dialWaiting(context.Background(), cli, *wait)
	if err != nil {
		fmt.Fprintln(e.stderr, "tether connect:", err)
		return exitFailure
	}
	defer conn.Close()
	var stopping atomic.Bool // a signal is being acted on
	if e.restartable {       // a process of its own, not a test's run
		defer abortOnSignal(e, conn, &stopping)()
	}

	sent := make(chan error, 1)
	var stdinFailed atomic.Bool
	go func() {
		readFailed, err := copyAttributed(conn, e.stdin, "reading standard input", "sending to the peer")
		if readFailed {
			// The stream is cut here: tell the peer now, which also
			// ends the receiving below.
			stdinFailed.Store(true)
			endpoint.Abort(conn)
		} else if err == nil {
			if err = closeWrite(conn); err != nil {
				err = sideError("sending to the peer", err)
			}
		}
		sent <- err
	}()
	_, err = copyAttributed(e.stdout, conn, "receiving from the peer", "writing to standard output")
	switch {
	case err != nil && stdinFailed.Load():
		err = <-sent // the cause, not the receiving it cut
	case err == nil:
		// The peer has finished. Standard input may still be open (the
		// peer did not wait for it), which is no failure of tether's; an
		// error in sending that has already happened is. But the peer
		// may be reading on (it only half-closed): what it got of
		// standard input is then cut, and is reset rather than ended
		// with a FIN that would pass for all of it.
		select {
		case err = <-sent:
		case <-time.After(stdinSettle):
			endpoint.Abort(conn)
		}
	}
	if err != nil && stopping.Load() {
		select {} // the failure is the signal's reset: it says so and exits
	}
	if err != nil {
		// The stream was cut: the peer must not take it for a whole one.
		endpoint.Abort(conn)
		fmt.Fprintln(e.stderr, "tether connect:", err)
		return exitFailure
	}
	return exitOK
}

// stdinSettle is how long connect waits, once the peer has finished, for
// the sending of standard input to finish too before it takes it for cut.
const stdinSettle = 50 * time.Millisecond

// abortOnSignal makes SIGINT, SIGTERM and SIGHUP reset conn before tether
// exits with 128 plus the signal's number, as it would have died of it
// (stopping is set first, for the copying that the reset fails to stay
// quiet):
// left to the system, the signal would end the process and the kernel
// close the socket with a FIN, which passes for the clean end of a
// stream cut mid-way. It returns the function that undoes it.
func abortOnSignal(e *env, conn net.Conn, stopping *atomic.Bool) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			stopping.Store(true)
			endpoint.Abort(conn)
			fmt.Fprintf(e.stderr, "tether connect: %v: the connection was reset\n", sig)
			code := 128 + 15
			if s, ok := sig.(syscall.Signal); ok {
				code = 128 + int(s)
			}
			os.Exit(code)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

// dialWaiting dials cli; with wait > 0 it dials again, after a pause that
// grows from waitFirstPause to waitMaxPause, while the dial fails because
// nothing is there yet (see notThereYet) and wait has not passed.
func dialWaiting(ctx context.Context, cli endpoint.Client, wait time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(wait)
	pause := waitFirstPause
	for tries := 1; ; tries++ {
		conn, err := cli.Dial(ctx)
		if err == nil || wait <= 0 || !notThereYet(err) {
			return conn, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("%w (still failing after --wait %v, %d attempts)", err, wait, tries)
		}
		select {
		case <-time.After(min(pause, left)):
		case <-ctx.Done():
			return nil, err
		}
		pause = min(2*pause, waitMaxPause)
	}
}

// notThereYet says whether a dial failed because the server is not there
// yet, as while it starts: the connection was refused (nothing listens on
// the port, or on the UNIX socket file left by an earlier run), the UNIX
// socket file does not exist yet, or (checkPID=1) no live process holds
// its lock file yet.
func notThereYet(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, endpoint.ErrNoLockOwner)
}

// copyAttributed copies src to dst until src ends, and says which of the
// two failed: a read error is about readWhat ("receiving from the peer"),
// a write error about writeWhat; readFailed tells them apart. A reset or a
// closed connection is said in words, not left to the system's error text
// alone.
func copyAttributed(dst io.Writer, src io.Reader, readWhat, writeWhat string) (readFailed bool, err error) {
	r := &errReader{r: src}
	w := &errWriter{w: dst}
	// The wrappers hide ReadFrom and WriteTo (splice, sendfile), which
	// would report an error of either side as the writer's.
	_, err = io.CopyBuffer(w, r, make([]byte, 32<<10))
	switch {
	case err == nil:
		return false, nil
	case r.err != nil:
		return true, sideError(readWhat, r.err)
	case w.err != nil:
		return false, sideError(writeWhat, w.err)
	}
	return false, err
}

// sideError describes err, which happened while doing what.
func sideError(what string, err error) error {
	peer := what == "receiving from the peer" || what == "sending to the peer"
	switch {
	case peer && errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("the peer reset the connection (%s): %w", what, err)
	case peer && errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("the peer closed the connection (%s): %w", what, err)
	}
	return fmt.Errorf("%s failed: %w", what, err)
}

type errReader struct {
	r   io.Reader
	err error // the read error, not io.EOF
}

func (r *errReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (w *errWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.err = err
	} else if n < len(p) {
		w.err = io.ErrShortWrite
		err = w.err
	}
	return n, err
}
