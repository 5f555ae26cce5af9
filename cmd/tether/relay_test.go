package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
)

// tetherBin is the command, built once for the end-to-end tests (with the
// race detector if TETHER_TEST_RACE is set).
var tetherBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tether-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tetherBin = filepath.Join(dir, "tether")
	goCmd, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "building tether needs the go command on PATH:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	build := []string{"build", "-o", tetherBin}
	if os.Getenv("TETHER_TEST_RACE") != "" { // check the command itself for races, slowly
		build = append(build, "-race")
	}
	if out, err := exec.Command(goCmd, append(build, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building tether: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running tether whose JSON log lines are collected.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	logs   []map[string]any
	raw    []string
	more   chan struct{} // signalled on each new line
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

// startTether runs argv (tetherBin, or a wrapper that runs it) with stderr
// collected; it is killed when the test ends.
func startTether(t *testing.T, argv ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(argv[0], argv[1:]...), more: make(chan struct{}, 1), exited: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			json.Unmarshal(sc.Bytes(), &m)
			p.mu.Lock()
			p.raw = append(p.raw, sc.Text())
			if m != nil {
				p.logs = append(p.logs, m)
			}
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, l := range p.raw {
			if strings.Contains(l, "DATA RACE") || strings.HasPrefix(l, "panic:") {
				t.Errorf("tether: %s", l)
			}
		}
		if t.Failed() {
			t.Logf("tether's log:\n%s", strings.Join(p.raw, "\n"))
		}
	})
	return p
}

// waitUntil waits until found, called with p.mu held, reports true; it
// looks again whenever tether writes a line, for up to 15 s. Once tether
// has exited all it wrote has been read, so one last look decides.
func (p *proc) waitUntil(what string, found func() bool) {
	p.t.Helper()
	look := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return found()
	}
	deadline := time.After(15 * time.Second)
	for !look() {
		select {
		case <-p.more:
		case <-p.exited:
			if !look() {
				p.t.Fatalf("tether exited (%v) without %s", p.err, what)
			}
			return
		case <-deadline:
			p.t.Fatalf("no %s in 15s", what)
		}
	}
}

// waitLog waits for a log line with message msg that satisfies match (if
// not nil) and returns it.
func (p *proc) waitLog(msg string, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	var line map[string]any
	seen := 0
	p.waitUntil(fmt.Sprintf("logging %q", msg), func() bool {
		for ; seen < len(p.logs); seen++ {
			if l := p.logs[seen]; l["msg"] == msg && (match == nil || match(l)) {
				line = l
				return true
			}
		}
		return false
	})
	return line
}

// count returns how many log lines with message msg there are so far.
func (p *proc) count(msg string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.logs {
		if l["msg"] == msg {
			n++
		}
	}
	return n
}

// addr returns the address tether says it listens on.
func (p *proc) addr() string {
	p.t.Helper()
	return p.waitLog("listening", nil)["addr"].(string)
}

// exitCode waits for tether to exit and returns its exit code.
func (p *proc) exitCode() int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.t.Fatal("tether did not exit in 20s")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatal(p.err)
	}
	return 0
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// listenTest listens on loopback TCP, or on a UNIX socket in a temporary
// directory, and returns the listener and the client endpoint string that
// reaches it.
func listenTest(t *testing.T, network string) (net.Listener, string) {
	t.Helper()
	if network == "unix" {
		path := filepath.Join(t.TempDir(), "target.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln, "unix:" + endpoint.Quote(path)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, "tcp:127.0.0.1:" + fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// serverEndpoint returns a server endpoint string for tether to listen on:
// any free loopback port, or a UNIX socket in a temporary directory. Where
// it listens, tether says in its "listening" log line.
func serverEndpoint(t *testing.T, network string) string {
	if network == "unix" {
		return "unix:" + endpoint.Quote(filepath.Join(t.TempDir(), "relay.sock"))
	}
	return "tcp:0:interface=127.0.0.1"
}

// dialAddr dials what tether reported as its listening address.
func dialAddr(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusedEnd connects to addr, where tether will give up on the connection
// (a failed dial, say), and returns how the connection ended: the error of
// connect(2) if the reset came that early, else that of the first read.
func refusedEnd(t *testing.T, network, addr string) error {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err
}

// acceptOne accepts one connection and runs serve on it in a goroutine.
func acceptOne(t *testing.T, ln net.Listener, serve func(net.Conn)) {
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
}

// echoServer echoes every connection on ln until ln is closed.
func echoServer(ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sumThenAnswer serves one connection on ln: it reads to the end of file,
// sends the SHA-256 of what it read on the channel, then writes down.
func sumThenAnswer(t *testing.T, ln net.Listener, down []byte) <-chan [32]byte {
	got := make(chan [32]byte, 1)
	acceptOne(t, ln, func(c net.Conn) {
		h := sha256.New()
		io.Copy(h, c)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
		c.Write(down)
	})
	return got
}

// streamThrough connects to addr, sends up and half-closes, reads what
// comes back to the end, and checks both streams whole: up as the target
// summed it (got, from sumThenAnswer), down as read. It returns the
// connection, closed for writing, for its address.
func streamThrough(t *testing.T, network, addr string, up, down []byte, got <-chan [32]byte) net.Conn {
	t.Helper()
	c := dialAddr(t, network, addr)
	go func() {
		c.Write(up)
		closeWriteT(t, c)
	}()
	back, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if sum := <-got; sum != sha256.Sum256(up) {
		t.Error("the stream to the target arrived corrupted or truncated")
	}
	if !bytes.Equal(back, down) {
		t.Errorf("the stream back: %d bytes, want %d (intact: %v)", len(back), len(down), bytes.Equal(back, down))
	}
	return c
}

func closeWriteT(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
}

// TestRelayHalfClose runs bytes through the built relay, TCP to UNIX and
// UNIX to TCP: the client sends a stream and half-closes; only after the
// end of file reaches it does the server send its stream back.
func TestRelayHalfClose(t *testing.T) {
	up, down := randomBytes(t, 8<<20+11), randomBytes(t, 4<<20+3)
	for _, tc := range []struct{ from, to string }{{"tcp", "unix"}, {"unix", "tcp"}} {
		t.Run(tc.from+"-to-"+tc.to, func(t *testing.T) {
			ln, target := listenTest(t, tc.to)
			got := sumThenAnswer(t, ln, down)
			p := startTether(t, tetherBin, "relay", "--log-format", "json", serverEndpoint(t, tc.from), target)
			streamThrough(t, tc.from, p.addr(), up, down, got)
			l := p.waitLog("connection ended", nil)
			if l["from_peer"] != float64(len(up)) || l["to_peer"] != float64(len(down)) || l["error"] != nil {
				t.Errorf("log line %v; want from_peer %d, to_peer %d, no error", l, len(up), len(down))
			}
			if _, ok := l["peer"]; !ok {
				t.Errorf("log line %v has no peer", l)
			}
		})
	}
}

// TestRelaySIGTERMDrains: SIGTERM in the middle of a transfer stops
// listening at once, but the transfer completes and tether then exits 0.
func TestRelaySIGTERMDrains(t *testing.T) {
	ln, target := listenTest(t, "unix")
	acceptOne(t, ln, func(c net.Conn) {
		h := sha256.New()
		io.Copy(h, c)
		c.Write(h.Sum(nil))
	})
	p := startTether(t, tetherBin, "relay", "--log-format", "json", "--drain-timeout", "20s", serverEndpoint(t, "tcp"), target)
	addr := p.addr()
	c := dialAddr(t, "tcp", addr)
	data := randomBytes(t, 6<<20)
	if _, err := c.Write(data[:1<<20]); err != nil {
		t.Fatal(err)
	}

	p.signal(syscall.SIGTERM)
	p.waitLog("shutting down: not accepting; draining", nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c2, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c2.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections 5s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}

	for off := 1 << 20; off < len(data); off += 1 << 20 { // keep going, slowly
		if _, err := c.Write(data[off : off+1<<20]); err != nil {
			t.Fatal("write during drain:", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	closeWriteT(t, c)
	sum, err := io.ReadAll(c)
	if want := sha256.Sum256(data); err != nil || !bytes.Equal(sum, want[:]) {
		t.Errorf("after SIGTERM: checksum %x, %v; want %x", sum, err, want)
	}
	if code := p.exitCode(); code != exitOK {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	l := p.waitLog("connection ended", nil)
	if l["from_peer"] != float64(len(data)) || l["error"] != nil {
		t.Errorf("log line %v", l)
	}
}

// TestRelayDrainTimeout: a connection still open when the drain timeout
// runs out is closed, and tether exits 0.
func TestRelayDrainTimeout(t *testing.T) {
	ln, target := listenTest(t, "tcp")
	echoServer(ln)
	p := startTether(t, tetherBin, "relay", "--log-format", "json", "--drain-timeout", "200ms", serverEndpoint(t, "tcp"), target)
	c := dialAddr(t, "tcp", p.addr())
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))
	p.signal(os.Interrupt)
	p.waitLog("cutting the connections still open", nil)
	if code := p.exitCode(); code != exitOK {
		t.Errorf("exit code %d, want 0", code)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err == nil {
		t.Error("a connection cut by the drain timeout ended with a clean end of file")
	}
	if l := p.waitLog("connection ended", nil); l["error"] != "drain timeout" {
		t.Errorf("log line %v; want error \"drain timeout\"", l)
	}
}

// TestRelayLimits: --max-conns holds back a connection until one ends;
// --idle-timeout ends a connection nothing moves on.
func TestRelayLimits(t *testing.T) {
	ln, target := listenTest(t, "tcp")
	echoServer(ln)
	p := startTether(t, tetherBin, "relay", "--log-format", "json", "--max-conns", "1", "--idle-timeout", "300ms",
		serverEndpoint(t, "tcp"), target)
	addr := p.addr()
	echo := func(c net.Conn, wait time.Duration) error {
		c.SetDeadline(time.Now().Add(wait))
		c.Write([]byte("x"))
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	c1 := dialAddr(t, "tcp", addr)
	if err := echo(c1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c2 := dialAddr(t, "tcp", addr) // waits in the listen queue
	if err := echo(c2, 100*time.Millisecond); err == nil {
		t.Fatal("a second connection was served with --max-conns 1")
	}
	// c1 now idles; the idle timeout ends it, which lets c2 in.
	if l := p.waitLog("connection ended", nil); l["error"] != "relay: idle timeout" {
		t.Errorf("log line %v; want the idle timeout", l)
	}
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c2, make([]byte, 1)); err != nil {
		t.Errorf("the held-back connection was not served: %v", err)
	}
}

// TestRelayDialFailure: a failed dial resets that one connection (the
// client must not take it for an empty but complete answer), is logged
// with the reason, and the relay goes on.
func TestRelayDialFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.sock")
	p := startTether(t, tetherBin, "relay", "--log-format", "json", serverEndpoint(t, "tcp"), "unix:"+endpoint.Quote(path))
	addr := p.addr()
	if err := refusedEnd(t, "tcp", addr); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("a connection whose dial failed ended with %v; want a reset", err)
	}
	l := p.waitLog("dial failed; connection reset", nil)
	if e, _ := l["error"].(string); !strings.Contains(e, "no such file") || l["peer"] == nil {
		t.Errorf("log line %v; want the reason and the peer", l)
	}

	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	echoServer(ln)
	c2 := dialAddr(t, "tcp", addr)
	c2.Write([]byte("again"))
	closeWriteT(t, c2)
	if got, err := io.ReadAll(c2); string(got) != "again" {
		t.Errorf("after a failed dial: %q, %v", got, err)
	}
}

// TestRelayFDStorm runs the relay with 64 file descriptors and opens far
// more connections than that at once: the accept loop must back off, not
// die, and serve normally once the storm is over.
func TestRelayFDStorm(t *testing.T) {
	ln, target := listenTest(t, "tcp")
	echoServer(ln)
	p := startTether(t, "/bin/sh", "-c", `ulimit -n 64 && exec "$0" "$@"`,
		tetherBin, "relay", "--log-format", "json", "tcp:0:interface=127.0.0.1:backlog=1000", target)
	addr := p.addr()
	if limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.cmd.Process.Pid)); err == nil {
		if !regexp.MustCompile(`Max open files\s+64\s+64`).Match(limits) {
			t.Fatalf("the relay's fd limit is not 64:\n%s", limits)
		}
	}

	var storm []net.Conn
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			continue
		}
		c.Write([]byte{1})
		storm = append(storm, c)
	}
	t.Logf("storm: %d connections open", len(storm))
	l := p.waitLog("accept failed; retrying", nil)
	if e, _ := l["error"].(string); !strings.Contains(e, "too many open files") {
		t.Errorf("accept error %q; want EMFILE", e)
	}
	for _, c := range storm {
		c.Close()
	}

	// The backoff is at most a second; then a normal connection works.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := dialAddr(t, "tcp", addr)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.Write([]byte("ping"))
		got := make([]byte, 4)
		_, err := io.ReadFull(c, got)
		c.Close()
		if err == nil && string(got) == "ping" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no working connection 15s after the storm: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-p.exited:
		t.Fatalf("the relay exited: %v", p.err)
	default:
	}
	t.Logf("accept retries %d, failed dials %d, connections ended %d",
		p.count("accept failed; retrying"), p.count("dial failed; connection reset"), p.count("connection ended"))
}

func TestRelayUsage(t *testing.T) {
	if code, out, _ := runCmd("relay", "--help"); code != exitOK || !strings.Contains(out, "Usage: tether relay") ||
		!strings.Contains(out, "--drain-timeout") || !strings.Contains(out, "$ tether relay") ||
		!strings.Contains(out, "-proxy-protocol version") || !strings.Contains(out, "-dev-cert") {
		t.Errorf("relay --help = %d, %q", code, out)
	}
	for _, args := range [][]string{
		{"relay"},
		{"relay", "tcp:0"},
		{"relay", "tcp:0", "tcp:localhost:1", "extra"},
		{"relay", "tcp:http", "tcp:localhost:1"},
		{"relay", "tcp:0", "tcp:localhost"},
		{"relay", "tcp:0", "nosuch:x"},
		{"relay", "--log-format", "xml", "tcp:0", "tcp:localhost:1"},
		{"relay", "--idle-timeout", "-1s", "tcp:0", "tcp:localhost:1"},
		{"relay", "--nosuch", "tcp:0", "tcp:localhost:1"},
		{"relay", "--proxy-protocol", "v3", "tcp:0", "tcp:localhost:1"},
		{"relay", "--proxy-protocol", "1", "tcp:0", "tcp:localhost:1"},
		{"relay", "--dev-cert", "unix:/tmp/x.sock", "tcp:localhost:1"},
		{"relay", "tls:0", "tcp:localhost:1"},
	} {
		if code, _, errOut := runCmd(args...); code != exitUsage || errOut == "" {
			t.Errorf("%q = %d, %q; want exit 2 and a message", args, code, errOut)
		}
	}
	// A port in use is a failure at run time, not a usage error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := fmt.Sprintf("tcp:%d:interface=127.0.0.1", ln.Addr().(*net.TCPAddr).Port)
	if code, _, errOut := runCmd("relay", busy, "tcp:localhost:1"); code != exitFailure || !strings.Contains(errOut, "address already in use") {
		t.Errorf("relay on a port in use = %d, %q; want 1", code, errOut)
	}
}

// TestRelayKeepsSecretsOutOfLogs: a proxy password in CONNECT appears in no
// log line, neither when listening nor when a dial through the proxy fails.
func TestRelayKeepsSecretsOutOfLogs(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy := closed.Addr().String()
	closed.Close() // the proxy refuses: every dial fails
	target := "socks5:db:5432:username=u:password=hunter2:proxy=" + endpoint.Quote("tcp:"+proxy)
	p := startTether(t, tetherBin, "relay", "--log-format", "json", serverEndpoint(t, "tcp"), target)
	refusedEnd(t, "tcp", p.addr())
	p.waitLog("dial failed; connection reset", nil)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.raw {
		if strings.Contains(l, "hunter2") {
			t.Errorf("a log line shows the password: %s", l)
		}
	}
}

// TestRelayStdio: tether relay stdio: CONNECT, as inetd or ssh's
// ProxyCommand runs it, relays standard input and output to CONNECT and
// exits 0 when that one connection is done.
func TestRelayStdio(t *testing.T) {
	ln, target := listenTest(t, "tcp")
	echoServer(ln)
	cmd := exec.Command(tetherBin, "relay", "--quiet", "stdio:", target)
	cmd.Stdin = strings.NewReader("over stdio")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.Output()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("tether relay stdio: did not exit after its connection ended; stderr:\n%s", stderr.String())
	}
	if err != nil || string(out) != "over stdio" {
		t.Fatalf("relay stdio: output %q, %v; stderr:\n%s", out, err, stderr.String())
	}
}
