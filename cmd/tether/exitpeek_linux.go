package main

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// killedAtEnd reports whether p, whose output has just ended, has been
// killed by a signal, waiting up to within for it to exit. It looks with
// waitid's WNOWAIT, which leaves the process for exec.Cmd.Wait to reap: a
// program that closes its output and goes on running costs within once.
func killedAtEnd(p *os.Process, within time.Duration) bool {
	const cldKilled, cldDumped = 2, 3 // si_code of a child a signal ended
	deadline := time.Now().Add(within)
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, p.Pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err == nil && info.Signo == int32(unix.SIGCHLD) {
			return info.Code == cldKilled || info.Code == cldDumped
		}
		if err != nil && err != unix.EINTR || time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}
