//go:build unix

package endpoint

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTLSFilesNotRegular: a string naming a device, a FIFO or a directory
// as a key or certificate fails at once, naming the argument, rather than
// hanging the parse (a FIFO with no writer) or filling memory (/dev/zero).
func TestTLSFilesNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0600); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"ssl:0:privateKey=/dev/zero",
		"ssl:0:privateKey=" + fifo,
		"tls:0:certificate=" + t.TempDir(),
		"tls:localhost:443:trustRoots=/dev/zero",
	} {
		done := make(chan error, 1)
		go func() {
			var err error
			if strings.HasPrefix(s, "tls:localhost") {
				_, err = ParseClient(s)
			} else {
				_, err = ParseServer(s)
			}
			done <- err
		}()
		select {
		case err := <-done:
			var e *Error
			if !errors.As(err, &e) || e.Arg == "" {
				t.Errorf("%s: %v, want an *Error naming the argument", s, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: parsing hangs", s)
		}
	}
}
