package relay_test

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/tether-endpoints/tether/internal/relay"
)

// A port forwarder: each connection accepted on front is joined to a new
// connection to back.
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
	s := &relay.Server{Handler: func(ctx context.Context, c net.Conn) {
		var d net.Dialer
		up, err := d.DialContext(ctx, "tcp", back.Addr().String())
		if err != nil {
			c.Close()
			return
		}
		relay.Join(ctx, c, up) // closes both
	}}
	go s.Serve(front)
	defer s.Shutdown(context.Background())

	c, _ := net.Dial("tcp", front.Addr().String())
	c.Write([]byte("hello"))
	c.(*net.TCPConn).CloseWrite() // the echo server sees end of file and finishes
	reply, _ := io.ReadAll(c)
	fmt.Printf("%s\n", reply)
	// Output: hello
}
