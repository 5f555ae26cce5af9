//go:build unix

package endpoint

import (
	"net"
	"syscall"
)

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
