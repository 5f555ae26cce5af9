//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/internal/testpeer"
)

// These tests restart real tether processes with SIGHUP (restart.go):
// every generation writes to the same stderr, so one proc collects the log
// lines of all of them. The first is the test's child; the others are
// children of the generation before, and are found by the PIDs tether
// logs and sends to NOTIFY_SOCKET.

// notifySocket is a NOTIFY_SOCKET made by the test, as systemd makes one:
// each message comes with its sender's PID (SO_PASSCRED), so that the test
// can check that only the main process speaks.
type notifySocket struct {
	t    *testing.T
	path string
	c    *net.UnixConn
}

type notification struct {
	pid   int
	state string
}

func newNotifySocket(t *testing.T) *notifySocket {
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1) })
	if serr != nil {
		t.Fatal(serr)
	}
	return &notifySocket{t: t, path: path, c: c}
}

// next returns the next message and its sender.
func (n *notifySocket) next() notification {
	n.t.Helper()
	n.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf, oob := make([]byte, 1024), make([]byte, 256)
	k, oobn, _, _, err := n.c.ReadMsgUnix(buf, oob)
	if err != nil {
		n.t.Fatalf("no notification: %v", err)
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		n.t.Fatalf("notification without credentials: %v", err)
	}
	cred, err := syscall.ParseUnixCredentials(&msgs[0])
	if err != nil {
		n.t.Fatal(err)
	}
	return notification{pid: int(cred.Pid), state: string(buf[:k])}
}

// field returns the value of KEY= in a notification, or "".
func (m notification) field(key string) string {
	for _, l := range strings.Split(m.state, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	return ""
}

// listenInode returns the inode of the TCP socket listening on 127.0.0.1
// at port, from /proc/net/tcp: the socket itself, whichever processes
// hold it.
func listenInode(t *testing.T, port int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) > 9 && f[1] == local && f[3] == "0A" { // 0A: LISTEN
			return f[9]
		}
	}
	t.Fatalf("nothing listens on 127.0.0.1:%d", port)
	return ""
}

// holdsSocket says whether process pid has the socket with this inode open.
func holdsSocket(pid int, inode string) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if l, _ := os.Readlink(filepath.Join(dir, e.Name())); l == "socket:["+inode+"]" {
			return true
		}
	}
	return false
}

// gone says whether process pid has exited (a zombie that no one has
// reaped yet has, too).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] == 'Z'
}

// waitGone waits for process pid to exit.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (PID %d) has not exited", what, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOldGone waits until process old has exited and the process that
// replaced it knows, and so may restart in turn.
func waitOldGone(t *testing.T, p *proc, old int) {
	t.Helper()
	waitGone(t, old, "the old process")
	p.waitLog("the old process has exited; SIGHUP may restart again", func(l map[string]any) bool {
		return l["old_pid"] == float64(old)
	})
}

// killAll ends the processes still running when the test ends, so that the
// shared stderr closes and proc's cleanup finishes.
func killAll(t *testing.T, pids *[]int) {
	t.Cleanup(func() {
		for _, pid := range *pids {
			if !gone(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// load is continuous traffic through a listener: short connections, each
// one message echoed, and long streams of pseudo-random bytes whose
// echo is checked by SHA-256 when they end. Every failure is kept.
type load struct {
	network, addr string
	stop          chan struct{} // closed: the short connections stop
	wg            sync.WaitGroup
	ok            atomic.Int64 // short connections that were echoed whole
	streams       atomic.Int64 // streams that were echoed whole
	streamBytes   atomic.Int64
	mu            sync.Mutex
	failures      []string
}

func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	l.failures = append(l.failures, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// short runs workers that each make connections one after another.
func (l *load) short(workers int) {
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				msg := fmt.Sprintf("worker %d connection %d", w, i)
				c, err := net.DialTimeout(l.network, l.addr, 10*time.Second)
				if err != nil {
					l.fail("%s: dial: %v", msg, err)
					continue
				}
				c.SetDeadline(time.Now().Add(30 * time.Second))
				_, err = io.WriteString(c, msg)
				if err == nil {
					err = c.(interface{ CloseWrite() error }).CloseWrite()
				}
				got, rerr := io.ReadAll(c)
				c.Close()
				switch {
				case err != nil:
					l.fail("%s: write: %v", msg, err)
				case rerr != nil || string(got) != msg:
					l.fail("%s: echo %q, %v", msg, got, rerr)
				default:
					l.ok.Add(1)
				}
			}
		}()
	}
}

// stream starts one long connection that sends until end is closed, and
// checks that what comes back is what it sent.
func (l *load) stream(seed uint64, end <-chan struct{}) {
	c, err := net.DialTimeout(l.network, l.addr, 10*time.Second)
	if err != nil {
		l.fail("stream %d: dial: %v", seed, err)
		return
	}
	l.wg.Add(2)
	sent := make(chan [32]byte, 1)
	var n atomic.Int64
	go func() { // the writer: 32 KiB at a time, paced, until told to end
		defer l.wg.Done()
		src := rand.NewChaCha8([32]byte{byte(seed)})
		h := sha256.New()
		buf := make([]byte, 32<<10)
		for {
			select {
			case <-end:
				c.(interface{ CloseWrite() error }).CloseWrite()
				var sum [32]byte
				copy(sum[:], h.Sum(nil))
				sent <- sum
				return
			case <-time.After(2 * time.Millisecond):
			}
			src.Read(buf)
			h.Write(buf)
			if _, err := c.Write(buf); err != nil {
				l.fail("stream %d: write after %d bytes: %v", seed, n.Load(), err)
				close(sent)
				return
			}
			n.Add(int64(len(buf)))
		}
	}()
	go func() { // the reader
		defer l.wg.Done()
		defer c.Close()
		h := sha256.New()
		got, err := io.Copy(h, c)
		want, ok := <-sent
		switch {
		case err != nil:
			l.fail("stream %d: read after %d bytes: %v", seed, got, err)
		case !ok:
		case got != n.Load() || !bytes.Equal(h.Sum(nil), want[:]):
			l.fail("stream %d: %d bytes back of %d, or not the same bytes", seed, got, n.Load())
		default:
			l.streams.Add(1)
			l.streamBytes.Add(got)
		}
	}()
}

// waitMore waits until n more short connections have been echoed.
func (l *load) waitMore(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	deadline := time.Now().Add(60 * time.Second)
	for l.ok.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("the load made no progress: %d connections echoed", l.ok.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRestartUnderLoad: five SIGHUP restarts of tether relay in a row,
// under a continuous load of short connections and long checksummed
// streams, two begun on each process before it is restarted and ended
// after, while it drains. No connection is refused or reset and every
// stream comes back whole; the listening socket is the same one (its
// inode) from the first process to the last, which holds it; each old
// process tells NOTIFY_SOCKET the new MAINPID and READY=1 (and the new
// one, until then, nothing), drains, and exits; a new process refuses to
// restart while the old one drains; the --metrics listener is handed on
// too.
func TestRestartUnderLoad(t *testing.T) {
	up, target := listenTest(t, "tcp")
	echoServer(up)
	notify := newNotifySocket(t)
	p := startTether(t, "/usr/bin/env", "NOTIFY_SOCKET="+notify.path, tetherBin, "relay", "--log-format", "json",
		"--drain-timeout", "10m", "--metrics", "tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1", target)
	var pids []int
	killAll(t, &pids)
	addr := p.addr()
	metricsAddr := p.waitLog("serving metrics", nil)["addr"].(string)
	first := notify.next()
	if first.field("READY") != "1" {
		t.Fatalf("first notification %q; want READY=1", first.state)
	}
	main := first.pid
	pids = append(pids, main)
	_, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	inode := listenInode(t, port)

	l := &load{network: "tcp", addr: addr, stop: make(chan struct{})}
	l.short(4)
	end := make(chan struct{}) // ends the streams of the process serving now
	l.stream(1, end)
	l.stream(2, end)
	l.waitMore(t, 50)
	const restarts = 5
	for i := 1; i <= restarts; i++ {
		before := l.ok.Load()
		if err := syscall.Kill(main, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if m := notify.next(); m.field("RELOADING") != "1" || m.field("MONOTONIC_USEC") == "" || m.pid != main {
			t.Fatalf("restart %d: notification %q from %d; want RELOADING=1 and MONOTONIC_USEC from the main process %d",
				i, m.state, m.pid, main)
		}
		m := notify.next()
		newPID, _ := strconv.Atoi(m.field("MAINPID"))
		if newPID <= 0 || newPID == main || m.field("READY") != "1" || m.pid != main {
			t.Fatalf("restart %d: notification %q from %d; want MAINPID= a new process and READY=1, from %d",
				i, m.state, m.pid, main)
		}
		pids = append(pids, newPID)
		line := p.waitLog("restarted: the new process serves; not accepting; draining", func(l map[string]any) bool {
			return l["new_pid"] == float64(newPID)
		})
		t.Logf("restart %d: PID %d handed on to %d with %v connections in hand; %d short connections echoed before the SIGHUP",
			i, main, newPID, line["connections"], before)
		if got := listenInode(t, port); got != inode || !holdsSocket(newPID, inode) {
			t.Fatalf("restart %d: the listening socket is inode %s (held by the new process: %v); want %s",
				i, got, holdsSocket(newPID, inode), inode)
		}
		if i == 1 {
			// The old process still drains its streams: the new one
			// will not restart yet, and goes on serving.
			syscall.Kill(newPID, syscall.SIGHUP)
			p.waitLog("SIGHUP: cannot restart yet; going on serving", nil)
		}
		next := make(chan struct{})
		l.stream(uint64(10*i+1), next) // served by the new process, which the next restart drains
		l.stream(uint64(10*i+2), next)
		l.waitMore(t, 50)
		close(end) // the old process's streams end, and with them its drain
		end = next
		waitOldGone(t, p, main)
		main = newPID
	}
	// The metrics listener is the last process's now.
	res, err := http.Get("http://" + metricsAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "ready\n" {
		t.Errorf("/healthz after the restarts: %d %q", res.StatusCode, body)
	}

	close(l.stop)
	close(end)
	l.wg.Wait()
	for _, f := range l.failures {
		t.Error(f)
	}
	t.Logf("%d restarts: %d short connections echoed, %d failed; %d long streams (%d MiB) whole",
		restarts, l.ok.Load(), len(l.failures), l.streams.Load(), l.streamBytes.Load()>>20)
	if want := int64(2 * (restarts + 1)); l.streams.Load() != want {
		t.Errorf("%d streams came back whole; want %d", l.streams.Load(), want)
	}
	if gone(main) {
		t.Fatal("the last process has exited")
	}
	if n := p.count("stopped"); n != restarts {
		t.Errorf("%d processes logged stopped; want %d", n, restarts)
	}
	syscall.Kill(main, syscall.SIGTERM)
	if m := notify.next(); m.field("STOPPING") != "1" || m.pid != main {
		t.Errorf("at SIGTERM: %q from %d; want STOPPING=1 from %d", m.state, m.pid, main)
	}
	waitGone(t, main, "the last process")
}

// startRestartable runs a copy of tether from a directory of the test's,
// so that the test can replace the binary on disk.
func startRestartable(t *testing.T, notify string, args ...string) (p *proc, bin string) {
	t.Helper()
	bin = filepath.Join(t.TempDir(), "tether")
	copyFile(t, tetherBin, bin, 0o755)
	return startTether(t, append([]string{"/usr/bin/env", "NOTIFY_SOCKET=" + notify, bin}, args...)...), bin
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	// Written beside and renamed: a running binary cannot be written to.
	if err := os.WriteFile(to+".new", b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(to+".new", to); err != nil {
		t.Fatal(err)
	}
}

// echoOnce checks that a connection to addr is echoed.
func echoOnce(t *testing.T, network, addr, msg string) {
	t.Helper()
	c := dialAddr(t, network, addr)
	c.SetDeadline(time.Now().Add(15 * time.Second))
	io.WriteString(c, msg)
	closeWriteT(t, c)
	if got, err := io.ReadAll(c); string(got) != msg || err != nil {
		t.Fatalf("echo through %s: %q, %v; want %q", addr, got, err, msg)
	}
}

// TestRestartFailed: when the binary on disk has been replaced by one that
// exits 1, SIGHUP leaves the old process serving, which logs why and tells
// NOTIFY_SOCKET it is READY=1 again, naming no new MAINPID. With the binary
// back, the next SIGHUP restarts.
func TestRestartFailed(t *testing.T) {
	notify := newNotifySocket(t)
	p, bin := startRestartable(t, notify.path, "serve", "--log-format", "json", "tcp:0:interface=127.0.0.1")
	var pids []int
	killAll(t, &pids)
	addr := p.addr()
	main := notify.next().pid
	pids = append(pids, main)
	if err := os.WriteFile(bin+".bad", []byte("#!/bin/sh\necho broken >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".bad", bin); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(main, syscall.SIGHUP)
	if m := notify.next(); m.field("RELOADING") != "1" {
		t.Fatalf("%q; want RELOADING=1", m.state)
	}
	if m := notify.next(); m.field("READY") != "1" || m.field("MAINPID") != "" || m.pid != main {
		t.Fatalf("after the failed restart: %q from %d; want READY=1 without MAINPID from %d", m.state, m.pid, main)
	}
	l := p.waitLog("restart failed; this process goes on serving", nil)
	if e, _ := l["error"].(string); !strings.Contains(e, "exit status 1") {
		t.Errorf("the log says %q; want the new process's exit status 1", e)
	}
	p.waitRaw("broken")
	echoOnce(t, "tcp", addr, "still here")
	if gone(main) {
		t.Fatal("the old process has exited")
	}

	copyFile(t, tetherBin, bin, 0o755)
	syscall.Kill(main, syscall.SIGHUP)
	notify.next() // RELOADING=1
	m := notify.next()
	newPID, _ := strconv.Atoi(m.field("MAINPID"))
	if newPID <= 0 {
		t.Fatalf("after the second SIGHUP: %q; want MAINPID=", m.state)
	}
	pids = append(pids, newPID)
	waitGone(t, main, "the old process")
	echoOnce(t, "tcp", addr, "new process")
}

// TestRestartAbandoned: a new process that never says it is ready (the
// binary replaced by one that sleeps): a second SIGHUP meanwhile is
// ignored, and SIGTERM kills the new process and stops the old one as
// usual (STOPPING=1).
func TestRestartAbandoned(t *testing.T) {
	notify := newNotifySocket(t)
	p, bin := startRestartable(t, notify.path, "serve", "--log-format", "json", "tcp:0:interface=127.0.0.1")
	var pids []int
	killAll(t, &pids)
	p.addr()
	main := notify.next().pid
	pids = append(pids, main)
	pidFile := filepath.Join(t.TempDir(), "sleeper")
	script := fmt.Sprintf("#!/bin/sh\necho $$ > %s.tmp && mv %s.tmp %s\nexec sleep 600\n", pidFile, pidFile, pidFile)
	if err := os.WriteFile(bin+".slow", []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".slow", bin); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(main, syscall.SIGHUP)
	notify.next() // RELOADING=1
	var sleeper int
	deadline := time.Now().Add(30 * time.Second)
	for sleeper == 0 && time.Now().Before(deadline) {
		b, _ := os.ReadFile(pidFile)
		sleeper, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(10 * time.Millisecond)
	}
	if sleeper == 0 {
		t.Fatal("the new process did not start")
	}
	pids = append(pids, sleeper)
	syscall.Kill(main, syscall.SIGHUP)
	p.waitLog("SIGHUP: a restart is in progress already; ignored", nil)
	syscall.Kill(main, syscall.SIGTERM)
	p.waitLog("restart abandoned", nil)
	if m := notify.next(); m.field("STOPPING") != "1" {
		t.Errorf("at SIGTERM: %q; want STOPPING=1", m.state)
	}
	waitGone(t, sleeper, "the new process that never became ready")
	waitGone(t, main, "the old process")
	if c := p.exitCode(); c != 0 {
		t.Errorf("exit code %d", c)
	}
}

// TestRestartUnix: a unix: LISTEN keeps its socket file (the same inode),
// mode and lock across a restart; the lock names the new process; the old
// process removes neither when it stops, and the last one removes both.
func TestRestartUnix(t *testing.T) {
	notify := newNotifySocket(t)
	path := filepath.Join(t.TempDir(), "restart.sock")
	p := startTether(t, "/usr/bin/env", "NOTIFY_SOCKET="+notify.path, tetherBin, "serve", "--log-format", "json",
		"unix:"+path+":mode=600")
	var pids []int
	killAll(t, &pids)
	p.addr()
	main := notify.next().pid
	pids = append(pids, main)
	var before syscall.Stat_t
	if err := syscall.Lstat(path, &before); err != nil {
		t.Fatal(err)
	}
	if owner, _ := os.Readlink(path + ".lock"); owner != strconv.Itoa(main) {
		t.Fatalf("lock names %q; want %d", owner, main)
	}
	echoOnce(t, "unix", path, "before")
	for i := 0; i < 2; i++ {
		syscall.Kill(main, syscall.SIGHUP)
		notify.next() // RELOADING=1
		newPID, _ := strconv.Atoi(notify.next().field("MAINPID"))
		if newPID <= 0 {
			t.Fatal("no MAINPID")
		}
		pids = append(pids, newPID)
		waitOldGone(t, p, main)
		main = newPID
		var after syscall.Stat_t
		if err := syscall.Lstat(path, &after); err != nil {
			t.Fatalf("restart %d: the socket file: %v", i+1, err)
		}
		if after.Ino != before.Ino || after.Mode&0o777 != 0o600 {
			t.Errorf("restart %d: socket file inode %d mode %o; want inode %d mode 600", i+1, after.Ino, after.Mode&0o777, before.Ino)
		}
		if owner, _ := os.Readlink(path + ".lock"); owner != strconv.Itoa(main) {
			t.Errorf("restart %d: lock names %q; want the new process %d", i+1, owner, main)
		}
		echoOnce(t, "unix", path, fmt.Sprintf("after restart %d", i+1))
	}
	syscall.Kill(main, syscall.SIGTERM)
	waitGone(t, main, "the last process")
	for _, f := range []string{path, path + ".lock"} {
		if _, err := os.Lstat(f); !os.IsNotExist(err) {
			t.Errorf("%s after the last process stopped: %v; want it removed", f, err)
		}
	}
}

// TestRestartKinds: a restart hands on a tls: LISTEN (its tcp socket; the
// new process makes its own --dev-cert) and a socket passed by systemd
// socket activation, which the new process gets from the old one.
func TestRestartKinds(t *testing.T) {
	restartOnce := func(t *testing.T, p *proc, notify *notifySocket, pids *[]int) {
		t.Helper()
		main := notify.next().pid
		*pids = append(*pids, main)
		syscall.Kill(main, syscall.SIGHUP)
		notify.next() // RELOADING=1
		newPID, _ := strconv.Atoi(notify.next().field("MAINPID"))
		if newPID <= 0 {
			t.Fatal("no MAINPID")
		}
		*pids = append(*pids, newPID)
		waitGone(t, main, "the old process")
	}
	t.Run("tls", func(t *testing.T) {
		notify := newNotifySocket(t)
		dir := t.TempDir()
		p := startTether(t, "/usr/bin/env", "NOTIFY_SOCKET="+notify.path, "TMPDIR="+dir, tetherBin, "serve",
			"--log-format", "json", "--dev-cert", "tls:0:interface=127.0.0.1")
		var pids []int
		killAll(t, &pids)
		addr := p.addr()
		restartOnce(t, p, notify, &pids)
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the new process's throwaway certificate
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "over tls")
		c.CloseWrite()
		if got, err := io.ReadAll(bufio.NewReader(c)); string(got) != "over tls" || err != nil {
			t.Errorf("echo %q, %v", got, err)
		}
	})
	t.Run("systemd", func(t *testing.T) {
		testpeer.Need(t, sdActivateBin, "systemd")
		notify := newNotifySocket(t)
		addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
		p := startTether(t, sdActivateBin, "-E", "NOTIFY_SOCKET="+notify.path, "-l", addr, tetherBin, "serve", "--log-format", "json", "systemd:domain=INET:index=0")
		var pids []int
		killAll(t, &pids)
		p.waitRaw("Listening on " + addr)
		echoOnce(t, "tcp", addr, "activated") // starts tether
		restartOnce(t, p, notify, &pids)
		echoOnce(t, "tcp", addr, "handed on")
		if n := p.count("took over the listeners from the old process"); n != 1 {
			t.Errorf("%d processes took over; want 1", n)
		}
	})
}
