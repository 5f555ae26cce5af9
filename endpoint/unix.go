package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The unix types' arguments, in Twisted's positional order.
var (
	unixAddressParam = StringParam("address", "path of the socket file, or @name for an abstract socket").
				Positional().Required()
	unixModeParam = ModeParam("mode", "permissions of the socket file, in octal").Positional().Default("666")
	unixLockParam = BoolParam("lockfile",
		"guard the socket with ADDRESS.lock (Twisted's lock: a symlink to the owner's PID)").Positional().Default("1")
	unixPathParam = StringParam("path", "path of the socket file, or @name for an abstract socket").
			Positional().Required()
	unixCheckPIDParam = BoolParam("checkPID", "refuse to connect unless a live process holds PATH.lock").
				Aliases("lockfile").Default("0")
)

func init() {
	RegisterServer(ServerType{
		Spec: Spec{
			Name: "unix",
			Help: "listen on a UNIX stream socket; @name is an abstract socket (Linux)",
			Args: []Arg{unixAddressParam.Arg(), unixModeParam.Arg(), backlogParam.Arg(), unixLockParam.Arg()},
			Notes: "With lockfile=1 a live owner of ADDRESS.lock makes Listen fail with EADDRINUSE and its socket " +
				"is left alone; a dead owner's lock and stale socket are taken over. Close removes the socket and " +
				"the lock before it returns, each only while it is still this listener's. The socket file gets exactly " +
				"mode, whatever the umask. On Linux bind makes it so, and nothing changes it through its path afterwards " +
				"(as Twisted's chmod after bind does), so that no one who can write to its directory can redirect that " +
				"change to another file with a link; elsewhere the mode is set after bind without following a link. " +
				"Listen and Close never follow a link at ADDRESS or ADDRESS.lock. " +
				"@name is an abstract socket (Twisted would make a file named @name).",
		},
		New: func(a *Args) (Server, error) {
			return &unixServer{
				path:    unixAddressParam.Get(a),
				mode:    unixModeParam.Get(a),
				backlog: backlogParam.Get(a),
				lock:    unixLockParam.Get(a),
			}, nil
		},
	})
	RegisterClient(ClientType{
		Spec: Spec{
			Name:  "unix",
			Help:  "connect to a UNIX stream socket; @name is an abstract socket (Linux)",
			Args:  []Arg{unixPathParam.Arg(), timeoutParam.Arg(), unixCheckPIDParam.Arg()},
			Notes: "checkPID=0 turns the check off; Twisted reads any checkPID= text, even 0, as on.",
		},
		New: func(a *Args) (Client, error) {
			return &unixClient{path: unixPathParam.Get(a), checkPID: unixCheckPIDParam.Get(a)}, nil
		},
	})
}

type unixServer struct {
	path    string
	mode    os.FileMode
	backlog int
	lock    bool
}

func abstract(path string) bool { return strings.HasPrefix(path, "@") }

func (s *unixServer) Listen(ctx context.Context) (net.Listener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: "unix", Addr: &net.UnixAddr{Name: s.path, Net: "unix"}, Err: err}
	}
	if abstract(s.path) {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.path, Net: "unix"})
		if err != nil {
			return nil, err
		}
		if err := setBacklog(ln, s.backlog); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	}
	if err := checkSocketMode(s.mode); err != nil {
		return nil, opErr(err)
	}
	ul := &unixListener{path: s.path}
	if s.lock {
		ul.lockPath = s.path + ".lock"
		clean, err := acquireLock(ul.lockPath)
		if err != nil {
			return nil, unixListenHint(opErr(err), s.path)
		}
		if !clean {
			// The lock's owner is dead; its socket, if it left one, is
			// stale. Only a socket is removed: anything else at the path
			// is not ours to delete, and bind will report it. Should the
			// entry change between the two calls, unlink still removes
			// only a name in the directory, never what a link points at.
			removeStaleSocket(s.path)
		}
	}
	ln, err := s.bindListen(ul)
	if err != nil {
		if ul.lockPath != "" {
			releaseLock(ul.lockPath)
		}
		return nil, unixListenHint(opErr(err), s.path)
	}
	ul.UnixListener = ln
	return ul, nil
}

// unixListenHint adds to a failed Listen what a person can do about the
// two failures that puzzle most: a directory that does not exist, and a
// file in the way that no lock explains (tether never removes a socket it
// cannot prove is stale, so it says how to).
func unixListenHint(err error, path string) error {
	dir := filepath.Dir(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
			return &Error{Op: "listen", Err: err, Hint: "the directory " + dir + " does not exist: create it first"}
		}
	case errors.Is(err, syscall.EADDRINUSE):
		if _, held := errors.AsType[*errLockHeld](err); held {
			return err // it says who holds the lock
		}
		c, derr := net.DialTimeout("unix", path, time.Second)
		if derr == nil {
			c.Close()
			return &Error{Op: "listen", Err: err, Hint: "a program is listening on " + path + " already"}
		}
		if errors.Is(derr, syscall.ECONNREFUSED) {
			return &Error{Op: "listen", Err: err, Hint: "a file is in the way: " + path + " is a socket nothing listens on, " +
				"left by a program that did not remove it; if that program is gone, remove the file (rm " + path +
				") and start again"}
		}
		return &Error{Op: "listen", Err: err, Hint: "a file is in the way at " + path + "; move it, or listen elsewhere"}
	}
	return err
}

// unixListener is a UNIX listener whose Close removes the socket file and
// then the lock file, in that order, before returning, so that a listener
// started after Close returns finds the address free.
type unixListener struct {
	*net.UnixListener
	path     string
	lockPath string
	sock     socketFileID // the socket file, once remember has found it
	known    bool
	once     sync.Once
	err      error
}

func (l *unixListener) Close() error {
	l.once.Do(func() {
		l.err = l.UnixListener.Close()
		l.removeSocket()
		if l.lockPath != "" {
			releaseLock(l.lockPath)
		}
	})
	return l.err
}

type unixClient struct {
	path     string
	checkPID bool
}

func (c *unixClient) Dial(ctx context.Context) (net.Conn, error) {
	if c.checkPID && !abstract(c.path) {
		held, err := lockHeld(c.path + ".lock")
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: c.path, Net: "unix"}, Err: err}
		}
		if !held {
			return nil, &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: c.path, Net: "unix"},
				Err: errorf(ErrNoLockOwner, nil, fmt.Sprintf("checkPID=1: no live process holds %s.lock", c.path))}
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	return conn, contextError(ctx, err)
}
