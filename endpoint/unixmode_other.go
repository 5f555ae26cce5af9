//go:build unix && !linux

package endpoint

import (
	"os"

	"golang.org/x/sys/unix"
)

// bindSocketFile binds the UNIX socket fd to path and gives the file
// exactly mode. created reports whether the file was made, so that a
// caller whose later steps fail removes it.
//
// These systems make the file with 0777 less the umask, whatever the
// socket's own mode, and have no umask per thread; so the mode is set after
// bind, before listen(2), until which no one can connect whatever the
// mode. AT_SYMLINK_NOFOLLOW makes that change a link put in the socket's
// place, never the link's target. What it cannot prevent: someone who can
// write to the socket's directory and hard-link a file of ours into it
// could swap that link in between bind and fchmodat. Linux, where this
// package is tested, does without any change by path (unixmode_linux.go).
func bindSocketFile(fd int, path string, mode os.FileMode) (created bool, err error) {
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return false, os.NewSyscallError("bind", err)
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, path, uint32(mode), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return true, os.NewSyscallError("fchmodat", err)
	}
	return true, nil
}

// chownSocketFile gives the socket file at path the owner uid and group
// gid (-1 leaves one as it is), without following a link there.
func chownSocketFile(path string, uid, gid int) error {
	if err := unix.Fchownat(unix.AT_FDCWD, path, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return os.NewSyscallError("fchownat", err)
	}
	return nil
}
