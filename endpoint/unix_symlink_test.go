//go:build linux

package endpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// umaskNow reads the process umask, which can only be read by setting it.
func umaskNow() int {
	m := syscall.Umask(0o022)
	syscall.Umask(m)
	return m
}

// refuseUnshare makes Listen take the way of a process whose seccomp
// profile refuses unshare(2), as container runtimes' defaults do, until
// the test ends.
func refuseUnshare(t *testing.T) {
	saved := unshareFS
	unshareFS = func() error { return syscall.EPERM }
	t.Cleanup(func() { unshareFS = saved })
}

// TestUnixListenModeBornExact: whatever the umask, the socket file has
// exactly the mode asked for, and Listen leaves the process umask as it
// was; on Linux the file has that mode from the moment bind makes it. Not
// parallel: the umask belongs to the whole test process.
func TestUnixListenModeBornExact(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0o077))
	check := func(t *testing.T) {
		for _, mode := range []os.FileMode{0o666, 0o600, 0o640, 0o777} {
			path := sockPath(t)
			ln, err := Listen(context.Background(), fmt.Sprintf("unix:%s:mode=%o", path, mode))
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(path)
			if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != mode {
				t.Errorf("mode=%o under umask 077: %v, %v; want a socket with mode %04o", mode, fi.Mode(), err, mode)
			}
			if m := umaskNow(); m != 0o077 {
				t.Fatalf("Listen changed the process umask to %03o", m)
			}
			ln.Close()
		}
	}
	t.Run("born", func(t *testing.T) {
		// bind alone, on a thread of its own, makes the file with the
		// exact mode: nothing is left to do to it by path.
		fd, err := unixSocket()
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fd)
		path := sockPath(t)
		if err := bindBornExact(fd, path, 0o666); errors.Is(err, errNoThreadUmask) {
			t.Skipf("this process may not unshare(CLONE_FS): %v", err)
		} else if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o666 {
			t.Fatalf("bound under umask 077: %v, %v; want 0666 at birth", fi.Mode(), err)
		}
		if m := umaskNow(); m != 0o077 {
			t.Fatalf("bindBornExact changed the process umask to %03o", m)
		}
		check(t)
	})
	t.Run("unshare refused", func(t *testing.T) {
		refuseUnshare(t)
		check(t)
	})
}

// TestUnixFixModeRefusesReplaced: when the mode has to be fixed after
// bind, something other than this process's socket at the path is an
// error, and neither it nor what it points at is changed.
func TestUnixFixModeRefusesReplaced(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{link, target} {
		if err := fixMode(path, 0o666); err == nil || !strings.Contains(err.Error(), "replaced") {
			t.Errorf("fixMode(%s): %v, want an error saying it was replaced", path, err)
		}
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("target: %v, %v; want it left 0600", fi.Mode(), err)
	}
	// A hard link to another socket of this user, put at the path: a
	// socket of the right owner, but not the one just bound.
	other := filepath.Join(dir, "private.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: other, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(other, 0o600); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "app.sock")
	if err := os.Link(other, hard); err != nil {
		t.Fatal(err)
	}
	if err := fixMode(hard, 0o666); err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Errorf("fixMode of a hard link to another socket: %v, want an error saying it was replaced", err)
	}
	if fi, err := os.Stat(other); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the other socket: %v, %v; want it left 0600", fi.Mode(), err)
	}
}

// TestUnixCloseLeavesReplacedFiles: Close removes its socket and its lock
// only while they are still its own; what someone put in their place, a
// link included, stays, and nothing a link points at is touched.
func TestUnixCloseLeavesReplacedFiles(t *testing.T) {
	path := sockPath(t)
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln := listen(t, "unix:"+path)
	for _, p := range []string{path, path + ".lock"} {
		tmp := p + ".new"
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".lock"} {
		if dest, err := os.Readlink(p); err != nil || dest != target {
			t.Errorf("%s after Close: %q, %v; want the link left in place", p, dest, err)
		}
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("target: %v, %v; want it left 0600", fi.Mode(), err)
	}
}

// The symlink race: the socket's directory is writable by an unprivileged
// user, who replaces the fresh socket (and its lock) with symbolic links to
// a file only root can change. A listener that then changes the socket's
// mode by path changes that file's instead.

const (
	attackerEnv       = "TETHER_TEST_SYMLINK_ATTACKER" // the socket path to attack
	attackerTargetEnv = "TETHER_TEST_SYMLINK_TARGET"   // what the links point at
)

// TestUnixSymlinkAttackerProcess is the attacker when this test binary is
// run again with TETHER_TEST_SYMLINK_ATTACKER set; otherwise it does
// nothing.
func TestUnixSymlinkAttackerProcess(t *testing.T) {
	sock := os.Getenv(attackerEnv)
	if sock == "" {
		return
	}
	attack(sock, os.Getenv(attackerTargetEnv))
}

// attack swaps symbolic links to target in for sock and sock.lock, as fast
// as it can, until its standard input is closed (the test is over).
func attack(sock, target string) {
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Printf("attacking as uid %d gid %d groups %v\n", os.Geteuid(), os.Getegid(), supplementaryGroups())
	lock := sock + ".lock"
	tmp := filepath.Join(filepath.Dir(sock), fmt.Sprintf("attack-%d", os.Getpid()))
	swap := func(name string) {
		syscall.Unlink(tmp)
		if syscall.Symlink(target, tmp) == nil {
			syscall.Rename(tmp, name) // atomic: name is never missing
		}
	}
	buf := make([]byte, 256)
	for i := 0; ; i++ {
		// The window that matters opens when bind has made the socket
		// file: watch for it and swap it out at once.
		var st syscall.Stat_t
		if syscall.Lstat(sock, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFSOCK {
			swap(sock)
		}
		// Take over a live lock, so that Close finds a lock that is not
		// its own; now and then plant one before Listen, too.
		if n, err := syscall.Readlink(lock, buf); (err == nil && string(buf[:n]) != target) || i%4096 == 0 {
			swap(lock)
		}
	}
}

func supplementaryGroups() []int {
	g, _ := os.Getgroups()
	return g
}

// TestUnixListenSymlinkRace runs the attacker as user nobody against
// Listen and Close, many times over, and checks that the file its links
// point at is never changed.
func TestUnixListenSymlinkRace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the race is root's listener against an unprivileged user's symlinks")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed to run the attacker as nobody: %v", err)
	}
	// The socket's directory is writable by everyone and not sticky, so
	// that user nobody may rename over root's entries in it. Its parent
	// holds a copy of this test binary, for nobody to run; t.TempDir's
	// parents are root's alone, so neither can live there.
	base, err := os.MkdirTemp("", "tether-race-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, "d")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{base, 0o755}, {dir, 0o777}} {
		os.Mkdir(d.path, 0o700)
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	attacker := filepath.Join(base, "attacker")
	copyExecutable(t, attacker)

	// The file the attacker wants changed: root's, 0600, in a directory
	// that user nobody cannot even reach, so only root following a link
	// can change it.
	target := filepath.Join(t.TempDir(), "secret")
	const content = "root's secret\n"
	if err := os.WriteFile(target, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o600); err != nil {
		t.Fatal(err)
	}
	var before syscall.Stat_t
	if err := syscall.Stat(target, &before); err != nil {
		t.Fatal(err)
	}
	unchanged := func(t *testing.T, when string) {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Stat(target, &st); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if st.Mode != before.Mode || st.Uid != before.Uid || st.Gid != before.Gid || st.Ctim != before.Ctim {
			t.Fatalf("%s: the attacker's target changed: mode %o uid %d gid %d (was mode %o uid %d gid %d)",
				when, st.Mode, st.Uid, st.Gid, before.Mode, before.Uid, before.Gid)
		}
	}

	sock := filepath.Join(dir, "s.sock")
	startAttacker(t, setpriv, attacker, sock, target)

	// A umask that takes bits from mode=666, so that a listener has
	// something to fix after bind when it cannot be born with the mode.
	defer syscall.Umask(syscall.Umask(0o022))
	race := func(t *testing.T) {
		for _, s := range []string{"unix:" + sock + ":mode=666:lockfile=0", "unix:" + sock + ":mode=666"} {
			listened, refused, swapped := 0, 0, 0
			var firstRefusal error
			deadline := time.Now().Add(time.Second)
			for i := 0; i < 300 && time.Now().Before(deadline); i++ {
				// What the attacker left from the last round would only
				// make Listen fail: start each from an empty address.
				// Unlink does not follow links.
				syscall.Unlink(sock)
				syscall.Unlink(sock + ".lock")
				ln, err := Listen(context.Background(), s)
				if err != nil {
					refused++
					if firstRefusal == nil {
						firstRefusal = err
					}
					unchanged(t, fmt.Sprintf("%s, round %d (refused: %v)", s, i, err))
					continue
				}
				listened++
				if fi, err := os.Lstat(sock); err == nil && fi.Mode().Type() == os.ModeSymlink {
					swapped++ // the attacker won the race for this socket
				}
				ln.Close()
				unchanged(t, fmt.Sprintf("%s, round %d", s, i))
			}
			t.Logf("%s: %d listens, %d refused (first: %v), %d sockets swapped for a link",
				s, listened, refused, firstRefusal, swapped)
			if listened == 0 {
				t.Errorf("%s: no Listen succeeded against the attacker: the test proves nothing", s)
			}
		}
	}
	if !t.Run("born", race) {
		return // the target has changed already: nothing more to learn
	}
	t.Run("unshare refused", func(t *testing.T) {
		refuseUnshare(t)
		race(t)
	})
	if b, err := os.ReadFile(target); err != nil || string(b) != content {
		t.Fatalf("target's content: %q, %v", b, err)
	}
	unchanged(t, "at the end")
}

// copyExecutable copies this test binary to path, mode 0755. ForkLock
// keeps a process forked meanwhile from holding the file open for writing,
// which would make executing it fail with ETXTBSY.
func copyExecutable(t *testing.T, path string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// startAttacker runs the attacker as nobody (65534) with no supplementary
// groups, waits until it says it is running, and kills it when the test
// ends. Closing its standard input also ends it, should this process die.
func startAttacker(t *testing.T, setpriv, attacker, sock, target string) {
	t.Helper()
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
		attacker, "-test.run=^TestUnixSymlinkAttackerProcess$", "-test.count=1")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), attackerEnv+"="+sock, attackerTargetEnv+"="+target, helperRaceEnv)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("attacker did not start: %v; stderr: %s", err, stderr.String())
	}
	if want := "attacking as uid 65534 gid 65534 groups []"; strings.TrimSpace(line) != want {
		t.Fatalf("attacker says %q, want %q", line, want)
	}
	go io.Copy(io.Discard, stdout)
}

// TestUnixListenOwner: owner= and group= give the socket file its owner
// and group (systemd's SocketUser= and SocketGroup=), by name or number,
// before anyone can connect; an unknown name fails at parse, naming the
// argument. Changing a file's owner needs root.
func TestUnixListenOwner(t *testing.T) {
	if _, err := ParseServer("unix:/x.sock:owner=no-such-user-here"); !errors.Is(err, ErrBadArgument) ||
		!strings.Contains(err.Error(), "owner") {
		t.Errorf("unknown owner: %v; want ErrBadArgument naming owner", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("changing a socket file's owner needs root (CI runs as root)")
	}
	dir := t.TempDir()
	for _, s := range []string{"owner=nobody:group=65534", "owner=65534:group=nogroup"} {
		path := filepath.Join(dir, "owned.sock")
		ln, err := Listen(context.Background(), "unix:"+path+":mode=660:"+s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 65534 || st.Gid != 65534 || st.Mode&0o7777 != 0o660 {
			t.Errorf("%s: socket file uid %d gid %d mode %o; want 65534, 65534, 660", s, st.Uid, st.Gid, st.Mode&0o7777)
		}
		ln.Close()
	}
}
