//go:build unix

package endpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests of systemd:, fd: and stdio: need a process of their own: one
// that systemd-socket-activate starts with sockets, or whose standard input
// and output are pipes. That process is this test binary run again with
// TETHER_TEST_HELPER set, running only TestEndpointHelperProcess, which
// then does what the variable says and exits without returning to the
// testing package (whose own output would otherwise reach stdout).

const helperEnv = "TETHER_TEST_HELPER"

// helperRaceEnv spares a helper built with -race the race detector's
// one-second pause at exit.
const helperRaceEnv = "GORACE=atexit_sleep_ms=0"

// helperArgs returns the command line that runs this test binary as a
// helper; the mode is given in the environment.
func helperArgs() []string {
	return []string{os.Args[0], "-test.run=^TestEndpointHelperProcess$", "-test.count=1"}
}

func TestEndpointHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return // an ordinary test run
	}
	switch mode {
	case "listen":
		helperListen()
	case "stdio-server":
		helperStdioServer()
	case "stdio-client":
		helperStdioClient()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(3)
	}
	os.Exit(0)
}

// helperListen parses and listens on each endpoint string of
// TETHER_TEST_LISTEN (separated by ';'), prints a line on stdout for each
// ("listen N ok ADDR" or "listen N error MESSAGE"), then reports what
// socket activation left behind and serves every listener: each
// connection gets "N PEER\n" and then an echo. A string prefixed with
// "close:" is listened on and closed at once, before the others are.
func helperListen() {
	out := bufio.NewWriter(os.Stdout)
	var lns []net.Listener
	for i, s := range strings.Split(os.Getenv("TETHER_TEST_LISTEN"), ";") {
		s, closeNow := strings.CutPrefix(s, "close:")
		ln, err := Listen(context.Background(), s)
		if err != nil {
			fmt.Fprintf(out, "listen %d error %v\n", i, err)
			continue
		}
		fmt.Fprintf(out, "listen %d ok %s\n", i, ln.Addr())
		if closeNow {
			ln.Close()
			continue
		}
		lns = append(lns, ln)
		go func(i int, ln net.Listener) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					fmt.Fprintf(c, "%d %s\n", i, c.RemoteAddr())
					io.Copy(c, c)
				}()
			}
		}(i, ln)
	}
	fmt.Fprintf(out, "env LISTEN_PID=%q LISTEN_FDS=%q LISTEN_FDNAMES=%q\n",
		os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"))
	for fd := 3; fd < 6; fd++ {
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
		if errno == 0 {
			fmt.Fprintf(out, "fd %d cloexec=%v\n", fd, flags&syscall.FD_CLOEXEC != 0)
		}
	}
	fmt.Fprintln(out, "serving")
	out.Flush()
	if len(lns) == 0 {
		return
	}
	select {} // until killed
}

// helperStdioServer serves stdio: once: it reads the connection to its
// end, writes back what it read in upper case after a line naming the
// peer, closes its writing side, and then checks that Accept waits until
// the listener is closed and then fails with net.ErrClosed.
func helperStdioServer() {
	ln, err := Listen(context.Background(), "stdio:")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	c, err := ln.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, "accept:", err)
		os.Exit(1)
	}
	fmt.Fprintf(c, "peer %s local %s\n", c.RemoteAddr(), c.LocalAddr())
	data, err := io.ReadAll(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "read:", err)
		os.Exit(1)
	}
	c.Write([]byte(strings.ToUpper(string(data))))
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		fmt.Fprintln(os.Stderr, "closewrite:", err)
		os.Exit(1)
	}
	accepted := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		accepted <- err
	}()
	select {
	case err := <-accepted:
		fmt.Fprintln(os.Stderr, "second Accept returned early:", err)
		os.Exit(1)
	case <-time.After(100 * time.Millisecond):
	}
	ln.Close()
	err = <-accepted
	fmt.Fprintf(os.Stderr, "second accept: ErrClosed=%v\n", errors.Is(err, net.ErrClosed))
	c.Close()
}

// helperStdioClient dials stdio: and echoes every line back reversed.
func helperStdioClient() {
	c, err := Dial(context.Background(), "stdio:")
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	if _, err := Dial(context.Background(), "stdio:"); err == nil {
		fmt.Fprintln(os.Stderr, "second stdio: dial succeeded")
		os.Exit(1)
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		r := []rune(sc.Text())
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		fmt.Fprintln(c, string(r))
	}
	c.Close()
}
