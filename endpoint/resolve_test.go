package endpoint

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dnsServer answers A and AAAA queries for one name from a UDP socket on
// loopback, so that a test can give a host name both address families
// without touching the system's resolver configuration.
func dnsServer(t *testing.T, name string, addrs ...netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if reply := dnsReply(buf[:n], name, addrs); reply != nil {
				pc.WriteTo(reply, from)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

// dnsReply builds the answer to one query: the addresses of the asked
// family if the name matches, else an empty answer (NXDOMAIN).
func dnsReply(q []byte, name string, addrs []netip.Addr) []byte {
	if len(q) < 12 {
		return nil
	}
	// The question: labels up to a zero byte, then type and class.
	i := 12
	var labels []string
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	question := q[12 : i+5]
	var answers [][]byte
	match := strings.EqualFold(strings.Join(labels, "."), strings.TrimSuffix(name, "."))
	for _, a := range addrs {
		if !match || (qtype == 1) != a.Is4() || (qtype != 1 && qtype != 28) {
			continue
		}
		rr := []byte{0xc0, 12} // the name, as a pointer to the question's
		rr = binary.BigEndian.AppendUint16(rr, qtype)
		rr = binary.BigEndian.AppendUint16(rr, 1)  // class IN
		rr = binary.BigEndian.AppendUint32(rr, 60) // TTL
		raw := a.AsSlice()
		rr = binary.BigEndian.AppendUint16(rr, uint16(len(raw)))
		answers = append(answers, append(rr, raw...))
	}
	flags := uint16(0x8180) // a response, recursion desired and available
	if !match {
		flags |= 3 // NXDOMAIN
	}
	out := append([]byte{}, q[0:2]...) // the query's ID
	out = binary.BigEndian.AppendUint16(out, flags)
	out = binary.BigEndian.AppendUint16(out, 1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(answers)))
	out = append(out, 0, 0, 0, 0)
	out = append(out, question...)
	for _, rr := range answers {
		out = append(out, rr...)
	}
	return out
}

// TestHappyEyeballsResolved: a name with an IPv6 and an IPv4 address, the
// IPv6 one unreachable. The client resolves both, tries IPv6 first (the
// resolver's RFC 6724 order), and after attemptDelay races IPv4, which wins.
func TestHappyEyeballsResolved(t *testing.T) {
	hang := netip.MustParseAddrPort(blackholeOn(t, "tcp6:0:0:[::1]"))
	// The IPv4 server on the same port number as the IPv6 blackhole.
	good := listen(t, "tcp:"+strconv.Itoa(int(hang.Port()))+":interface=127.0.0.1")
	accepted := make(chan net.Addr, 1)
	go func() {
		c, err := good.Accept()
		if err == nil {
			accepted <- c.LocalAddr()
			c.Close()
		}
	}()
	r := dnsServer(t, "dual.test", netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1"))
	ips, err := (&tcpClient{resolver: r}).lookup(context.Background(), "dual.test")
	if err != nil || len(ips) != 2 {
		t.Fatalf("lookup dual.test: %v, %v", ips, err)
	}
	if !ips[0].Is6() {
		t.Logf("the resolver put %v first; the race starts there", ips[0])
	}
	c := &tcpClient{resolver: r, host: "dual.test", port: hang.Port(), delay: 100 * time.Millisecond}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := c.Dial(ctx)
	if err != nil {
		t.Fatalf("Dial dual.test: %v", err)
	}
	conn.Close()
	if got := conn.RemoteAddr().(*net.TCPAddr); got.IP.To4() == nil {
		t.Fatalf("connected to %v, want the IPv4 address", got)
	}
	if ips[0].Is6() && time.Since(start) < 100*time.Millisecond {
		t.Fatal("IPv4 was tried before attemptDelay passed")
	}
	<-accepted

	// An unknown name fails with the resolver's error, not a hang.
	_, err = (&tcpClient{resolver: r, host: "other.test", port: 1}).Dial(ctx)
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("unknown name: %v", err)
	}
}
