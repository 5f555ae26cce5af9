package endpoint

import "syscall"

// signalZero checks whether a process exists, as kill(pid, 0) does on
// Unix: it fails with ESRCH if there is none.
func signalZero(pid int) error {
	if processAlive(pid) {
		return nil
	}
	return syscall.ESRCH
}
