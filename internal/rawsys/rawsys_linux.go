// Package rawsys makes the system calls of the relay's event core and its
// lean path (docs/relay-core.md) without telling Go's scheduler, as Go's
// own poller makes epoll_wait. Only for calls that cannot block: every
// descriptor here is non-blocking, and every socket is closed without a
// lingering close.
//
// Why: a call made with syscall.Syscall marks its goroutine's P as in a
// system call. A connect on loopback runs the whole handshake in the
// calling thread and takes tens of microseconds, long enough for sysmon to
// take the P away and wake another thread for it; the caller then parks
// its thread when the call returns. Measured with the relay under
// load (bench/relay.sh's cps): 0.3 voluntary context switches per
// connection more, and sysmon waking every 20 µs instead of backing off to
// 10 ms. A raw call keeps its P, as haproxy's thread keeps its CPU.
package rawsys

import (
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

func errno(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// Read is read(2).
func Read(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), errno(e)
}

// Write is write(2).
func Write(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), errno(e)
}

// Splice is splice(2) with no offsets.
func Splice(in, out, n, flags int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), uintptr(flags))
	return int(r), errno(e)
}

// Close is close(2): of a socket without a lingering close (SO_LINGER
// off, or on with a time of 0, which resets at once), or a pipe.
func Close(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return errno(e)
}

// Shutdown is shutdown(2).
func Shutdown(fd, how int) error {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
	return errno(e)
}

// EpollCtl is epoll_ctl(2).
func EpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errno(e)
}

// EpollPoll is epoll_wait(2) with a timeout of 0: it takes the events
// that are ready and never waits.
func EpollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return int(r), errno(e)
}

// Socket is socket(2); typ should carry SOCK_NONBLOCK.
func Socket(domain, typ, proto int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(domain), uintptr(typ), uintptr(proto))
	return int(r), errno(e)
}

// SetsockoptInt is setsockopt(2) of an int.
func SetsockoptInt(fd, level, opt, v int) error {
	x := int32(v)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&x)), unsafe.Sizeof(x), 0)
	return errno(e)
}

// SetLingerZero sets SO_LINGER on with a time of 0: closing the socket
// then resets the connection.
func SetLingerZero(fd int) error {
	l := unix.Linger{Onoff: 1}
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER, uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
	return errno(e)
}

// GetsockoptInt is getsockopt(2) of an int (SO_ERROR).
func GetsockoptInt(fd, level, opt int) (int, error) {
	var x int32
	n := uint32(unsafe.Sizeof(x))
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&x)), uintptr(unsafe.Pointer(&n)), 0)
	return int(x), errno(e)
}

// A Sockaddr is an IPv4 or IPv6 socket address in the kernel's form,
// made once by NewSockaddr for many Connects.
type Sockaddr struct {
	raw unix.RawSockaddrAny
	len uint32
}

// NewSockaddr returns a's kernel form, and its address family.
func NewSockaddr(a netip.AddrPort) (*Sockaddr, int) {
	var s Sockaddr
	ip, port := a.Addr().Unmap(), a.Port()
	// The port is in network byte order.
	be := [2]byte{byte(port >> 8), byte(port)}
	if ip.Is4() {
		r := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.raw))
		r.Family = unix.AF_INET
		r.Port = *(*uint16)(unsafe.Pointer(&be))
		r.Addr = ip.As4()
		s.len = unix.SizeofSockaddrInet4
		return &s, unix.AF_INET
	}
	r := (*unix.RawSockaddrInet6)(unsafe.Pointer(&s.raw))
	r.Family = unix.AF_INET6
	r.Port = *(*uint16)(unsafe.Pointer(&be))
	r.Addr = ip.As16()
	s.len = unix.SizeofSockaddrInet6
	return &s, unix.AF_INET6
}

// Connect is connect(2); on a non-blocking socket it returns EINPROGRESS
// while the handshake goes on.
func Connect(fd int, sa *Sockaddr) error {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.raw)), uintptr(sa.len))
	return errno(e)
}

// Accept4 is accept4(2) on a non-blocking listening socket, returning the
// new connection's descriptor and its peer's address (the zero AddrPort
// for a family other than IPv4 and IPv6).
func Accept4(fd, flags int) (int, netip.AddrPort, error) {
	var raw unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&raw)), uintptr(unsafe.Pointer(&n)), uintptr(flags), 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, e
	}
	return int(r), addrPort(&raw), nil
}

func addrPort(raw *unix.RawSockaddrAny) netip.AddrPort {
	switch raw.Addr.Family {
	case unix.AF_INET:
		r := (*unix.RawSockaddrInet4)(unsafe.Pointer(raw))
		p := (*[2]byte)(unsafe.Pointer(&r.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(r.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		r := (*unix.RawSockaddrInet6)(unsafe.Pointer(raw))
		p := (*[2]byte)(unsafe.Pointer(&r.Port))
		// An IPv4 client of a dual-stack socket is shown as IPv4, as
		// Go's net shows it.
		ip := netip.AddrFrom16(r.Addr).Unmap()
		if r.Scope_id != 0 {
			ip = ip.WithZone(strconv.FormatUint(uint64(r.Scope_id), 10))
		}
		return netip.AddrPortFrom(ip, uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

// Send is send(2) (sendto with no address): with MSG_MORE, the bytes wait
// in the socket for what follows (a shutdown's FIN goes out with them).
func Send(fd int, p []byte, flags int) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), uintptr(flags), 0, 0)
	return int(n), errno(e)
}
