package endpoint

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

// The systemd and fd types' arguments; domain is both's.
var (
	sdDomainParam = driver.StringParam("domain",
		"address family the socket must have (INET, INET6 or UNIX); absent accepts any").Positional()
	sdIndexParam = driver.IntParam("index", "which passed socket: 0 is the first (fd 3); give index or name",
		0, math.MaxInt32).Positional()
	sdNameParam = driver.StringParam("name",
		"which passed socket, by its name in LISTEN_FDNAMES (FileDescriptorName=); give index or name")
	fdFilenoParam = driver.IntParam("fileno", "descriptor number of a listening stream socket this process inherited",
		0, math.MaxInt32).Positional().Required()
)

func init() {
	driver.RegisterServer(driver.ServerType{
		Spec: driver.Spec{
			Name: "systemd",
			Help: "listen on a socket passed by systemd socket activation (LISTEN_FDS)",
			Args: []driver.Arg{sdDomainParam.Required().Help("address family the socket must have: INET, INET6 or UNIX").Arg(),
				sdIndexParam.Arg(), sdNameParam.Arg()},
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
	driver.RegisterServer(driver.ServerType{
		Spec: driver.Spec{
			Name: "fd",
			Help: "listen on an inherited listening socket, by its descriptor number",
			Args: []driver.Arg{fdFilenoParam.Arg(), sdDomainParam.Arg()},
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

// errSDWrongDomain marks a socket of another address family than the one
// asked for, so that the error can name the domain argument.
var errSDWrongDomain = errors.New("wrong address family")

// argErrorWrap makes an *Error about one argument of a string being parsed.
func argErrorWrap(a *driver.Args, arg string, err error) error {
	return &Error{Op: "parse", Input: a.Input, Type: a.Spec.Name, Arg: arg, Value: a.Value(arg).Text, Err: err}
}

// sdReadDomain reads a domain= argument; 0 means absent.
func sdReadDomain(a *driver.Args) (int, error) {
	if sdDomainParam.Absent(a) {
		return 0, nil
	}
	d, ok := sdDomains[strings.ToUpper(sdDomainParam.Get(a))]
	if !ok {
		return 0, sdDomainParam.Errorf(a, "INET, INET6 or UNIX")
	}
	return d, nil
}
