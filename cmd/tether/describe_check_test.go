package main

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/testpeer"
)

// describeJSON runs describe with args and decodes its JSON.
func describeJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	code, out, errOut := runCmd(append([]string{"describe"}, args...)...)
	var v map[string]any
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("describe %q = %d, %q, %q", args, code, out, errOut)
	}
	return v
}

// certFiles writes a throwaway certificate: its certificate alone, its key
// alone, and both in one file.
func certFiles(t *testing.T) (certPath, keyPath, bothPath string) {
	t.Helper()
	dir := t.TempDir()
	c, err := newSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	if certPath, keyPath, err = c.writeFiles(dir); err != nil {
		t.Fatal(err)
	}
	bothPath = filepath.Join(dir, "both.pem")
	if err := os.WriteFile(bothPath, append(append([]byte{}, c.CertPEM...), c.KeyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath, bothPath
}

// TestDescribeRunsParseChecks: describe rejects what relay, serve and
// connect reject when they make the endpoint (files, programs, passed
// sockets), with their message, exit 2 and one line; --syntax-only checks
// the string alone and accepts these.
func TestDescribeRunsParseChecks(t *testing.T) {
	certPath, keyPath, _ := certFiles(t)
	for _, args := range [][]string{
		{"tls:443"},
		{"tls:443:certificate=/nonexistent.pem"},
		{"tls:443:certificate=" + endpoint.Quote(certPath)}, // no key in it
		{"tls:443:privateKey=" + endpoint.Quote(keyPath)},
		{"--client", "tls:example.com:443:trustRoots=/nonexistent.pem"},
		{"--client", "exec:nonexistent-program"},
		{"ssl:8443:privateKey=/missing.pem"},
		{"systemd:domain=INET"},
		{"haproxy:tls:443"},
		{"--client", "tls:h:443:endpoint=" + endpoint.Quote("tcp:h")},
	} {
		code, out, errOut := runCmd(append([]string{"describe"}, args...)...)
		parse := func(s string) error { _, err := endpoint.ParseServer(s); return err }
		if args[0] == "--client" {
			parse = func(s string) error { _, err := endpoint.ParseClient(s); return err }
		}
		perr := parse(args[len(args)-1])
		if perr == nil {
			t.Fatalf("%q: ParseServer/ParseClient accept it; the test wants a string they reject", args)
		}
		if code != exitUsage || out != "" || errOut != "tether describe: "+perr.Error()+"\n" {
			t.Errorf("describe %q = %d, stdout %q, stderr %q; want exit 2 and %q", args, code, out, errOut, perr.Error())
		}
		if code, _, errOut := runCmd(append([]string{"describe", "--syntax-only"}, args...)...); code != exitOK {
			t.Errorf("describe --syntax-only %q = %d, %q; want it accepted", args, code, errOut)
		}
	}
	// And accepts a tls: server whose files are good.
	describeJSON(t, "tls:0:certificate="+endpoint.Quote(certPath)+":privateKey="+endpoint.Quote(keyPath))
}

// TestDescribeFallbacks: an argument whose absence means another one's
// value is shown with that value, not null.
func TestDescribeFallbacks(t *testing.T) {
	certPath, _, both := certFiles(t)
	args := func(v map[string]any) map[string]any { return v["args"].(map[string]any) }

	a := args(describeJSON(t, "ssl:8443:privateKey="+endpoint.Quote(both)))
	if a["certKey"] != both || a["privateKey"] != both {
		t.Errorf("ssl server: certKey %v, privateKey %v; want both %q", a["certKey"], a["privateKey"], both)
	}
	a = args(describeJSON(t, "--syntax-only", "ssl:8443"))
	if a["certKey"] != "server.pem" {
		t.Errorf("ssl server without privateKey: certKey %v, want server.pem", a["certKey"])
	}
	a = args(describeJSON(t, "tls:8443:certificate="+endpoint.Quote(both)))
	if a["privateKey"] != both {
		t.Errorf("tls server: privateKey %v, want %q", a["privateKey"], both)
	}
	a = args(describeJSON(t, "--client", "tls:example.com:443:certificate="+endpoint.Quote(both)))
	if a["privateKey"] != both {
		t.Errorf("tls client: privateKey %v, want %q", a["privateKey"], both)
	}
	a = args(describeJSON(t, "--client", "ssl:example.com:443:certKey="+endpoint.Quote(both)))
	if a["privateKey"] != both || a["hostname"] != "example.com" {
		t.Errorf("ssl client: privateKey %v, hostname %v", a["privateKey"], a["hostname"])
	}
	// Inside a wrapper too; and what the string gives stays as given.
	a = args(describeJSON(t, "haproxy:ssl:8443:privateKey="+endpoint.Quote(both))["inner"].(map[string]any))
	if a["certKey"] != both {
		t.Errorf("haproxy:ssl server: certKey %v, want %q", a["certKey"], both)
	}
	a = args(describeJSON(t, "--syntax-only", "ssl:8443:privateKey=k.pem:certKey="+endpoint.Quote(certPath)))
	if a["certKey"] != certPath || a["privateKey"] != "k.pem" {
		t.Errorf("ssl server with both: %v", a)
	}
	// No value to fall back on: null.
	a = args(describeJSON(t, "--client", "tls:example.com:443"))
	if v, ok := a["privateKey"]; !ok || v != nil {
		t.Errorf("tls client without certificate: privateKey %v, want null", v)
	}
}

// TestDescribeSyntaxOnly: --syntax-only reads no file and still rejects a
// bad string, with ServerArgs' or ClientArgs' message; a nested string it
// shows without parsing.
func TestDescribeSyntaxOnly(t *testing.T) {
	v := describeJSON(t, "--syntax-only", "tls:443:certificate=/nonexistent.pem")
	if v["args"].(map[string]any)["certificate"] != "/nonexistent.pem" {
		t.Errorf("describe --syntax-only = %v", v)
	}
	describeJSON(t, "--client", "--syntax-only", "tls:h:443:endpoint="+endpoint.Quote(`tcp:h:1:x=\`))
	_, aerr := driver.ServerArgs("tls:http")
	if code, _, errOut := runCmd("describe", "--syntax-only", "tls:http"); code != exitUsage ||
		errOut != "tether describe: "+aerr.Error()+"\n" {
		t.Errorf("describe --syntax-only tls:http = %d, %q", code, errOut)
	}
}

// interopCorpus reads the strings of the differential corpus in
// interop/describe_test.go: every srv("...") and cli("...") there.
func interopCorpus(t *testing.T) (servers, clients []string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../interop/describe_test.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 1 {
			return true
		}
		fn, ok := call.Fun.(*ast.Ident)
		lit, isLit := call.Args[0].(*ast.BasicLit)
		if !ok || !isLit || lit.Kind != token.STRING || (fn.Name != "srv" && fn.Name != "cli") {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			t.Fatalf("interop corpus: %s: %v", lit.Value, err)
		}
		if fn.Name == "srv" {
			servers = append(servers, s)
		} else {
			clients = append(clients, s)
		}
		return true
	})
	if len(servers) < 50 || len(clients) < 50 {
		t.Fatalf("interop corpus: found %d server and %d client strings; has its form changed?", len(servers), len(clients))
	}
	return servers, clients
}

// TestDescribeAgreesWithParse: for every string of the interop corpus,
// and for strings of every other type, describe accepts exactly what
// ParseServer or ParseClient accepts and rejects the rest with their
// message; --syntax-only agrees so with ServerArgs and ClientArgs.
func TestDescribeAgreesWithParse(t *testing.T) {
	servers, clients := interopCorpus(t)
	certPath, keyPath, both := certFiles(t)
	c, k, b := endpoint.Quote(certPath), endpoint.Quote(keyPath), endpoint.Quote(both)
	servers = append(servers,
		"tls:443", "tls:0:certificate="+c+":privateKey="+k, "tls:0:certificate="+b, "tls:0:certificate="+c,
		"tls:0:privateKey="+k, "tls:0:certDir="+endpoint.Quote(filepath.Dir(certPath)), "tls:0:certificate="+b+":minVersion=1.1",
		"ssl:0", "ssl:0:privateKey="+b, "ssl:0:privateKey="+k+":certKey="+c, "ssl:0:privateKey="+k, "ssl:0:"+b+"::TLSv1_METHOD",
		"haproxy:tcp:0", "haproxy:tls:0", "haproxy:ssl:0:privateKey="+b, "systemd:domain=INET", "systemd:domain=INET:index=0",
		"fd:3", "fd:fileno=99", "stdio:", "unix:@x", "tcp6:0:interface=[::1]")
	clients = append(clients,
		"tls:h:443", "tls:h:443:trustRoots=/nonexistent.pem", "tls:h:443:trustRoots="+c, "tls:h:443:certificate="+b,
		"tls:h:443:certificate="+c, "tls:h:443:privateKey="+k, "tls:h:443:endpoint="+endpoint.Quote("tcp:h:1"),
		"tls:h:443:endpoint="+endpoint.Quote("tcp:h"), "tls:h:443:bindAddress=127.0.0.1:endpoint=unix\\:/x",
		"ssl:h:443", "ssl:h:443:caCertsDir=/nonexistent", "ssl:h:443:certKey="+b, "ssl:h:443:privateKey="+k,
		"exec:nonexistent-program", "exec:sh:-c:true", "exec:/bin/true:dir=/nonexistent", "stdio:",
		"haproxy:tcp:h:1", "haproxy:tls:h:1:trustRoots=/nonexistent.pem",
		"socks5:h:1:proxy="+endpoint.Quote("tcp:p:1080"), "socks5:h:1:proxy="+endpoint.Quote("tcp:p"),
		"socks5:h:1:proxy=tcp\\:p\\:1:password=x", "httpconnect:h:1:proxy="+endpoint.Quote("tcp:p:3128"),
		"httpconnect:h:1:proxy="+endpoint.Quote("nosuch:p"))

	check := func(role, s string) {
		t.Helper()
		flags := []string{"describe"}
		argsOf, parse := driver.ServerArgs, func(s string) error { _, err := endpoint.ParseServer(s); return err }
		if role == "client" {
			flags = append(flags, "--client")
			argsOf, parse = driver.ClientArgs, func(s string) error { _, err := endpoint.ParseClient(s); return err }
		}
		for _, syntaxOnly := range []bool{false, true} {
			args := append(append([]string{}, flags...), s)
			err := parse(s)
			if syntaxOnly {
				args = append(args, "--syntax-only")
				_, err = argsOf(s)
			}
			code, out, errOut := runCmd(args...)
			switch {
			case err == nil && (code != exitOK || errOut != "" || !json.Valid([]byte(out))):
				t.Errorf("%s %q: accepted by %s, but describe %q = %d, %q, %q", role, s, which(syntaxOnly), args, code, out, errOut)
			case err != nil && (code != exitUsage || out != "" || errOut != "tether describe: "+err.Error()+"\n"):
				t.Errorf("%s %q: %s says %q, but describe %q = %d, %q, %q", role, s, which(syntaxOnly), err, args, code, out, errOut)
			}
		}
	}
	for _, s := range servers {
		check("server", s)
	}
	for _, s := range clients {
		check("client", s)
	}
	t.Logf("%d server and %d client strings", len(servers), len(clients))
}

func which(syntaxOnly bool) string {
	if syntaxOnly {
		return "ServerArgs/ClientArgs"
	}
	return "ParseServer/ParseClient"
}

// TestDescribeWarnsOfReadableKey: a private key every user can read is
// described (exit 0, the JSON on stdout) with the warning on stderr that
// tether relay would log, and a key only its owner reads gets none.
func TestDescribeWarnsOfReadableKey(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		os.Chmod(d, 0o755) // t.TempDir makes both 0700
	}
	cert, key := testpeer.NewCA(t, "describe-ca").Issue(dir, "localhost", testpeer.LeafOpts{})
	s := "tls:8443:certificate=" + cert + ":privateKey=" + key
	for _, mode := range []os.FileMode{0o600, 0o644} {
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCmd("describe", s)
		warned := strings.Contains(errOut, "holds a private key and is readable by every user (-rw-r--r--): chmod o-r "+key)
		if code != exitOK || !strings.HasPrefix(out, `{"role":"server","type":"tls"`) || warned != (mode == 0o644) {
			t.Errorf("describe with a key of mode %v = %d, %q, stderr %q", mode, code, out, errOut)
		}
	}
}
