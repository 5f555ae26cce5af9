package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// tlsConfig is the client side of the TLS rows: TLS 1.3 only, trusting the
// one certificate in certFile (the script's self-signed one, for the name
// localhost), and no session cache, so that every connection makes a full
// handshake and a handshakes-per-second figure measures what it says.
// An empty certFile means plain TCP (nil).
//
// groups pins the key exchange ("X25519" by default in the script): Go's
// own default offers X25519MLKEM768 first, which a Go server (tether)
// picks and OpenSSL 3.0 (haproxy, stunnel4) does not know, so the servers
// would otherwise not be doing the same work. "default" leaves Go's list.
func tlsConfig(certFile, groups string) (*tls.Config, error) {
	if certFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", certFile)
	}
	cfg := &tls.Config{
		RootCAs:    pool,
		ServerName: "localhost",
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
	}
	if groups != "" && groups != "default" {
		known := []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521, tls.X25519MLKEM768}
	names:
		for _, name := range strings.Split(groups, ",") {
			for _, id := range known {
				if strings.EqualFold(id.String(), strings.TrimSpace(name)) {
					cfg.CurvePreferences = append(cfg.CurvePreferences, id)
					continue names
				}
			}
			return nil, fmt.Errorf("unknown TLS group %q (known: X25519, CurveP256, CurveP384, CurveP521, X25519MLKEM768)", name)
		}
	}
	return cfg, nil
}

// dial connects to addr, and with cfg completes a TLS handshake before it
// returns, so that a failed handshake is reported as such.
func dial(addr string, cfg *tls.Config) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil || cfg == nil {
		return c, err
	}
	tc := tls.Client(c, cfg)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

// describeTLS names what was negotiated, so that the output shows that
// every TLS peer did the same work (version, cipher, key exchange) and
// that no handshake was resumed; empty for a plain connection.
func describeTLS(c net.Conn) string {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return ""
	}
	return describeState(tc.ConnectionState())
}

func describeState(st tls.ConnectionState) string {
	return fmt.Sprintf(" tls=%s cipher=%s group=%s resumed=%t",
		strings.ReplaceAll(tls.VersionName(st.Version), " ", ""), tls.CipherSuiteName(st.CipherSuite), st.CurveID, st.DidResume)
}
