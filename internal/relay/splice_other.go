//go:build !linux

package relay

import (
	"net"
	"syscall"
)

// Elsewhere than Linux there is no splice(2): everything is buffered.

func spliceable(net.Conn) syscall.RawConn { return nil }

func spliceCopy(dst, src syscall.RawConn, clock *activity) (int64, bool, error) { return 0, true, nil }
