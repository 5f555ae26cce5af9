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
// poller, with the function that releases what it took, to be called
// once the file returned is closed; or f itself and nil. Standard input
// and output come blocking from inetd, systemd and shell pipelines, and Go
// reads a blocking descriptor in a thread of its own: no deadline can be
// set (the PROXY header's, the handshake's, the relay's idle timeout,
// timeout=) and neither Close nor SIGTERM interrupts a Read, so a peer
// that sent nothing held the process for ever. For a socket or a pipe, f's
// descriptor is duplicated and the duplicate put in non-blocking mode,
// which Go's poller then watches. The mode belongs to the open file that
// both descriptors share, and so to any process that holds it too: the
// release puts blocking mode back, then closes f. A terminal (shared with
// the shell) and a regular file (which cannot be polled) are left as they
// are.
func pollable(f *os.File) (*os.File, func() error) {
	if f.SetDeadline(time.Time{}) == nil {
		return f, nil // Go polls it already
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return f, nil
	}
	dup := -1
	rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(fd), &st) != nil {
			return
		}
		if t := st.Mode & unix.S_IFMT; t != unix.S_IFSOCK && t != unix.S_IFIFO {
			return
		}
		if d, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); err == nil {
			if unix.SetNonblock(d, true) != nil {
				unix.Close(d)
				return
			}
			dup = d
		}
	})
	if dup < 0 {
		return f, nil
	}
	g := os.NewFile(uintptr(dup), f.Name())
	return g, func() error {
		rc.Control(func(fd uintptr) { unix.SetNonblock(int(fd), false) })
		return f.Close()
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
