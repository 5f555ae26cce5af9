package interop

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/internal/testpeer"
)

// deadPort returns a loopback port nothing listens on.
func deadPort(t *testing.T) int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// A target as tried: its name and port.
type target struct {
	host string
	port int
}

// twistedSRV runs Twisted's SRVConnector against the nameserver d and
// returns the targets it tried, in order, and the one it connected to.
func twistedSRV(t *testing.T, d *testpeer.DNSMasq, service, domain string, attempts int, defaultPort int) (failed []target, connected *target) {
	t.Helper()
	_, port, _ := net.SplitHostPort(d.Addr)
	args := []string{"testdata/twisted_srv.py", port, service, domain, strconv.Itoa(attempts)}
	if defaultPort > 0 {
		args = append(args, strconv.Itoa(defaultPort))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("Twisted's SRVConnector: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("Twisted printed %q", out)
		}
		p, _ := strconv.Atoi(f[2])
		switch f[0] {
		case "failed":
			failed = append(failed, target{f[1], p})
		case "connected":
			connected = &target{f[1], p}
		default:
			t.Fatalf("Twisted printed %q", out)
		}
	}
	return failed, connected
}

var triedRE = regexp.MustCompile(`target ([^ :]+):(\d+): `)

// tetherSRVTried dials s, whose every target is down, and returns the
// targets its error names, in the order tried.
func tetherSRVTried(t *testing.T, s string) []target {
	t.Helper()
	cli, err := endpoint.ParseClient(s)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.Dial(context.Background())
	if err == nil {
		t.Fatal("dialled with every target down")
	}
	var out []target
	for _, m := range triedRE.FindAllStringSubmatch(err.Error(), -1) {
		p, _ := strconv.Atoi(m[2])
		out = append(out, target{m[1], p})
	}
	return out
}

// TestSRVLikeTwisted: from the same records, Twisted's SRVConnector and
// tether's srv: try the same targets in the same priority order (within
// a priority the order is a weighted draw, so each run of either may
// differ there: what must agree is which targets each priority holds),
// and both fall back to the domain's own address without SRV records.
func TestSRVLikeTwisted(t *testing.T) {
	requireTwisted(t)
	prio := map[int]int{} // port to priority
	var recs strings.Builder
	recs.WriteString("host-record=a.svc.test,127.0.0.1\nhost-record=b.svc.test,127.0.0.1\nhost-record=c.svc.test,127.0.0.1\n")
	for _, r := range []struct {
		prio, weight int
		host         string
	}{{20, 5, "b.svc.test"}, {10, 30, "a.svc.test"}, {30, 0, "c.svc.test"}, {10, 10, "b.svc.test"}, {20, 0, "a.svc.test"}, {10, 0, "c.svc.test"}} {
		port := deadPort(t)
		prio[port] = r.prio
		fmt.Fprintf(&recs, "srv-host=_web._tcp.svc.test,%s,%d,%d,%d\n", r.host, port, r.prio, r.weight)
	}
	d := testpeer.StartDNSMasq(t, recs.String())

	// groups reduces a sequence of targets to its priorities in order,
	// each with the set of targets it held.
	groups := func(tried []target) string {
		var b strings.Builder
		last := -1
		var set []string
		flush := func() {
			if last >= 0 {
				fmt.Fprintf(&b, "%d:%d ", last, len(set))
			}
		}
		for _, tg := range tried {
			if p := prio[tg.port]; p != last {
				flush()
				last, set = p, nil
			}
			set = append(set, fmt.Sprintf("%s:%d", tg.host, tg.port))
		}
		flush()
		return b.String()
	}
	for range 3 {
		twisted, connected := twistedSRV(t, d, "web", "svc.test", 6, 0)
		tether := tetherSRVTried(t, "srv:web:svc.test:nameserver=["+d.Addr+"]")
		if connected != nil {
			t.Fatalf("Twisted connected to %v, which is down", connected)
		}
		if len(twisted) != 6 || len(tether) != 6 {
			t.Fatalf("Twisted tried %v, tether %v: want all 6", twisted, tether)
		}
		if g, w := groups(tether), groups(twisted); g != w || g != "10:3 20:2 30:1 " {
			t.Fatalf("priority order: tether %s (%v), Twisted %s (%v); want 10:3 20:2 30:1", g, tether, w, twisted)
		}
		seen := map[target]int{}
		for _, tg := range twisted {
			seen[tg]++
		}
		for _, tg := range tether {
			seen[tg]--
		}
		for tg, n := range seen {
			if n != 0 {
				t.Fatalf("target %v tried by one and not the other: tether %v, Twisted %v", tg, tether, twisted)
			}
		}
	}

	// No SRV record: both connect to the domain itself, at the default
	// port (the service name is no port name).
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	_, connected := twistedSRV(t, d, "tether-no-such-service", "a.svc.test", 1, port)
	if connected == nil || *connected != (target{"a.svc.test", port}) {
		t.Fatalf("Twisted without SRV records connected to %v, want a.svc.test:%d", connected, port)
	}
	conn, err := endpoint.Dial(context.Background(),
		fmt.Sprintf("srv:tether-no-such-service:a.svc.test:nameserver=[%s]:defaultPort=%d", d.Addr, port))
	if err != nil {
		t.Fatalf("tether without SRV records: %v", err)
	}
	conn.Close()
}
