package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// selfSigned is a throwaway self-signed certificate, for --dev-cert, which
// serves TLS when the user gave no key. No client trusts it
// unless told to; print Fingerprint so that the user can check what a
// client sees (openssl s_client shows it with
// "openssl x509 -noout -fingerprint -sha256"). Making one must never be
// silent: a program that falls back to it should say so.
type selfSigned struct {
	// CertPEM is the certificate, PEM-encoded.
	CertPEM []byte
	// KeyPEM is its private key (ECDSA P-256, PKCS #8), PEM-encoded.
	KeyPEM []byte
	// Fingerprint is the SHA-256 fingerprint of the certificate, as
	// certFingerprint writes it.
	Fingerprint string
}

// newSelfSigned makes a selfSigned certificate for the given host names
// and IP addresses (default: localhost, 127.0.0.1 and ::1), valid from an
// hour ago for 30 days.
func newSelfSigned(hosts ...string) (*selfSigned, error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"tether development (self-signed)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &selfSigned{
		CertPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Fingerprint: certFingerprint(der),
	}, nil
}

// writeFiles writes the certificate to dir/cert.pem and the key to
// dir/key.pem (readable by the owner only), for a server string such as
// "tls:8443:certificate=DIR/cert.pem:privateKey=DIR/key.pem".
func (s *selfSigned) writeFiles(dir string) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyPath, s.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certPath, s.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// certFingerprint returns the SHA-256 fingerprint of a DER certificate as
// upper-case hex pairs joined by ':', the form of
// "openssl x509 -noout -fingerprint -sha256".
func certFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}
