//go:build unix

package endpoint

import (
	"errors"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"
)

// socketFileID identifies a socket file by its device and inode.
type socketFileID struct{ dev, ino uint64 }

// checkSocketMode accepts every mode: a socket file gets exactly the one
// asked for (see bindListen).
func checkSocketMode(os.FileMode) error { return nil }

// removeStaleSocket removes the file at path if it is a socket of this
// process's user that nothing listens on, looking at the name itself and
// never through a link. The lock that called it stale may be a fake: in a
// shared directory anyone can make PATH.lock name a dead process, and root
// could otherwise delete another user's live socket (which the sticky bit
// keeps that user's own) and take its clients. What is left in place,
// bind reports as in use, with how to remove it.
func removeStaleSocket(path string) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK || int(st.Uid) != os.Geteuid() {
		return
	}
	if listening, _ := socketListening(path); listening || connectProbe(path) {
		return
	}
	syscall.Unlink(path)
}

// connectProbe says whether something listens on the socket file at path
// as a connection attempt finds it: only a refusal, every time, says no.
// The kernel's table (socketListening) does not know every listener: it
// lists those of this network namespace alone (a container that shares
// the directory has its own), and by the name they were bound with (a
// relative one is not matched); and elsewhere than Linux there is no
// table. A listener with a full backlog refuses too on the BSDs (on Linux
// it makes the attempt wait), so there the attempt is made three times,
// 20 ms apart. A live server sees a connection that closes at once.
func connectProbe(path string) bool {
	tries := 3
	if runtime.GOOS == "linux" {
		tries = 1
	}
	for i := range tries {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return true
		}
	}
	return false
}

// bindListen binds and listens, leaving the socket file with exactly the
// mode asked for and no looser at any moment that matters: until listen(2)
// no one can connect, whatever the permissions (which is all that Twisted's
// chmod after bind relies on). It never changes the file through its path
// after bind, which whoever can write to the directory could by then have
// pointed at another file (see bindSocketFile).
func (s *unixServer) bindListen(ul *unixListener) (*net.UnixListener, error) {
	fd, err := unixSocket()
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), "unix:"+s.path)
	defer f.Close()
	created, err := bindSocketFile(fd, s.path, s.mode)
	if created {
		ul.remember()
	}
	if err == nil && (s.uid >= 0 || s.gid >= 0) {
		// Before listen(2): no one can connect until the file is as asked.
		err = chownSocketFile(s.path, s.uid, s.gid)
	}
	if err != nil {
		ul.removeSocket()
		return nil, err
	}
	if err := syscall.Listen(fd, s.backlog); err != nil {
		ul.removeSocket()
		return nil, os.NewSyscallError("listen", err)
	}
	fl, err := net.FileListener(f)
	if err != nil {
		ul.removeSocket()
		return nil, err
	}
	ln := fl.(*net.UnixListener)
	ln.SetUnlinkOnClose(false) // Close removes the file itself, checking it is still ours
	return ln, nil
}

// remember notes which file at path is the socket just bound, so that
// removeSocket deletes that one and no other. Only a socket of this
// process's user counts: if something else is there already, someone
// replaced ours, and nothing will be removed.
func (l *unixListener) remember() {
	var st syscall.Stat_t
	if err := syscall.Lstat(l.path, &st); err == nil &&
		st.Mode&syscall.S_IFMT == syscall.S_IFSOCK && int(st.Uid) == os.Geteuid() {
		l.sock, l.known = socketFileID{dev: uint64(st.Dev), ino: st.Ino}, true
	}
}

// removeSocket removes the socket file if path still names it: another
// process may have replaced it after taking over a lock we lost. Lstat and
// unlink look at the name itself, never through a link; an entry swapped in
// between them is only unlinked from a directory its swapper can write to.
func (l *unixListener) removeSocket() {
	if !l.known {
		return
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(l.path, &st); err == nil && uint64(st.Dev) == l.sock.dev && st.Ino == l.sock.ino {
		syscall.Unlink(l.path)
	}
}
