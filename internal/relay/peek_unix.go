//go:build unix

package relay

import (
	"net"
	"os"
	"syscall"
)

// peekable returns the raw connection of a TCP or UNIX socket, which
// waitReadable can wait on, or nil for any other source.
func peekable(src net.Conn) syscall.RawConn {
	var rc syscall.RawConn
	switch s := src.(type) {
	case *net.TCPConn:
		rc, _ = s.SyscallConn()
	case *net.UnixConn:
		rc, _ = s.SyscallConn()
	}
	return rc
}

// waitReadable blocks until a read from the socket would not block: data,
// end of file or an error is waiting. It honours the read deadline. A
// pending socket error (a reset) is returned here: the kernel reports it
// once, and a read after the peek would see only end of file, so a reset
// would pass for a clean end.
func waitReadable(rc syscall.RawConn) error {
	var peek [1]byte
	var sockErr error
	err := rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EAGAIN:
			return false
		case nil, syscall.EINTR:
		default:
			sockErr = os.NewSyscallError("recvfrom", err)
		}
		return true
	})
	if err != nil {
		return err
	}
	return sockErr
}
