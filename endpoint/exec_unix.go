//go:build unix

package endpoint

import "syscall"

// execSysProcAttr puts the program in a process group of its own, so that
// stopping it stops what it started (sh -c 'a | b') and a terminal's Ctrl-C
// reaches tether, which then stops it in order.
func execSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func (c *ExecConn) signal(sig syscall.Signal) {
	name := map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL"}[sig]
	c.signalled.Store(name)
	c.log.Debug("exec: stopping program", "signal", name)
	// The group first; if that fails (the leader has left it), the
	// program itself.
	if err := syscall.Kill(-c.addr.pid, sig); err != nil {
		c.cmd.Process.Signal(sig)
	}
}
