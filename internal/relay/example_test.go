package relay_test

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/tether-endpoints/tether/internal/relay"
)

// A port forwarder for one connection: the connection accepted on front is
// joined to a new connection to back. (tether relay does this for every
// connection, with endpoint.Service as its accept loop.)
func Example() {
	back, _ := net.Listen("tcp", "127.0.0.1:0")
	defer back.Close()
	go func() { // an echo server
		for {
			c, err := back.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()

	front, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { // the forwarder
		c, err := front.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", back.Addr().String())
		if err != nil {
			c.Close()
			return
		}
		relay.Join(context.Background(), c, up) // closes both
	}()
	defer front.Close()

	c, _ := net.Dial("tcp", front.Addr().String())
	c.Write([]byte("hello"))
	c.(*net.TCPConn).CloseWrite() // the echo server sees end of file and finishes
	reply, _ := io.ReadAll(c)
	fmt.Printf("%s\n", reply)
	// Output: hello
}
