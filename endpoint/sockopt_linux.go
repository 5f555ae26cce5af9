package endpoint

import (
	"os"

	"golang.org/x/sys/unix"
)

// setSockOpts sets, on a socket about to bind or connect, the options Go
// has no field for.
func setSockOpts(fd uintptr, o sockOpts, listening bool) error {
	if o.userTimeout > 0 {
		if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(o.userTimeout.Milliseconds())); err != nil {
			return os.NewSyscallError("setsockopt TCP_USER_TIMEOUT", err)
		}
	}
	if listening && o.reusePort {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
		}
	}
	if listening && o.ipv6Only != 0 {
		v := 0
		if o.ipv6Only > 0 {
			v = 1
		}
		// Only an IPv6 socket has the option; on IPv4 it means nothing.
		if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v); err != nil && err != unix.ENOPROTOOPT && err != unix.EINVAL {
			return os.NewSyscallError("setsockopt IPV6_V6ONLY", err)
		}
	}
	return nil
}
