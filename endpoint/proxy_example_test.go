package endpoint_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/tether-endpoints/tether/endpoint"
)

// Connect through an HTTP proxy's tunnel. The proxy here is a few lines of
// net/http; in life it is squid, tinyproxy or a company's proxy, and a
// socks5: string does the same through a SOCKS5 proxy.
func Example_httpConnect() {
	ctx := context.Background()
	target, err := endpoint.Listen(ctx, "tcp:0:interface=127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "hello through the tunnel")
			c.Close()
		}
	}()
	proxy, err := endpoint.Listen(ctx, "tcp:0:interface=127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer proxy.Close()
	go http.Serve(proxy, http.HandlerFunc(connectProxy))

	// proxy= is itself an endpoint string, quoted to be one argument.
	s := "httpconnect:" + target.Addr().String() + ":proxy=" + endpoint.Quote("tcp:"+proxy.Addr().String())
	conn, err := endpoint.Dial(ctx, s)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	// The proxy's own TCP connection, which tether relay can splice.
	fmt.Printf("%T\n", conn)
	b, _ := io.ReadAll(conn)
	fmt.Print(string(b))
	// Output:
	// *net.TCPConn
	// hello through the tunnel
}

// connectProxy is a minimal HTTP CONNECT proxy, with no access control.
func connectProxy(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	up, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	c, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return
	}
	rw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
	rw.Flush()
	go func() {
		io.Copy(up, rw)
		up.Close()
	}()
	io.Copy(c, up)
	c.Close()
}

// TLS to example.com through a SOCKS5 proxy on 127.0.0.1:1080: each level
// of nesting is one more Quote. The proxy resolves example.com, and the
// certificate is verified for that name.
func ExampleParseClient_proxy() {
	socks := "socks5:example.com:443:proxy=" + endpoint.Quote("tcp:127.0.0.1:1080")
	s := "tls:example.com:443:endpoint=" + endpoint.Quote(socks)
	fmt.Println(socks)
	fmt.Println(s)
	if _, err := endpoint.ParseClient(s); err != nil {
		fmt.Println(err)
	}
	// Output:
	// socks5:example.com:443:proxy=tcp\:127.0.0.1\:1080
	// tls:example.com:443:endpoint=socks5\:example.com\:443\:proxy\=tcp\\\:127.0.0.1\\\:1080
}
