package endpoint

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

func init() {
	RegisterServer(ServerType{
		Spec: Spec{
			Name: "unix",
			Help: "listen on a UNIX stream socket; @name is an abstract socket (Linux)",
			Args: []Arg{
				{Name: "address", Positional: true, Kind: String, Required: true,
					Help: "path of the socket file, or @name for an abstract socket"},
				{Name: "mode", Positional: true, Kind: Mode, Default: "666",
					Help: "permissions of the socket file, in octal"},
				backlogArg,
				{Name: "lockfile", Positional: true, Kind: Bool, Default: "1",
					Help: "guard the socket with ADDRESS.lock (Twisted's lock: a symlink to the owner's PID)"},
			},
			Notes: "With lockfile=1 a live owner of ADDRESS.lock makes Listen fail with EADDRINUSE and its socket " +
				"is left alone; a dead owner's lock and stale socket are taken over. Close removes the socket and " +
				"the lock before it returns. @name is an abstract socket (Twisted would make a file named @name).",
		},
		New: func(a *Args) (Server, error) {
			return &unixServer{
				path:    a.String("address"),
				mode:    a.Mode("mode"),
				backlog: a.Int("backlog"),
				lock:    a.Bool("lockfile"),
			}, nil
		},
	})
	RegisterClient(ClientType{
		Spec: Spec{
			Name: "unix",
			Help: "connect to a UNIX stream socket; @name is an abstract socket (Linux)",
			Args: []Arg{
				{Name: "path", Positional: true, Kind: String, Required: true,
					Help: "path of the socket file, or @name for an abstract socket"},
				timeoutArg,
				{Name: "checkPID", Aliases: []string{"lockfile"}, Kind: Bool, Default: "0",
					Help: "refuse to connect unless a live process holds PATH.lock"},
			},
			Notes: "checkPID=0 turns the check off; Twisted reads any checkPID= text, even 0, as on.",
		},
		New: func(a *Args) (Client, error) {
			return &unixClient{path: a.String("path"), timeout: a.Duration("timeout"), checkPID: a.Bool("checkPID")}, nil
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
	ul := &unixListener{path: s.path}
	if s.lock {
		ul.lockPath = s.path + ".lock"
		clean, err := acquireLock(ul.lockPath)
		if err != nil {
			return nil, opErr(err)
		}
		if !clean {
			// The lock's owner is dead; its socket, if it left one, is
			// stale. Only a socket is removed: anything else at the path
			// is not ours to delete, and bind will report it.
			if fi, err := os.Lstat(s.path); err == nil && fi.Mode().Type() == fs.ModeSocket {
				os.Remove(s.path)
			}
		}
	}
	ln, err := s.bindListen(ul)
	if err != nil {
		if ul.lockPath != "" {
			os.Remove(ul.lockPath)
		}
		return nil, opErr(err)
	}
	ul.UnixListener = ln
	return ul, nil
}

// bindListen makes the socket so that its file never has looser
// permissions than mode: on Linux, bind(2) creates the file with the
// socket's own mode less the umask, so fchmod before bind gives it mode or
// tighter from its first moment; chmod after bind then adds back what the
// umask took. Both happen before listen(2), until which no one can connect
// whatever the permissions (which is all that Twisted's chmod relies on).
func (s *unixServer) bindListen(ul *unixListener) (*net.UnixListener, error) {
	fd, err := unixSocket()
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), "unix:"+s.path)
	defer f.Close()
	if err := syscall.Fchmod(fd, uint32(s.mode)); err != nil {
		return nil, os.NewSyscallError("fchmod", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: s.path}); err != nil {
		return nil, os.NewSyscallError("bind", err)
	}
	var st syscall.Stat_t
	if err := syscall.Chmod(s.path, uint32(s.mode)); err != nil {
		os.Remove(s.path)
		return nil, os.NewSyscallError("chmod", err)
	}
	if err := syscall.Lstat(s.path, &st); err == nil {
		ul.dev, ul.ino = uint64(st.Dev), st.Ino
	}
	if err := syscall.Listen(fd, s.backlog); err != nil {
		os.Remove(s.path)
		return nil, os.NewSyscallError("listen", err)
	}
	fl, err := net.FileListener(f)
	if err != nil {
		os.Remove(s.path)
		return nil, err
	}
	ln := fl.(*net.UnixListener)
	ln.SetUnlinkOnClose(false) // Close removes the file itself, checking it is still ours
	return ln, nil
}

// unixListener is a UNIX listener whose Close removes the socket file and
// then the lock file, in that order, before returning, so that a listener
// started after Close returns finds the address free.
type unixListener struct {
	*net.UnixListener
	path     string
	lockPath string
	dev, ino uint64
	once     sync.Once
	err      error
}

func (l *unixListener) Close() error {
	l.once.Do(func() {
		l.err = l.UnixListener.Close()
		// Remove the file only if it is still the socket we made: another
		// process may have replaced it after taking over a lock we lost.
		var st syscall.Stat_t
		if err := syscall.Lstat(l.path, &st); err == nil && uint64(st.Dev) == l.dev && st.Ino == l.ino {
			os.Remove(l.path)
		}
		if l.lockPath != "" {
			if pid, _, err := lockOwner(l.lockPath); err == nil && pid == os.Getpid() {
				os.Remove(l.lockPath)
			}
		}
	})
	return l.err
}

type unixClient struct {
	path     string
	timeout  time.Duration
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
	ctx, cancel := withTimeoutArg(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	return conn, contextError(ctx, err)
}
