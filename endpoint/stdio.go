package endpoint

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

func init() {
	driver.RegisterServer(driver.ServerType{
		Spec: driver.Spec{
			Name: "stdio",
			Help: "one connection made of standard input and standard output (inetd-style)",
			Notes: "Twisted's stdio: takes no arguments. The listener's first Accept returns the connection; " +
				"later ones wait until the listener is closed, which closing the connection also does, and then " +
				"fail with net.ErrClosed: a server on stdio: ends with its one connection (tether relay stdio: " +
				"tcp:host:port exits when the relayed connection is done). CloseWrite closes " +
				"standard output, Close both. When standard input is a socket (inetd, systemd Accept=yes), " +
				"RemoteAddr and LocalAddr are that socket's addresses. Standard input and output can be taken " +
				"once per process, by this server or the stdio client. A socket or a pipe there is read and " +
				"written in non-blocking mode (restored when the connection closes), so that deadlines, " +
				"timeouts and Close work on it as on a TCP connection; a terminal or a file is used as it is, " +
				"and a Read of it waits for its input.",
		},
		New: func(*driver.Args) (driver.Server, error) { return &stdioServer{}, nil },
	})
	driver.RegisterClient(driver.ClientType{
		Spec: driver.Spec{
			Name: "stdio",
			Help: "connect to standard input and standard output, for pipelines",
			Notes: "Not in Twisted, whose stdio: is a server only. Dial returns a connection that reads " +
				"standard input and writes standard output; it can be made once per process.",
		},
		New: func(*driver.Args) (driver.Client, error) { return &stdioClient{}, nil },
	})
}

// stdioFiles returns the files a stdio endpoint uses: in and out, or the
// process's standard input and output when they are nil (tests set them).
func stdioFiles(in, out *os.File) (*os.File, *os.File) {
	if in == nil {
		in = os.Stdin
	}
	if out == nil {
		out = os.Stdout
	}
	return in, out
}

// stdioTaken records the input files that a stdio endpoint has taken: two
// readers of one standard input would each get part of it.
var stdioTaken struct {
	sync.Mutex
	files map[*os.File]bool
}

func takeStdio(in *os.File, take bool) error {
	stdioTaken.Lock()
	defer stdioTaken.Unlock()
	if !take {
		delete(stdioTaken.files, in)
		return nil
	}
	if stdioTaken.files[in] {
		return errors.New("standard input and output are already taken by another stdio: endpoint")
	}
	if stdioTaken.files == nil {
		stdioTaken.files = map[*os.File]bool{}
	}
	stdioTaken.files[in] = true
	return nil
}

type stdioServer struct {
	in, out *os.File // nil: os.Stdin, os.Stdout
}

func (s *stdioServer) Listen(ctx context.Context) (net.Listener, error) {
	in, out := stdioFiles(s.in, s.out)
	if err := takeStdio(in, true); err != nil {
		return nil, &net.OpError{Op: "listen", Net: "stdio", Err: err}
	}
	l := &stdioListener{conn: newStdioConn(in, out), closed: make(chan struct{})}
	l.conn.onClose = func() { l.Close() }
	return l, nil
}

// stdioListener hands out its one connection; when that connection is
// closed the listener closes too, so that a server on stdio: (tether relay
// stdio: ..., inetd style) ends with its one connection.
type stdioListener struct {
	conn   *stdioConn
	mu     sync.Mutex
	given  bool
	closed chan struct{}
	once   sync.Once
}

func (l *stdioListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	select {
	case <-l.closed:
	default:
		if !l.given {
			l.given = true
			l.mu.Unlock()
			return l.conn, nil
		}
	}
	l.mu.Unlock()
	<-l.closed
	return nil, &net.OpError{Op: "accept", Net: "stdio", Addr: l.Addr(), Err: net.ErrClosed}
}

// Close wakes a waiting Accept. A connection already accepted stays open;
// one never accepted gives standard input and output back.
func (l *stdioListener) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		close(l.closed)
		if !l.given {
			takeStdio(l.conn.in, false)
		}
		l.mu.Unlock()
	})
	return nil
}

func (l *stdioListener) Addr() net.Addr { return l.conn.LocalAddr() }

type stdioClient struct {
	in, out *os.File // nil: os.Stdin, os.Stdout
}

func (c *stdioClient) Dial(ctx context.Context) (net.Conn, error) {
	in, out := stdioFiles(c.in, c.out)
	if err := takeStdio(in, true); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "stdio", Err: err}
	}
	return newStdioConn(in, out), nil
}

// stdioAddr is the address of a stdio connection whose input is not a
// socket, as Twisted's PipeAddress is.
type stdioAddr struct{}

func (stdioAddr) Network() string { return "stdio" }
func (stdioAddr) String() string  { return "stdio" }

// stdioConn is a connection made of two files: it reads one and writes the
// other. Closing it closes both.
type stdioConn struct {
	in, out       *os.File
	local, remote net.Addr
	inOnce        sync.Once
	outOnce       sync.Once
	inErr, outErr error
	onClose       func() // the listener's Close, for a server's connection
	// inDone and outDone, when not nil, release what pollable took for
	// in and out: they close the files given, once in and out are.
	inDone, outDone func() error
}

func newStdioConn(in, out *os.File) *stdioConn {
	c := &stdioConn{local: stdioAddr{}, remote: stdioAddr{}}
	var dupIn, dupOut bool
	c.in, dupIn = pollable(in)
	c.out, dupOut = pollable(out)
	c.inDone, c.outDone = stdioRelease(in, out, dupIn, dupOut)
	setSocketAddrs(c)
	return c
}

// stdioRelease returns what closing each half does once its non-blocking
// duplicate is closed (see pollable): close the file given, after putting
// its open file back in blocking mode. When one socket is both standard
// input and output, the mode goes back only when both halves are closed:
// a half-close (CloseWrite) must not leave the other half's reads
// blocking in the kernel, past every deadline.
func stdioRelease(in, out *os.File, dupIn, dupOut bool) (inDone, outDone func() error) {
	shared := dupIn && dupOut && sameOpenFile(in, out)
	var left atomic.Int32
	left.Store(2)
	release := func(f *os.File, dup bool) func() error {
		if !dup {
			return nil
		}
		return func() error {
			if !shared || left.Add(-1) == 0 {
				blockingAgain(f)
			}
			return f.Close()
		}
	}
	return release(in, dupIn), release(out, dupOut)
}

// pipeError makes the errors of a closed file read as a closed network
// connection's, so that callers' errors.Is(err, net.ErrClosed) holds.
func pipeError(op, network string, addr net.Addr, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if errors.Is(err, os.ErrClosed) {
		err = net.ErrClosed
	}
	return &net.OpError{Op: op, Net: network, Addr: addr, Err: err}
}

func (c *stdioConn) Read(p []byte) (int, error) {
	n, err := c.in.Read(p)
	return n, pipeError("read", "stdio", c.remote, err)
}

func (c *stdioConn) Write(p []byte) (int, error) {
	n, err := c.out.Write(p)
	return n, pipeError("write", "stdio", c.remote, err)
}

func (c *stdioConn) closeIn() error {
	c.inOnce.Do(func() { c.inErr = closeStdio(c.in, c.inDone) })
	return c.inErr
}

func (c *stdioConn) closeOut() error {
	c.outOnce.Do(func() { c.outErr = closeStdio(c.out, c.outDone) })
	return c.outErr
}

// closeStdio closes f, then what pollable took for it.
func closeStdio(f *os.File, done func() error) error {
	err := f.Close()
	if done != nil {
		if derr := done(); err == nil {
			err = derr
		}
	}
	return err
}

// CloseWrite closes standard output, so that whoever reads it sees the end.
func (c *stdioConn) CloseWrite() error {
	return pipeError("close", "stdio", c.remote, c.closeOut())
}

// Close closes standard input and output. A Read of a terminal or a
// regular file cannot be interrupted; it returns when its input does. A
// socket or a pipe is read through Go's poller (see pollable), so Close
// interrupts its Read, and deadlines work.
func (c *stdioConn) Close() error {
	errIn, errOut := c.closeIn(), c.closeOut()
	if c.onClose != nil {
		c.onClose()
	}
	if errIn == nil {
		errIn = errOut
	}
	return pipeError("close", "stdio", c.remote, errIn)
}

// SetLinger sets SO_LINGER on standard input's socket, as
// net.TCPConn.SetLinger does, so that Abort resets a connection handed
// over by inetd or systemd (Accept=yes) instead of ending it with a FIN
// that passes for a clean end. Input that is not a socket (a pipe, a
// terminal) has no such option: the error says so, and Abort reports the
// cut as unsignalled.
func (c *stdioConn) SetLinger(sec int) error {
	if err := setStdioLinger(c.in, sec); err != nil {
		return &net.OpError{Op: "set", Net: "stdio", Addr: c.remote, Err: err}
	}
	return nil
}

func (c *stdioConn) LocalAddr() net.Addr  { return c.local }
func (c *stdioConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines; files that do not support deadlines
// (a terminal, a regular file) report os.ErrNoDeadline.
func (c *stdioConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *stdioConn) SetReadDeadline(t time.Time) error  { return c.in.SetReadDeadline(t) }
func (c *stdioConn) SetWriteDeadline(t time.Time) error { return c.out.SetWriteDeadline(t) }
