package endpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

// Windows 10 (1803) and later have UNIX stream sockets, and Go's net
// package makes them. What Windows cannot do that the Unix code does:
//
//   - A socket file has no permission bits: who may connect is decided by
//     the ACL it inherits from its directory. So mode= is refused unless it
//     is the default 666, which asks for nothing the directory does not
//     already allow.
//   - The socket cannot be made, bound and listened on by hand and then
//     handed to the net package (net.FileListener does not exist there), so
//     net.ListenUnix binds and listens, and its backlog is the system's
//     maximum whatever backlog= says (Windows ignores a second listen).
//   - Files have no owner ID to compare with this process's, so a socket
//     file at the path is remembered as this listener's whoever owns it.

// unixDefaultMode is unix:'s default mode, the only one Windows accepts.
const unixDefaultMode os.FileMode = 0o666

// socketFileID identifies a socket file by what os.Lstat said of it: for a
// socket (a reparse point) that holds the volume serial number and file
// index, which os.SameFile compares.
type socketFileID struct{ fi os.FileInfo }

// checkSocketMode refuses any mode but the default, which Windows cannot
// give a socket file.
func checkSocketMode(mode os.FileMode) error {
	if mode == unixDefaultMode {
		return nil
	}
	return driver.WrapError(errors.ErrUnsupported, nil, fmt.Sprintf(
		"mode=%03o: not supported on windows, where a socket file has no permission bits and gets the ACL of its directory (leave mode at 666)",
		mode))
}

// removeStaleSocket removes the file at path if it is a socket. Lstat and
// DeleteFile act on the reparse point itself, never on what a link there
// points at.
func removeStaleSocket(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
		syscall.Unlink(path)
	}
}

// bindListen binds and listens with the net package, and leaves removing
// the socket file to the listener's Close, which checks that it is still
// this listener's.
func (s *unixServer) bindListen(ul *unixListener) (*net.UnixListener, error) {
	if s.uid >= 0 || s.gid >= 0 {
		return nil, fmt.Errorf("owner= and group= are not supported on windows, where a socket file has an ACL: %w", errors.ErrUnsupported)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	ul.remember()
	return ln, nil
}

// remember notes which file at path is the socket just bound, so that
// removeSocket deletes that one and no other: if something else than a
// socket is there already, someone replaced ours, and nothing will be
// removed.
func (l *unixListener) remember() {
	if fi, err := os.Lstat(l.path); err == nil && fi.Mode().Type() == fs.ModeSocket {
		l.sock, l.known = socketFileID{fi}, true
	}
}

// removeSocket removes the socket file if path still names it: another
// process may have replaced it after taking over a lock we lost.
func (l *unixListener) removeSocket() {
	if !l.known {
		return
	}
	if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.sock.fi) {
		syscall.Unlink(l.path)
	}
}
