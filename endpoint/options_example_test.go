package endpoint_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/tether-endpoints/tether/endpoint"
)

// Options are to endpoint strings what net.Dialer is to addresses: the
// zero value is the default, and its methods parse, listen and dial.
func ExampleOptions() {
	opts := &endpoint.Options{
		Resolver: &net.Resolver{PreferGo: true},                 // this program's own resolver
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, nil)), // where a failed certificate reload is told
		TLSConfig: func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS13 // every TLS endpoint, at every depth
		},
	}
	ln, err := opts.Listen(context.Background(), "tcp:0:interface=127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	conn, err := opts.Dial(context.Background(), "tcp:localhost:"+port)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	fmt.Println("connected over", conn.RemoteAddr().Network())
	// Output: connected over tcp
}

// Reload a server's certificate files on demand (say, on SIGHUP),
// whatever wraps its TLS: every parsed Server and Client is a Reloader.
func ExampleReloader() {
	srv, err := endpoint.ParseServer("haproxy:tcp:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := srv.(endpoint.Reloader).Reload(); err != nil {
		fmt.Println(err) // haproxy:tcp has no files
	}
	// Output: endpoint "haproxy:tcp:0": reload: nothing to reload: no certificate or key files: unsupported operation
}
