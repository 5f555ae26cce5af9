package endpoint_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
)

// Serve TLS, connect to it trusting the server's certificate, and reload
// the certificate files on demand (say, on SIGHUP) without closing the
// port.
func ExampleReloader_listener() {
	dir, err := os.MkdirTemp("", "tether-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	certFile, keyFile, fingerprint, err := writeSelfSigned(dir, "localhost")
	if err != nil {
		fmt.Println(err)
		return
	}

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
		sha256.Sum256(conn.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw) == fingerprint)

	// After replacing the files: the next handshakes use them.
	if err := ln.(endpoint.Reloader).Reload(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// "hello\n", certificate matches: true
}

// writeSelfSigned writes a self-signed certificate for host and its key to
// dir, and returns the files and the certificate's SHA-256.
func writeSelfSigned(dir, host string) (certFile, keyFile string, sum [32]byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", sum, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", sum, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", sum, err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", sum, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", sum, err
	}
	return certFile, keyFile, sha256.Sum256(der), nil
}
