package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

// The unix types' arguments, in Twisted's positional order.
var (
	unixAddressParam = driver.StringParam("address", "path of the socket file, or @name for an abstract socket").
				Positional().Required()
	unixModeParam = driver.ModeParam("mode", "permissions of the socket file, in octal").Positional().Default("666")
	unixLockParam = driver.BoolParam("lockfile",
		"guard the socket with ADDRESS.lock (Twisted's lock: a symlink to the owner's PID)").Positional().Default("1")
	unixOwnerParam = driver.StringParam("owner",
		"user, by name or number, to own the socket file (systemd's SocketUser=); absent: this process's")
	unixGroupParam = driver.StringParam("group",
		"group, by name or number, of the socket file (systemd's SocketGroup=); absent: this process's")
	unixPathParam = driver.StringParam("path", "path of the socket file, or @name for an abstract socket").
			Positional().Required()
	unixCheckPIDParam = driver.BoolParam("checkPID", "refuse to connect unless a live process holds PATH.lock").
				Aliases("lockfile").Default("0")
)

func init() {
	driver.RegisterServer(driver.ServerType{
		Spec: driver.Spec{
			Name: "unix",
			Help: "listen on a UNIX stream socket; @name is an abstract socket (Linux)",
			Args: []driver.Arg{unixAddressParam.Arg(), unixModeParam.Arg(), backlogParam.Arg(), unixLockParam.Arg(),
				unixOwnerParam.Arg(), unixGroupParam.Arg()},
			Notes: "With lockfile=1 a live owner of ADDRESS.lock makes Listen fail with EADDRINUSE and its socket " +
				"is left alone; a dead owner's lock and stale socket are taken over, the socket only if it is this " +
				"process's user's and nothing listens on it (a lock is easily faked). Close removes the socket and " +
				"the lock before it returns, each only while it is still this listener's. The socket file gets exactly " +
				"mode, whatever the umask. On Linux bind makes it so, and nothing changes it through its path afterwards " +
				"(as Twisted's chmod after bind does), so that no one who can write to its directory can redirect that " +
				"change to another file with a link; elsewhere the mode is set after bind without following a link. " +
				"Listen and Close never follow a link at ADDRESS or ADDRESS.lock. " +
				"@name is an abstract socket (Twisted would make a file named @name).",
		},
		New: func(a *driver.Args) (driver.Server, error) {
			s := &unixServer{
				path:    unixAddressParam.Get(a),
				mode:    unixModeParam.Get(a),
				backlog: backlogParam.Get(a),
				lock:    unixLockParam.Get(a),
				uid:     -1,
				gid:     -1,
				inherit: a.Env.Inherit,
			}
			var err error
			if !unixOwnerParam.Absent(a) {
				if s.uid, err = lookupID(unixOwnerParam.Get(a), false); err != nil {
					return nil, unixOwnerParam.Errorf(a, "a user name or number known to this system")
				}
			}
			if !unixGroupParam.Absent(a) {
				if s.gid, err = lookupID(unixGroupParam.Get(a), true); err != nil {
					return nil, unixGroupParam.Errorf(a, "a group name or number known to this system")
				}
			}
			return s, nil
		},
	})
	driver.RegisterClient(driver.ClientType{
		Spec: driver.Spec{
			Name:  "unix",
			Help:  "connect to a UNIX stream socket; @name is an abstract socket (Linux)",
			Args:  []driver.Arg{unixPathParam.Arg(), timeoutParam.Arg(), unixCheckPIDParam.Arg()},
			Notes: "checkPID=0 turns the check off; Twisted reads any checkPID= text, even 0, as on.",
		},
		New: func(a *driver.Args) (driver.Client, error) {
			return &unixClient{path: unixPathParam.Get(a), checkPID: unixCheckPIDParam.Get(a)}, nil
		},
	})
}

// lookupID reads a user (or, with group, a group) given by name or number.
func lookupID(name string, group bool) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	var id string
	if group {
		g, err := user.LookupGroup(name)
		if err != nil {
			return 0, err
		}
		id = g.Gid
	} else {
		u, err := user.Lookup(name)
		if err != nil {
			return 0, err
		}
		id = u.Uid
	}
	return strconv.Atoi(id)
}

type unixServer struct {
	path     string
	mode     os.FileMode
	backlog  int
	lock     bool
	uid, gid int // the socket file's owner and group; -1 leaves them
	inherit  Inheritor
}

func abstract(path string) bool { return strings.HasPrefix(path, "@") }

func (s *unixServer) Listen(ctx context.Context) (net.Listener, error) {
	ln, inherited, err := inheritListen(s.inherit, "unix", s.path, s.listen)
	if err != nil || !inherited {
		return ln, err
	}
	// The previous process's socket, still listening: its file stays as
	// it is, and with it the lock, which is made to name this process.
	ul, ok := ln.(*net.UnixListener)
	if !ok || abstract(s.path) {
		return ln, nil
	}
	ul.SetUnlinkOnClose(false)
	l := &unixListener{UnixListener: ul, path: s.path, inherit: s.inherit}
	if s.lock {
		l.lockPath = s.path + ".lock"
		if err := takeOverLock(l.lockPath); err != nil {
			ul.Close()
			return nil, &net.OpError{Op: "listen", Net: "unix", Addr: &net.UnixAddr{Name: s.path, Net: "unix"}, Err: err}
		}
	}
	l.remember()
	return l, nil
}

// listen makes a new listening socket, as Listen does without an Inheritor.
func (s *unixServer) listen() (net.Listener, error) {
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
	ul := &unixListener{path: s.path, inherit: s.inherit}
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
		// Looked at, never connected to: the name may be a link that
		// someone else controls.
		fi, lerr := os.Lstat(path)
		switch listening, known := socketListening(path); {
		case lerr != nil || fi.Mode().Type() != fs.ModeSocket:
			return &Error{Op: "listen", Err: err, Hint: "a file that is not a socket is in the way at " + path +
				"; move it, or listen elsewhere"}
		case listening:
			return &Error{Op: "listen", Err: err, Hint: "a program is listening on " + path + " already"}
		case known:
			return &Error{Op: "listen", Err: err, Hint: "a file is in the way: " + path + " is a socket nothing listens on, " +
				"left by a program that did not remove it; if that program is gone, remove the file (rm " + path +
				") and start again"}
		}
		return &Error{Op: "listen", Err: err, Hint: "a socket file is in the way at " + path +
			"; if no program listens on it any more, remove the file (rm " + path + ") and start again"}
	}
	return err
}

// unixListener is a UNIX listener whose Close removes the socket file and
// then the lock file, in that order, before returning, so that a listener
// started after Close returns finds the address free; unless the socket has
// been handed on to a new process (see Inheritor), which serves it now.
type unixListener struct {
	*net.UnixListener
	path     string
	lockPath string
	inherit  Inheritor
	sock     socketFileID // the socket file, once remember has found it
	known    bool
	once     sync.Once
	err      error
}

func (l *unixListener) Close() error {
	l.once.Do(func() {
		l.err = l.UnixListener.Close()
		if l.inherit != nil && l.inherit.HandedOn() {
			return // the file and the lock are the new process's
		}
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
				Err: driver.WrapError(ErrNoLockOwner, nil, fmt.Sprintf("checkPID=1: no live process holds %s.lock", c.path))}
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	return conn, contextError(ctx, err)
}
