//go:build unix

package endpoint

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// deadPID returns the ID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func sockPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "s.sock")
}

func TestUNIXListenDialClose(t *testing.T) {
	path := sockPath(t)
	ln := listen(t, "unix:"+path+":mode=640")
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0640 {
		t.Fatalf("socket file: %v, %v; want a socket with mode 0640", fi.Mode(), err)
	}
	target, err := os.Readlink(path + ".lock")
	if err != nil || target != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file: %q, %v; want a symlink to %d", target, err, os.Getpid())
	}
	peers := echoOnce(t, ln)
	for _, s := range []string{"unix:" + path, "unix:" + path + ":checkPID=1", "unix:path=" + path + ":lockfile=1"} {
		c, err := Dial(context.Background(), s)
		if err != nil {
			t.Fatalf("Dial(%q): %v", s, err)
		}
		if s == "unix:"+path {
			roundTrip(t, c)
			<-peers
		} else {
			c.Close()
		}
	}
	// Close removes the socket and the lock before it returns.
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".lock"} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s still there after Close: %v", p, err)
		}
	}
	if _, err := Dial(context.Background(), "unix:"+path); err == nil {
		t.Fatal("Dial after Close succeeded")
	}
	// And the address is free at once.
	listen(t, "unix:"+path)
}

func TestUNIXModes(t *testing.T) {
	for _, mode := range []os.FileMode{0600, 0660, 0666, 0700} {
		path := sockPath(t)
		listen(t, "unix:"+path+":mode="+strconv.FormatUint(uint64(mode), 8))
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("mode=%o gave %v, %v", mode, fi.Mode().Perm(), err)
		}
	}
}

func TestUNIXLiveOwnerKeepsSocket(t *testing.T) {
	path := sockPath(t)
	first := listen(t, "unix:"+path)
	peers := echoOnce(t, first)
	_, err := Listen(context.Background(), "unix:"+path)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second Listen: %v, want EADDRINUSE", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Op != "listen" {
		t.Fatalf("second Listen: %#v, want an *Error", err)
	}
	// The live owner's socket was left alone and still serves.
	c, err := Dial(context.Background(), "unix:"+path)
	if err != nil {
		t.Fatalf("first listener's socket was disturbed: %v", err)
	}
	roundTrip(t, c)
	<-peers
}

// TestUNIXFakeLockKeepsLiveSocket: a lock naming a dead process, which
// anyone who can write to the directory can make, does not get a socket
// removed that something still listens on (at a path with a space in it), or one of another user (root
// deleting it, in a sticky /tmp, would take that user's clients): Listen
// reports the path in use instead, and the live server goes on serving.
func TestUNIXFakeLockKeepsLiveSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "my app.sock") // a space, which the kernel's table keeps
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := os.Symlink(strconv.Itoa(deadPID(t)), path+".lock"); err != nil {
		t.Fatal(err)
	}
	if ln, err := Listen(context.Background(), "unix:"+path); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("Listen over a live socket with a fake lock: %v; want EADDRINUSE", err)
	}
	go func() {
		if c, err := live.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the live server after the attempt: %v", err)
	}
	c.Close()

	if os.Geteuid() != 0 {
		return // another user's socket needs root to make
	}
	path = sockPath(t)
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if err := os.Lchown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strconv.Itoa(deadPID(t)), path+".lock"); err != nil {
		t.Fatal(err)
	}
	if ln, err := Listen(context.Background(), "unix:"+path); err == nil {
		ln.Close()
		t.Fatal("Listen removed another user's socket on the word of a lock")
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil || st.Uid != 65534 {
		t.Errorf("another user's socket: %+v, %v; want it left", st.Uid, err)
	}
}

func TestUNIXStaleTakeover(t *testing.T) {
	path := sockPath(t)
	// A dead process's lock and socket, as a crash leaves them.
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	if err := os.Symlink(strconv.Itoa(deadPID(t)), path+".lock"); err != nil {
		t.Fatal(err)
	}
	// A client that checks the lock refuses the stale socket.
	_, err = Dial(context.Background(), "unix:"+path+":checkPID=1")
	if !errors.Is(err, ErrNoLockOwner) {
		t.Fatalf("checkPID=1 on a stale lock: %v, want ErrNoLockOwner", err)
	}
	ln := listen(t, "unix:"+path)
	peers := echoOnce(t, ln)
	c, err := Dial(context.Background(), "unix:"+path+":checkPID=1")
	if err != nil {
		t.Fatalf("dial after takeover: %v", err)
	}
	roundTrip(t, c)
	<-peers
}

func TestUNIXWithoutLock(t *testing.T) {
	path := sockPath(t)
	listen(t, "unix:"+path+":lockfile=0")
	if _, err := os.Lstat(path + ".lock"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lockfile=0 made a lock: %v", err)
	}
	// Without a lock nothing says the socket is stale: bind reports it.
	_, err := Listen(context.Background(), "unix:"+path+":lockfile=0")
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second Listen: %v, want EADDRINUSE", err)
	}
	// checkPID=1 refuses a socket that has no lock at all.
	_, err = Dial(context.Background(), "unix:"+path+":checkPID=1")
	if !errors.Is(err, ErrNoLockOwner) {
		t.Fatalf("checkPID=1 without a lock: %v", err)
	}
	// A lock whose owner is gone does not let us remove a file that is
	// not a socket.
	other := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(other, []byte("keep"), 0644)
	os.Symlink(strconv.Itoa(deadPID(t)), other+".lock")
	if _, err := Listen(context.Background(), "unix:"+other); err == nil {
		t.Fatal("Listen over a regular file succeeded")
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "keep" {
		t.Fatalf("regular file at the address was touched: %q, %v", b, err)
	}
	if _, err := os.Lstat(other + ".lock"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("failed Listen left its lock behind: %v", err)
	}
}

func TestUNIXBadLock(t *testing.T) {
	path := sockPath(t)
	os.WriteFile(path+".lock", nil, 0644) // a regular file, not Twisted's symlink
	_, err := Listen(context.Background(), "unix:"+path)
	if err == nil || !errorsContain(err, "not a lock") {
		t.Fatalf("Listen with a regular file as lock: %v", err)
	}
	os.Remove(path + ".lock")
	os.Symlink("not-a-pid", path+".lock")
	_, err = Listen(context.Background(), "unix:"+path)
	if err == nil || !errorsContain(err, "not a process ID") {
		t.Fatalf("Listen with a lock pointing at text: %v", err)
	}
}

func errorsContain(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

func TestUNIXAbstract(t *testing.T) {
	name := "@tether-test-" + strconv.Itoa(os.Getpid())
	ln := listen(t, "unix:"+name)
	peers := echoOnce(t, ln)
	c, err := Dial(context.Background(), "unix:"+name)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	<-peers
	if _, err := Listen(context.Background(), "unix:"+name); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second abstract Listen: %v", err)
	}
}

func TestUNIXDialMissing(t *testing.T) {
	path := sockPath(t)
	_, err := Dial(context.Background(), "unix:"+path)
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("dial to a missing socket: %v, want ENOENT", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Dial(ctx, "unix:"+path); !errors.Is(err, context.Canceled) {
		t.Fatalf("dial with a cancelled context: %v", err)
	}
}

// TestUNIXModeFromTheStart: Linux's bind(2) makes the socket file with the
// socket's own mode less the umask, which is what Listen relies on to give
// the file its mode at creation rather than through its path afterwards
// (see unix_symlink_test.go for the same under a restrictive umask, and for
// the race that a chmod by path loses).
func TestUNIXModeFromTheStart(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	// With no umask, a socket made without care would be 0777 at bind.
	s := &unixServer{mode: 0600, backlog: 1, uid: -1, gid: -1}
	s.path = sockPath(t)
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	syscall.Fchmod(fd, uint32(s.mode))
	syscall.Bind(fd, &syscall.SockaddrUnix{Name: s.path})
	fi, err := os.Lstat(s.path)
	if err != nil || fi.Mode().Perm() != 0600 {
		t.Fatalf("fchmod before bind gave %v, %v; want 0600 at creation", fi.Mode().Perm(), err)
	}
	os.Remove(s.path)
	ln, err := s.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if fi, err := os.Lstat(s.path); err != nil || fi.Mode().Perm() != 0600 {
		t.Fatalf("Listen gave %v, %v", fi.Mode().Perm(), err)
	}
}

// TestUnixListenHints: a socket file that nothing listens on, and a
// directory that does not exist, are explained with what to do; the
// error keeps its identity (EADDRINUSE, ENOENT), and tether removes
// nothing it cannot prove is its own.
func TestUnixListenHints(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // the file stays, as a crashed program leaves it
	for _, s := range []string{"unix:" + stale + ":lockfile=0", "unix:" + stale} {
		_, err := Listen(context.Background(), s)
		if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "rm "+stale) {
			t.Errorf("%s: %v; want EADDRINUSE and how to remove the stale file", s, err)
		}
	}
	if _, err := os.Lstat(stale); err != nil {
		t.Errorf("the stale socket was removed by tether: %v", err)
	}
	missing := filepath.Join(dir, "no-such-dir", "x.sock")
	_, err = Listen(context.Background(), "unix:"+missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Dir(missing)+" does not exist") {
		t.Errorf("missing directory: %v; want it named", err)
	}
}
