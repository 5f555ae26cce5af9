package relay

import (
	"net"
	"syscall"
)

// peekable returns nil on Windows: a socket there is read through
// overlapped I/O, with no readiness to wait for (a zero-byte or MSG_PEEK
// receive would have to be issued as I/O of its own), so every source is
// copied as a non-socket one is: with a buffer held for as long as the copy
// lasts.
func peekable(net.Conn) syscall.RawConn { return nil }

// waitReadable is never called on Windows, where peekable returns nil.
func waitReadable(syscall.RawConn) error { return nil }
