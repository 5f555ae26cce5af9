package endpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/pathguard"
)

// The exec client's arguments.
var (
	execArgvParam = driver.ListParam("argv", "the program and its arguments, one per segment (no shell is involved)").Required()
	// Secret: the environment is where programs are given their
	// passwords and tokens, so its values are hidden wherever the string is
	// shown (describe, logs, errors).
	execEnvParam = driver.StringParam("env",
		"variables to set, NAME=VALUE separated by ','; a backslash makes the next character literal").Secret()
	execDirParam = driver.StringParam("dir", "directory to run the program in; absent means the current one").Aliases("path")
)

func init() {
	driver.RegisterClient(driver.ClientType{
		Spec: driver.Spec{
			Name: "exec",
			Help: "run a program and talk to it over its standard input and output",
			Args: []driver.Arg{execArgvParam.Arg(), execEnvParam.Arg(), execDirParam.Arg()},
			Notes: "Twisted's ProcessEndpoint, which has no string form there. `exec:sh:-c:sort | uniq` runs " +
				"sh with the arguments -c and `sort | uniq`; the program is found on PATH when the string is " +
				"parsed, and refused if another user could change it (by the rule of the TLS types' files: it, the " +
				"directories and links on its path owned by root or tether's user, writable by no one else; " +
				"an interpreter it names with #! and what a shell it runs looks up are not checked). A relative " +
				"program or dir= is taken from the working directory at parse, not at Dial. A ':' or '=' inside an argument must be escaped (`\\:`, `\\=`) or the argument put in " +
				"brackets. The program inherits tether's environment (without the socket activation variables) " +
				"with env= added: `env=LANG=C,TZ=UTC`, or `env=[PATH=/bin:/usr/bin,LANG=C]` (brackets spare the " +
				"escaping of ':'); a ',' inside a value is written `\\\\,` (one backslash for the string, one for " +
				"env). dir= (alias path=, Twisted's name) is the working directory. The connection is the " +
				"program's standard input and output; CloseWrite closes its standard input; its standard error " +
				"is logged line by line. The end of its output reads as io.EOF, unless a signal killed it: then " +
				"as an error, since the output may be cut short (tether relay resets its peer). Close stops the program if it is still running, with SIGTERM to its " +
				"process group and SIGKILL two seconds later, and returns its exit status: an error wrapping " +
				"*exec.ExitError unless it exited 0 (the connection is an *endpoint.ExecConn, whose Wait and " +
				"ProcessState say more). Cancelling the context during Dial stops the program; once Dial has " +
				"returned, as for every client, the context no longer matters.",
		},
		New: newExecClient,
	})
}

// execGrace is how long a program is given to exit between the steps of
// stopping it: after its output ended, after SIGTERM.
const execGrace = 2 * time.Second

type execClient struct {
	argv  []string
	path  string   // the program, as found on PATH
	env   []string // NAME=VALUE to add
	dir   string
	log   *slog.Logger  // where the program's standard error goes, line by line
	grace time.Duration // 0: execGrace
}

func newExecClient(a *driver.Args) (driver.Client, error) {
	c := &execClient{argv: execArgvParam.Get(a), dir: execDirParam.Get(a), log: execLogger(a.Env)}
	if c.argv[0] == "" {
		return nil, argErrorWrap(a, "argv", driver.WrapError(ErrBadArgument, nil, "the program (the first argument) is empty"))
	}
	if !execEnvParam.Absent(a) {
		env, err := parseExecEnv(execEnvParam.Get(a))
		if err != nil {
			return nil, argErrorWrap(a, "env", driver.WrapError(ErrBadArgument, nil, err.Error()))
		}
		c.env = env
	}
	if c.dir != "" {
		if fi, err := os.Stat(c.dir); err != nil || !fi.IsDir() {
			return nil, execDirParam.Errorf(a, "a directory")
		}
	}
	// A relative dir= or program is taken from the working directory of
	// now, as it is checked now, not of whenever Dial runs. The names are
	// joined as the kernel will resolve them: filepath.Join would take
	// "link/.." away as text, where the kernel follows the link first.
	var err error
	fromWD := func(name string) (string, error) {
		wd, err := os.Getwd()
		if err != nil {
			return "", argErrorWrap(a, "argv", driver.WrapError(ErrBadArgument, err, "the working directory: "+err.Error()))
		}
		return wd + "/" + name, nil
	}
	if c.dir != "" && !filepath.IsAbs(c.dir) {
		if c.dir, err = fromWD(c.dir); err != nil {
			return nil, err
		}
	}
	prog := c.argv[0]
	if strings.Contains(prog, "/") && !filepath.IsAbs(prog) {
		if c.dir != "" {
			prog = c.dir + "/" + prog // the program is run from dir
		} else if prog, err = fromWD(prog); err != nil {
			return nil, err
		}
	}
	path, err := exec.LookPath(prog)
	if err != nil {
		return nil, argErrorWrap(a, "argv", driver.WrapError(ErrBadArgument, err, fmt.Sprintf("%q: %v", c.argv[0], errors.Unwrap(err))))
	}
	if _, why := pathguard.Check(path, false); why != "" {
		return nil, argErrorWrap(a, "argv", driver.WrapError(ErrBadArgument, nil,
			fmt.Sprintf("the program %s can be changed by other users, so it is not run: %s", path, why)))
	}
	c.path = path
	return c, nil
}

// parseExecEnv reads an env= value: NAME=VALUE entries separated by ',',
// with a backslash making the next character literal and brackets around
// the whole value ignored. Empty entries are skipped.
func parseExecEnv(s string) ([]string, error) {
	if len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	var (
		out []string
		cur strings.Builder
		// nameEnd is where the first unescaped '=' of cur is, or -1.
		nameEnd = -1
	)
	flush := func() error {
		entry := cur.String()
		cur.Reset()
		defer func() { nameEnd = -1 }()
		if entry == "" {
			return nil
		}
		if nameEnd <= 0 {
			return fmt.Errorf("entry %q is not NAME=VALUE", entry)
		}
		if strings.ContainsRune(entry, 0) {
			return fmt.Errorf("entry %q contains a NUL byte", entry)
		}
		out = append(out, entry)
		return nil
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("ends with a lone backslash")
			}
			i++
			if s[i] == '=' && nameEnd < 0 {
				return nil, fmt.Errorf("a variable name may not contain '=' (%q)", cur.String()+"=")
			}
			cur.WriteByte(s[i])
		case c == ',':
			if err := flush(); err != nil {
				return nil, err
			}
		case c == '=' && nameEnd < 0:
			nameEnd = cur.Len()
			cur.WriteByte(c)
		default:
			cur.WriteByte(c)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// execEnviron is the environment a program starts with: ours, without the
// socket activation variables (they describe this process's descriptors,
// not the child's), and then env, whose entries win.
func execEnviron(env []string) []string {
	var out []string
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES":
			continue
		}
		out = append(out, kv)
	}
	return append(out, env...)
}

func (c *execClient) Dial(ctx context.Context) (net.Conn, error) {
	addr := execAddr{name: filepath.Base(c.argv[0])}
	opErr := func(err error) error { return &net.OpError{Op: "dial", Net: "exec", Addr: addr, Err: err} }
	var files []*os.File // every pipe end, for closing on failure
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		files = append(files, r, w)
		return r, w, err
	}
	closeAll := func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}
	inR, inW, err1 := pipe()
	outR, outW, err2 := pipe()
	errR, errW, err3 := pipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		closeAll()
		return nil, opErr(err)
	}
	cmd := &exec.Cmd{
		Path:   c.path,
		Args:   c.argv,
		Env:    execEnviron(c.env),
		Dir:    c.dir,
		Stdin:  inR,
		Stdout: outW,
		Stderr: errW,
		// Its own process group where there are such (see
		// execSysProcAttr).
		SysProcAttr: execSysProcAttr(),
	}
	if err := ctx.Err(); err != nil {
		closeAll()
		return nil, opErr(err)
	}
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, opErr(err)
	}
	// The child has its ends; ours would keep its input open and hide the
	// end of its output.
	inR.Close()
	outW.Close()
	errW.Close()
	addr.pid = cmd.Process.Pid
	log := c.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("program", addr.name, "pid", addr.pid)
	grace := c.grace
	if grace <= 0 {
		grace = execGrace
	}
	conn := &ExecConn{
		cmd: cmd, stdin: inW, stdout: outR, stderr: errR, addr: addr, grace: grace, log: log,
		exited: make(chan struct{}), stderrDone: make(chan struct{}),
	}
	go conn.wait()
	go conn.logStderr()
	if err := ctx.Err(); err != nil {
		conn.Close()
		return nil, opErr(err)
	}
	return conn, nil
}

// execAddr is the address of a program's connection: its name and PID.
type execAddr struct {
	name string
	pid  int
}

func (a execAddr) Network() string { return "exec" }
func (a execAddr) String() string  { return fmt.Sprintf("%s[%d]", a.name, a.pid) }

// ExecConn is the connection an exec: client returns: the standard input
// and output of a running program. Beyond net.Conn it has CloseWrite, which
// closes the program's standard input, and Wait, Pid and ProcessState,
// which tell of the program itself.
type ExecConn struct {
	cmd                   *exec.Cmd
	stdin, stdout, stderr *os.File
	addr                  execAddr
	grace                 time.Duration
	log                   *slog.Logger

	sawEOF     atomic.Bool   // the program's output has ended
	signalled  atomic.Value  // string: the signal tether sent, if any
	exited     chan struct{} // closed once waitErr is set
	waitErr    error
	stderrDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

func (c *ExecConn) wait() {
	err := c.cmd.Wait()
	if err != nil {
		c.log.Debug("exec: program ended", "status", c.cmd.ProcessState.String())
	}
	c.waitErr = err
	close(c.exited)
}

// logStderr logs the program's standard error line by line; a line longer
// than the buffer is logged in pieces.
func (c *ExecConn) logStderr() {
	defer close(c.stderrDone)
	r := bufio.NewReaderSize(c.stderr, 4096)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			c.log.Info("exec: stderr", "line", strings.TrimRight(string(line), "\r\n"))
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// Read reads the program's standard output. Its end is io.EOF, unless the
// program was killed by a signal as it ended (its output may have been
// cut short, so it is not passed on as complete): then an error saying
// so.
func (c *ExecConn) Read(p []byte) (int, error) {
	n, err := c.stdout.Read(p)
	if err == io.EOF && !c.sawEOF.Load() {
		if kerr := c.killedAtEnd(); kerr != nil {
			return n, &net.OpError{Op: "read", Net: "exec", Addr: c.addr, Err: kerr}
		}
		c.sawEOF.Store(true)
	}
	return n, pipeError("read", "exec", c.addr, err)
}

// execEndWait is how long the end of a program's output waits for the
// program to exit, to learn whether a signal killed it. A program that
// closes its output and goes on running costs this much once.
const execEndWait = 50 * time.Millisecond

// killedAtEnd returns an error if the program, whose output has just
// ended, was killed by a signal that tether did not send.
func (c *ExecConn) killedAtEnd() error {
	t := time.NewTimer(execEndWait)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		return nil // still running: it closed its output itself
	}
	if _, ours := c.signalled.Load().(string); ours || c.cmd.ProcessState == nil {
		return nil
	}
	if ws, ok := c.cmd.ProcessState.Sys().(interface {
		Signaled() bool
		Signal() syscall.Signal
	}); ok && ws.Signaled() {
		return fmt.Errorf("the program was killed by signal %v: its output may be cut short", ws.Signal())
	}
	return nil
}

// Write writes to the program's standard input.
func (c *ExecConn) Write(p []byte) (int, error) {
	n, err := c.stdin.Write(p)
	return n, pipeError("write", "exec", c.addr, err)
}

// CloseWrite closes the program's standard input: it reads end of file.
func (c *ExecConn) CloseWrite() error {
	err := c.stdin.Close()
	if errors.Is(err, os.ErrClosed) {
		err = nil
	}
	return pipeError("close", "exec", c.addr, err)
}

// Close closes the program's standard input and stops the program if it
// is still running: when its output has already ended it is given a moment
// to exit by itself; otherwise, or after that moment, its process group is
// sent SIGTERM, and SIGKILL if it is still running a moment later. Close
// returns when the program has exited, with Wait's error: nil if it exited
// with status 0.
func (c *ExecConn) Close() error {
	c.closeOnce.Do(func() {
		c.stdin.Close()
		if !c.sawEOF.Load() {
			c.stdout.Close() // as a pipe's reader going away would: EPIPE
		}
		if !c.exitedWithin(0) && (!c.sawEOF.Load() || !c.exitedWithin(c.grace)) {
			c.signal(syscall.SIGTERM)
			if !c.exitedWithin(c.grace) {
				c.signal(syscall.SIGKILL)
				<-c.exited
			}
		}
		c.stdout.Close()
		// Standard error ends when the program and whatever it started
		// have closed it; something that escaped the process group may
		// hold it open, so do not wait long.
		select {
		case <-c.stderrDone:
		case <-time.After(c.grace):
			c.stderr.Close()
			<-c.stderrDone
		}
		c.stderr.Close()
		if err := c.Wait(); err != nil {
			c.closeErr = &net.OpError{Op: "close", Net: "exec", Addr: c.addr, Err: err}
		}
	})
	return c.closeErr
}

func (c *ExecConn) exitedWithin(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-c.exited:
			return true
		default:
			return false
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.exited:
		return true
	case <-t.C:
		return false
	}
}

// Wait waits for the program to exit, without stopping it, and returns
// nil if it exited with status 0, or else an error wrapping the
// *exec.ExitError, which says that tether stopped it if it did.
func (c *ExecConn) Wait() error {
	<-c.exited
	if c.waitErr == nil {
		return nil
	}
	if sig, ok := c.signalled.Load().(string); ok {
		return fmt.Errorf("%w (stopped by tether with %s after Close)", c.waitErr, sig)
	}
	return c.waitErr
}

// Pid returns the program's process ID.
func (c *ExecConn) Pid() int { return c.addr.pid }

// ProcessState returns the program's exit state, or nil while it runs.
func (c *ExecConn) ProcessState() *os.ProcessState {
	select {
	case <-c.exited:
		return c.cmd.ProcessState
	default:
		return nil
	}
}

// LocalAddr and RemoteAddr both name the program and its PID.
func (c *ExecConn) LocalAddr() net.Addr { return c.addr }

// RemoteAddr names the program and its PID, as "cat[1234]".
func (c *ExecConn) RemoteAddr() net.Addr { return c.addr }

// SetDeadline sets the read and write deadlines.
func (c *ExecConn) SetDeadline(t time.Time) error {
	if err := c.stdout.SetReadDeadline(t); err != nil {
		return err
	}
	return c.stdin.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline for reading the program's output.
func (c *ExecConn) SetReadDeadline(t time.Time) error { return c.stdout.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for writing the program's input.
func (c *ExecConn) SetWriteDeadline(t time.Time) error { return c.stdin.SetWriteDeadline(t) }
