//go:build unix

package main

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSdNotify: under a Type=notify unit, relay says READY=1 once it
// listens and STOPPING=1 when a signal starts the drain, on the socket
// NOTIFY_SOCKET names (one the test makes, as systemd would).
func TestSdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	up, target := listenTest(t, "tcp")
	defer up.Close()
	p := startTether(t, "/usr/bin/env", "NOTIFY_SOCKET="+sock, tetherBin, "relay", "--log-format", "json",
		serverEndpoint(t, "tcp"), target)
	read := func() string {
		t.Helper()
		ln.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	if got := read(); !strings.HasPrefix(got, "READY=1\n") || !strings.Contains(got, p.addr()) {
		t.Errorf("first notification %q; want READY=1 and the address", got)
	}
	p.signal(syscall.SIGTERM)
	if got := read(); !strings.HasPrefix(got, "STOPPING=1") {
		t.Errorf("after SIGTERM %q; want STOPPING=1", got)
	}
}
