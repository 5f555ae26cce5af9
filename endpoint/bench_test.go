package endpoint

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
)

// BenchmarkParseServer measures checking a typical string: the grammar,
// the type lookup and binding the arguments to the declaration.
func BenchmarkParseServer(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseServer(`unix:/run/app\:1.sock:mode=660:backlog=128`); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDialTCP measures one tcp client Dial to a loopback listener:
// what the endpoint layer costs on top of net.Dialer, per connection.
func BenchmarkDialTCP(b *testing.B) {
	ln, err := Listen(context.Background(), "tcp:0:interface=127.0.0.1:backlog=1024")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	serveEach(ln, func(c net.Conn) { io.Copy(io.Discard, c) })
	cli, err := ParseClient(fmt.Sprintf("tcp:127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c, err := cli.Dial(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkDialTCPBaseline is BenchmarkDialTCP with net.Dialer alone, to
// compare against.
func BenchmarkDialTCPBaseline(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	serveEach(ln, func(c net.Conn) { io.Copy(io.Discard, c) })
	var d net.Dialer
	b.ReportAllocs()
	for b.Loop() {
		c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
