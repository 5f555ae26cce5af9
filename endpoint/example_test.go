package endpoint_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
)

// Parse a server string, listen, and serve; the program does not know or
// care which transport the string named.
func ExampleParseServer() {
	srv, err := endpoint.ParseServer("tcp:0:interface=127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, err := srv.Listen(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close() // returns once the port is closed
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "hello\n")
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	line, _ := io.ReadAll(c)
	fmt.Print(string(line))
	// Output: hello
}

// A bad string is reported when it is parsed, naming the argument.
func ExampleParseServer_error() {
	_, err := endpoint.ParseServer("tcp:http")
	fmt.Println(err)
	fmt.Println(errors.Is(err, endpoint.ErrBadArgument))
	// Output:
	// endpoint "tcp:http": tcp: port "http" is not a number 0-65535
	// true
}

// Dial with a deadline, the Go form of Twisted's
// reactor.callLater(30, attempt.cancel). Here the port is closed, so the
// attempt fails at once rather than waiting for the deadline.
func ExampleParseClient() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()

	cli, err := endpoint.ParseClient(fmt.Sprintf("tcp:127.0.0.1:%d", addr.Port))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = cli.Dial(ctx)
	fmt.Println(err != nil, errors.Is(err, context.DeadlineExceeded))
	// Output: true false
}

// Cancelling the context abandons a connection attempt, as Twisted's
// Deferred.cancel does.
func ExampleClient_cancel() {
	cli, _ := endpoint.ParseClient("tcp:127.0.0.1:9")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // for example, the user pressed Ctrl-C
	_, err := cli.Dial(ctx)
	fmt.Println(errors.Is(err, context.Canceled))
	// Output: true
}

// Quote a value so that it survives inside an endpoint string.
func ExampleQuote() {
	fmt.Println("unix:" + endpoint.Quote(`C:\sockets\a=b`))
	d, _ := endpoint.Parse("unix:" + endpoint.Quote(`C:\sockets\a=b`))
	fmt.Println(d.Positional[0])
	// Output:
	// unix:C\:\\sockets\\a\=b
	// C:\sockets\a=b
}

// Parse takes a string apart without interpreting it.
func ExampleParse() {
	d, err := endpoint.Parse(`tcp:8080:interface=[::1]:backlog=5`)
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
	endpoint.RegisterClient(endpoint.ClientType{
		Spec: endpoint.Spec{
			Name: "upper",
			Help: "a tcp client that upper-cases what it writes",
			Args: []endpoint.Arg{
				{Name: "host", Positional: true, Kind: endpoint.Host, Required: true, Help: "host to connect to"},
				{Name: "port", Positional: true, Kind: endpoint.Port, Required: true, Help: "port to connect to"},
			},
		},
		New: func(a *endpoint.Args) (endpoint.Client, error) {
			return upperClient{fmt.Sprintf("tcp:%s:%d", endpoint.Quote(a.String("host")), a.Int("port"))}, nil
		},
	})

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
