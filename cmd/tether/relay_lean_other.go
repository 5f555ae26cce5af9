//go:build !linux

package main

import (
	"context"
	"net"

	"github.com/tether-endpoints/tether/endpoint"
)

// leanSetup: the lean path is Linux's (relay_lean_linux.go).
func (r *relayCmd) leanSetup() func(endpoint.Server, net.Listener) net.Listener { return nil }

// leanConn: the lean path is Linux's.
func (r *relayCmd) leanConn(context.Context, net.Conn) bool { return false }
