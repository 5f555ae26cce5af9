package main

import (
	"fmt"
	"io"
	"os"
	"testing"
)

// TestUnixPeerCredentials: a connection over a UNIX socket is logged with
// the pid, uid and gid of the process that connected (SO_PEERCRED), not
// with the "@" that Go gives as its address.
func TestUnixPeerCredentials(t *testing.T) {
	p := startTether(t, tetherBin, "serve", "--log-format", "json", serverEndpoint(t, "unix"))
	c := dialAddr(t, "unix", p.addr())
	c.Write([]byte("hi"))
	closeWriteT(t, c)
	io.ReadAll(c)
	want := fmt.Sprintf("pid=%d uid=%d gid=%d", os.Getpid(), os.Getuid(), os.Getgid())
	if l := p.waitLog("connection ended", nil); l["peer"] != want {
		t.Errorf("peer %v; want %q", l["peer"], want)
	}
}
