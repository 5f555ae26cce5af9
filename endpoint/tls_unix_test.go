//go:build unix

package endpoint

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
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

// TestTLSFilesOthersCanChange: a key, certificate or trust file, or a
// directory of them, that another user can change is refused when the
// string is parsed and when it is reloaded, naming the argument and the
// fix; a private key every user can read is used and logged.
func TestTLSFilesOthersCanChange(t *testing.T) {
	p := newPKI(t, "ca")
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	openCert, openKey := p.issue(open, "open", leafOpts{})
	sticky := filepath.Join(t.TempDir(), "sticky")
	if err := os.Mkdir(sticky, 0o700); err != nil {
		t.Fatal(err)
	}
	p.issue(sticky, "s", leafOpts{})
	os.Rename(filepath.Join(sticky, "s.crt"), filepath.Join(sticky, "s.pem"))
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	// certDir's NAME.key, a link into the open directory.
	keyed := t.TempDir()
	data0, _ := os.ReadFile(openCert)
	os.WriteFile(filepath.Join(keyed, "k.pem"), data0, 0o600)
	os.Symlink(openKey, filepath.Join(keyed, "k.key"))

	writable := filepath.Join(t.TempDir(), "ca.pem")
	data, err := os.ReadFile(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(writable, data, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(writable, 0o666)

	for _, c := range []struct {
		s, arg, want string
	}{
		{"tls:0:certificate=" + openCert + ":privateKey=" + openKey, "certificate", "its directory " + open + " is writable by every user"},
		{"tls:0:certDir=" + sticky, "certDir", "(a .pem file added there is read), so it is not used: is writable by every user"},
		{"tls:0:certDir=" + keyed, "certDir", "k.key: can be changed by other users, so it is not used: its directory " + open + " is writable"},
		{"ssl:0:privateKey=" + openKey + ":certKey=" + openCert, "certKey", "chmod o-w " + open},
		{"tls:localhost:443:trustRoots=" + writable, "trustRoots", "is writable by every user (-rw-rw-rw-): chmod o-w " + writable},
		{"ssl:localhost:443:caCertsDir=" + sticky, "caCertsDir", "is writable by every user"},
	} {
		parse := func(s string) error { _, err := ParseServer(s); return err }
		if strings.Contains(c.s, ":localhost:") { // a client string
			parse = func(s string) error { _, err := ParseClient(s); return err }
		}
		err := parse(c.s)
		var e *Error
		if !errors.As(err, &e) || e.Arg != c.arg || !strings.Contains(err.Error(), "can be changed by other users") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %s= saying %q", c.s, err, c.arg, c.want)
		}
	}

	// A good key, made writable by everyone after the parse: the reload
	// is refused and the certificate in use kept.
	certFile, keyFile, _, _ := p.replaceable("one")
	var logged bytes.Buffer
	opts := &Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))}
	srv, err := opts.ParseServer("tls:0:interface=127.0.0.1:certificate=" + certFile + ":privateKey=" + keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if logged.Len() != 0 {
		t.Errorf("a 0600 key logged %q", logged.String())
	}
	os.Chmod(keyFile, 0o666)
	if err := srv.(Reloader).Reload(); err == nil || !strings.Contains(err.Error(), "can be changed by other users") {
		t.Errorf("reload of a key writable by everyone: %v", err)
	}

	// A private key every user can read is used, and said so.
	os.Chmod(keyFile, 0o644)
	for _, d := range []string{filepath.Dir(filepath.Dir(keyFile)), filepath.Dir(keyFile)} {
		os.Chmod(d, 0o755) // t.TempDir's two directories
	}
	logged.Reset()
	if _, err := opts.ParseServer("tls:0:interface=127.0.0.1:certificate=" + certFile + ":privateKey=" + keyFile); err != nil {
		t.Fatal(err)
	}
	if want := "privateKey= " + keyFile + " holds a private key and is readable by every user (-rw-r--r--): chmod o-r " + keyFile; !strings.Contains(logged.String(), want) {
		t.Errorf("a 0644 key logged %q, want %q", logged.String(), want)
	}
}

// TestExecProgramOthersCanChange: exec: does not run a program another
// user can replace.
func TestExecProgramOthersCanChange(t *testing.T) {
	open := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(open, "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\ncat\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseClient("exec:" + prog); err != nil {
		t.Fatalf("a program in a 0700 directory: %v", err)
	}
	// A good directory holding a link into the open one: "link/../prog"
	// is the open directory's prog to the kernel, whether given whole or
	// relative to dir=.
	safe := t.TempDir()
	if err := os.Symlink(filepath.Join(open, "sub"), filepath.Join(safe, "link")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(open, "sub"), 0o700)
	os.Chmod(open, 0o777)
	for _, s := range []string{"exec:" + prog, "exec:" + safe + "/link/../prog", "exec:link/../prog:dir=" + safe} {
		_, err := ParseClient(s)
		var e *Error
		if !errors.As(err, &e) || e.Arg != "argv" || !strings.Contains(err.Error(), "can be changed by other users, so it is not run: its directory "+open+" is writable by every user") {
			t.Errorf("%s, a program in a 0777 directory: %v", s, err)
		}
	}
}

// TestTLSFileReplacedWhileChecked: a file that is not, when checked, the
// one that was read is refused.
func TestTLSFileReplacedWhileChecked(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
	os.WriteFile(a, []byte("a"), 0o600)
	os.WriteFile(b, []byte("b"), 0o600)
	fa, _ := os.Stat(a)
	fb, _ := os.Stat(b)
	if err := guardFile("certificate", a, fa, false); err != nil {
		t.Errorf("a file checked as the one read: %v", err)
	}
	if err := guardFile("certificate", a, fb, false); err == nil || !strings.Contains(err.Error(), "it was replaced while it was read and checked") {
		t.Errorf("a file checked as another one read: %v", err)
	}
}
