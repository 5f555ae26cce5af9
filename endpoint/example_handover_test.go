package endpoint_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
)

// A handler hands its connection to code of its own and returns at once;
// the Service still counts the connection, and Shutdown waits for it,
// until done is called.
func ExampleDetach() {
	ln, err := endpoint.Listen(context.Background(), "tcp:0:interface=127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	svc := &endpoint.Service{Handler: endpoint.HandlerFunc(func(ctx context.Context, c net.Conn) {
		done, ok := endpoint.Detach(ctx, c, func(error) { endpoint.Abort(c) })
		if !ok {
			io.Copy(c, c) // not served by a Service: see it through here
			return
		}
		go func() { // the new owner: an echo, then done
			io.Copy(c, c)
			c.Close()
			done()
		}()
	})}
	go svc.Serve(context.Background(), ln)

	c, _ := net.Dial("tcp", ln.Addr().String())
	io.WriteString(c, "hello")
	buf := make([]byte, 5)
	io.ReadFull(c, buf)
	fmt.Println(string(buf), "active:", svc.Active())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- svc.Shutdown(ctx) }()
	c.Close() // the detached connection ends, done is called: Shutdown returns
	fmt.Println("Shutdown:", <-shut, "active:", svc.Active())
	// Output:
	// hello active: 1
	// Shutdown: <nil> active: 0
}

// handOver is an Inheritor within one process, to show the contract: the
// listeners the old generation made are kept, and the next generation's
// Options get them back instead of listening again. (A real one, such as
// tableflip's Upgrader, passes them to a new process as descriptors.)
type handOver struct {
	kept   map[string]net.Listener
	parent bool
}

func (h *handOver) ListenWithCallback(network, addr string, listen func(string, string) (net.Listener, error)) (net.Listener, error) {
	if ln, ok := h.kept[network+" "+addr]; ok {
		return ln, nil
	}
	ln, err := listen(network, addr)
	if err == nil {
		h.kept[network+" "+addr] = ln
	}
	return ln, err
}

func (h *handOver) HasParent() bool { return h.parent }
func (h *handOver) HandedOn() bool  { return false }

// Options.Inherit makes a server take over the socket a previous
// generation listened on, so that a restart refuses no connection: the
// same port, the same queue of connections not yet accepted.
func ExampleInheritor() {
	h := &handOver{kept: map[string]net.Listener{}}
	old := &endpoint.Options{Inherit: h}
	ln1, err := old.Listen(context.Background(), "tcp:0:interface=127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	// A client connects while the restart is under way: it waits in the
	// socket's queue.
	c, _ := net.Dial("tcp", ln1.Addr().String())
	defer c.Close()

	h.parent = true
	next := &endpoint.Options{Inherit: h}
	ln2, err := next.Listen(context.Background(), "tcp:0:interface=127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln2.Close()
	s, err := ln2.Accept() // the new generation accepts it
	if err != nil {
		fmt.Println(err)
		return
	}
	s.Close()
	fmt.Println("same address:", ln1.Addr().String() == ln2.Addr().String())
	// Output: same address: true
}
