package endpoint

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

func init() {
	RegisterServer(ServerType{
		Spec: Spec{
			Name: "systemd",
			Help: "listen on a socket passed by systemd socket activation (LISTEN_FDS)",
			Args: []Arg{
				{Name: "domain", Positional: true, Kind: String, Required: true,
					Help: "address family the socket must have: INET, INET6 or UNIX"},
				{Name: "index", Positional: true, Kind: Int, Min: 0, Max: math.MaxInt32,
					Help: "which passed socket: 0 is the first (fd 3); give index or name"},
				{Name: "name", Kind: String,
					Help: "which passed socket, by its name in LISTEN_FDNAMES (FileDescriptorName=); give index or name"},
			},
			Notes: "Twisted's arguments (domain, index); name= is tether's, for sockets named with " +
				"FileDescriptorName= or systemd-socket-activate --fdname. LISTEN_PID, LISTEN_FDS and " +
				"LISTEN_FDNAMES are read once, when the first systemd: or fd: string is parsed, then removed from " +
				"the environment, and the passed descriptors are marked close-on-exec, so child processes inherit " +
				"neither. The same socket may be listened on any number of times: each Listen gets its own " +
				"duplicate of the descriptor, and closing it leaves the socket open for the others (and for " +
				"systemd, which holds it too). A socket of another domain, a datagram socket, or one that is not " +
				"listening is refused when the string is parsed.",
		},
		New: newSystemdServer,
	})
	RegisterServer(ServerType{
		Spec: Spec{
			Name: "fd",
			Help: "listen on an inherited listening socket, by its descriptor number",
			Args: []Arg{
				{Name: "fileno", Positional: true, Kind: Int, Required: true, Min: 0, Max: math.MaxInt32,
					Help: "descriptor number of a listening stream socket this process inherited"},
				{Name: "domain", Positional: true, Kind: String,
					Help: "address family the socket must have (INET, INET6 or UNIX); absent accepts any"},
			},
			Notes: "Twisted has no string form for its AdoptedStreamServerEndpoint; fd: takes its arguments " +
				"(fileno, and the address family as systemd:'s domain). As with systemd:, the descriptor is " +
				"marked close-on-exec when the string is parsed and each Listen gets a duplicate of it, so " +
				"closing the listener leaves the inherited socket open and it may be listened on again.",
		},
		New: newFDServer,
	})
}

// sdDomains are the address families a systemd: or fd: string may name, as
// Twisted names them (socket.AF_ + domain).
var sdDomains = map[string]int{"INET": syscall.AF_INET, "INET6": syscall.AF_INET6, "UNIX": syscall.AF_UNIX}

func sdDomainName(d int) string {
	for name, v := range sdDomains {
		if v == d {
			return name
		}
	}
	return "address family " + strconv.Itoa(d)
}

// sdListenFDsStart is the first descriptor systemd passes (SD_LISTEN_FDS_START).
const sdListenFDsStart = 3

// An sdPassedFD is one socket passed by socket activation.
type sdPassedFD struct {
	fd   int
	name string
}

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

// sdReadListenFDs reads the socket activation variables as sd_listen_fds
// does: they count only if LISTEN_PID is this process. Names missing from
// LISTEN_FDNAMES are "unknown", as systemd's library has them.
func sdReadListenFDs(getenv func(string) string, pid int) ([]sdPassedFD, string) {
	pidText, nText := getenv("LISTEN_PID"), getenv("LISTEN_FDS")
	if pidText == "" || nText == "" {
		return nil, "no sockets were passed: LISTEN_PID and LISTEN_FDS are not set (the program was not socket-activated)"
	}
	if p, err := strconv.Atoi(pidText); err != nil || p != pid {
		return nil, fmt.Sprintf("no sockets were passed to this process: LISTEN_PID=%s is not its PID %d", pidText, pid)
	}
	n, err := strconv.Atoi(nText)
	if err != nil || n < 0 || n > math.MaxInt32-sdListenFDsStart {
		return nil, fmt.Sprintf("no sockets were passed: LISTEN_FDS=%q is not a count", nText)
	}
	if n == 0 {
		return nil, "no sockets were passed: LISTEN_FDS=0"
	}
	var names []string
	if s := getenv("LISTEN_FDNAMES"); s != "" {
		names = strings.Split(s, ":")
	}
	fds := make([]sdPassedFD, n)
	for i := range fds {
		fds[i] = sdPassedFD{fd: sdListenFDsStart + i, name: "unknown"}
		if i < len(names) && names[i] != "" {
			fds[i].name = names[i]
		}
	}
	return fds, ""
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

// errSDWrongDomain marks a socket of another address family than the one
// asked for, so that the error can name the domain argument.
var errSDWrongDomain = errors.New("wrong address family")

// sdCheckListening says what is wrong with fd as a socket to accept on, or
// returns nil: it must be an open stream socket, listening, of the domain
// asked for (0 for any). what names the socket in messages.
func sdCheckListening(fd, domain int, what string) error {
	d, err := socketDomain(fd)
	switch {
	case errors.Is(err, syscall.EBADF):
		return errorf(ErrBadArgument, err, what+" is not open")
	case errors.Is(err, syscall.ENOTSOCK):
		return errorf(ErrBadArgument, err, what+" is not a socket")
	case err != nil:
		return errorf(ErrBadArgument, os.NewSyscallError("getsockopt", err), what+": cannot read its address family")
	case domain != 0 && d != domain:
		return errorf(ErrBadArgument, errSDWrongDomain, fmt.Sprintf("%s has address family %s, not %s",
			what, sdDomainName(d), sdDomainName(domain)))
	}
	if typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil || typ != syscall.SOCK_STREAM {
		return errorf(ErrBadArgument, err, what+" is not a stream socket (a datagram socket cannot be listened on)")
	}
	if acc, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || acc == 0 {
		return errorf(ErrBadArgument, err, what+" is not listening (SO_ACCEPTCONN is off)")
	}
	return nil
}

// argErrorWrap makes an *Error about one argument of a string being parsed.
func argErrorWrap(a *Args, arg string, err error) error {
	return &Error{Op: "parse", Input: a.Input, Type: a.Spec.Name, Arg: arg, Value: a.get(arg).Text, Err: err}
}

// sdReadDomain reads a domain= argument; 0 means absent.
func sdReadDomain(a *Args) (int, error) {
	if a.Absent("domain") {
		return 0, nil
	}
	d, ok := sdDomains[strings.ToUpper(a.String("domain"))]
	if !ok {
		return 0, a.Errorf("domain", "INET, INET6 or UNIX")
	}
	return d, nil
}

func newSystemdServer(a *Args) (Server, error) {
	domain, err := sdReadDomain(a)
	if err != nil {
		return nil, err
	}
	byIndex, byName := !a.Absent("index"), !a.Absent("name")
	switch {
	case !byIndex && !byName:
		return nil, argErrorWrap(a, "index", errorf(ErrBadArgument, nil, "missing: give index=N or name=NAME"))
	case byIndex && byName:
		return nil, argErrorWrap(a, "name", errorf(ErrBadArgument, nil, "given with index; give one of them"))
	}
	fds, none := sdPassedFDs()
	var (
		pick sdPassedFD
		arg  = "index"
	)
	if byIndex {
		i := a.Int("index")
		if i >= len(fds) {
			why := none
			if why == "" {
				why = fmt.Sprintf("%d sockets were passed (index 0-%d)", len(fds), len(fds)-1)
			}
			return nil, argErrorWrap(a, "index", errorf(ErrBadArgument, nil, "no such socket: "+why))
		}
		pick = fds[i]
	} else {
		arg = "name"
		name := a.String("name")
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
			return nil, argErrorWrap(a, "name", errorf(ErrBadArgument, nil, "no such socket: "+none))
		case len(matches) == 0:
			names := make([]string, len(fds))
			for i, f := range fds {
				names[i] = f.name
			}
			return nil, argErrorWrap(a, "name", errorf(ErrBadArgument, nil, fmt.Sprintf(
				"no socket of that name was passed (LISTEN_FDNAMES: %s)", strings.Join(names, ", "))))
		case len(matches) > 1:
			return nil, argErrorWrap(a, "name", errorf(ErrBadArgument, nil, fmt.Sprintf(
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
	return &inheritedServer{fd: pick.fd, domain: domain, what: what}, nil
}

func newFDServer(a *Args) (Server, error) {
	domain, err := sdReadDomain(a)
	if err != nil {
		return nil, err
	}
	fd := a.Int("fileno")
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
}

func (s *inheritedServer) Listen(ctx context.Context) (net.Listener, error) {
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
