//go:build unix

package endpoint

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenQueued says whether a connection is waiting in ln's listen queue
// now, polling the socket without waiting; false if ln does not expose it.
func listenQueued(ln net.Listener) bool {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ready := false
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		ready = err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
	})
	return ready
}
