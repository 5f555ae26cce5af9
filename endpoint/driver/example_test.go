package driver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/endpoint/driver"
)

// Parse takes a string apart without interpreting it.
func ExampleParse() {
	d, err := driver.Parse(`tcp:8080:interface=[::1]:backlog=5`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Type, d.Positional, d.Keywords)
	fmt.Println(d)
	// Output:
	// tcp [8080] [{interface [::1]} {backlog 5}]
	// tcp:8080:interface=[::1]:backlog=5
}

// A third-party endpoint type, registered from outside the package as any
// plugin would be (normally in its package's init function). "upper"
// wraps a tcp client and shouts everything it sends.
func ExampleRegisterClient() {
	registerUpper.Do(registerUpperType) // in a real package: func init() { registerUpperType() }

	ln, _ := endpoint.Listen(context.Background(), "tcp:0:interface=127.0.0.1")
	defer ln.Close()
	go func() {
		c, _ := ln.Accept()
		io.Copy(c, c)
		c.Close()
	}()

	c, err := endpoint.Dial(context.Background(), fmt.Sprintf("upper:127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	io.WriteString(c, "quiet please")
	buf := make([]byte, 12)
	io.ReadFull(c, buf)
	fmt.Println(string(buf))

	_, err = endpoint.ParseClient("upper:localhost")
	fmt.Println(err)
	// Output:
	// QUIET PLEASE
	// endpoint "upper:localhost": upper: port: missing (required)
}

// registerUpper makes the example's registration happen once however often
// the example runs (go test -count=2): registering a name twice panics.
var registerUpper sync.Once

// The "upper" type's arguments, declared once, typed: New gets a port as
// a uint16, and a misspelt name does not compile.
var (
	upperHost = driver.HostParam("host", "host to connect to").Positional().Required()
	upperPort = driver.PortParam("port", "port to connect to").Positional().Required()
)

// registerUpperType registers "upper", a third-party client type: its
// arguments, and how to make the endpoint from them.
func registerUpperType() {
	driver.RegisterClient(driver.ClientType{
		Spec: driver.Spec{
			Name: "upper",
			Help: "a tcp client that upper-cases what it writes",
			Args: []driver.Arg{upperHost.Arg(), upperPort.Arg()},
		},
		New: func(a *driver.Args) (driver.Client, error) {
			return upperClient{fmt.Sprintf("tcp:%s:%d", endpoint.Quote(upperHost.Get(a)), upperPort.Get(a))}, nil
		},
	})
}

type upperClient struct{ inner string }

func (u upperClient) Dial(ctx context.Context) (net.Conn, error) {
	c, err := endpoint.Dial(ctx, u.inner)
	if err != nil {
		return nil, err
	}
	return upperConn{c}, nil
}

type upperConn struct{ net.Conn }

func (c upperConn) Write(p []byte) (int, error) {
	return c.Conn.Write([]byte(strings.ToUpper(string(p))))
}

// ServerArgs shows what a string means, every default filled in, as
// `tether describe` prints it.
func ExampleServerArgs() {
	a, err := driver.ServerArgs("unix:/run/app.sock:mode=660")
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := json.Marshal(a)
	fmt.Println(string(b))
	fmt.Printf("%#o %v\n", a.Value("mode").Num, a.Value("lockfile").Num != 0)
	// Output:
	// {"role":"server","type":"unix","args":{"address":"/run/app.sock","mode":"0660","backlog":50,"lockfile":true,"owner":null,"group":null}}
	// 0660 true
}

// An srv: string names a service by its DNS SRV records (here those of
// _xmpp-client._tcp.example.com, asked of Consul-style DNS on port 8600);
// ClientArgs shows what it means without looking anything up.
func ExampleClientArgs_srv() {
	a, err := driver.ClientArgs("srv:xmpp-client:example.com:nameserver=[127.0.0.1:8600]:tls=1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(a.Value("service").Str, a.Value("domain").Str, a.Value("protocol").Str, a.Value("nameserver").Str)
	fmt.Println("TLS, verifying", a.Value("hostname").Str)
	// Output:
	// xmpp-client example.com tcp [127.0.0.1:8600]
	// TLS, verifying example.com
}
