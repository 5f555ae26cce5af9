package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
)

// TestSelfSigned: the --dev-cert certificate serves a tls: endpoint, a
// client told to trust it sees the fingerprint printed, its key is the
// owner's alone, and a client not told refuses it.
func TestSelfSigned(t *testing.T) {
	s, err := newSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := s.writeFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi.Mode(), err)
	}
	ctx := context.Background()
	ln, err := endpoint.Listen(ctx, "tls:0:interface=127.0.0.1:certificate="+endpoint.Quote(certFile)+
		":privateKey="+endpoint.Quote(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.Copy(c, c)
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	c, err := endpoint.Dial(ctx, fmt.Sprintf("tls:localhost:%d:trustRoots=%s", port, endpoint.Quote(certFile)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := certFingerprint(c.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw)
	if got != s.Fingerprint || len(got) != 32*3-1 {
		t.Fatalf("fingerprint %s, want %s", got, s.Fingerprint)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("dev")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "dev" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	if _, err := endpoint.Dial(ctx, fmt.Sprintf("tls:localhost:%d", port)); err == nil {
		t.Fatal("a self-signed certificate was trusted without being asked to")
	}
}

// TestSelfSignedFingerprintOpenSSL: the fingerprint tether prints is the
// one openssl prints.
func TestSelfSignedFingerprintOpenSSL(t *testing.T) {
	s, err := newSelfSigned("dev.test")
	if err != nil {
		t.Fatal(err)
	}
	certFile, _, err := s.writeFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", certFile).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, "="+s.Fingerprint) {
		t.Fatalf("openssl says %s, tether %s", got, s.Fingerprint)
	}
}
