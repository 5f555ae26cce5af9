package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/internal/testpeer"
)

func TestAgainstDNSMasq(t *testing.T) {
	var many strings.Builder
	for i := range 40 {
		// 40 records do not fit in 512 bytes: the UDP answer is
		// truncated, and the whole set comes over TCP.
		fmt.Fprintf(&many, "srv-host=_many._tcp.dns.test,host-%02d.dns.test,%d,1,1\n", i, 1000+i)
	}
	d := testpeer.StartDNSMasq(t, `local-ttl=42
srv-host=_web._tcp.dns.test,a.dns.test,8001,10,60
srv-host=_web._tcp.dns.test,b.dns.test,8002,20,0
srv-host=_gone._tcp.dns.test,.
host-record=a.dns.test,127.0.0.1,::1
host-record=v4.dns.test,192.0.2.7
`+many.String())
	c := &Config{Servers: []string{d.Addr}, Timeout: 5 * time.Second, Attempts: 1}
	ctx := context.Background()

	srvs, ttl, err := c.LookupSRV(ctx, "_web._tcp.dns.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(srvs) != 2 || ttl != 42*time.Second {
		t.Fatalf("SRV: %v, TTL %v; want 2 records, 42s", srvs, ttl)
	}
	if got := Order(srvs, func(int) int { return 0 }); got[0] != (SRV{10, 60, 8001, "a.dns.test"}) {
		t.Errorf("ordered: %v", got)
	}

	srvs, _, err = c.LookupSRV(ctx, "_many._tcp.dns.test")
	if err != nil || len(srvs) != 40 {
		t.Fatalf("truncated set: %d records, %v; want all 40 (over TCP)", len(srvs), err)
	}
	if !strings.Contains(d.Log.String(), "query[SRV] _many._tcp.dns.test from 127.0.0.1") {
		t.Fatal("no query logged")
	}

	srvs, _, err = c.LookupSRV(ctx, "_gone._tcp.dns.test")
	if err != nil || len(srvs) != 1 || srvs[0].Target != "." {
		t.Errorf("target \".\": %v, %v", srvs, err)
	}

	_, _, err = c.LookupSRV(ctx, "_none._tcp.dns.test")
	var nf *NotFoundError
	if !errors.As(err, &nf) || !nf.NXDomain {
		t.Errorf("no such name: %v, want a NotFoundError with NXDomain", err)
	}

	addrs, ttl, err := c.LookupAddrs(ctx, "a.dns.test")
	if err != nil || len(addrs) != 2 || ttl != 42*time.Second {
		t.Errorf("a.dns.test: %v, %v, %v; want ::1 and 127.0.0.1, 42s", addrs, ttl, err)
	}
	addrs, _, err = c.LookupAddrs(ctx, "v4.dns.test")
	if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("v4.dns.test (no AAAA): %v, %v", addrs, err)
	}
	if _, _, err := c.LookupAddrs(ctx, "nothing.dns.test"); !errors.As(err, &nf) {
		t.Errorf("nothing.dns.test: %v, want a NotFoundError", err)
	}
}

// A server that does not answer is passed over for the next, and the
// context bounds it all.
func TestServerDown(t *testing.T) {
	d := testpeer.StartDNSMasq(t, "host-record=a.dns.test,127.0.0.1")
	dead := testpeer.StartDNSMasq(t, "")
	dead.Stop()
	c := &Config{Servers: []string{dead.Addr, d.Addr}, Timeout: time.Second, Attempts: 1}
	addrs, _, err := c.LookupAddrs(context.Background(), "a.dns.test")
	if err != nil || len(addrs) != 1 {
		t.Fatalf("with the first server down: %v, %v", addrs, err)
	}
	c.Servers = c.Servers[:1]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := c.LookupSRV(ctx, "_x._tcp.dns.test"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestReadResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(path, []byte(`# comment
search example.test
nameserver 192.0.2.1
nameserver fe80::1%eth0
nameserver not-an-address
options ndots:2 timeout:1 attempts:3
`), 0o644)
	c := ReadResolvConf(path)
	if strings.Join(c.Servers, " ") != "192.0.2.1:53 [fe80::1%eth0]:53" || c.Timeout != time.Second || c.Attempts != 3 {
		t.Errorf("%+v", c)
	}
	if c := ReadResolvConf(filepath.Join(t.TempDir(), "none")); len(c.Servers) == 0 {
		t.Errorf("no file gives no server: %+v", c)
	}
}
