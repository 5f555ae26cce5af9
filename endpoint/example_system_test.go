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

// A haproxy: server behind a load balancer: RemoteAddr is the client that
// connected to the load balancer, read from the header in the
// connection's goroutine.
func ExampleListen_haproxy() {
	ln, err := endpoint.Listen(context.Background(), "haproxy:tcp:0:interface=127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
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
	fmt.Println(c.RemoteAddr(), string(buf))
	// Output: 192.0.2.9:5555 hi
}
