//go:build unix

package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

// sdActivation holds what the environment said, read once: Twisted's
// ListenFDs.fromEnvironment, and sd_listen_fds_with_names(1).
var sdActivation struct {
	once sync.Once
	fds  []sdPassedFD
	// none says why there are no fds, for error messages.
	none string
}

// sdPassedFDs returns the sockets systemd passed to this process. The first
// call reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, marks the
// descriptors close-on-exec and unsets the variables, so that neither
// reaches a child process; later calls return the same answer.
func sdPassedFDs() ([]sdPassedFD, string) {
	sdActivation.once.Do(func() {
		sdActivation.fds, sdActivation.none = sdReadListenFDs(os.Getenv, os.Getpid())
		for _, f := range sdActivation.fds {
			syscall.CloseOnExec(f.fd)
		}
		for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			os.Unsetenv(v)
		}
	})
	return sdActivation.fds, sdActivation.none
}

// socketDomain returns a socket's address family, from its own address
// (SO_DOMAIN would do on Linux, but not elsewhere).
func socketDomain(fd int) (int, error) {
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return 0, err
	}
	switch sa.(type) {
	case *syscall.SockaddrInet4:
		return syscall.AF_INET, nil
	case *syscall.SockaddrInet6:
		return syscall.AF_INET6, nil
	case *syscall.SockaddrUnix:
		return syscall.AF_UNIX, nil
	}
	return 0, fmt.Errorf("address family of %T unknown", sa)
}

// sdCheckListening says what is wrong with fd as a socket to accept on, or
// returns nil: it must be an open stream socket, listening, of the domain
// asked for (0 for any). what names the socket in messages.
func sdCheckListening(fd, domain int, what string) error {
	d, err := socketDomain(fd)
	switch {
	case errors.Is(err, syscall.EBADF):
		return driver.WrapError(ErrBadArgument, err, what+" is not open")
	case errors.Is(err, syscall.ENOTSOCK):
		return driver.WrapError(ErrBadArgument, err, what+" is not a socket")
	case err != nil:
		return driver.WrapError(ErrBadArgument, os.NewSyscallError("getsockopt", err), what+": cannot read its address family")
	case domain != 0 && d != domain:
		return driver.WrapError(ErrBadArgument, errSDWrongDomain, fmt.Sprintf("%s has address family %s, not %s",
			what, sdDomainName(d), sdDomainName(domain)))
	}
	if typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil || typ != syscall.SOCK_STREAM {
		return driver.WrapError(ErrBadArgument, err, what+" is not a stream socket (a datagram socket cannot be listened on)")
	}
	if acc, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || acc == 0 {
		return driver.WrapError(ErrBadArgument, err, what+" is not listening (SO_ACCEPTCONN is off)")
	}
	return nil
}

func newSystemdServer(a *driver.Args) (driver.Server, error) {
	domain, err := sdReadDomain(a)
	if err != nil {
		return nil, err
	}
	byIndex, byName := !sdIndexParam.Absent(a), !sdNameParam.Absent(a)
	switch {
	case !byIndex && !byName:
		return nil, argErrorWrap(a, "index", driver.WrapError(ErrBadArgument, nil, "missing: give index=N or name=NAME"))
	case byIndex && byName:
		return nil, argErrorWrap(a, "name", driver.WrapError(ErrBadArgument, nil, "given with index; give one of them"))
	}
	fds, none := sdPassedFDs()
	// key names the socket to an Inheritor as the string chose it, which
	// the process that replaces this one parses again.
	key := "index=" + strconv.Itoa(sdIndexParam.Get(a))
	if byName {
		key = "name=" + sdNameParam.Get(a)
	}
	if in := a.Env.Inherit; len(fds) == 0 && in != nil && in.HasParent() {
		// Socket activation passed its sockets to the first process only;
		// this one gets the socket from the process it replaces.
		return &inheritedServer{fd: -1, domain: domain, what: "the passed socket " + key + " (handed on: " + none + ")",
			inherit: in, key: key}, nil
	}
	var (
		pick sdPassedFD
		arg  = "index"
	)
	if byIndex {
		i := sdIndexParam.Get(a)
		if i >= len(fds) {
			why := none
			if why == "" {
				why = fmt.Sprintf("%d sockets were passed (index 0-%d)", len(fds), len(fds)-1)
			}
			return nil, argErrorWrap(a, "index", driver.WrapError(ErrBadArgument, nil, "no such socket: "+why))
		}
		pick = fds[i]
	} else {
		arg = "name"
		name := sdNameParam.Get(a)
		var matches []sdPassedFD
		for _, f := range fds {
			if f.name == name && (domain == 0 || sdCheckListening(f.fd, domain, "") == nil) {
				matches = append(matches, f)
			}
		}
		if len(matches) == 0 {
			for _, f := range fds {
				if f.name == name {
					matches = append(matches, f) // of the wrong domain: checked below
				}
			}
		}
		switch {
		case len(matches) == 0 && none != "":
			return nil, argErrorWrap(a, "name", driver.WrapError(ErrBadArgument, nil, "no such socket: "+none))
		case len(matches) == 0:
			names := make([]string, len(fds))
			for i, f := range fds {
				names[i] = f.name
			}
			return nil, argErrorWrap(a, "name", driver.WrapError(ErrBadArgument, nil, fmt.Sprintf(
				"no socket of that name was passed (LISTEN_FDNAMES: %s)", strings.Join(names, ", "))))
		case len(matches) > 1:
			return nil, argErrorWrap(a, "name", driver.WrapError(ErrBadArgument, nil, fmt.Sprintf(
				"%d passed sockets have that name; choose one with index= (fds %d and %d are indexes %d and %d)",
				len(matches), matches[0].fd, matches[1].fd, matches[0].fd-sdListenFDsStart, matches[1].fd-sdListenFDsStart)))
		}
		pick = matches[0]
	}
	what := fmt.Sprintf("the passed socket %d (fd %d, named %q)", pick.fd-sdListenFDsStart, pick.fd, pick.name)
	if err := sdCheckListening(pick.fd, domain, what); err != nil {
		if errors.Is(err, errSDWrongDomain) {
			arg = "domain"
		}
		return nil, argErrorWrap(a, arg, err)
	}
	return &inheritedServer{fd: pick.fd, domain: domain, what: what, inherit: a.Env.Inherit, key: key}, nil
}

func newFDServer(a *driver.Args) (driver.Server, error) {
	domain, err := sdReadDomain(a)
	if err != nil {
		return nil, err
	}
	fd := fdFilenoParam.Get(a)
	what := "fd " + strconv.Itoa(fd)
	if err := sdCheckListening(fd, domain, what); err != nil {
		arg := "fileno"
		if errors.Is(err, errSDWrongDomain) {
			arg = "domain"
		}
		return nil, argErrorWrap(a, arg, err)
	}
	// A child process must not inherit it (each Listen's duplicate is
	// close-on-exec too).
	syscall.CloseOnExec(fd)
	return &inheritedServer{fd: fd, domain: domain, what: what}, nil
}

// inheritedServer listens on a socket that the process was given already
// listening: each Listen returns a listener on a duplicate of it.
type inheritedServer struct {
	fd     int
	domain int
	what   string
	// inherit and key, for a systemd: server, hand the socket on to a
	// process that replaces this one (see Inheritor).
	inherit Inheritor
	key     string
}

func (s *inheritedServer) Listen(ctx context.Context) (net.Listener, error) {
	if s.key == "" {
		return s.listen()
	}
	ln, _, err := inheritListen(s.inherit, "systemd", s.key, s.listen)
	return ln, err
}

func (s *inheritedServer) listen() (net.Listener, error) {
	opErr := func(err error) error { return &net.OpError{Op: "listen", Net: "fd", Err: err} }
	// Checked again: the descriptor may have been closed since parsing.
	if err := sdCheckListening(s.fd, s.domain, s.what); err != nil {
		return nil, opErr(err)
	}
	dup, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(s.fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return nil, opErr(os.NewSyscallError("fcntl", errno))
	}
	f := os.NewFile(dup, s.what)
	defer f.Close() // FileListener has its own duplicate
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, opErr(err)
	}
	return ln, nil
}
