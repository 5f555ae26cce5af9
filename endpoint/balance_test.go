package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/testpeer"
)

// startNamed starts a backend that answers its name, on a port the
// system picks, or on port if it is not 0 (a backend that comes back).
func startNamed(t *testing.T, name string, port int) *testpeer.Backend {
	t.Helper()
	return testpeer.StartBackend(t, name, "127.0.0.1:"+strconv.Itoa(port), false)
}

// backendStr is the client string of b, bracketed for a balance: list.
func backendStr(b *testpeer.Backend) string { return "[tcp:127.0.0.1:" + strconv.Itoa(b.Port) + "]" }

// reach dials c and returns the name of the backend that answered.
func reach(t *testing.T, c Client) string {
	t.Helper()
	conn, err := c.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// deadPort returns a loopback port that nothing listens on.
func deadPort(t *testing.T) int {
	b := startNamed(t, "dead", 0)
	b.Stop()
	return b.Port
}

func TestBalanceRoundRobinExact(t *testing.T) {
	a, b, c := startNamed(t, "a", 0), startNamed(t, "b", 0), startNamed(t, "c", 0)
	cli, err := ParseClient("balance:" + backendStr(a) + ":" + backendStr(b) + ":" + backendStr(c))
	if err != nil {
		t.Fatal(err)
	}
	var seq strings.Builder
	for range 300 {
		seq.WriteString(reach(t, cli))
	}
	if got := seq.String(); got != strings.Repeat("abc", 100) {
		t.Fatalf("round robin sequence begins %.30s..., want abcabc...", got)
	}
	if a.Hits() != 100 || b.Hits() != 100 || c.Hits() != 100 {
		t.Fatalf("counts %d %d %d, want 100 each", a.Hits(), b.Hits(), c.Hits())
	}
}

func TestBalanceFirstFailsOver(t *testing.T) {
	dead := deadPort(t)
	b := startNamed(t, "b", 0)
	cli, err := ParseClient(fmt.Sprintf("balance:[tcp:127.0.0.1:%d]:%s:policy=first", dead, backendStr(b)))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if got := reach(t, cli); got != "b" {
			t.Fatalf("reached %q, want b (the first is down)", got)
		}
	}
	// The first comes back: once its backoff is over it is tried first
	// again, and takes every connection.
	startNamed(t, "a", dead)
	deadline := time.Now().Add(30 * time.Second)
	for reach(t, cli) != "a" {
		if time.Now().After(deadline) {
			t.Fatal("the first backend came back, but is not used again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 5 {
		if got := reach(t, cli); got != "a" {
			t.Fatalf("reached %q after a came back, want a (policy first)", got)
		}
	}
}

// When every backend fails, the error names each, its secrets hidden,
// and why; errors.Is sees the causes.
func TestBalanceAllFail(t *testing.T) {
	d1, d2 := deadPort(t), deadPort(t)
	s := fmt.Sprintf(`balance:[tcp:127.0.0.1:%d]:[socks5:example.com:80:proxy=tcp\\:127.0.0.1\\:%d:username=u:password=hunter2]:policy=first`, d1, d2)
	cli, err := ParseClient(s)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.Dial(context.Background())
	if err == nil {
		t.Fatal("dialled with every backend down")
	}
	msg := err.Error()
	for _, want := range []string{"every backend failed (2", "tcp:127.0.0.1:" + strconv.Itoa(d1), "socks5:example.com:80",
		"reaching the proxy", "connection refused"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("error shows the password: %s", msg)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("errors.Is(err, ECONNREFUSED) is false for %v", err)
	}
}

func TestBalanceLeastConn(t *testing.T) {
	// Backends that keep their connections open until told.
	type holder struct {
		ln    net.Listener
		conns chan net.Conn
	}
	var hs []*holder
	var parts []string
	for range 2 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		h := &holder{ln: ln, conns: make(chan net.Conn, 10)}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				h.conns <- c
			}
		}()
		t.Cleanup(func() { ln.Close() })
		hs = append(hs, h)
		parts = append(parts, "[tcp:"+ln.Addr().String()+"]")
	}
	cli, err := ParseClient("balance:" + strings.Join(parts, ":") + ":policy=leastconn")
	if err != nil {
		t.Fatal(err)
	}
	// which dials and says which backend took the connection.
	which := func() (net.Conn, int) {
		t.Helper()
		c, err := cli.Dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-hs[0].conns:
			return c, 0
		case <-hs[1].conns:
			return c, 1
		case <-time.After(10 * time.Second):
			t.Fatal("no backend accepted")
		}
		return nil, -1
	}
	c1, i1 := which()
	c2, i2 := which()
	if i1 == i2 {
		t.Fatalf("two connections to backend %d with the other idle", i1)
	}
	c3, i3 := which()
	// Equal counts again: either; now the other has fewer.
	c4, i4 := which()
	if i4 == i3 {
		t.Fatalf("leastconn sent the 4th to backend %d, which had more", i4)
	}
	// Closing two of backend i1's leaves it with fewer: the next two go there.
	for _, c := range []struct {
		c net.Conn
		i int
	}{{c1, i1}, {c2, i2}, {c3, i3}, {c4, i4}} {
		if c.i == i1 {
			c.c.Close()
		}
	}
	_, i5 := which()
	_, i6 := which()
	if i5 != i1 || i6 != i1 {
		t.Fatalf("after closing backend %d's connections, the next went to %d and %d", i1, i5, i6)
	}
	if _, ok := c4.(interface{ CloseWrite() error }); !ok {
		t.Error("a leastconn TCP connection lost CloseWrite, so a relay cannot half-close it")
	}
}

// The string survives the grammar: driver.Description.String gives back an
// equal string's meaning, and Quote nests it as a value.
func TestBalanceRoundTrip(t *testing.T) {
	a, b := startNamed(t, "a", 0), startNamed(t, "b", 0)
	s := "balance:" + backendStr(a) + ":[tcp:[::1]:1]:" + backendStr(b) + ":policy=first"
	d, err := driver.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	again, err := driver.Parse(d.String())
	if err != nil || again.String() != d.String() || len(again.Positional) != 3 {
		t.Fatalf("round trip: %q -> %q (%v)", s, d.String(), err)
	}
	args, err := driver.ClientArgs(d.String())
	if err != nil {
		t.Fatal(err)
	}
	if got := args.Value("backends").List; driver.Unbracket(got[1]) != "tcp:[::1]:1" {
		t.Fatalf("backends after the round trip: %q", got)
	}
	// Wrapped (haproxy:), as written and in canonical form; and nested as
	// a value, quoted.
	for _, outer := range []string{"haproxy:" + s, "haproxy:" + d.String()} {
		cli, err := ParseClient(outer)
		if err != nil {
			t.Fatalf("%s: %v", outer, err)
		}
		if _, err := cli.Dial(context.Background()); err != nil {
			t.Fatalf("%s: %v", outer, err)
		}
	}
	if _, err := ParseClient("tls:a.test:443:endpoint=" + Quote(s)); err != nil {
		t.Fatalf("as tls's endpoint=: %v", err)
	}
}

func TestBalanceParseErrors(t *testing.T) {
	for s, want := range map[string]string{
		"balance:[tcp:127.0.0.1:1]:policy=source": `policy "source" is not a policy: first, roundrobin, random, leastconn`,
		"balance:policy=first":                    "backends",
		"balance:[tcp:127.0.0.1]":                 "backend 1",
		"balance:[tcp:127.0.0.1:1]:[nosuch:1]":    `backend 2: endpoint "nosuch:1": unknown client type`,
		"balance:[tcp:127.0.0.1:1]:timeout=0":     "timeout",
	} {
		_, err := ParseClient(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want it to say %q", s, err, want)
		}
	}
}
