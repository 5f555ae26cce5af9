package endpoint_test

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/tether-endpoints/tether/endpoint"
)

// One client string over several backends: round robin takes them in
// turn, and a backend that refuses is passed over without failing the
// dial.
func ExampleParseClient_balance() {
	var backends []string
	for _, name := range []string{"a", "b", "down"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println(err)
			return
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, name)
				c.Close()
			}
		}()
		backends = append(backends, "[tcp:"+ln.Addr().String()+"]")
		if name == "down" {
			ln.Close() // refuses connections from now on
		}
	}
	cli, err := endpoint.ParseClient("balance:" + backends[0] + ":" + backends[1] + ":" + backends[2] + ":policy=roundrobin")
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 4 {
		conn, err := cli.Dial(context.Background())
		if err != nil {
			fmt.Println(err)
			return
		}
		name, _ := io.ReadAll(conn)
		conn.Close()
		fmt.Print(string(name), " ")
	}
	fmt.Println()
	// Output: a b a b
}
