// Package testpeer runs the real programs that tether's tests talk to
// (haproxy, microsocks, tinyproxy, systemd-socket-activate, Twisted, helper
// processes): it finds them, starts them, collects their output, waits
// until they listen, and stops them when the test ends. It is for tests
// only.
package testpeer

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer collects a process's output; a test may read it while the
// process writes.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what has been written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WaitFor waits up to 10 s for s to have been written, and fails the test
// otherwise.
func (b *Buffer) WaitFor(t testing.TB, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(b.String(), s); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%q was not written in 10s; output:\n%s", s, b)
		}
	}
}

// Need returns the path of program bin (a path, or a name looked up on
// PATH) from the Debian package pkg, and fails the test, never skips it,
// when it is missing: CI installs every package the tests need.
func Need(t testing.TB, bin, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%v: install Debian's %s package (apt-get install %s)", err, pkg, pkg)
	}
	return path
}

// FreePort returns a loopback TCP port that was free a moment ago, for
// programs that cannot be told to pick one themselves.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start starts cmd, collecting its standard error (and standard output,
// if cmd does not send it elsewhere) in the returned Buffer. The process
// is killed and reaped when the test ends, and its output logged if the
// test failed. Reading a pipe from cmd (StdoutPipe) stays safe: nothing
// waits for the process before then.
func Start(t testing.TB, cmd *exec.Cmd) *Buffer {
	t.Helper()
	out := &Buffer{}
	if cmd.Stderr == nil {
		cmd.Stderr = out
	}
	if cmd.Stdout == nil {
		cmd.Stdout = out
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", cmd.Path, out)
		}
	})
	return out
}

// StartListening runs program bin from Debian package pkg with args, and
// waits until it accepts connections on addr.
func StartListening(t testing.TB, bin, pkg string, args []string, addr string) *Buffer {
	t.Helper()
	cmd := exec.Command(Need(t, bin, pkg), args...)
	out := Start(t, cmd)
	exited := make(chan struct{})
	go func() {
		cmd.Process.Wait() // Start's clean-up reaps it again, harmlessly
		close(exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return out
		}
		select {
		case <-exited:
			t.Fatalf("%s exited:\n%s", bin, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s:\n%s", bin, addr, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// HAProxyBin is where Debian's haproxy package puts the program.
const HAProxyBin = "/usr/sbin/haproxy"

// HAProxyDefaults begins every configuration StartHAProxy runs: TCP mode,
// and the log on standard output, one raw line per message.
const HAProxyDefaults = `global
    log stdout format raw local0 info
    nbthread 1
defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s
`

// StartHAProxy runs haproxy in the foreground with HAProxyDefaults then
// cfg, and returns what it logs; it waits until addr, one of its frontends
// (without accept-proxy), accepts connections.
func StartHAProxy(t testing.TB, cfg, addr string) *Buffer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(HAProxyDefaults+cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return StartListening(t, HAProxyBin, "haproxy", []string{"-f", path, "-db"}, addr)
}
