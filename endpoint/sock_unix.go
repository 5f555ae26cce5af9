//go:build unix

package endpoint

import "syscall"

// relisten calls listen(2) again on the listening socket fd, which sets its
// backlog on the systems where it can be changed this way.
func relisten(fd uintptr, backlog int) error { return syscall.Listen(int(fd), backlog) }
