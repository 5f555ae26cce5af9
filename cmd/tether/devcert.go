package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/pathguard"
)

// sslDefaultKey is the ssl: server's privateKey default (Twisted's), a
// file in the current directory.
const sslDefaultKey = "server.pem"

// certlessTLS looks through the wrappers of the server string s (haproxy:)
// and reports whether it is a tls: or ssl: server that names no
// certificate, and if so its type and interface. A tls: server names none
// when it has neither certificate= nor certDir= (privateKey= alone is an
// error of its own); an ssl: server when it has neither privateKey nor
// certKey and Twisted's default, server.pem in the current directory, does
// not exist. A string that does not parse names none: its error stands.
func certlessTLS(s string) (typ, iface string, certless bool) {
	a, err := driver.ServerArgs(s)
	if err != nil {
		return "", "", false
	}
	for a.InnerArgs != nil {
		a = a.InnerArgs
	}
	switch typ = a.Spec.Name; typ {
	case "tls":
		certless = a.Value("certificate").Absent && a.Value("certDir").Absent && !a.Value("privateKey").Given
	case "ssl":
		_, err := os.Stat(sslDefaultKey)
		certless = !a.Value("privateKey").Given && !a.Value("certKey").Given && errors.Is(err, fs.ErrNotExist)
	default:
		return typ, "", false
	}
	return typ, a.Value("interface").Str, certless
}

// devCert carries out --dev-cert for the server string listen. When it is
// a tls: or ssl: server without a certificate, it makes a throwaway
// self-signed certificate in a private temporary directory, says so on
// stderr, loudly, and returns listen with the certificate's files added,
// log attributes naming the fingerprint, and a cleanup that removes the
// directory. code is an exit code to return at once, or -1 to go on.
func devCert(e *env, cmd, listen string, enabled bool) (out string, attrs []any, cleanup func(), code int) {
	cleanup = func() {}
	if !enabled {
		return listen, nil, cleanup, -1
	}
	typ, iface, certless := certlessTLS(listen)
	switch {
	case typ == "":
		// The string does not parse; ParseServer says why.
		return listen, nil, cleanup, -1
	case typ != "tls" && typ != "ssl":
		fmt.Fprintf(e.stderr, "tether %s: --dev-cert: LISTEN %q is a %s: server, not tls: or ssl:\n", cmd, endpoint.Redact(listen), typ)
		return listen, nil, cleanup, exitUsage
	case !certless:
		fmt.Fprintf(e.stderr, "tether %s: --dev-cert: LISTEN names a certificate; no throwaway certificate is made\n", cmd)
		return listen, nil, cleanup, -1
	}

	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if name := devCertName(iface); name != "" && !slices.Contains(hosts, name) {
		hosts = append(hosts, name)
	}
	cert, err := newSelfSigned(hosts...)
	if err != nil {
		fmt.Fprintf(e.stderr, "tether %s: --dev-cert: making a certificate: %v\n", cmd, err)
		return listen, nil, cleanup, exitFailure
	}
	dir, err := os.MkdirTemp("", "tether-dev-cert-")
	if err != nil {
		fmt.Fprintf(e.stderr, "tether %s: --dev-cert: %v\n", cmd, err)
		return listen, nil, cleanup, exitFailure
	}
	cleanup = func() { os.RemoveAll(dir) }
	if _, why := pathguard.Check(dir, false); why != "" {
		// LISTEN would refuse the files (see the TLS types' notes): say
		// so, and what to do, before any word of serving them.
		cleanup()
		fmt.Fprintf(e.stderr, "tether %s: --dev-cert: the temporary directory %s can be changed by other users: %s; set TMPDIR to a directory of your own\n", cmd, dir, why)
		return listen, nil, func() {}, exitFailure
	}
	certPath, keyPath, err := cert.writeFiles(dir)
	if err != nil {
		cleanup()
		fmt.Fprintf(e.stderr, "tether %s: --dev-cert: %v\n", cmd, err)
		return listen, nil, func() {}, exitFailure
	}
	if typ == "tls" {
		out = listen + ":certificate=" + endpoint.Quote(certPath) + ":privateKey=" + endpoint.Quote(keyPath)
	} else {
		out = listen + ":privateKey=" + endpoint.Quote(keyPath) + ":certKey=" + endpoint.Quote(certPath)
	}
	w := func(format string, a ...any) {
		fmt.Fprintf(e.stderr, "tether %s: WARNING: "+format+"\n", append([]any{cmd}, a...)...)
	}
	w("--dev-cert: serving a THROWAWAY SELF-SIGNED certificate; for development only, no client trusts it")
	w("  for the names %s", strings.Join(hosts, ", "))
	w("  SHA-256 fingerprint %s", cert.Fingerprint)
	w("  in %s, deleted when tether exits", dir)
	return out, []any{"dev_cert_sha256", cert.Fingerprint}, cleanup, -1
}

// devCertName is the name an interface adds to the certificate: none for
// every address ("", 0.0.0.0, ::), an IP address in its usual form.
func devCertName(iface string) string {
	ip, err := netip.ParseAddr(iface)
	switch {
	case err != nil:
		return iface
	case ip.IsUnspecified():
		return ""
	}
	return ip.WithZone("").String()
}

// devCertHint follows the error of a LISTEN that fails for want of a
// certificate with a pointer to --dev-cert.
func devCertHint(e *env, cmd, listen string, enabled bool) {
	if _, _, certless := certlessTLS(listen); certless && !enabled {
		fmt.Fprintf(e.stderr, "tether %s: (for development, --dev-cert serves a throwaway self-signed certificate)\n", cmd)
	}
}
