package endpoint_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/tether-endpoints/tether/endpoint"
)

// A connection given up on mid-stream is aborted, not closed, so that the
// peer sees a reset rather than a clean end of a cut stream.
func ExampleAbort() {
	ln, err := endpoint.Listen(context.Background(), "tcp:0:interface=127.0.0.1")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Read(make([]byte, 16)) // the request
		c.Write([]byte("the first half of a reply"))
		// ... and the rest cannot be had:
		endpoint.Abort(c)
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	c.Write([]byte("a request"))
	buf := make([]byte, 64)
	var n int
	for err == nil {
		var m int
		m, err = c.Read(buf[n:])
		n += m
	}
	fmt.Printf("%q, then reset: %v\n", buf[:n], errors.Is(err, syscall.ECONNRESET))
	// Output: "the first half of a reply", then reset: true
}

// Handshake reads a haproxy: connection's PROXY header (and completes a
// TLS handshake, for tls: and ssl:) before the program acts for the client.
func ExampleHandshake() {
	ln, err := endpoint.Listen(context.Background(), "haproxy:tcp:0:interface=127.0.0.1")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\n"))
		c.Read(make([]byte, 1))
	}()

	c, err := ln.Accept()
	if err != nil {
		panic(err)
	}
	if err := endpoint.Handshake(context.Background(), c); err != nil {
		endpoint.Abort(c)
		fmt.Println("refused:", err)
		return
	}
	defer c.Close()
	fmt.Println("client:", c.RemoteAddr())
	// Output: client: 192.0.2.7:40000
}
