package endpoint_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/endpoint/driver"
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
	d, _ := driver.Parse("unix:" + endpoint.Quote(`C:\sockets\a=b`))
	fmt.Println(d.Positional[0])
	// Output:
	// unix:C\:\\sockets\\a\=b
	// C:\sockets\a=b
}

// Serve HTTP on whatever endpoint string the user gave: net/http needs
// nothing but the Listener.
func Example_httpServer() {
	ln, err := endpoint.Listen(context.Background(), "tcp:0:interface=127.0.0.1") // or "unix:/run/app.sock"
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello over", r.Proto)
	})}
	go srv.Serve(ln)
	defer srv.Close()

	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: hello over HTTP/1.1
}

// An HTTP client whose connections go wherever a client endpoint string
// says, here a UNIX socket, whatever the URL's host.
func Example_httpClient() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "api.sock")
	ln, _ := endpoint.Listen(context.Background(), "unix:"+endpoint.Quote(sock))
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "served on", r.Host)
	}))
	defer ln.Close()

	cli, err := endpoint.ParseClient("unix:" + endpoint.Quote(sock) + ":timeout=5")
	if err != nil {
		fmt.Println(err)
		return
	}
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return cli.Dial(ctx) },
	}}
	resp, err := hc.Get("http://api.internal/status")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: served on api.internal
}

// fetchGreeting is a library function written as the Twisted howto
// advises: it takes a Client, not a host and port, so its caller decides
// the transport (tcp, unix, tls, ...).
func fetchGreeting(ctx context.Context, server endpoint.Client) (string, error) {
	c, err := server.Dial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	return string(b), err
}

// A library function that accepts endpoints as parameters.
func Example_acceptingEndpoints() {
	svc := &endpoint.Service{Handler: endpoint.HandlerFunc(
		func(ctx context.Context, c net.Conn) { io.WriteString(c, "greetings") })}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	ln, _ := endpoint.Listen(ctx, "tcp:0:interface=127.0.0.1")
	go svc.Serve(ctx, ln)

	cli, _ := endpoint.ParseClient(fmt.Sprintf("tcp:127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port))
	msg, err := fetchGreeting(ctx, cli)
	fmt.Println(msg, err)
	// Output: greetings <nil>
}

// Run a service until the program is told to stop. In a real program the
// context comes from signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM),
// and several services run side by side with RunAll or an errgroup.
func ExampleService() {
	svc, err := endpoint.NewService("tcp:0:interface=127.0.0.1", endpoint.HandlerFunc(
		func(ctx context.Context, c net.Conn) { io.Copy(c, c) })) // echo
	if err != nil {
		fmt.Println(err)
		return
	}
	svc.DrainTimeout = 5 * time.Second
	ctx, stop := context.WithCancel(context.Background())
	go func() {
		for svc.Addr() == nil {
			time.Sleep(time.Millisecond)
		}
		c, _ := net.Dial("tcp", svc.Addr().String())
		io.WriteString(c, "echo")
		buf := make([]byte, 4)
		io.ReadFull(c, buf)
		fmt.Println(string(buf))
		c.Close()
		stop() // as SIGTERM would
	}()
	err = svc.Run(ctx) // listens, serves, and on stop drains
	fmt.Println("stopped:", err)
	// Output:
	// echo
	// stopped: <nil>
}

// Stopping a port: Close returns once the port is closed and, for a UNIX
// socket, once its file and lock file are gone.
func ExampleServer_stop() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	ln, err := endpoint.Listen(context.Background(), "unix:"+endpoint.Quote(sock))
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = os.Lstat(sock + ".lock") // a symlink to our PID
	fmt.Println("lock while listening:", err == nil)
	ln.Close()
	_, err1 := os.Stat(sock)
	_, err2 := os.Lstat(sock + ".lock")
	fmt.Println("gone after Close:", os.IsNotExist(err1), os.IsNotExist(err2))
	// Output:
	// lock while listening: true
	// gone after Close: true true
}

// Listen and Dial parse and use a string in one call, for programs that
// have nothing to do between the two.
func ExampleListen() {
	ln, err := endpoint.Listen(context.Background(), "tcp:0:interface=127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() {
		c, _ := ln.Accept()
		io.WriteString(c, "hi")
		c.Close()
	}()
	c, err := endpoint.Dial(context.Background(), fmt.Sprintf("tcp:127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	fmt.Println(string(b))

	// A port in use is an error that says so.
	_, err = endpoint.Listen(context.Background(), fmt.Sprintf("tcp:%d:interface=127.0.0.1", ln.Addr().(*net.TCPAddr).Port))
	fmt.Println(errors.Is(err, syscall.EADDRINUSE))
	// Output:
	// hi
	// true
}

// Serve a listener the program made itself, and stop as net/http's
// Server does: Shutdown refuses new connections at once and waits for the
// ones in hand until its context ends, then cuts them.
func ExampleService_Shutdown() {
	ln, err := endpoint.Listen(context.Background(), "tcp:0:interface=127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	svc := &endpoint.Service{Handler: endpoint.HandlerFunc(func(ctx context.Context, c net.Conn) {
		io.Copy(c, c) // echo, until the client is done
	})}
	served := make(chan error, 1)
	go func() { served <- svc.Serve(context.Background(), ln) }()

	c, _ := net.Dial("tcp", ln.Addr().String())
	buf := make([]byte, 5)
	io.WriteString(c, "hello")
	io.ReadFull(c, buf) // served

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- svc.Shutdown(ctx) }()
	io.WriteString(c, "again")
	io.ReadFull(c, buf) // still served while Shutdown waits
	c.Close()           // the one connection in hand finishes: Shutdown returns
	fmt.Printf("%s; Shutdown: %v; Serve: %v\n", buf, <-shut, <-served)
	// Output: again; Shutdown: <nil>; Serve: <nil>
}

// RunAll starts several services, all or none: here the second cannot
// listen, so the first is closed again and the error returned at once.
func ExampleRunAll() {
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	echo := endpoint.HandlerFunc(func(ctx context.Context, c net.Conn) { io.Copy(c, c) })
	a, _ := endpoint.NewService("tcp:0:interface=127.0.0.1", echo)
	b, _ := endpoint.NewService(fmt.Sprintf("tcp:%d:interface=127.0.0.1", busy.Addr().(*net.TCPAddr).Port), echo)
	err := endpoint.RunAll(context.Background(), a, b)
	fmt.Println(errors.Is(err, syscall.EADDRINUSE))
	// Output: true
}
