package endpoint

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Setting a socket file's mode by its path after bind(2) is a race: whoever
// can write to the socket's directory can put a symbolic link (or another
// file) in the socket's place between the two calls, and the chmod then
// changes that file, with this process's rights. So on Linux the file is
// born with the mode asked for: bind creates it with the socket inode's mode
// less the umask, so a socket fchmod'ed to mode and bound under a zero umask
// needs nothing done to its path afterwards. The umask belongs to the whole
// process, and other goroutines create files meanwhile, so the zero umask is
// set on a thread of its own (see bindBornExact).
//
// Container runtimes' default seccomp profiles refuse unshare(2) to a
// process without CAP_SYS_ADMIN. Then the file is born with mode less the
// process's umask, never looser than mode, and what the umask took is added
// back through a descriptor of the file itself, opened without following
// links and checked to be the socket this process just made (see fixMode).

// unshareFS gives the calling thread a umask, root and working directory of
// its own. A test replaces it to take the path that container seccomp
// profiles force.
var unshareFS = func() error { return unix.Unshare(unix.CLONE_FS) }

// errNoThreadUmask says that this thread cannot have a umask of its own.
var errNoThreadUmask = errors.New("unshare(CLONE_FS) refused")

// bindSocketFile binds the UNIX socket fd to path and leaves the file there
// with exactly mode. It never follows a symbolic link at path, and changes
// no file but a socket of this process's user. created reports whether the
// file was made, so that a caller whose later steps fail removes it.
func bindSocketFile(fd int, path string, mode os.FileMode) (created bool, err error) {
	err = bindBornExact(fd, path, mode)
	if !errors.Is(err, errNoThreadUmask) {
		return err == nil, err
	}
	if err := unix.Fchmod(fd, uint32(mode)); err != nil {
		return false, os.NewSyscallError("fchmod", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return false, os.NewSyscallError("bind", err)
	}
	return true, fixMode(path, mode)
}

// bindBornExact binds fd to path under a zero umask, so that the file is
// created with the socket's own mode, set to mode just before. It returns
// errNoThreadUmask, having done nothing, when the thread cannot have a
// umask apart from the process's.
func bindBornExact(fd int, path string, mode os.FileMode) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unshareFS(); err != nil {
			// Nothing about the thread has changed: it may serve other
			// goroutines again.
			runtime.UnlockOSThread()
			done <- fmt.Errorf("%w: %w", errNoThreadUmask, err)
			return
		}
		// From here on the thread's umask is its own, and is about to be
		// zero: no other goroutine may ever run on it. There is
		// deliberately no UnlockOSThread: a goroutine that exits while
		// locked to its thread makes the runtime end the thread. Threads
		// the runtime starts while this one is locked are cloned from a
		// clean template thread, so none inherits this umask.
		unix.Umask(0)
		if err := unix.Fchmod(fd, uint32(mode)); err != nil {
			done <- os.NewSyscallError("fchmod", err)
			return
		}
		done <- os.NewSyscallError("bind", unix.Bind(fd, &unix.SockaddrUnix{Name: path}))
	}()
	return <-done
}

// fixMode gives the socket file this process just bound at path exactly
// mode, when the umask took bits from it. It opens path with O_PATH and
// O_NOFOLLOW, so that it holds whatever is there now and never a link's
// target, checks that this is a socket owned by this process's user (a
// file put there by someone else is left alone, and is an error), and
// changes the mode of that very inode.
func fixMode(path string, mode os.FileMode) error {
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("open", err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s was replaced right after bind by something that is not this process's socket: its mode is left alone", path)
	}
	if st.Nlink != 1 {
		// A hard link to another socket of this user (root's, say) put
		// at the path: the file just bound has one name only.
		return fmt.Errorf("%s was replaced right after bind by a file with %d names, not the socket just bound: its mode is left alone", path, st.Nlink)
	}
	if os.FileMode(st.Mode&0o7777) == mode {
		return nil
	}
	// fchmodat2 (Linux 6.6) changes an O_PATH descriptor's file itself.
	err = unix.Fchmodat(pfd, "", uint32(mode), unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		// Older kernels: the /proc link of a descriptor leads to the
		// file the descriptor holds, wherever its name now points.
		err = unix.Chmod("/proc/self/fd/"+strconv.Itoa(pfd), uint32(mode))
	}
	if err != nil {
		return fmt.Errorf("setting mode %04o on %s through its descriptor (unshare(CLONE_FS) was refused, so the umask could not be set aside): %w",
			mode, path, err)
	}
	return nil
}

// chownSocketFile gives the socket file this process just bound at path
// the owner uid and group gid (-1 leaves one as it is), through a
// descriptor of the file itself, opened without following links and
// checked to be a socket of this process's user: never a file someone put
// in its place.
func chownSocketFile(path string, uid, gid int) error {
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("open", err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || int(st.Uid) != os.Geteuid() || st.Nlink != 1 {
		return fmt.Errorf("%s was replaced right after bind by something that is not this process's socket: its owner is left alone", path)
	}
	if err := unix.Fchownat(pfd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return os.NewSyscallError("fchownat", err)
	}
	return nil
}
