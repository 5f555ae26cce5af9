package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
)

// startServe runs `tether serve` on a free loopback port with the given
// service arguments and returns it and its address.
func startServe(t *testing.T, service ...string) (*proc, string) {
	t.Helper()
	args := append([]string{tetherBin, "serve", "--log-format", "json", "tcp:0:interface=127.0.0.1"}, service...)
	p := startTether(t, args...)
	return p, p.addr()
}

func TestServeEcho(t *testing.T) {
	p, addr := startServe(t) // echo is the default
	data := randomBytes(t, 2<<20)
	c := dialAddr(t, "tcp", addr)
	go func() {
		c.Write(data)
		closeWriteT(t, c)
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo: %d bytes, %v; want %d back", len(got), err, len(data))
	}
	if l := p.waitLog("connection ended", nil); l["from_peer"] != float64(len(data)) || l["to_peer"] != float64(len(data)) {
		t.Errorf("log line %v", l)
	}
}

func TestServeDiscard(t *testing.T) {
	p, addr := startServe(t, "discard")
	c := dialAddr(t, "tcp", addr)
	c.Write(make([]byte, 100000))
	closeWriteT(t, c)
	if got, err := io.ReadAll(c); len(got) != 0 || err != nil {
		t.Errorf("discard sent %d bytes, %v", len(got), err)
	}
	if l := p.waitLog("connection ended", nil); l["from_peer"] != float64(100000) || l["to_peer"] != float64(0) {
		t.Errorf("log line %v", l)
	}
}

func TestServeChargen(t *testing.T) {
	p, addr := startServe(t, "chargen")
	c := dialAddr(t, "tcp", addr)
	got := make([]byte, 3*74)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(got), "\r\n")
	want := []string{
		` !"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_` + "`abcdefg\r\n",
		`!"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_` + "`abcdefgh\r\n",
		`"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_` + "`abcdefghi\r\n",
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d = %q, want %q", i, lines[i], w)
		}
	}
	c.Close()
	if l := p.waitLog("connection ended", nil); l["error"] != nil {
		t.Errorf("a peer closing chargen is no error: %v", l)
	}
}

func TestServeExec(t *testing.T) {
	t.Run("half-close", func(t *testing.T) {
		// tr sees end of file only when the peer half-closes; the reply
		// after it shows the reverse direction still open.
		_, addr := startServe(t, "exec", "--", "/bin/sh", "-c", "tr a-z A-Z; echo done")
		c := dialAddr(t, "tcp", addr)
		c.Write([]byte("hello\n"))
		closeWriteT(t, c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := io.ReadAll(c); string(got) != "HELLO\ndone\n" || err != nil {
			t.Errorf("got %q, %v", got, err)
		}
	})
	t.Run("exit closes", func(t *testing.T) {
		// The command exits without reading: the peer gets its output and
		// an end of file while its own write half is still open.
		p, addr := startServe(t, "exec", "/bin/sh", "-c", `echo "$TETHER_PEER"`)
		c := dialAddr(t, "tcp", addr)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		if string(got) != c.LocalAddr().String()+"\n" || err != nil {
			t.Errorf("got %q, %v; want the peer's address", got, err)
		}
		c.Close() // ends serve's wait for our end of file
		if l := p.waitLog("connection ended", nil); l["error"] != nil {
			t.Errorf("log line %v", l)
		}
	})
	t.Run("exit status", func(t *testing.T) {
		p, addr := startServe(t, "exec", "--", "/bin/sh", "-c", "exit 3")
		c := dialAddr(t, "tcp", addr)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.ReadAll(c)
		c.Close()
		if l := p.waitLog("connection ended", nil); !strings.Contains(l["error"].(string), "exit status 3") {
			t.Errorf("log line %v; want the exit status", l)
		}
	})
}

// TestServeQuietAndSignal: --quiet drops the per-connection lines, and
// SIGTERM ends serve with exit 0 and removes its UNIX socket.
func TestServeQuietAndSignal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "echo.sock")
	p := startTether(t, tetherBin, "serve", "--quiet", "--log-format", "json", "unix:"+endpoint.Quote(path))
	var c net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if c, err = net.Dial("unix", path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	c.Write([]byte("x"))
	closeWriteT(t, c)
	if got, _ := io.ReadAll(c); string(got) != "x" {
		t.Errorf("echo over UNIX: %q", got)
	}
	c.Close()
	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != exitOK {
		t.Errorf("exit code %d", code)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.raw) != 0 {
		t.Errorf("--quiet logged %q", p.raw)
	}
	if _, err := net.Dial("unix", path); err == nil {
		t.Error("socket still answers after exit")
	}
}

func TestServeUsage(t *testing.T) {
	if code, out, _ := runCmd("serve", "--help"); code != exitOK || !strings.Contains(out, "Usage: tether serve") ||
		!strings.Contains(out, "exec -- COMMAND") || !strings.Contains(out, "$ tether serve") ||
		!strings.Contains(out, "-dev-cert") {
		t.Errorf("serve --help = %d, %q", code, out)
	}
	for _, args := range [][]string{
		{"serve"},
		{"serve", "tcp:0", "nosuch"},
		{"serve", "tcp:0", "echo", "extra"},
		{"serve", "tcp:0", "exec"},
		{"serve", "tcp:0", "exec", "--"},
		{"serve", "tcp:0", "exec", "--", "/no/such/command"},
		{"serve", "tcp:nope"},
		{"serve", "--log-format", "yaml", "tcp:0"},
		{"serve", "--drain-timeout", "-1s", "tcp:0"},
		{"serve", "--dev-cert", "tcp:0"},
		{"serve", "ssl:0:privateKey=/no/such/key.pem"},
	} {
		if code, _, errOut := runCmd(args...); code != exitUsage || errOut == "" {
			t.Errorf("%q = %d, %q; want exit 2 and a message", args, code, errOut)
		}
	}
}

// TestServeExecOthersCanChange: serve exec does not run a program that
// another user can replace, and says which directory lets them and how to
// mend it.
func TestServeExecOthersCanChange(t *testing.T) {
	open := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(open, "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\ncat\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd("serve", "tcp:0:interface=127.0.0.1", "exec", "--", prog)
	if want := "can be changed by other users, so it is not run: its directory " + open + " is writable by every user (drwxrwxrwx): chmod o-w " + open; code != exitUsage || !strings.Contains(errOut, want) {
		t.Errorf("serve exec of %s = %d, %q; want exit 2 and %q", prog, code, errOut, want)
	}
}

// TestServeIdleTimeout: with --idle-timeout, a client that connects and
// sends nothing is reset once the timeout has passed, and logged so; one
// that keeps bytes moving is not, even in the direction it is not using
// (chargen's client sends nothing but reads on).
func TestServeIdleTimeout(t *testing.T) {
	for _, service := range []string{"echo", "discard", "chargen"} {
		t.Run(service, func(t *testing.T) {
			p, addr := startServe(t, "--idle-timeout", "300ms", service)
			// Busy for three timeouts: bytes move, so no cut.
			busy := dialAddr(t, "tcp", addr)
			busy.SetDeadline(time.Now().Add(10 * time.Second))
			for end := time.Now().Add(900 * time.Millisecond); time.Now().Before(end); {
				switch service {
				case "chargen":
					// Read as it comes: a write that waits longer than the
					// timeout for room counts as idle.
					if _, err := io.CopyN(io.Discard, busy, 64<<10); err != nil {
						t.Fatalf("chargen's reading client was cut: %v", err)
					}
				default:
					if _, err := busy.Write([]byte("x")); err != nil {
						t.Fatalf("%s's sending client was cut: %v", service, err)
					}
					if service == "echo" {
						if _, err := io.ReadFull(busy, make([]byte, 1)); err != nil {
							t.Fatalf("echo's client was cut: %v", err)
						}
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			busyPeer := busy.LocalAddr().String()
			busy.Close()
			if l := p.waitLog("connection ended", func(l map[string]any) bool { return l["peer"] == busyPeer }); l["error"] != nil {
				t.Errorf("the busy connection ended with %v", l["error"])
			}

			// Silent: reset after the timeout. chargen's client stops
			// reading instead, so that what is sent fills the socket.
			silent := dialAddr(t, "tcp", addr)
			if service == "chargen" {
				silent.(*net.TCPConn).SetReadBuffer(4096)
			}
			start := time.Now()
			l := p.waitLog("connection ended", func(l map[string]any) bool { return l["peer"] == silent.LocalAddr().String() })
			if e, _ := l["error"].(string); !strings.Contains(e, "idle timeout") {
				t.Errorf("log line %v; want an idle timeout", l)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("cut after %v; want about 300ms", d)
			}
			silent.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.Copy(io.Discard, silent)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the idle client read to %v; want a reset", err)
			}
		})
	}
	if code, _, errOut := runCmd("serve", "--idle-timeout", "-1s", "tcp:0"); code != exitUsage || !strings.Contains(errOut, "negative") {
		t.Errorf("serve --idle-timeout -1s = %d, %q", code, errOut)
	}
}

// TestExecKilledIsACut: a COMMAND (serve exec) or an exec: CONNECT
// (relay) killed by a signal cuts its output short: the client is reset,
// not sent the clean end of a COMMAND that finished.
func TestExecKilledIsACut(t *testing.T) {
	for name, args := range map[string][]string{
		"serve": {"serve", "--log-format", "json", "tcp:0:interface=127.0.0.1", "exec", "--", "sh", "-c", "echo partial; kill -9 $$"},
		"relay": {"relay", "--log-format", "json", "tcp:0:interface=127.0.0.1", "exec:sh:-c:echo partial; kill -9 $$"},
	} {
		t.Run(name, func(t *testing.T) {
			p := startTether(t, append([]string{tetherBin}, args...)...)
			c := dialAddr(t, "tcp", p.addr())
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			if string(got) != "partial\n" || !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the client read %q, then %v; want \"partial\\n\", then a reset", got, err)
			}
			if l := p.waitLog("connection ended", nil); !strings.Contains(fmt.Sprint(l["error"]), "killed") {
				t.Errorf("log line %v; want the kill named", l)
			}
		})
	}
}

// TestServeIdleTimeoutTLSAndExec: --idle-timeout over TLS lets chargen's
// lines flow to a client that reads them, though nothing comes the other
// way (a *tls.Conn keeps a timed-out write as its error for good, so no
// write may be timed out and retried); and it keeps exec's half-close: the
// end of COMMAND's output reaches the client at once.
func TestServeIdleTimeoutTLSAndExec(t *testing.T) {
	p := startTether(t, tetherBin, "serve", "--log-format", "json", "--idle-timeout", "300ms", "--dev-cert",
		"tls:0:interface=127.0.0.1", "chargen")
	fp, _ := devCertOf(t, p)
	addr := p.waitLog("listening", nil)["addr"].(string)
	c, err := tls.Dial("tcp", addr, pinnedConfig(fp))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		if _, err := io.CopyN(io.Discard, c, 64<<10); err != nil {
			t.Fatalf("chargen over TLS, read on, was cut: %v", err)
		}
	}

	_, addr = startServe(t, "--idle-timeout", "30s", "exec", "--", "echo", "hi")
	e := dialAddr(t, "tcp", addr)
	start := time.Now()
	if got, err := io.ReadAll(e); string(got) != "hi\n" || err != nil || time.Since(start) > time.Second {
		t.Errorf("exec's output %q, %v, ended after %v; want it at once", got, err, time.Since(start))
	}
}
