//go:build !linux

package main

import (
	"net"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
)

// leanSetup: the lean path is Linux's (relay_lean_linux.go).
func (r *relayCmd) leanSetup() func(endpoint.Server, net.Listener, *serverFlags, time.Duration) server {
	return nil
}
