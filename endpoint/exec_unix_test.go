//go:build unix

package endpoint

import "syscall"

// signalZero checks whether a process exists, as kill(pid, 0) does: it
// fails with ESRCH if there is none.
func signalZero(pid int) error { return syscall.Kill(pid, 0) }
