package driver_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/endpoint/driver"
)

func TestPyInt(t *testing.T) {
	tests := []struct {
		in   string
		base int
		want int64
		ok   bool
	}{
		{"80", 10, 80, true}, {" 80 ", 10, 80, true}, {"+80", 10, 80, true}, {"-1", 10, -1, true}, {"99999999999999999999", 10, math.MaxInt64, true},
		{"08", 10, 8, true}, {"1_000", 10, 1000, true}, {"\t7\n", 10, 7, true},
		{"", 10, 0, false}, {" ", 10, 0, false}, {"_1", 10, 0, false}, {"1_", 10, 0, false},
		{"1__0", 10, 0, false}, {"0x50", 10, 0, false}, {"8O", 10, 0, false}, {"+-1", 10, 0, false},
		{"1 0", 10, 0, false},
		{"660", 8, 0660, true}, {"0o660", 8, 0660, true}, {"0O_7", 8, 7, true}, {"0660", 8, 0660, true},
		{"8", 8, 0, false}, {"0o", 8, 0, false}, {"0x1", 8, 0, false},
	}
	for _, tt := range tests {
		got, ok := driver.PyInt(tt.in, tt.base)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("driver.PyInt(%q, %d) = %d, %v; want %d, %v", tt.in, tt.base, got, ok, tt.want, tt.ok)
		}
	}
}

func describe(t *testing.T, role, s string) string {
	t.Helper()
	get := driver.ServerArgs
	if role == "client" {
		get = driver.ClientArgs
	}
	a, err := get(s)
	if err != nil {
		t.Fatalf("%s %q: %v", role, s, err)
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDescribe(t *testing.T) {
	tests := []struct{ role, in, want string }{
		{"server", "tcp:80", `{"role":"server","type":"tcp","args":{"port":80,"interface":"","backlog":50,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true,"reusePort":false,"ipv6Only":null}}`},
		{"server", "TCP:8080:interface=127.0.0.1:backlog=5", `{"role":"server","type":"tcp","args":{"port":8080,"interface":"127.0.0.1","backlog":5,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true,"reusePort":false,"ipv6Only":null}}`},
		{"server", "tcp:80:[::1]", `{"role":"server","type":"tcp","args":{"port":80,"interface":"::1","backlog":50,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true,"reusePort":false,"ipv6Only":null}}`},
		{"server", "tcp:port= 80 :backlog=1_0", `{"role":"server","type":"tcp","args":{"port":80,"interface":"","backlog":10,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true,"reusePort":false,"ipv6Only":null}}`},
		{"server", "tcp6:80", `{"role":"server","type":"tcp6","args":{"port":80,"backlog":50,"interface":"::","keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true,"reusePort":false,"ipv6Only":null}}`},
		{"server", "tcp6:80:7:[::1]", `{"role":"server","type":"tcp6","args":{"port":80,"backlog":7,"interface":"::1","keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true,"reusePort":false,"ipv6Only":null}}`},
		{"server", "unix:/run/a.sock", `{"role":"server","type":"unix","args":{"address":"/run/a.sock","mode":"0666","backlog":50,"lockfile":true,"owner":null,"group":null}}`},
		{"server", "unix:/run/a.sock:660:5:0", `{"role":"server","type":"unix","args":{"address":"/run/a.sock","mode":"0660","backlog":5,"lockfile":false,"owner":null,"group":null}}`},
		{"server", "unix:@abstract:lockfile=2", `{"role":"server","type":"unix","args":{"address":"@abstract","mode":"0666","backlog":50,"lockfile":true,"owner":null,"group":null}}`},
		{"client", "tcp:example.com:443", `{"role":"client","type":"tcp","args":{"host":"example.com","port":443,"timeout":30,"bindAddress":null,"attemptDelay":250,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true}}`},
		{"client", "tcp:host=[2001:db8::1]:443:timeout=5:bindAddress=[::1]", `{"role":"client","type":"tcp","args":{"host":"2001:db8::1","port":443,"timeout":5,"bindAddress":"::1","attemptDelay":250,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true}}`},
		{"client", "tcp:port=80:localhost", `{"role":"client","type":"tcp","args":{"host":"localhost","port":80,"timeout":30,"bindAddress":null,"attemptDelay":250,"keepAlive":null,"keepAliveInterval":null,"keepAliveCount":null,"userTimeout":null,"noDelay":true}}`},
		{"client", "unix:/run/a.sock", `{"role":"client","type":"unix","args":{"path":"/run/a.sock","timeout":30,"checkPID":false}}`},
		{"client", "unix:path=/run/a.sock:lockfile=1:timeout=2", `{"role":"client","type":"unix","args":{"path":"/run/a.sock","timeout":2,"checkPID":true}}`},
		{"server", "unix:/x:lockfile=99999999999999999999", `{"role":"server","type":"unix","args":{"address":"/x","mode":"0666","backlog":50,"lockfile":true,"owner":null,"group":null}}`},
		{"client", "unix:/run/a.sock:checkPID=0", `{"role":"client","type":"unix","args":{"path":"/run/a.sock","timeout":30,"checkPID":false}}`},
	}
	for _, tt := range tests {
		if got := describe(t, tt.role, tt.in); got != tt.want {
			t.Errorf("%s %q:\n got %s\nwant %s", tt.role, tt.in, got, tt.want)
		}
	}
}

// TestBindErrors covers every way binding a string to a type fails: each
// error is an *Error that names the input, the argument, and what was wanted.
func TestBindErrors(t *testing.T) {
	tests := []struct {
		role, in string
		sentinel error
		arg      string
		msg      string
	}{
		{"server", "tcp:http", endpoint.ErrBadArgument, "port", `port "http" is not a number 0-65535`},
		{"server", "tcp:65536", endpoint.ErrBadArgument, "port", "0-65535"},
		{"server", "tcp:-1", endpoint.ErrBadArgument, "port", "0-65535"},
		{"server", "tcp", endpoint.ErrBadArgument, "port", "port: missing (required)"},
		{"server", "tcp:80:lo:5:extra", endpoint.ErrBadArgument, "", `"extra" is extra; tcp takes at most 3 positional arguments (port, interface, backlog)`},
		{"server", "tcp:80:backlog=x", endpoint.ErrBadArgument, "backlog", `backlog "x" is not a whole number 0-1048576`},
		{"server", "tcp:80:backlog=-1", endpoint.ErrBadArgument, "backlog", "0-1048576"},
		{"server", "tcp:80:colour=red", endpoint.ErrBadArgument, "", `unknown argument "colour" (tcp takes port, interface, backlog, keepAlive, keepAliveInterval, keepAliveCount, userTimeout, noDelay, reusePort, ipv6Only)`},
		{"server", "tcp:80:port=81", endpoint.ErrBadArgument, "port", "given twice"},
		{"server", "tcp:80:interface=a b", endpoint.ErrBadArgument, "interface", "a host name or IP address"},
		{"server", "tcp:80:interface=[::1", endpoint.ErrSyntax, "", "never closed"},
		{"server", "tcp:80:interface=1:2", endpoint.ErrBadArgument, "interface", "given twice"},
		{"server", "tcp:80:interface=[1:2:zz]", endpoint.ErrBadArgument, "interface", "IPv6 address"},
		{"server", "unix:/x:mode=8", endpoint.ErrBadArgument, "mode", "octal file mode"},
		{"server", "unix:/x:mode=10000", endpoint.ErrBadArgument, "mode", "octal file mode"},
		{"server", "unix:/x:lockfile=yes", endpoint.ErrBadArgument, "lockfile", "a flag (0 for off, 1 for on)"},
		{"server", "unix:", endpoint.ErrBadArgument, "address", `address: empty, but required: give a value`},
		{"client", "tcp::80", endpoint.ErrBadArgument, "host", "empty, but required"},
		{"server", "nosuch:80", endpoint.ErrUnknownType, "", `unknown server type "nosuch" (known: `},
		{"client", "tcp:example.com", endpoint.ErrBadArgument, "port", "missing"},
		{"client", "tcp:example.com:80:timeout=0", endpoint.ErrBadArgument, "timeout", "1-2147483647"},
		{"client", "tcp:example.com:80:timeout=2.5", endpoint.ErrBadArgument, "timeout", "whole number of seconds"},
		{"client", "tcp:example.com:80:attemptDelay=-5", endpoint.ErrBadArgument, "attemptDelay", "milliseconds"},
		{"client", "unix:/x:checkPID=1:lockfile=1", endpoint.ErrBadArgument, "checkPID", "given twice"},
		{"client", "unix:/x:mode=1", endpoint.ErrBadArgument, "", `unknown argument "mode"`},
		{"client", "unix:/x:lockfile=abc", endpoint.ErrBadArgument, "lockfile", `lockfile "abc" is not a flag`},
		{"server", "tcp:80:interface=[127.0.0.1]", endpoint.ErrBadArgument, "interface", "a host name or IP address"},
		{"client", "tcp:h:80:timeout=2147483648", endpoint.ErrBadArgument, "timeout", "1-2147483647"},
		{"client", "tcp6:x:1", endpoint.ErrUnknownType, "", `unknown client type "tcp6" (known: `},
	}
	for _, tt := range tests {
		t.Run(tt.role+" "+tt.in, func(t *testing.T) {
			get := driver.ServerArgs
			if tt.role == "client" {
				get = driver.ClientArgs
			}
			_, err := get(tt.in)
			var e *endpoint.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want an *Error", err)
			}
			if !errors.Is(err, tt.sentinel) || e.Arg != tt.arg || e.Input != tt.in || e.Op != "parse" {
				t.Fatalf("got %#v, want sentinel %v, arg %q", e, tt.sentinel, tt.arg)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.msg) || !strings.Contains(msg, `"`+tt.in+`"`) {
				t.Fatalf("message %q, want it to contain %q and the input", msg, tt.msg)
			}
			// ParseServer/ParseClient report the same failure.
			var perr error
			if tt.role == "client" {
				_, perr = endpoint.ParseClient(tt.in)
			} else {
				_, perr = endpoint.ParseServer(tt.in)
			}
			if perr == nil || perr.Error() != err.Error() {
				t.Fatalf("Parse%s gave %v, want %v", tt.role, perr, err)
			}
		})
	}
}

// registered keeps test registrations to one per name, however often the
// tests run (go test -count=2): registering a name twice panics, by design.
var registered sync.Map

func registerOnce(name string, register func()) {
	once, _ := registered.LoadOrStore(name, new(sync.Once))
	once.(*sync.Once).Do(register)
}

func TestRegistry(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	newServer := func(*driver.Args) (driver.Server, error) { return nil, nil }
	mustPanic("duplicate", func() { driver.RegisterServer(driver.ServerType{Spec: driver.Spec{Name: "tcp"}, New: newServer}) })
	mustPanic("nil New", func() { driver.RegisterServer(driver.ServerType{Spec: driver.Spec{Name: "nilnew"}}) })
	mustPanic("upper case", func() { driver.RegisterServer(driver.ServerType{Spec: driver.Spec{Name: "Upper"}, New: newServer}) })
	mustPanic("colon", func() {
		driver.RegisterClient(driver.ClientType{Spec: driver.Spec{Name: "a:b"}, New: func(*driver.Args) (driver.Client, error) { return nil, nil }})
	})
	mustPanic("duplicate argument", func() {
		driver.RegisterServer(driver.ServerType{Spec: driver.Spec{Name: "dupargs", Args: []driver.Arg{{Name: "a"}, {Name: "b", Aliases: []string{"a"}}}}, New: newServer})
	})
	// A type whose New returns a nil Server is reported, not returned.
	registerOnce("nilserver", func() { driver.RegisterServer(driver.ServerType{Spec: driver.Spec{Name: "nilserver"}, New: newServer}) })
	if _, err := endpoint.ParseServer("nilserver"); err == nil {
		t.Error("ParseServer of a type returning nil: no error")
	}

	// Registering and listing at once is safe (run with -race).
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(2)
		name := "concurrent" + string(rune('a'+i))
		go func() {
			defer wg.Done()
			registerOnce(name, func() {
				driver.RegisterClient(driver.ClientType{Spec: driver.Spec{Name: name}, New: func(*driver.Args) (driver.Client, error) { return nil, nil }})
			})
		}()
		go func() {
			defer wg.Done()
			driver.ClientTypes()
			endpoint.ParseClient("tcp:localhost:1")
		}()
	}
	wg.Wait()
	names := map[string]bool{}
	prev := ""
	for _, ct := range driver.ClientTypes() {
		if ct.Name < prev {
			t.Errorf("ClientTypes not sorted: %q after %q", ct.Name, prev)
		}
		prev = ct.Name
		names[ct.Name] = true
	}
	if !names["concurrenta"] || !names["concurrenth"] || !names["tcp"] || !names["unix"] {
		t.Errorf("ClientTypes = %v", names)
	}
}

func TestWrapper(t *testing.T) {
	registerOnce("testwrap", func() {
		driver.RegisterServer(driver.ServerType{
			Spec: driver.Spec{Name: "testwrap", Wrapper: true, Help: "passes through"},
			New:  func(a *driver.Args) (driver.Server, error) { return endpoint.ParseServer(a.Inner) },
		})
	})
	got := describe(t, "server", `testwrap:unix:/a\:b:mode=600`)
	want := `{"role":"server","type":"testwrap","args":{},"inner":{"role":"server","type":"unix","args":{"address":"/a:b","mode":"0600","backlog":50,"lockfile":true,"owner":null,"group":null}}}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	ln, err := endpoint.Listen(context.Background(), "testwrap:testwrap:tcp:0:interface=127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().(*net.TCPAddr).Port == 0 {
		t.Fatal("no port")
	}
	for in, msg := range map[string]string{
		"testwrap":        "wants an inner endpoint",
		"testwrap:":       "wants an inner endpoint",
		"testwrap:tcp:x":  `port "x" is not a number`,
		"testwrap:nope:1": "unknown server type",
	} {
		if _, err := endpoint.ParseServer(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseServer(%q) = %v, want %q", in, err, msg)
		}
	}
}

// TestIPv6Hint: an IPv6 address without brackets splits into segments;
// the error says to bracket it, server and client alike, and a string
// whose "::" is in brackets gets no such hint.
func TestIPv6Hint(t *testing.T) {
	for _, tc := range []struct {
		role, s string
		hint    bool
	}{
		{"server", "tcp:80:interface=::1", true},
		{"client", "tcp:::1:80", true},
		{"client", "tcp:fe80::1:80", true},
		{"server", "tcp:80:interface=[::1]:backlog=x", false},
		{"server", "tcp:http", false},
	} {
		var err error
		if tc.role == "server" {
			_, err = endpoint.ParseServer(tc.s)
		} else {
			_, err = endpoint.ParseClient(tc.s)
		}
		if err == nil {
			t.Errorf("%s %q parsed", tc.role, tc.s)
			continue
		}
		if got := strings.Contains(err.Error(), "goes in brackets"); got != tc.hint {
			t.Errorf("%s %q: %v; hint wanted: %v", tc.role, tc.s, err, tc.hint)
		}
	}
}

// TestColonInValueHint: a ':' left unbracketed in a keyword's value cuts
// it, and the rest is an extra positional argument: the error says to
// bracket the value, and for a secret one shows neither part.
func TestColonInValueHint(t *testing.T) {
	_, err := driver.ClientArgs("srv:xmpp-client:example.com:nameserver=127.0.0.1:8600")
	if err == nil || !strings.Contains(err.Error(), "nameserver=[127.0.0.1:8600]") {
		t.Errorf("nameserver= with a port: %v; want the bracketed form as the fix", err)
	}
	_, err = driver.ClientArgs("socks5:h:1:proxy=[tcp:p:1]:username=u:password=hunter:2tail")
	if err == nil || !strings.Contains(err.Error(), `"xxxxx" is extra`) || !strings.Contains(err.Error(), "password has a ':' in it") {
		t.Errorf("password= with a ':': %v; want the extra hidden and the fix named", err)
	}
	if _, err := driver.ClientArgs("tcp:h:80:extra"); err == nil || strings.Contains(err.Error(), "brackets") {
		t.Errorf("an extra argument after no keyword: %v; want no bracket hint", err)
	}
}
