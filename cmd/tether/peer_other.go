//go:build !linux

package main

import "net"

// peerString says who the peer of conn is, for the log: its address (the
// credentials of a UNIX peer are read on Linux only).
func peerString(conn net.Conn) string { return addrString(conn.RemoteAddr()) }
