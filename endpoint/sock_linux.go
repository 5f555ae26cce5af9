package endpoint

import "syscall"

// unixSocket makes a UNIX stream socket, close-on-exec and non-blocking
// from the start.
func unixSocket() (int, error) {
	return syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
}
