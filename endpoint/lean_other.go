//go:build !linux

package endpoint

import "net"

// LeanListen returns ln unchanged and false: the lean path is Linux's
// (see lean_linux.go).
func LeanListen(srv Server, ln net.Listener) (net.Listener, bool) { return ln, false }

// A LeanTarget starts non-blocking connects for an event loop; Linux only.
type LeanTarget struct{}

// LeanClient returns false: the lean path is Linux's.
func LeanClient(c Client) (*LeanTarget, bool) { return nil, false }
