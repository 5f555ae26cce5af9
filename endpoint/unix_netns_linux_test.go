package endpoint

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestUNIXLiveSocketInAnotherNetns: a socket that a server in another
// network namespace listens on (a container sharing the directory) is
// not in this namespace's /proc/net/unix, yet alive: with its lock taken
// for stale, Listen must not remove it and take its clients, but find it
// alive by connecting, and report the address in use. The server is socat,
// run in a namespace of its own by unshare -rn.
func TestUNIXLiveSocketInAnotherNetns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	srv := exec.Command("unshare", "-rn", "socat", "UNIX-LISTEN:"+path+",fork", "EXEC:cat")
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("socat in another network namespace does not listen on %s: %v", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if listening, known := socketListening(path); listening || !known {
		t.Fatalf("socketListening(%s) = %v, %v: want it unseen from here, or the test tests nothing", path, listening, known)
	}
	if err := os.Symlink(strconv.Itoa(deadPID(t)), path+".lock"); err != nil {
		t.Fatal(err)
	}
	if ln, err := Listen(context.Background(), "unix:"+path); !errors.Is(err, syscall.EADDRINUSE) {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("Listen over a socket live in another network namespace: %v; want EADDRINUSE", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the live server after the attempt: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'x' {
		t.Fatalf("the live server does not echo: %q, %v", b, err)
	}
}
