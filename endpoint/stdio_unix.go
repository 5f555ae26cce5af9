//go:build unix

package endpoint

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pollable returns a file that reads and writes what f does through Go's
// poller, or f itself; dup says which. Standard input and output come
// blocking from inetd, systemd and shell pipelines, and Go reads a
// blocking descriptor in a thread of its own: no deadline can be set (the
// PROXY header's, the handshake's, the relay's idle timeout, timeout=) and
// neither Close nor SIGTERM interrupts a Read, so a peer that sent nothing
// held the process for ever. For a socket or a pipe, f's descriptor is
// duplicated and the duplicate put in non-blocking mode, which Go's poller
// then watches. The mode belongs to the open file that the descriptors
// share, and so to any other holder: see stdioRelease, which puts it back.
// A terminal (shared with the shell), a regular file (which cannot be
// polled), and a file that standard error also writes to (whose log lines
// would then fail with EAGAIN when it is full) are left as they are.
func pollable(f *os.File) (g *os.File, dup bool) {
	if f.SetDeadline(time.Time{}) == nil {
		return f, false // Go polls it already
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&(os.ModeSocket|os.ModeNamedPipe) == 0 || sameOpenFile(f, os.Stderr) {
		return f, false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return f, false
	}
	d := -1
	rc.Control(func(fd uintptr) {
		nd, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return
		}
		if unix.SetNonblock(nd, true) != nil {
			unix.Close(nd)
			return
		}
		d = nd
	})
	if d < 0 {
		return f, false
	}
	return os.NewFile(uintptr(d), f.Name()), true
}

// sameOpenFile says whether a and b are one socket or one pipe (inetd and
// systemd hand over one socket as standard input and output), whose mode
// is one for both.
func sameOpenFile(a, b *os.File) bool {
	fa, erra := a.Stat()
	fb, errb := b.Stat()
	return erra == nil && errb == nil && os.SameFile(fa, fb)
}

// blockingAgain puts f's open file back in blocking mode, for whoever else
// holds it once tether is done with it.
func blockingAgain(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.SetNonblock(int(fd), false) })
	}
}

// setSocketAddrs gives c the addresses of its input when that is a socket:
// under inetd or systemd's Accept=yes, standard input is the connection's
// socket, and its addresses are the ones worth logging.
func setSocketAddrs(c *stdioConn) {
	if rc, err := c.in.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if sa, err := syscall.Getpeername(int(fd)); err == nil {
				if a := sockaddrToAddr(sa); a != nil {
					c.remote = a
				}
			}
			if sa, err := syscall.Getsockname(int(fd)); err == nil {
				if a := sockaddrToAddr(sa); a != nil {
					c.local = a
				}
			}
		})
	}
}

// setStdioLinger sets SO_LINGER on f if it is a stream socket; an error
// otherwise.
func setStdioLinger(f *os.File, sec int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if typ, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
			serr = errors.New("standard input is not a stream socket: no reset can be sent")
			return
		}
		l := &unix.Linger{Onoff: 1, Linger: int32(sec)}
		if sec < 0 {
			l = &unix.Linger{}
		}
		serr = os.NewSyscallError("setsockopt", unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, l))
	}); err != nil {
		return err
	}
	return serr
}

// sockaddrToAddr makes a net.Addr of a stream socket's address.
func sockaddrToAddr(sa syscall.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	case *syscall.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}
