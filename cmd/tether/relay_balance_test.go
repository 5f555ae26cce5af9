package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/internal/testpeer"
)

// startReplier starts a backend that answers each connection's line with
// its name, on port (0: any).
func startReplier(t *testing.T, name string, port int) *testpeer.Backend {
	t.Helper()
	return testpeer.StartBackend(t, name, "127.0.0.1:"+strconv.Itoa(port), true)
}

// TestRelayFailoverUnderLoad: a relay over two backends, one of which is
// killed in the middle of a run of short connections and later comes
// back. No client connection fails: a dial that the dead backend refuses
// moves on to the other at once. The dead one is retried after its
// backoff and, once back, used again.
//
// The backend is killed between connections (the clients pause for it):
// a connection in flight to a backend that dies is lost whatever the
// proxy (haproxy's too); what a balancer can do, and what is tested, is
// that no new connection fails.
func TestRelayFailoverUnderLoad(t *testing.T) {
	a, b := startReplier(t, "a", 0), startReplier(t, "b", 0)
	p := startTether(t, tetherBin, "relay", "--log-format", "json", "tcp:0:interface=127.0.0.1",
		"tcp:127.0.0.1:"+strconv.Itoa(a.Port), "tcp:127.0.0.1:"+strconv.Itoa(b.Port))
	addr := p.addr()

	var failures sync.Map
	// run makes n short connections on each of 4 clients at once, and
	// returns the backends' answers counted.
	run := func(n int) map[string]int {
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					name, err := exchange(addr)
					if err != nil {
						failures.Store(fmt.Sprintf("client %d connection %d", w, i), err)
						continue
					}
					mu.Lock()
					got[name]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return got
	}
	first := run(50)
	if first["a"] == 0 || first["b"] == 0 {
		t.Fatalf("both up: answers %v, want both backends used", first)
	}
	a.Stop()
	second := run(100)
	if second["a"] != 0 || second["b"] != 400 {
		t.Fatalf("a dead: answers %v, want all 400 from b", second)
	}
	p.waitLog("balance: backend failed; passed over", func(l map[string]any) bool {
		return strings.Contains(fmt.Sprint(l["backend"]), strconv.Itoa(a.Port))
	})

	// a comes back on its port: within its backoff (at most 30 s) it is
	// tried again, and used.
	back := startReplier(t, "a", a.Port)
	deadline := time.Now().Add(40 * time.Second)
	for back.Hits() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a came back but was not used again in 40s")
		}
		run(5)
	}
	p.waitLog("balance: backend is back", nil)
	failures.Range(func(k, v any) bool {
		t.Errorf("%s failed: %v", k, v)
		return true
	})
}

// exchange makes one short connection through the relay: a line out,
// the backend's name back.
func exchange(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// TestRelaySeveralConnectUsage: the strings become one balance: string,
// as the log's target shows; --policy goes with it.
func TestRelaySeveralConnect(t *testing.T) {
	a, b := startReplier(t, "a", 0), startReplier(t, "b", 0)
	p := startTether(t, tetherBin, "relay", "--log-format", "json", "--policy", "first", "tcp:0:interface=127.0.0.1",
		"tcp:127.0.0.1:"+strconv.Itoa(a.Port), "tcp:127.0.0.1:"+strconv.Itoa(b.Port))
	l := p.waitLog("listening", nil)
	want := fmt.Sprintf("balance:[tcp:127.0.0.1:%d]:[tcp:127.0.0.1:%d]:policy=first", a.Port, b.Port)
	if l["target"] != want {
		t.Errorf("target %v, want %s", l["target"], want)
	}
	for range 5 {
		if name, err := exchange(l["addr"].(string)); err != nil || name != "a" {
			t.Fatalf("policy first: %q, %v; want a", name, err)
		}
	}
	if code, _, errOut := runCmd("relay", "tcp:0", "--policy", "first", "tcp:127.0.0.1:1"); code != exitUsage ||
		!strings.Contains(errOut, "--policy chooses among several CONNECT strings") {
		t.Errorf("--policy with one CONNECT: %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd("relay", "tcp:0"); code != exitUsage || !strings.Contains(errOut, "one or more CONNECT") {
		t.Errorf("no CONNECT: %d, %q", code, errOut)
	}
}

func TestBalanceString(t *testing.T) {
	got := balanceString([]string{"tcp:[::1]:80", `unix:/run/a\:b.sock`, "unix:/odd]name"}, "")
	if want := `balance:[tcp:[::1]:80]:[unix:/run/a\\:b.sock]:unix\:/odd]name`; got != want {
		t.Fatalf("balanceString = %s, want %s", got, want)
	}
}

// describe shows each backend of a balance: string parsed, secrets hidden.
func TestDescribeBalanceMembers(t *testing.T) {
	v := describeJSON(t, "--client", `balance:[tcp:[::1]:80:timeout=3]:[socks5:a.test:1:proxy=tcp\\:h\\:3:username=u:password=hunter2]`)
	members, _ := v["members"].([]any)
	if len(members) != 2 {
		t.Fatalf("members: %v", v)
	}
	tcp := members[0].(map[string]any)["args"].(map[string]any)
	socks := members[1].(map[string]any)
	if tcp["host"] != "::1" || tcp["timeout"] != float64(3) || socks["type"] != "socks5" ||
		socks["args"].(map[string]any)["password"] != "xxxxx" {
		t.Fatalf("members: %v", members)
	}
	if code, out, _ := runCmd("describe", "--client", `balance:[tcp:a:1]:[socks5:a:1:proxy=tcp\\:h\\:3:username=u:password=hunter2]`); code != exitOK || strings.Contains(out, "hunter2") {
		t.Fatalf("describe: %d, %s", code, out)
	}
}

// TestRelayLeastConnSpliced: --policy leastconn counts a connection open
// until its pair has ended, although the event core splices the sockets
// under the counting wrapper: with the first backend holding one
// connection and the second none (its one ended), the next connection goes
// to the second. Had the count dropped when the core took the sockets, round
// robin would have sent it to the first.
func TestRelayLeastConnSpliced(t *testing.T) {
	accepted := make(chan string, 8)
	var ports [2]int
	for i, name := range []string{"a", "b"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted <- name
				go func() { // held open until the client ends it
					io.Copy(c, c)
					c.Close()
				}()
			}
		}()
	}
	p := startTether(t, tetherBin, "relay", "--log-format", "json", "--policy", "leastconn", "tcp:0:interface=127.0.0.1",
		"tcp:127.0.0.1:"+strconv.Itoa(ports[0]), "tcp:127.0.0.1:"+strconv.Itoa(ports[1]))
	connect := func() (net.Conn, string) {
		t.Helper()
		c, err := net.Dial("tcp", p.addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, "x")
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		return c, <-accepted
	}
	_, first := connect()
	second, other := connect()
	if other == first {
		t.Fatalf("two connections, one each idle: both went to %s", first)
	}
	second.Close()
	p.waitLog("connection ended", nil)
	if _, third := connect(); third != other {
		t.Fatalf("third connection went to %s; want %s, which holds none while %s holds one", third, other, first)
	}
}

// TestRelayReusePortTwoProcesses: two tether relay processes listen on one
// port with reusePort=1 and the kernel spreads connections between them:
// each relays to a backend of its own, and over 200 connections both are
// reached (all 200 going to one would happen with a chance of 2^-199).
func TestRelayReusePortTwoProcesses(t *testing.T) {
	a, b := startReplier(t, "a", 0), startReplier(t, "b", 0)
	// The first relay picks the port, so that nothing can take it before
	// the second binds it too (a port found free and closed can be).
	pa := startTether(t, tetherBin, "relay", "--log-format", "json", "tcp:0:interface=127.0.0.1:reusePort=1",
		"tcp:127.0.0.1:"+strconv.Itoa(a.Port))
	_, port, err := net.SplitHostPort(pa.addr())
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("tcp:%s:interface=127.0.0.1:reusePort=1", port)
	pb := startTether(t, tetherBin, "relay", "--log-format", "json", listen, "tcp:127.0.0.1:"+strconv.Itoa(b.Port))
	if pa.addr() != pb.addr() {
		t.Fatalf("the two relays listen on %s and %s", pa.addr(), pb.addr())
	}
	got := map[string]int{}
	for range 200 {
		name, err := exchange(pa.addr())
		if err != nil {
			t.Fatal(err)
		}
		got[name]++
	}
	if got["a"] == 0 || got["b"] == 0 || got["a"]+got["b"] != 200 {
		t.Fatalf("answers %v: want both relays to have served some of 200", got)
	}
	t.Logf("the kernel spread 200 connections %d / %d", got["a"], got["b"])
}
