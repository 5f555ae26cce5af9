package endpoint_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"

	"github.com/tether-endpoints/tether/endpoint"
)

// Serve TLS with a throwaway certificate, as a development mode might,
// connect to it trusting that certificate, and reload the certificate
// files on demand (say, on SIGHUP) without closing the port.
func ExampleTLSListener_Reload() {
	dir, err := os.MkdirTemp("", "tether-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	dev, err := endpoint.NewSelfSigned("localhost")
	if err != nil {
		fmt.Println(err)
		return
	}
	certFile, keyFile, err := dev.WriteFiles(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Never silently: say what the clients should see.
	fmt.Println("fingerprint has", len(dev.Fingerprint), "characters")

	ln, err := endpoint.Listen(context.Background(),
		"tls:0:interface=127.0.0.1:certificate="+endpoint.Quote(certFile)+":privateKey="+endpoint.Quote(keyFile))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept() // a *tls.Conn; the handshake runs at its first Read or Write
			if err != nil {
				return
			}
			c.Write([]byte("hello\n"))
			c.Close()
		}
	}()

	_, port, _ := net.SplitHostPort(ln.Addr().String())
	conn, err := endpoint.Dial(context.Background(),
		"tls:localhost:"+port+":trustRoots="+endpoint.Quote(certFile))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	buf := make([]byte, 6)
	n, _ := conn.Read(buf)
	fmt.Printf("%q, certificate matches: %v\n", buf[:n],
		endpoint.CertFingerprint(conn.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw) == dev.Fingerprint)

	// After replacing the files: the next handshakes use them.
	if err := ln.(*endpoint.TLSListener).Reload(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// fingerprint has 95 characters
	// "hello\n", certificate matches: true
}
