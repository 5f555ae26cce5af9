package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

func listen(t *testing.T, s string) net.Listener {
	t.Helper()
	ln, err := Listen(context.Background(), s)
	if err != nil {
		t.Fatalf("Listen(%q): %v", s, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func portOf(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// serveEach accepts until ln is closed, and calls f for each connection in
// a goroutine of its own, closing the connection when f returns.
func serveEach(ln net.Listener, f func(net.Conn)) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				f(c)
			}()
		}
	}()
}

// echoOnce accepts one connection, echoes it until EOF and closes it.
func echoOnce(t *testing.T, ln net.Listener) <-chan net.Addr {
	peers := make(chan net.Addr, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(peers)
			return
		}
		peers <- c.RemoteAddr()
		io.Copy(c, c)
		c.Close()
	}()
	return peers
}

func roundTrip(t *testing.T, c net.Conn) {
	t.Helper()
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// blackhole returns the address of a listener on 127.0.0.1 whose accept
// queue is full, so that a new connection's SYN is dropped and the connect
// hangs until it is abandoned: a loopback stand-in for an unroutable
// address. It also shows that backlog= reaches listen(2).
func blackhole(t *testing.T) string {
	return blackholeOn(t, "tcp:0:interface=127.0.0.1:backlog=0")
}

// blackholeOn is blackhole for a server string with backlog 0.
func blackholeOn(t *testing.T, s string) string {
	t.Helper()
	ln := listen(t, s)
	addr := ln.Addr().String()
	// Linux queues backlog+1 connections; fill the queue until a connect hangs.
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatalf("%s did not make the accept queue fill: backlog is not applied", s)
	return ""
}

func TestTCPListenAndDial(t *testing.T) {
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	peers := echoOnce(t, ln)
	c, err := Dial(context.Background(), fmt.Sprintf("tcp:127.0.0.1:%d", portOf(ln)))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	<-peers
}

func TestTCPInterfaces(t *testing.T) {
	// An empty interface is every IPv4 address, like Twisted's tcp: not IPv6.
	ln := listen(t, "tcp:0")
	if a := ln.Addr().(*net.TCPAddr); a.IP.To4() == nil {
		t.Fatalf("tcp:0 listens on %v, want IPv4", a)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("::1", strconv.Itoa(portOf(ln))), time.Second); err == nil {
		c.Close()
		t.Fatal("tcp:0 accepted an IPv6 connection")
	}
	// An IPv6 interface listens on IPv6, with or without brackets.
	for _, s := range []string{"tcp:0:interface=[::1]", `tcp:0:interface=\:\:1`, "tcp6:0:interface=[::1]"} {
		ln := listen(t, s)
		if a := ln.Addr().(*net.TCPAddr); a.IP.To4() != nil || !a.IP.IsLoopback() {
			t.Fatalf("%s listens on %v, want ::1", s, a)
		}
		peers := echoOnce(t, ln)
		c, err := Dial(context.Background(), fmt.Sprintf("tcp:[::1]:%d", portOf(ln)))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c)
		<-peers
	}
	// tcp6 on "::" takes IPv4 too, as Twisted's does.
	ln6 := listen(t, "tcp6:0")
	peers := echoOnce(t, ln6)
	c, err := Dial(context.Background(), fmt.Sprintf("tcp:127.0.0.1:%d", portOf(ln6)))
	if err != nil {
		t.Fatalf("tcp6:0 refused IPv4: %v", err)
	}
	roundTrip(t, c)
	<-peers
}

func TestTCPListenInUse(t *testing.T) {
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	s := fmt.Sprintf("tcp:%d:interface=127.0.0.1", portOf(ln))
	_, err := Listen(context.Background(), s)
	var e *Error
	if !errors.As(err, &e) || e.Op != "listen" || e.Input != s {
		t.Fatalf("second Listen: %v, want an *Error for %q", err, s)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second Listen: %v does not match EADDRINUSE", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Fatalf("%v does not wrap a *net.OpError", err)
	}
}

func TestTCPCloseStopsPort(t *testing.T) {
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	port := portOf(ln)
	accepted := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		accepted <- err
	}()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	// When Close returns, the port is closed: connections are refused at
	// once, Accept reports net.ErrClosed, and the port can be listened on again.
	_, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Close: %v, want ECONNREFUSED", err)
	}
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	listen(t, fmt.Sprintf("tcp:%d:interface=127.0.0.1", port))
}

func TestTCPListenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Listen(ctx, "tcp:0:interface=127.0.0.1")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Listen with a cancelled context: %v", err)
	}
}

func TestTCPDialRefused(t *testing.T) {
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	port := portOf(ln)
	ln.Close()
	_, err := Dial(context.Background(), fmt.Sprintf("tcp:127.0.0.1:%d", port))
	var e *Error
	if !errors.As(err, &e) || e.Op != "dial" || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to a closed port: %v", err)
	}
}

func TestTCPDialCancel(t *testing.T) {
	addr := blackhole(t)
	host, port, _ := net.SplitHostPort(addr)
	cli, err := ParseClient("tcp:" + host + ":" + port)
	if err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	dialCancelled(t, cli)
	if after := openFDs(t); after > before {
		t.Fatalf("cancelled Dial left %d file descriptors open", after-before)
	}
}

// dialCancelled starts cli.Dial, cancels it 100ms later, and checks that
// Dial returns promptly with an error matching context.Canceled.
func dialCancelled(t *testing.T, cli Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		c, err := cli.Dial(ctx)
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Dial: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Dial did not return after cancel")
	}
}

func TestTCPDialTimeout(t *testing.T) {
	addr := blackhole(t)
	host, port, _ := net.SplitHostPort(addr)
	// The timeout argument bounds the attempt.
	_, err := Dial(context.Background(), "tcp:"+host+":"+port+":timeout=1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout=1: %v, want context.DeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("timeout=1: %v is not a net.Error with Timeout()", err)
	}
	// So does the caller's deadline, whichever is sooner.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, "tcp:"+host+":"+port)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("context deadline: %v, want context.DeadlineExceeded", err)
	}
}

func TestTCPBindAddress(t *testing.T) {
	ln := listen(t, "tcp:0:interface=127.0.0.1")
	peers := echoOnce(t, ln)
	c, err := Dial(context.Background(), fmt.Sprintf("tcp:127.0.0.1:%d:bindAddress=127.0.0.2", portOf(ln)))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	if peer := (<-peers).(*net.TCPAddr); !peer.IP.Equal(net.ParseIP("127.0.0.2")) {
		t.Fatalf("server saw %v, want 127.0.0.2", peer)
	}
	// A bind address of the other family leaves nothing to try.
	_, err = Dial(context.Background(), fmt.Sprintf("tcp:127.0.0.1:%d:bindAddress=[::1]", portOf(ln)))
	if err == nil {
		t.Fatal("IPv6 bindAddress to an IPv4 host: no error")
	}
}

func TestHappyEyeballs(t *testing.T) {
	good := listen(t, "tcp:0:interface=127.0.0.1")
	goodAP := netip.MustParseAddrPort(good.Addr().String())
	go func() {
		for {
			c, err := good.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	d := &net.Dialer{}

	// The first address hangs: the second is tried after the delay and wins.
	hang := netip.MustParseAddrPort(blackhole(t))
	start := time.Now()
	c, err := raceDial(context.Background(), d, []netip.AddrPort{hang, goodAP}, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("race with a hanging first address: %v", err)
	}
	if got := c.RemoteAddr().String(); got != goodAP.String() {
		t.Fatalf("connected to %s, want %s", got, goodAP)
	}
	c.Close()
	if time.Since(start) < 50*time.Millisecond {
		t.Fatalf("second attempt started before attemptDelay")
	}

	// The first address refuses: the next is tried at once, not after the delay.
	closed := listen(t, "tcp:0:interface=127.0.0.1")
	refused := netip.MustParseAddrPort(closed.Addr().String())
	closed.Close()
	c, err = raceDial(context.Background(), d, []netip.AddrPort{refused, goodAP}, time.Hour)
	if err != nil {
		t.Fatalf("race after a refusal: %v", err)
	}
	c.Close()

	// Every address fails: the first error is reported.
	_, err = raceDial(context.Background(), d, []netip.AddrPort{refused, refused}, time.Millisecond)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("all refused: %v", err)
	}

	// Cancelled while every attempt hangs: Canceled, nothing left open.
	before := openFDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err = raceDial(ctx, d, []netip.AddrPort{hang, hang, hang}, 20*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("all hanging: %v", err)
	}
	if after := openFDs(t); after > before {
		t.Fatalf("race left %d file descriptors open", after-before)
	}
}

func TestInterleave(t *testing.T) {
	a := netip.MustParseAddr
	got := interleave([]netip.Addr{a("::1"), a("::2"), a("::3"), a("1.1.1.1"), a("2.2.2.2")})
	want := []netip.Addr{a("::1"), a("1.1.1.1"), a("::2"), a("2.2.2.2"), a("::3")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("interleave = %v, want %v", got, want)
	}
}

// describe returns what `tether describe` prints for s, in role "server"
// or "client".
func describe(t *testing.T, role, s string) string {
	t.Helper()
	a, err := driver.ServerArgs(s)
	if role == "client" {
		a, err = driver.ClientArgs(s)
	}
	if err != nil {
		t.Fatalf("%s %q: %v", role, s, err)
	}
	return fmt.Sprint(a) // Args print as their JSON
}
