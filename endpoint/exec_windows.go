package endpoint

import "syscall"

// execSysProcAttr is nil on Windows: there are no process groups to stop
// together there (a job object would be the nearest thing, and is not
// used), so the program is started as an ordinary child. What it starts in
// turn is not stopped with it, and a console's Ctrl-C reaches it as well
// as tether.
func execSysProcAttr() *syscall.SysProcAttr { return nil }

// signal stops the program. Windows cannot send another process SIGTERM
// (os.Process.Signal supports only os.Kill there), so the gentle first
// step of Close is the same as the last: Process.Kill, which is
// TerminateProcess, at once.
func (c *ExecConn) signal(syscall.Signal) {
	const name = "TerminateProcess"
	c.signalled.Store(name)
	c.log.Debug("exec: stopping program", "signal", name)
	c.cmd.Process.Kill()
}
