//go:build linux

package endpoint

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/internal/testpeer"
)

func TestSystemdReadListenFDs(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name string
		env  func(string) string
		want []sdPassedFD
		none string
	}{
		{"unset", env(), nil, "not set"},
		{"other pid", env("LISTEN_PID", "1", "LISTEN_FDS", "2"), nil, "LISTEN_PID=1 is not its PID 42"},
		{"bad count", env("LISTEN_PID", "42", "LISTEN_FDS", "x"), nil, `LISTEN_FDS="x" is not a count`},
		{"zero", env("LISTEN_PID", "42", "LISTEN_FDS", "0"), nil, "LISTEN_FDS=0"},
		{"unnamed", env("LISTEN_PID", "42", "LISTEN_FDS", "2"), []sdPassedFD{{3, "unknown"}, {4, "unknown"}}, ""},
		{"named", env("LISTEN_PID", "42", "LISTEN_FDS", "3", "LISTEN_FDNAMES", "web:web:admin"),
			[]sdPassedFD{{3, "web"}, {4, "web"}, {5, "admin"}}, ""},
		{"too few names", env("LISTEN_PID", "42", "LISTEN_FDS", "2", "LISTEN_FDNAMES", "web"),
			[]sdPassedFD{{3, "web"}, {4, "unknown"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fds, none := sdReadListenFDs(tt.env, 42)
			if !reflect.DeepEqual(fds, tt.want) || (tt.none == "") != (none == "") || !strings.Contains(none, tt.none) {
				t.Fatalf("got %v, %q; want %v, %q", fds, none, tt.want, tt.none)
			}
		})
	}
}

// TestSystemdParse covers what is checked before any socket is looked at.
// This test process was not socket-activated, so every index is missing.
func TestSystemdParse(t *testing.T) {
	for in, msg := range map[string]string{
		"systemd:domain=INET":                    `index: missing: give index=N or name=NAME`,
		"systemd:INET:0:name=web":                `name: given with index; give one of them`,
		"systemd:domain=PACKET:index=0":          `domain "PACKET" is not INET, INET6 or UNIX`,
		"systemd:index=0":                        `domain: missing (required)`,
		"systemd:INET:-1":                        `index "-1" is not a whole number of at least 0`,
		"systemd:domain=INET:index=0":            `index: no such socket: no sockets were passed: LISTEN_PID and LISTEN_FDS are not set`,
		"systemd:domain=UNIX:name=web":           `name: no such socket: no sockets were passed`,
		"fd:x":                                   `fileno "x" is not a whole number`,
		"fd:3:domain=inet7":                      `domain "inet7" is not INET, INET6 or UNIX`,
		"fd:1000000":                             `fileno: fd 1000000 is not open`,
		"fd:fileno=1000000:domain=INET":          `fileno: fd 1000000 is not open`,
		"fd:" + strconv.Itoa(int(os.Stdin.Fd())): `fileno: fd 0 is not a socket`,
	} {
		_, err := ParseServer(in)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrBadArgument) || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseServer(%q) = %v; want an *Error wrapping ErrBadArgument saying %q", in, err, msg)
		}
	}
	if got, want := describe(t, "server", "systemd:INET:1"), `{"role":"server","type":"systemd","args":{"domain":"INET","index":1,"name":null}}`; got != want {
		t.Errorf("describe: got %s, want %s", got, want)
	}
	if got, want := describe(t, "server", "systemd:domain=UNIX:name=web"), `{"role":"server","type":"systemd","args":{"domain":"UNIX","index":null,"name":"web"}}`; got != want {
		t.Errorf("describe: got %s, want %s", got, want)
	}
}

// fdOf returns the descriptor number of a duplicate of ln's socket, open
// until the test ends.
func fdOf(t *testing.T, ln interface{ File() (*os.File, error) }) int {
	t.Helper()
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

func cloexec(t *testing.T, fd int) bool {
	t.Helper()
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	return flags&syscall.FD_CLOEXEC != 0
}

func TestFDServer(t *testing.T) {
	tl, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	fd := fdOf(t, tl)
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFD, 0) // as a parent would pass it
	srv, err := ParseServer(fmt.Sprintf("fd:%d:domain=INET", fd))
	if err != nil {
		t.Fatal(err)
	}
	if !cloexec(t, fd) {
		t.Error("fd: left the descriptor without close-on-exec")
	}
	// Listened on twice: closing one listener leaves the other working.
	ln1 := listenServer(t, srv)
	ln2 := listenServer(t, srv)
	if ln1.Addr().String() != tl.Addr().String() {
		t.Fatalf("Addr %s, want %s", ln1.Addr(), tl.Addr())
	}
	ln1.Close()
	peers := echoOnce(t, ln2)
	c, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	if p := <-peers; p.String() != c.LocalAddr().String() {
		t.Errorf("peer %v, want %v", p, c.LocalAddr())
	}
	ln2.Close()

	// The wrong domain, a socket that is not listening, a pipe, a UNIX
	// socket adopted.
	if _, err := ParseServer(fmt.Sprintf("fd:%d:UNIX", fd)); err == nil || !strings.Contains(err.Error(),
		fmt.Sprintf(`domain: fd %d has address family INET, not UNIX`, fd)) {
		t.Errorf("wrong domain: %v", err)
	}
	s, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(s)
	if _, err := ParseServer(fmt.Sprintf("fd:%d", s)); err == nil || !strings.Contains(err.Error(), "is not listening") {
		t.Errorf("unlistening socket: %v", err)
	}
	u, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(u)
	if _, err := ParseServer(fmt.Sprintf("fd:%d", u)); err == nil || !strings.Contains(err.Error(), "is not a stream socket") {
		t.Errorf("datagram socket: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := ParseServer(fmt.Sprintf("fd:%d", r.Fd())); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("pipe: %v", err)
	}
	r.Close()

	path := filepath.Join(t.TempDir(), "s.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	uln := listen(t, fmt.Sprintf("fd:%d:domain=UNIX", fdOf(t, ul)))
	peers = echoOnce(t, uln)
	uc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, uc)
	<-peers
	uln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("closing an adopted UNIX listener removed the socket file: %v", err)
	}

	// A descriptor closed after parsing is reported by Listen.
	tl2, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := tl2.File()
	tl2.Close()
	srv2, err := ParseServer(fmt.Sprintf("fd:%d", f2.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	f2.Close()
	if _, err := srv2.Listen(t.Context()); err == nil || !strings.Contains(err.Error(), "is not open") {
		t.Errorf("Listen on a closed descriptor: %v", err)
	}
}

func listenServer(t *testing.T, srv Server) net.Listener {
	t.Helper()
	ln, err := srv.Listen(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

const socketActivate = "/usr/bin/systemd-socket-activate"

// activated is a helper process that systemd-socket-activate started.
type activated struct {
	lines  chan string // the helper's stdout
	stderr *testpeer.Buffer
}

// activate runs systemd-socket-activate with args, which must open n
// sockets, and the helper in "listen" mode on the endpoint strings of
// listen. The helper starts only at the first connection.
func activate(t *testing.T, n int, args []string, listen ...string) *activated {
	t.Helper()
	testpeer.Need(t, socketActivate, "systemd")
	args = append(args, "-E", helperEnv+"=listen", "-E", helperRaceEnv, "-E", "TETHER_TEST_LISTEN="+strings.Join(listen, ";"))
	cmd := exec.Command(socketActivate, append(args, helperArgs()...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &activated{lines: make(chan string, 100)}
	a.stderr = testpeer.Start(t, cmd)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(a.stderr.String(), "Listening on") < n {
		if time.Now().After(deadline) {
			t.Fatalf("systemd-socket-activate did not open %d sockets:\n%s", n, a.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return a
}

// report reads the helper's report, up to "serving".
func (a *activated) report(t *testing.T) []string {
	t.Helper()
	var lines []string
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-a.lines:
			if !ok {
				t.Fatalf("helper ended after %q; stderr:\n%s", lines, a.stderr)
			}
			if l == "serving" {
				return lines
			}
			lines = append(lines, l)
		case <-timeout:
			t.Fatalf("helper did not report; got %q; stderr:\n%s", lines, a.stderr)
		}
	}
}

// greet connects, reads the helper's "N PEER" line and checks an echo.
func greet(t *testing.T, network, addr string) (n string, peer string, local net.Addr) {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("%s %s: %v", network, addr, err)
	}
	n, peer, _ = strings.Cut(strings.TrimSpace(line), " ")
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	return n, peer, c.LocalAddr()
}

func TestSystemdActivate(t *testing.T) {
	port := testpeer.FreePort(t)
	sock := filepath.Join(t.TempDir(), "s.sock")
	inet := fmt.Sprintf("127.0.0.1:%d", port)
	a := activate(t, 2, []string{"-l", inet, "-l", sock, "--fdname=web:admin"},
		"close:systemd:domain=INET:index=0", // listened on and closed first: the socket stays
		"systemd:domain=INET:index=0",
		"systemd:UNIX:name=admin",
		"systemd:domain=INET:name=nosuch",
		"systemd:domain=UNIX:index=0",
		"systemd:domain=INET:index=2",
		"systemd:domain=INET6:name=web",
		"close:fd:4:domain=UNIX", // the same socket as 2, closed while 2 serves
	)
	// The first connection starts the helper; it waits in the queue.
	n, peer, local := greet(t, "tcp", inet)
	report := a.report(t)
	want := []string{
		"listen 0 ok " + inet,
		"listen 1 ok " + inet,
		"listen 2 ok " + sock,
		`listen 3 error endpoint "systemd:domain=INET:name=nosuch": systemd: name: no socket of that name was passed (LISTEN_FDNAMES: web, admin)`,
		`listen 4 error endpoint "systemd:domain=UNIX:index=0": systemd: domain: the passed socket 0 (fd 3, named "web") has address family INET, not UNIX`,
		`listen 5 error endpoint "systemd:domain=INET:index=2": systemd: index: no such socket: 2 sockets were passed (index 0-1)`,
		`listen 6 error endpoint "systemd:domain=INET6:name=web": systemd: domain: the passed socket 0 (fd 3, named "web") has address family INET, not INET6`,
		"listen 7 ok " + sock,
		`env LISTEN_PID="" LISTEN_FDS="" LISTEN_FDNAMES=""`,
		"fd 3 cloexec=true",
		"fd 4 cloexec=true",
	}
	for i, w := range want {
		if i >= len(report) || report[i] != w {
			t.Errorf("helper said:\n%s\nwant:\n%s", strings.Join(report, "\n"), strings.Join(want, "\n"))
			break
		}
	}
	if n != "1" || peer != local.String() {
		t.Errorf("INET connection served by listener %s for peer %s; want 1 and %s", n, peer, local)
	}
	if n, _, _ := greet(t, "unix", sock); n != "2" {
		t.Errorf("UNIX connection served by listener %s, want 2", n)
	}
}

// TestSystemdNotListening passes a datagram socket, which cannot be
// listened on.
func TestSystemdNotListening(t *testing.T) {
	port := testpeer.FreePort(t)
	a := activate(t, 1, []string{"--datagram", "-l", fmt.Sprintf("127.0.0.1:%d", port)},
		"systemd:domain=INET:index=0")
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("wake up"))
	report := a.report(t)
	want := `listen 0 error endpoint "systemd:domain=INET:index=0": systemd: index: the passed socket 0 (fd 3, named "unknown") is not a stream socket`
	if len(report) == 0 || !strings.HasPrefix(report[0], want) {
		t.Errorf("helper said %q, want %q", report, want)
	}
}
