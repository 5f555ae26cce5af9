package endpoint_test

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/proxyproto"
)

// Talk to a program over its standard input and output. CloseWrite ends
// its input; Close reports how it exited.
func ExampleDial_exec() {
	c, err := endpoint.Dial(context.Background(), "exec:tr:a-z:A-Z")
	if err != nil {
		fmt.Println(err)
		return
	}
	io.WriteString(c, "hello, pipeline")
	c.(*endpoint.ExecConn).CloseWrite()
	out, _ := io.ReadAll(c)
	fmt.Println(string(out))
	fmt.Println("exit:", c.Close())
	// Output:
	// HELLO, PIPELINE
	// exit: <nil>
}

// Both ends of the PROXY protocol as endpoint strings: a haproxy: client
// sends the header that its context carries (as tether relay does for the
// client it relays), and a haproxy: server's RemoteAddr is the client it
// names.
func ExampleListen_haproxy() {
	ln, err := endpoint.Listen(context.Background(), "haproxy:tcp:0:interface=127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() { // the relay in front
		client := &net.TCPAddr{IP: net.ParseIP("192.0.2.9"), Port: 5555}
		ctx := proxyproto.NewContext(context.Background(), &proxyproto.Header{Version: 2, Source: client,
			Destination: &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 443}})
		c, err := endpoint.Dial(ctx, "haproxy:tcp:"+ln.Addr().String()) // a wrapper takes the rest as it is
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "hi")
	}()
	c, err := ln.Accept()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if err := endpoint.Handshake(context.Background(), c); err != nil {
		fmt.Println(err)
		return
	}
	buf := make([]byte, 2)
	io.ReadFull(c, buf)
	fmt.Println(c.RemoteAddr(), "to", c.LocalAddr(), string(buf))
	// Output: 192.0.2.9:5555 to 198.51.100.1:443 hi
}
