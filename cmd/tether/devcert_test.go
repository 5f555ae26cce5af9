package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint"

	"github.com/tether-endpoints/tether/internal/testpeer"
)

const opensslBin = "/usr/bin/openssl"

var (
	fingerprintLine = regexp.MustCompile(`WARNING: +SHA-256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})$`)
	devCertDirLine  = regexp.MustCompile(`WARNING: +in (\S+), deleted when tether exits$`)
)

// devCertOf returns the fingerprint and directory that tether printed for
// its throwaway certificate.
func devCertOf(t *testing.T, p *proc) (fingerprint, dir string) {
	t.Helper()
	fp := fingerprintLine.FindStringSubmatch(p.waitRaw("SHA-256 fingerprint"))
	d := devCertDirLine.FindStringSubmatch(p.waitRaw("deleted when tether exits"))
	if fp == nil || d == nil {
		t.Fatal("tether did not print the fingerprint and directory of its throwaway certificate")
	}
	p.waitRaw("THROWAWAY SELF-SIGNED")
	return fp[1], d[1]
}

// pinnedEcho connects with TLS to addr, accepting only a certificate with
// the given SHA-256 fingerprint, and checks that msg comes back.
// pinnedConfig trusts exactly the certificate with the SHA-256 fingerprint
// that --dev-cert printed.
func pinnedConfig(fingerprint string) *tls.Config {
	return &tls.Config{
		ServerName: "localhost",
		// The certificate is self-signed: no chain to verify, so the
		// fingerprint check below is the whole verification.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return fmt.Errorf("no certificate")
			}
			if got := certFingerprint(raw[0]); got != fingerprint {
				return fmt.Errorf("certificate %s, want the printed %s", got, fingerprint)
			}
			return nil
		},
	}
}

func pinnedEcho(t *testing.T, addr, fingerprint, msg string) {
	t.Helper()
	cfg := pinnedConfig(fingerprint)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	io.WriteString(c, msg)
	c.CloseWrite()
	if got, err := io.ReadAll(c); string(got) != msg || err != nil {
		t.Errorf("echo over TLS: %q, %v; want %q", got, err, msg)
	}
}

// opensslFingerprint asks openssl s_client for the certificate served on
// addr and openssl x509 for its SHA-256 fingerprint.
func opensslFingerprint(t *testing.T, addr string) string {
	t.Helper()
	testpeer.Need(t, opensslBin, "openssl")
	sc := exec.Command(opensslBin, "s_client", "-connect", addr, "-servername", "localhost")
	sc.Stdin = strings.NewReader("")
	pemOut, err := sc.Output()
	if err != nil {
		t.Fatalf("openssl s_client: %v", err)
	}
	x := exec.Command(opensslBin, "x509", "-noout", "-fingerprint", "-sha256")
	x.Stdin = bytes.NewReader(pemOut)
	out, err := x.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s\ns_client said:\n%s", err, out, pemOut)
	}
	_, fp, ok := strings.Cut(strings.TrimSpace(string(out)), "Fingerprint=")
	if !ok {
		t.Fatalf("openssl x509 said %q", out)
	}
	return strings.ToUpper(fp)
}

// startDevCert runs tether with TMPDIR set to a directory of the test's
// own, which the throwaway certificate's directory must be made in and
// gone from after a clean exit (and which the test removes in any case).
func startDevCert(t *testing.T, argv ...string) (p *proc, tmp string) {
	tmp = t.TempDir()
	return startTether(t, append([]string{"/usr/bin/env", "TMPDIR=" + tmp}, argv...)...), tmp
}

// stopDevCert stops tether with SIGTERM and checks that it removed the
// certificate's directory.
func stopDevCert(t *testing.T, p *proc, tmp, dir string) {
	t.Helper()
	if filepath.Dir(dir) != tmp {
		t.Errorf("the certificate is in %s, not in TMPDIR %s", dir, tmp)
	}
	p.signal(syscall.SIGTERM)
	if code := p.exitCode(); code != exitOK {
		t.Errorf("exit code %d", code)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the throwaway certificate's directory is still there after exit: %v", err)
	}
}

// TestServeDevCert: serve --dev-cert on a tls: string without a
// certificate serves a throwaway one, whose printed fingerprint a pinning
// client and openssl both see; its files go when tether exits.
func TestServeDevCert(t *testing.T) {
	p, tmp := startDevCert(t, tetherBin, "serve", "--log-format", "json", "--dev-cert", "tls:0:interface=127.0.0.1")
	fp, dir := devCertOf(t, p)
	l := p.waitLog("listening", nil)
	addr := l["addr"].(string)
	if l["dev_cert_sha256"] != fp || l["endpoint"] != "tls:0:interface=127.0.0.1" {
		t.Errorf("listening line %v; want the fingerprint and the endpoint as given", l)
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the key file: %v, %v; want mode 0600", fi, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the certificate's directory: %v, %v; want mode 0700", fi, err)
	}

	pinnedEcho(t, addr, fp, "pinned")
	if got := opensslFingerprint(t, addr); got != fp {
		t.Errorf("openssl sees the fingerprint %s; tether printed %s", got, fp)
	}
	stopDevCert(t, p, tmp, dir)
}

// TestRelayDevCert: relay --dev-cert, with tls: and with an ssl: string
// whose default key file, server.pem, does not exist.
func TestRelayDevCert(t *testing.T) {
	echo, target := listenTest(t, "tcp")
	echoServer(echo)
	for _, listen := range []string{"tls:0:interface=127.0.0.1", "ssl:0:interface=127.0.0.1"} {
		t.Run(strings.SplitN(listen, ":", 2)[0], func(t *testing.T) {
			// In an empty directory, so that ssl: finds no server.pem.
			p, tmp := startDevCert(t, "/bin/sh", "-c", `cd "$0" && exec "$@"`, t.TempDir(),
				tetherBin, "relay", "--log-format", "json", "--dev-cert", listen, target)
			fp, dir := devCertOf(t, p)
			pinnedEcho(t, p.addr(), fp, "relayed over "+listen)
			stopDevCert(t, p, tmp, dir)
		})
	}
}

// TestDevCertRefusals: without --dev-cert nothing is made and the string's
// own error stands; --dev-cert does not apply to other strings.
func TestDevCertRefusals(t *testing.T) {
	code, _, errOut := runCmd("serve", "tls:0:interface=127.0.0.1")
	if code != exitUsage || !strings.Contains(errOut, "certificate") || !strings.Contains(errOut, "--dev-cert") ||
		strings.Contains(errOut, "THROWAWAY") {
		t.Errorf("serve tls:0 without --dev-cert = %d, %q; want exit 2, the missing certificate and a hint", code, errOut)
	}
	code, _, errOut = runCmd("relay", "--dev-cert", "tcp:0", "tcp:localhost:1")
	if code != exitUsage || !strings.Contains(errOut, "not tls: or ssl:") {
		t.Errorf("relay --dev-cert tcp:0 = %d, %q; want exit 2", code, errOut)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	code, _, errOut = runCmd("serve", "--dev-cert", "tls:0:certificate="+endpoint.Quote(missing))
	if code != exitUsage || !strings.Contains(errOut, "no throwaway certificate is made") || !strings.Contains(errOut, missing) ||
		strings.Contains(errOut, "THROWAWAY") {
		t.Errorf("serve --dev-cert with a certificate named = %d, %q; want exit 2 and the missing file", code, errOut)
	}
	// A temporary directory other users can write to: LISTEN would refuse
	// the files, so none is made, and nothing says one is served.
	open := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	t.Setenv("TMPDIR", open)
	code, _, errOut = runCmd("serve", "--dev-cert", "tls:0:interface=127.0.0.1")
	if code != exitFailure || !strings.Contains(errOut, "can be changed by other users: its directory "+open+" is writable by every user") ||
		!strings.Contains(errOut, "set TMPDIR to a directory of your own") || strings.Contains(errOut, "THROWAWAY") {
		t.Errorf("serve --dev-cert with TMPDIR writable by everyone = %d, %q; want exit 1 and why, before any warning", code, errOut)
	}
	if ents, _ := os.ReadDir(open); len(ents) != 0 {
		t.Errorf("the refused temporary directory was left behind: %v", ents)
	}
}
