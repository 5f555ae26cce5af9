//go:build unix

package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint"

	"github.com/tether-endpoints/tether/internal/testpeer"
)

// The UNIX lock file is Twisted's: PATH.lock, a symbolic link to the
// owner's process ID. These tests run real Twisted processes against
// tether in both directions: each side must respect the other's live lock,
// and take over (or refuse, for a checking client) a dead one's.

// socketDir returns a fresh directory for a socket, short enough for the
// 108-byte limit on UNIX socket paths.
func socketDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 80 {
		var err error
		dir, err = os.MkdirTemp("/tmp", "ti")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	return dir
}

// A twistedServer is a running testdata/twisted_unix_server.py: a Twisted
// echo server on "unix:PATH:lockfile=1".
type twistedServer struct {
	cmd    *exec.Cmd
	pid    int
	stdin  io.WriteCloser
	lines  chan string   // its stdout, line by line
	done   chan struct{} // closed when it has exited and been reaped
	err    error         // Wait's error, once done is closed
	stderr *testpeer.Buffer
}

// runTwistedServer starts the Twisted server on path and returns it with
// the first line it printed: "ready PID" once it listens, or "error: ..."
// when it cannot. It is killed when the test ends.
func runTwistedServer(t *testing.T, path string) (*twistedServer, string) {
	t.Helper()
	requireTwisted(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	s := &twistedServer{lines: make(chan string, 16), done: make(chan struct{}), stderr: &testpeer.Buffer{}}
	s.cmd = exec.CommandContext(ctx, python, "testdata/twisted_unix_server.py", path)
	s.cmd.WaitDelay = 5 * time.Second
	stdin, err := s.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdin = stdin
	pr, pw := io.Pipe()
	s.cmd.Stdout = pw
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting twisted_unix_server.py: %v", err)
	}
	s.pid = s.cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
		close(s.lines)
	}()
	go func() {
		s.err = s.cmd.Wait()
		pw.Close()
		cancel()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.stdin.Close()
		s.cmd.Process.Kill()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Errorf("twisted_unix_server.py (pid %d) did not exit when killed", s.pid)
		}
	})
	select {
	case line, ok := <-s.lines:
		if !ok {
			<-s.done
			t.Fatalf("twisted_unix_server.py exited (%v) without a word\n%s", s.err, s.stderr)
		}
		return s, line
	case <-time.After(20 * time.Second):
		t.Fatalf("twisted_unix_server.py did not start listening in 20s\n%s", s.stderr)
	}
	return nil, ""
}

// startTwistedServer runs the Twisted server on path and waits until it
// listens and holds PATH.lock.
func startTwistedServer(t *testing.T, path string) *twistedServer {
	t.Helper()
	s, line := runTwistedServer(t, path)
	if line != "ready "+strconv.Itoa(s.pid) {
		t.Fatalf("twisted_unix_server.py said %q, want %q\n%s", line, "ready "+strconv.Itoa(s.pid), s.stderr)
	}
	return s
}

// kill ends the Twisted server with SIGKILL, so that it leaves its socket
// and lock file behind, and waits until it is reaped: a zombie still
// answers kill(pid, 0), and would still look like a live owner.
func (s *twistedServer) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("killing twisted_unix_server.py: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("twisted_unix_server.py (pid %d) did not die of SIGKILL", s.pid)
	}
}

// runTwistedClient runs testdata/twisted_unix_client.py, a Twisted client
// on "unix:PATH:lockfile=1", which sends message and reads until the
// server closes. It returns the line it printed and whether it exited 0.
func runTwistedClient(t *testing.T, path, message string) (string, bool) {
	t.Helper()
	requireTwisted(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/twisted_unix_client.py", path, message)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("twisted_unix_client.py: %v\n%s", err, stderr.Bytes())
	}
	if ctx.Err() != nil {
		t.Fatalf("twisted_unix_client.py did not finish in time\n%s%s", out, stderr.Bytes())
	}
	if stderr.Len() > 0 {
		t.Logf("twisted_unix_client.py stderr:\n%s", stderr.Bytes())
	}
	return strings.TrimSpace(string(out)), err == nil
}

// talk dials client with tether, sends msg and reads exactly len(want)
// bytes, which must be want.
func talk(t *testing.T, client, msg, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := endpoint.Dial(ctx, client)
	if err != nil {
		t.Fatalf("Dial(%q): %v", client, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, msg); err != nil {
		t.Fatalf("writing to %q: %v", client, err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("reading from %q: %v (got %q)", client, err, got)
	}
	if string(got) != want {
		t.Fatalf("%q answered %q, want %q", client, got, want)
	}
}

// serve answers every connection on ln: it reads one line, replies
// "tether got: LINE" and closes. Each line read is sent on the channel it
// returns. It stops when ln is closed, which the test's cleanup does.
func serve(t *testing.T, ln net.Listener) <-chan string {
	t.Helper()
	got := make(chan string, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				line, err := bufio.NewReader(conn).ReadString('\n')
				if err != nil {
					return
				}
				got <- line
				io.WriteString(conn, "tether got: "+line)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return got
}

// listen listens on s with tether; the listener is closed when the test ends.
func listen(t *testing.T, s string) net.Listener {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := endpoint.Listen(ctx, s)
	if err != nil {
		t.Fatalf("Listen(%q): %v", s, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// lockOwner reads PATH.lock as Twisted's FilesystemLock does.
func lockOwner(t *testing.T, path string) int {
	t.Helper()
	target, err := os.Readlink(path + ".lock")
	if err != nil {
		t.Fatalf("reading the lock: %v", err)
	}
	pid, err := strconv.Atoi(target)
	if err != nil {
		t.Fatalf("the lock %s points to %q, not a process ID", path+".lock", target)
	}
	return pid
}

// socketInode returns the inode of the socket file at path, failing the
// test if there is none.
func socketInode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("the socket file: %v", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("%s is %v, not a socket", path, fi.Mode())
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func unixString(path string, args ...string) string {
	return strings.Join(append([]string{"unix", endpoint.Quote(path)}, args...), ":")
}

// (a) tether's checking client and a Twisted server's lock: it connects
// while the owner lives, and refuses once the owner is dead though its
// socket file and lock are still there.
func TestTwistedLockTetherCheckPIDClient(t *testing.T) {
	path := filepath.Join(socketDir(t), "s")
	tw := startTwistedServer(t, path)
	if owner := lockOwner(t, path); owner != tw.pid {
		t.Fatalf("the lock names %d, want the Twisted server's pid %d", owner, tw.pid)
	}
	client := unixString(path, "checkPID=1")
	talk(t, client, "hello twisted\n", "hello twisted\n")

	tw.kill(t)
	socketInode(t, path) // the stale socket is still there
	if owner := lockOwner(t, path); owner != tw.pid {
		t.Fatalf("after SIGKILL the lock names %d, want the dead server's %d", owner, tw.pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := endpoint.Dial(ctx, client)
	if conn != nil {
		conn.Close()
	}
	if !errors.Is(err, endpoint.ErrNoLockOwner) {
		t.Fatalf("Dial(%q) with the lock's owner dead: %v, want an error matching endpoint.ErrNoLockOwner", client, err)
	}
	// Without the check, the stale socket refuses the connection.
	conn, err = endpoint.Dial(ctx, unixString(path))
	if conn != nil {
		conn.Close()
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial without checkPID to the stale socket: %v, want ECONNREFUSED", err)
	}
	// The checking client leaves the stale lock alone, for a listener to take over.
	if owner := lockOwner(t, path); owner != tw.pid {
		t.Fatalf("after the refused dials the lock names %d, want the dead server's %d", owner, tw.pid)
	}
}

// (b) a Twisted checking client and tether's lock: Twisted's
// clientFromString("unix:PATH:lockfile=1") sees tether's lock as held by a
// live process, connects and exchanges bytes.
func TestTetherLockTwistedCheckPIDClient(t *testing.T) {
	path := filepath.Join(socketDir(t), "s")
	got := serve(t, listen(t, unixString(path)))
	if owner := lockOwner(t, path); owner != os.Getpid() {
		t.Fatalf("tether's lock names %d, want this process, %d", owner, os.Getpid())
	}
	line, ok := runTwistedClient(t, path, "hello from twisted\n")
	if want := "received: " + jsonString(t, "tether got: hello from twisted\n"); !ok || line != want {
		t.Fatalf("Twisted client said %q (exit 0: %v), want %q", line, ok, want)
	}
	select {
	case msg := <-got:
		if msg != "hello from twisted\n" {
			t.Fatalf("tether's server got %q from Twisted, want %q", msg, "hello from twisted\n")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tether's server got nothing from the Twisted client")
	}
}

// A tether server without a lock (lockfile=0) makes no PATH.lock, and
// Twisted's checking client refuses it without connecting.
func TestTetherNoLockTwistedCheckPIDClientRefuses(t *testing.T) {
	path := filepath.Join(socketDir(t), "s")
	ln := listen(t, unixString(path, "lockfile=0"))
	if _, err := os.Lstat(path + ".lock"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lockfile=0 made a lock file, or: %v", err)
	}
	line, ok := runTwistedClient(t, path, "hello\n")
	if ok || !strings.HasPrefix(line, "error: BadFileError") {
		t.Fatalf("Twisted client said %q (exit 0: %v), want it to refuse with BadFileError", line, ok)
	}
	// Nothing connected: Twisted checks the lock before connecting.
	dl, ok := ln.(interface{ SetDeadline(time.Time) error })
	if !ok {
		t.Fatalf("tether's unix listener %T has no SetDeadline", ln)
	}
	dl.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if conn, err := ln.Accept(); err == nil {
		conn.Close()
		t.Fatal("the refusing Twisted client connected anyway")
	}
}

// Twisted refuses to listen where tether holds the lock, and leaves tether's
// socket serving.
func TestTwistedRefusesTetherLock(t *testing.T) {
	path := filepath.Join(socketDir(t), "s")
	got := serve(t, listen(t, unixString(path)))
	ino := socketInode(t, path)
	s, line := runTwistedServer(t, path)
	if !strings.HasPrefix(line, "error: CannotListenError") {
		t.Fatalf("the Twisted server on tether's path said %q, want it to fail with CannotListenError", line)
	}
	select {
	case <-s.done:
		if s.err == nil {
			t.Fatal("the Twisted server that could not listen exited 0")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Twisted server that could not listen did not exit")
	}
	if socketInode(t, path) != ino {
		t.Fatal("tether's socket file was replaced")
	}
	if owner := lockOwner(t, path); owner != os.Getpid() {
		t.Fatalf("the lock names %d, want this process, %d", owner, os.Getpid())
	}
	talk(t, unixString(path, "checkPID=1"), "still there?\n", "tether got: still there?\n")
	if msg := <-got; msg != "still there?\n" {
		t.Fatalf("tether's server got %q", msg)
	}
}

// (c) tether refuses to take over a socket whose Twisted owner is alive:
// Listen fails with EADDRINUSE, and the Twisted server's socket is left in
// place, still serving.
func TestTetherRefusesLiveTwistedLock(t *testing.T) {
	path := filepath.Join(socketDir(t), "s")
	tw := startTwistedServer(t, path)
	ino := socketInode(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := endpoint.Listen(ctx, unixString(path))
	if err == nil {
		ln.Close()
		t.Fatal("tether listened on a path whose Twisted owner is alive")
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen on a live Twisted server's path: %v, want EADDRINUSE", err)
	}
	if socketInode(t, path) != ino {
		t.Fatal("the Twisted server's socket file was replaced")
	}
	if owner := lockOwner(t, path); owner != tw.pid {
		t.Fatalf("the lock names %d, want the Twisted server's %d", owner, tw.pid)
	}
	talk(t, unixString(path), "are you there?\n", "are you there?\n")
	talk(t, unixString(path, "checkPID=1"), "twisted?\n", "twisted?\n")
}

// (d) once the Twisted owner is dead (SIGKILL: socket and lock left
// behind), tether takes the lock and the path over and serves, to tether's
// checking client and to Twisted's; closing removes both files.
func TestTetherTakesOverDeadTwistedLock(t *testing.T) {
	path := filepath.Join(socketDir(t), "s")
	tw := startTwistedServer(t, path)
	tw.kill(t)
	socketInode(t, path) // the stale socket is still there
	if owner := lockOwner(t, path); owner != tw.pid {
		t.Fatalf("after SIGKILL the lock names %d, want the dead server's %d", owner, tw.pid)
	}

	ln := listen(t, unixString(path))
	got := serve(t, ln)
	if owner := lockOwner(t, path); owner != os.Getpid() {
		t.Fatalf("after the take-over the lock names %d, want this process, %d", owner, os.Getpid())
	}
	socketInode(t, path) // tether's own: the stale one refused connections
	talk(t, unixString(path, "checkPID=1"), "from tether\n", "tether got: from tether\n")
	line, ok := runTwistedClient(t, path, "from twisted\n")
	if want := "received: " + jsonString(t, "tether got: from twisted\n"); !ok || line != want {
		t.Fatalf("Twisted client said %q (exit 0: %v), want %q", line, ok, want)
	}
	for _, want := range []string{"from tether\n", "from twisted\n"} {
		if msg := <-got; msg != want {
			t.Fatalf("tether's server got %q, want %q", msg, want)
		}
	}

	if err := ln.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, p := range []string{path, path + ".lock"} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after Close, %s: %v, want it removed", p, err)
		}
	}
}

func jsonString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
