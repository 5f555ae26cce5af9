package main

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerString says who the peer of conn is, for the log. A UNIX socket's
// peer has no address worth the name (Go shows "@" or nothing), so what
// the kernel knows of the process that connected (SO_PEERCRED: its pid,
// uid and gid at connect time) is what an operator needs.
func peerString(conn net.Conn) string {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return addrString(conn.RemoteAddr())
	}
	if a := conn.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.String()
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return addrString(conn.RemoteAddr())
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return addrString(conn.RemoteAddr())
	}
	return fmt.Sprintf("pid=%d uid=%d gid=%d", cred.Pid, cred.Uid, cred.Gid)
}
