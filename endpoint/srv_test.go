package endpoint

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/internal/testpeer"
)

// srvString is the srv: client of service web at svc.test, asking d.
func srvString(d *testpeer.DNSMasq, extra string) string {
	return "srv:web:svc.test:nameserver=[" + d.Addr + "]" + extra
}

func srvRecord(prio, weight int, target string, port int) string {
	return fmt.Sprintf("srv-host=_web._tcp.svc.test,%s,%d,%d,%d\n", target, port, prio, weight)
}

// hosts gives each name an address, loopback.
const hosts = "host-record=a.svc.test,127.0.0.1\nhost-record=b.svc.test,127.0.0.1\n" +
	"host-record=c.svc.test,127.0.0.1\nhost-record=d.svc.test,127.0.0.1\n"

// The lowest priority is tried first; a target that refuses moves the
// dial on to the next priority; and one above that is never reached.
func TestSRVPriorityOrder(t *testing.T) {
	dead := deadPort(t)
	b, c := startNamed(t, "b", 0), startNamed(t, "c", 0)
	d := testpeer.StartDNSMasq(t, "local-ttl=300\n"+hosts+srvRecord(10, 5, "a.svc.test", dead)+
		srvRecord(20, 5, "b.svc.test", b.Port)+srvRecord(30, 5, "c.svc.test", c.Port))
	cli, err := ParseClient(srvString(d, ""))
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if got := reach(t, cli); got != "b" {
			t.Fatalf("reached %q, want b: priority 10 refuses, 20 is next", got)
		}
	}
	if c.Hits() != 0 {
		t.Fatal("priority 30 was reached while 20 answers")
	}
}

// Within a priority the weights give the proportions RFC 2782's draw
// gives, over thousands of dials; the answer is cached for its TTL, so
// dnsmasq is asked once.
func TestSRVWeights(t *testing.T) {
	a, b, c, x := startNamed(t, "a", 0), startNamed(t, "b", 0), startNamed(t, "c", 0), startNamed(t, "x", 0)
	d := testpeer.StartDNSMasq(t, "local-ttl=3600\n"+hosts+srvRecord(1, 60, "c.svc.test", c.Port)+
		srvRecord(1, 10, "a.svc.test", a.Port)+srvRecord(1, 30, "b.svc.test", b.Port)+
		srvRecord(2, 100, "d.svc.test", x.Port))
	cli, err := ParseClient(srvString(d, ""))
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for range n {
		reach(t, cli)
	}
	// Weights 10, 30, 60 and a draw from 0 to 100: the first (lightest)
	// takes 0 too.
	for _, w := range []struct {
		b *testpeer.Backend
		p float64
	}{{a, 11.0 / 101}, {b, 30.0 / 101}, {c, 60.0 / 101}} {
		// Six standard deviations: a false failure about once in 10^9 runs.
		mean, sd := n*w.p, math.Sqrt(n*w.p*(1-w.p))
		if got := float64(w.b.Hits()); math.Abs(got-mean) > 6*sd {
			t.Errorf("%s reached %v times of %d, want %.0f ± %.0f", w.b.Name, got, n, mean, 6*sd)
		}
	}
	if x.Hits() != 0 {
		t.Errorf("priority 2 reached %d times while priority 1 answers", x.Hits())
	}
	if q := strings.Count(d.Log.String(), "query[SRV] _web._tcp.svc.test"); q != 1 {
		t.Errorf("dnsmasq was asked %d times for the SRV records, want once (a TTL of an hour)", q)
	}
}

// Once the TTL is over, a changed record is used.
func TestSRVTTLExpiry(t *testing.T) {
	a, b := startNamed(t, "a", 0), startNamed(t, "b", 0)
	d := testpeer.StartDNSMasq(t, "local-ttl=1\n"+hosts+srvRecord(1, 1, "a.svc.test", a.Port))
	cli, err := ParseClient(srvString(d, ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := reach(t, cli); got != "a" {
		t.Fatalf("reached %q, want a", got)
	}
	d.Restart("local-ttl=1\n" + hosts + srvRecord(1, 1, "b.svc.test", b.Port))
	deadline := time.Now().Add(20 * time.Second)
	for reach(t, cli) != "b" {
		if time.Now().After(deadline) {
			t.Fatal("the record changed, but after 20s (its TTL is 1s) the old target is still used")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// No SRV record: the domain's own addresses, IPv4 or IPv6, at
// defaultPort= (the service web is no port name of /etc/services).
func TestSRVFallback(t *testing.T) {
	b := startNamed(t, "b", 0)
	d := testpeer.StartDNSMasq(t, "host-record=svc.test,127.0.0.1\nhost-record=six.test,::1\n")
	cli, err := ParseClient(srvString(d, fmt.Sprintf(":defaultPort=%d", b.Port)))
	if err != nil {
		t.Fatal(err)
	}
	if got := reach(t, cli); got != "b" {
		t.Fatalf("reached %q", got)
	}
	cli, err = ParseClient(srvString(d, ""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.Dial(context.Background())
	if err == nil || !strings.Contains(err.Error(), "give defaultPort=") {
		t.Fatalf("no SRV record and no port: %v", err)
	}

	// IPv6 only.
	six := testpeer.StartBackend(t, "six", "[::1]:0", false)
	s := fmt.Sprintf("srv:web:six.test:nameserver=[%s]:defaultPort=%d", d.Addr, six.Port)
	if cli, err = ParseClient(s); err != nil {
		t.Fatal(err)
	}
	if got := reach(t, cli); got != "six" {
		t.Fatalf("AAAA fallback reached %q", got)
	}
}

// A target of "." is the clear error.
func TestSRVNotOffered(t *testing.T) {
	d := testpeer.StartDNSMasq(t, "srv-host=_web._tcp.svc.test,.\n")
	cli, err := ParseClient(srvString(d, ""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.Dial(context.Background())
	if !errors.Is(err, ErrServiceNotOffered) || !strings.Contains(err.Error(), `_web._tcp.svc.test has the SRV target "."`) {
		t.Fatalf("Dial = %v, want ErrServiceNotOffered saying so", err)
	}
}

// Every target failing names each, in the order tried.
func TestSRVAllFail(t *testing.T) {
	d1, d2 := deadPort(t), deadPort(t)
	d := testpeer.StartDNSMasq(t, hosts+srvRecord(1, 1, "a.svc.test", d1)+srvRecord(2, 1, "b.svc.test", d2))
	cli, err := ParseClient(srvString(d, ""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.Dial(context.Background())
	want := fmt.Sprintf("every target failed (2, in the order tried): target a.svc.test:%d: dial tcp 127.0.0.1:%d: connect: connection refused; target b.svc.test:%d", d1, d1, d2)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Dial = %v\nwant it to contain %s", err, want)
	}
}

// A target that failed is passed over for a while: tried after the
// others, whatever its priority, as the order in the error shows once
// every target fails.
func TestSRVBackoff(t *testing.T) {
	dead := deadPort(t)
	b := startNamed(t, "b", 0)
	d := testpeer.StartDNSMasq(t, "local-ttl=300\n"+hosts+srvRecord(10, 1, "a.svc.test", dead)+srvRecord(20, 1, "b.svc.test", b.Port))
	cli, err := ParseClient(srvString(d, ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := reach(t, cli); got != "b" {
		t.Fatalf("reached %q, want b", got)
	}
	b.Stop()
	_, err = cli.Dial(context.Background())
	want := fmt.Sprintf("every target failed (2, in the order tried): target b.svc.test:%d: ", b.Port)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), fmt.Sprintf("; target a.svc.test:%d", dead)) {
		t.Fatalf("Dial = %v\nwant b tried first (a is passed over since it failed): %s", err, want)
	}
}

func TestSRVParseErrors(t *testing.T) {
	for s, want := range map[string]string{
		"srv:_web:svc.test":                         `service "_web" is not a DNS label`,
		"srv:web:192.0.2.1":                         `domain "192.0.2.1" is not a domain name`,
		"srv:web:svc.test:nameserver=dns.test":      `nameserver "dns.test" is not an IP address and port`,
		"srv:web:svc.test:hostname=x.test":          "hostname: is a TLS argument: give tls=1 too",
		"srv:web:svc.test:insecureSkipVerify=1":     "insecureSkipVerify: is a TLS argument",
		"srv:web:svc.test:protocol=t.c":             `protocol "t.c" is not a DNS label`,
		"srv:web:" + strings.Repeat("x", 64) + ".t": "labels are 1-63 bytes",
	} {
		_, err := ParseClient(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v\nwant it to say %q", s, err, want)
		}
	}
	for _, s := range []string{"srv:web:svc.test:nameserver=[127.0.0.1:8600]", `srv:web:svc.test:nameserver=127.0.0.1\:53`,
		`srv:web:svc.test:nameserver=[::1]\:53`, "srv:web:svc.test:nameserver=[::1]", "srv:xmpp-client:example.com"} {
		if _, err := ParseClient(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

// tls=1 verifies the certificate for the domain, not for the target's
// name, which an unsigned DNS answer gave (RFC 6125 6.2.1).
func TestSRVTLSVerifiesDomain(t *testing.T) {
	ca := testpeer.NewCA(t, "srv test CA")
	cert, key := ca.Leaf("svc.test", testpeer.LeafOpts{Names: []string{"svc.test"}})
	pair, err := tls.X509KeyPair(pem.EncodeToMemory(cert), pem.EncodeToMemory(key))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serveEach(ln, func(c net.Conn) { io.WriteString(c, "tls") })
	d := testpeer.StartDNSMasq(t, hosts+srvRecord(1, 1, "b.svc.test", portOf(ln)))
	cli, err := ParseClient(srvString(d, ":tls=1:trustRoots="+ca.File))
	if err != nil {
		t.Fatal(err)
	}
	if got := reach(t, cli); got != "tls" {
		t.Fatalf("read %q", got)
	}
	cli, err = ParseClient(srvString(d, ":tls=1:hostname=b.svc.test:trustRoots="+ca.File))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.Dial(context.Background())
	if err == nil || !strings.Contains(err.Error(), "verifying b.svc.test") || !strings.Contains(err.Error(), "certificate is valid for svc.test") {
		t.Fatalf("hostname=b.svc.test against a certificate for svc.test: %v", err)
	}
}
