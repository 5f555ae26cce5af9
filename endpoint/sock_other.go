//go:build unix && !linux

package endpoint

import "syscall"

// unixSocket makes a UNIX stream socket, close-on-exec and non-blocking.
// Without SOCK_CLOEXEC, ForkLock keeps a fork from inheriting it between
// the two calls, as the net package does on these systems.
func unixSocket() (int, error) {
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}
