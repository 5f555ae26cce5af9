package testpeer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// A CA is a certificate authority made for one test, ECDSA P-256, with its
// certificate in a PEM file that clientCA=, trustRoots= and caCertsDir=
// can name.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	Dir  string // a temporary directory of the test's, for its files
	File string // the CA certificate, PEM
	t    testing.TB
}

var serial atomic.Int64

// NewCA makes a self-signed CA called name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	return newCA(t, name, nil)
}

// Intermediate makes a CA called name, signed by ca.
func (ca *CA) Intermediate(name string) *CA {
	ca.t.Helper()
	return newCA(ca.t, name, ca)
}

func newCA(t testing.TB, name string, parent *CA) *CA {
	t.Helper()
	ca := &CA{Key: NewKey(t), Dir: t.TempDir(), t: t}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	issuer, key := tmpl, ca.Key
	if parent != nil {
		issuer, key = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &ca.Key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	ca.File = filepath.Join(ca.Dir, name+".pem")
	WritePEM(t, ca.File, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	return ca
}

// LeafOpts shape a leaf certificate; the zero value is good for localhost
// and 127.0.0.1, as a server and as a client, for a day.
type LeafOpts struct {
	Names     []string // DNS names and IP addresses; default localhost and 127.0.0.1
	NotBefore time.Time
	NotAfter  time.Time
}

// Leaf makes a certificate with common name cn, signed by ca, and returns
// it and its key as PEM blocks.
func (ca *CA) Leaf(cn string, o LeafOpts) (cert, key *pem.Block) {
	t := ca.t
	t.Helper()
	k := NewKey(t)
	if o.Names == nil {
		o.Names = []string{"localhost", "127.0.0.1"}
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: o.NotBefore, NotAfter: o.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, n := range o.Names {
		if ip, err := netip.ParseAddr(n); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &k.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "CERTIFICATE", Bytes: der}, KeyBlock(t, k)
}

// Issue writes a leaf certificate to DIR/CN.crt and its key to DIR/CN.key.
func (ca *CA) Issue(dir, cn string, o LeafOpts) (certFile, keyFile string) {
	ca.t.Helper()
	cert, key := ca.Leaf(cn, o)
	certFile, keyFile = filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	WritePEM(ca.t, certFile, cert)
	WritePEM(ca.t, keyFile, key)
	return certFile, keyFile
}

// KeyPair makes a leaf certificate for Go's crypto/tls.
func (ca *CA) KeyPair(cn string) tls.Certificate {
	ca.t.Helper()
	cert, key := ca.Leaf(cn, LeafOpts{})
	pair, err := tls.X509KeyPair(pem.EncodeToMemory(cert), pem.EncodeToMemory(key))
	if err != nil {
		ca.t.Fatal(err)
	}
	return pair
}

// Pool returns a pool holding the CA's certificate alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// NewKey makes an ECDSA P-256 key.
func NewKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// KeyBlock is k as a PKCS #8 "PRIVATE KEY" PEM block.
func KeyBlock(t testing.TB, k *ecdsa.PrivateKey) *pem.Block {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
}

// WritePEM writes blocks to path, readable by the owner only.
func WritePEM(t testing.TB, path string, blocks ...*pem.Block) {
	t.Helper()
	var b []byte
	for _, bl := range blocks {
		b = append(b, pem.EncodeToMemory(bl)...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
