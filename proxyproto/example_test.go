package proxyproto_test

import (
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/tether-endpoints/tether/proxyproto"
)

// Write the PROXY protocol header that tells a server behind a relay who
// the original client was, as tether relay --proxy-protocol does.
func ExampleWrite() {
	client := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 4242}
	server := &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 443}
	var b strings.Builder
	proxyproto.Write(&b, 1, client, server)
	fmt.Printf("%q\n", b.String())
	// Output: "PROXY TCP4 203.0.113.7 198.51.100.1 4242 443\r\n"
}

// Read a PROXY protocol header; what follows it is left unread.
func ExampleRead() {
	r := strings.NewReader("PROXY TCP6 2001:db8::7 2001:db8::1 4243 443\r\nGET / HTTP/1.1\r\n")
	h, err := proxyproto.Read(r)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(h.Version, h.Source, h.Destination)
	rest, _ := io.ReadAll(r)
	fmt.Printf("%q\n", rest)
	// Output:
	// 1 [2001:db8::7]:4243 [2001:db8::1]:443
	// "GET / HTTP/1.1\r\n"
}

// A server behind a load balancer: RemoteAddr is the client that
// connected to the load balancer, read from the header lazily, in the
// connection's own goroutine, within the timeout.
func ExampleNewListener() {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ln := proxyproto.NewListener(inner, 0) // 0: DefaultHeaderTimeout
	defer ln.Close()
	go func() { // the load balancer
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		proxyproto.Write(c, 2, &net.TCPAddr{IP: net.ParseIP("192.0.2.9"), Port: 5555}, c.RemoteAddr())
		io.WriteString(c, "hi")
	}()
	c, err := ln.Accept()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	buf := make([]byte, 2)
	io.ReadFull(c, buf)
	h, _ := c.(*proxyproto.Conn).Header()
	fmt.Println(c.RemoteAddr(), string(buf), "version", h.Version)
	// Output: 192.0.2.9:5555 hi version 2
}
