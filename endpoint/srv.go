package endpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/abort"
	"github.com/tether-endpoints/tether/internal/balance"
	"github.com/tether-endpoints/tether/internal/dns"
)

// ErrServiceNotOffered is wrapped when a domain's only SRV record has the
// target ".": the service is "decidedly not available" there (RFC 2782).
var ErrServiceNotOffered = errors.New("endpoint: the service is not offered at this domain")

// The srv client's arguments: Twisted's SRVConnector's names first.
var (
	srvServiceParam = driver.StringParam("service",
		"the service's name: xmpp-client looks up _xmpp-client._PROTOCOL.DOMAIN").Positional().Required()
	srvDomainParam = driver.StringParam("domain",
		"the domain the service is offered at, and the name a tls=1 certificate must have").Positional().Required()
	srvProtocolParam = driver.StringParam("protocol",
		"the protocol label of the SRV name (_tcp); the connection is TCP whatever it says").Default("tcp")
	srvNameserverParam = driver.StringParam("nameserver",
		"IP address and port of the one DNS server to ask, in brackets: [127.0.0.1:8600] (Consul's); absent means those of /etc/resolv.conf")
	srvDefaultPortParam = driver.PortParam("defaultPort",
		"port for the domain's own addresses when it has no SRV record and the service is not a port name in /etc/services")
	srvTimeoutParam = timeoutParam.Help(
		"seconds the whole attempt (the lookups, every target tried, the TLS handshake) may take")
	srvTLSParam = driver.BoolParam("tls",
		"1 speaks TLS to the chosen target, verifying the certificate for hostname (DOMAIN)").Default("0")
	srvHostnameParam = driver.StringParam("hostname",
		"with tls=1: the name the certificate is verified for and sent as SNI; absent means domain").DefaultFrom("domain")
	srvCertParam = driver.StringParam("certificate",
		"with tls=1: PEM file of a client certificate (and its key, if privateKey is absent)")
	srvKeyParam   = clientKeyParam.Help("with tls=1: PEM file of the client certificate's private key").DefaultFrom("certificate")
	srvRootsParam = driver.StringParam("trustRoots",
		"with tls=1: directory of .pem files (or one PEM file) of the CAs to trust instead of the system's")
)

func init() {
	driver.RegisterClient(driver.ClientType{
		Spec: driver.Spec{
			Name: "srv",
			Help: "connect to a service found by its DNS SRV records (RFC 2782), as Twisted's SRVConnector does",
			Args: append([]driver.Arg{srvServiceParam.Arg(), srvDomainParam.Arg(), srvProtocolParam.Arg(),
				srvNameserverParam.Arg(), srvDefaultPortParam.Arg(), srvTimeoutParam.Arg(), bindAddressParam.Arg(),
				attemptDelayParam.Arg(), srvTLSParam.Arg(), srvHostnameParam.Arg(), srvCertParam.Arg(),
				srvKeyParam.Arg(), srvRootsParam.Arg(), clientALPNParam.Arg(), insecureParam.Arg()},
				socketArgs()...),
			Notes: "Twisted has the connector (twisted.names.srvconnect) but no endpoint string; the arguments are its " +
				"names. `srv:xmpp-client:example.com` looks up the SRV records of _xmpp-client._tcp.example.com and " +
				"tries their targets in RFC 2782's order: lowest priority first, and within a priority a weighted " +
				"random draw (Twisted's draw, weight 0 as the RFC says), each target's addresses raced as tcp's are " +
				"(Happy Eyeballs). A target that fails moves on to the next; all of it, lookups included, within the " +
				"one timeout=, of which each target gets a share (what is left over the targets left, at least 2 " +
				"seconds). When every target fails the error names each and why. With no SRV record (NXDOMAIN or " +
				"none of the type) it connects to DOMAIN's own addresses, at the port /etc/services gives the " +
				"service, else defaultPort=, as Twisted's connector does. A domain whose only SRV target is \".\" " +
				"does not offer the service: that is Dial's error (endpoint.ErrServiceNotOffered). Answers are " +
				"cached for their TTL, so a changed record is used once the old one expires. The queries go to " +
				"nameserver= if given (the targets' addresses too: Consul's and Kubernetes' names are only known " +
				"there), else to the nameservers of /etc/resolv.conf (and the targets' addresses to the system's " +
				"resolver). tls=1 makes a TLS connection and verifies the certificate for DOMAIN, not for the " +
				"target's name: the target comes from an unsigned DNS answer, and RFC 6125 (section 6.2.1) forbids " +
				"deriving the name to check from one, since whoever forges the answer could name a host he has a " +
				"certificate for; the certificate must name the service's domain, as XMPP (RFC 6120 section " +
				"13.7.2.1) requires. Only DNSSEC would make the target's name safe to check (RFC 7673), and this " +
				"client does not validate DNSSEC. hostname= verifies another name instead, for every target. " +
				"TLS is as tls:'s, with its arguments certificate=, privateKey=, trustRoots=, alpn=, " +
				"insecureSkipVerify=. " + closeNotifyNotes,
		},
		New: newSRVClient,
	})
}

type srvClient struct {
	input         string // for the error, which must name it
	qname, domain string
	// port is the port for the fallback to DOMAIN's own addresses, or 0
	// if there is none: a lookup without SRV records then fails.
	port  uint16
	ns    *dns.Config // nameserver=, or nil: resolv.conf's
	tcp   tcpClient   // a template: bindAddress, attemptDelay, options, the resolver
	store *certStore  // tls=1's configuration, or nil

	srvCache  dns.Cache[srvAnswer]
	addrCache dns.Cache[[]netip.Addr]
	// down passes over, for a while, the targets that failed: tried
	// after the others, whatever their priority, until one works again.
	down balance.Backoff
}

// srvAnswer is what a lookup of the SRV name found: records, or none.
type srvAnswer struct {
	recs []dns.SRV
	none bool
}

// checkLabel checks one label of the SRV name.
func checkLabel(a *driver.Args, p driver.Param[string]) error {
	s := p.Get(a)
	if s == "" || len(s) > 62 || strings.ContainsAny(s, ".:[]\\ \t") || strings.HasPrefix(s, "_") {
		return p.Errorf(a, "a DNS label of 1-62 characters without '.', a leading '_' or spaces "+
			"(srv:xmpp-client:example.com looks up _xmpp-client._tcp.example.com)")
	}
	return nil
}

func newSRVClient(a *driver.Args) (driver.Client, error) {
	for _, p := range []driver.Param[string]{srvServiceParam, srvProtocolParam} {
		if err := checkLabel(a, p); err != nil {
			return nil, err
		}
	}
	domain := strings.TrimSuffix(srvDomainParam.Get(a), ".")
	c := &srvClient{input: a.Input, domain: domain,
		qname: "_" + srvServiceParam.Get(a) + "._" + srvProtocolParam.Get(a) + "." + domain,
		tcp: tcpClient{resolver: a.Env.Resolver, bind: bindAddressParam.Get(a),
			delay: attemptDelayParam.Get(a), opts: readSockOpts(a)}}
	if _, err := netip.ParseAddr(domain); err == nil || domain == "" {
		return nil, srvDomainParam.Errorf(a, "a domain name (an IP address has no SRV records)")
	}
	if _, err := dns.NewQuery(0, c.qname, dns.TypeSRV); err != nil {
		return nil, srvDomainParam.Errorf(a, "a domain name: "+err.Error())
	}
	if port, err := net.LookupPort("tcp", srvServiceParam.Get(a)); err == nil {
		c.port = uint16(port)
	}
	if !srvDefaultPortParam.Absent(a) {
		if c.port == 0 {
			c.port = srvDefaultPortParam.Get(a)
		}
	}
	if !srvNameserverParam.Absent(a) {
		ap, ok := nameserverAddr(srvNameserverParam.Get(a))
		if !ok {
			return nil, srvNameserverParam.Errorf(a, "an IP address and port, written in brackets so that the ':' "+
				"stays in the value: nameserver=[127.0.0.1:8600], nameserver=[::1]\\:53 (a host name would itself "+
				"need a nameserver; the port defaults to 53)")
		}
		c.ns = &dns.Config{Servers: []string{ap.String()}}
	}
	tlsArgs := []driver.Param[string]{srvHostnameParam, srvCertParam, srvKeyParam, srvRootsParam, clientALPNParam}
	if !srvTLSParam.Get(a) {
		for _, p := range tlsArgs {
			if p.Given(a) {
				return nil, argError(a, p.Arg().Name, "is a TLS argument: give tls=1 too", nil)
			}
		}
		if insecureParam.Given(a) {
			return nil, argError(a, insecureParam.Arg().Name, "is a TLS argument: give tls=1 too", nil)
		}
		return c, nil
	}
	name := strings.TrimSuffix(srvHostnameParam.Get(a), ".")
	store, err := clientTLSConfig(a, name, clientFiles{srvCertParam, srvKeyParam, srvRootsParam})
	if err != nil {
		return nil, err
	}
	c.store = store
	return c, nil
}

// nameserverAddr reads nameserver=: ADDR:PORT, [ADDR:PORT] (brackets
// keep the ':' in the value), [IPv6]:PORT, or an address alone (port 53).
func nameserverAddr(text string) (netip.AddrPort, bool) {
	if ap, err := netip.ParseAddrPort(text); err == nil {
		return ap, true
	}
	inner := driver.Unbracket(text)
	if ap, err := netip.ParseAddrPort(inner); err == nil {
		return ap, true
	}
	if ip, err := netip.ParseAddr(inner); err == nil {
		return netip.AddrPortFrom(ip, 53), true
	}
	return netip.AddrPort{}, false
}

// Dial looks the targets up (or takes them from the cache) and connects
// to the first that answers, in RFC 2782's order.
func (c *srvClient) Dial(ctx context.Context) (net.Conn, error) {
	targets, err := c.targets(ctx)
	if err != nil {
		return nil, contextError(ctx, err)
	}
	failed := &backendsError{noun: "target"}
	targets = balance.Arrange(&c.down, targets, targetKey)
	for k, t := range targets {
		label := "target " + targetKey(t)
		if ctx.Err() != nil {
			failed.add(label, errNotTried)
			continue
		}
		actx, cancel := attemptContext(ctx, len(targets)-k)
		conn, err := c.connect(actx, t.Target, t.Port)
		err = contextError(actx, err) // before cancel, which would pass for the cause
		cancel()
		if err == nil {
			c.down.Succeeded(targetKey(t))
			return conn, nil
		}
		if ctx.Err() == nil {
			// Not when the caller gave up: the target may be fine.
			c.down.Failed(targetKey(t))
		}
		failed.add(label, err)
	}
	if ctx.Err() != nil {
		failed.cause = context.Cause(ctx)
	}
	return nil, &Error{Op: "dial", Input: c.input, Type: "srv", Err: failed}
}

// targetKey names an SRV target for the backoff and in errors.
func targetKey(t dns.SRV) string { return net.JoinHostPort(t.Target, strconv.Itoa(int(t.Port))) }

// targets returns the targets to try, in order: the SRV records as RFC
// 2782 orders them, or DOMAIN itself when there are none.
func (c *srvClient) targets(ctx context.Context) ([]dns.SRV, error) {
	ans, err := c.srvCache.Fetch(ctx, c.qname, func(ctx context.Context) (srvAnswer, time.Duration, error) {
		conf := c.ns
		if conf == nil {
			rc := dns.ReadResolvConf(dns.ResolvConf)
			conf = &rc
		}
		recs, ttl, err := conf.LookupSRV(ctx, c.qname)
		var nf *dns.NotFoundError
		switch {
		case errors.As(err, &nf):
			// Twisted falls back on NXDOMAIN as on an empty answer:
			// some servers answer the one for the other.
			return srvAnswer{none: true}, nf.TTL, nil
		case err != nil:
			return srvAnswer{}, 0, fmt.Errorf("looking up the SRV records of %s: %w", c.qname, err)
		}
		return srvAnswer{recs: recs}, ttl, nil
	})
	if err != nil {
		return nil, err
	}
	if ans.none {
		if c.port == 0 {
			return nil, fmt.Errorf("%s has no SRV record, and the service is not a port name of /etc/services: "+
				"give defaultPort= to connect to %s's own addresses then", c.qname, c.domain)
		}
		return []dns.SRV{{Target: c.domain, Port: c.port}}, nil
	}
	recs := make([]dns.SRV, 0, len(ans.recs))
	for _, r := range ans.recs {
		if r.Target != "." {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return nil, driver.WrapError(ErrServiceNotOffered, nil, fmt.Sprintf(
			"%s has the SRV target \".\": the service is decidedly not offered at %s (RFC 2782)", c.qname, c.domain))
	}
	return dns.Order(recs, rand.IntN), nil
}

// addrs returns host's addresses: from nameserver= (cached for their
// TTL) if given, else from the resolver.
func (c *srvClient) addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if _, err := netip.ParseAddr(host); err == nil || c.ns == nil {
		return c.tcp.lookup(ctx, host)
	}
	ips, err := c.addrCache.Fetch(ctx, host, func(ctx context.Context) ([]netip.Addr, time.Duration, error) {
		return c.ns.LookupAddrs(ctx, host)
	})
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("looking up %s: %w", host, err)}
	}
	return ips, nil
}

// connect connects to one target: its addresses raced as the tcp client
// races them, then TLS if asked for.
func (c *srvClient) connect(ctx context.Context, host string, port uint16) (net.Conn, error) {
	d := c.tcp.opts.dialer()
	wantFamily := 0
	if c.tcp.bind != "" {
		ips, err := c.tcp.lookup(ctx, c.tcp.bind)
		if err != nil {
			return nil, err
		}
		d.LocalAddr = &net.TCPAddr{IP: ips[0].AsSlice()}
		wantFamily = family(ips[0])
	}
	ips, err := c.addrs(ctx, host)
	if err != nil {
		return nil, err
	}
	addrs := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range interleave(ips) {
		if wantFamily == 0 || family(ip) == wantFamily {
			addrs = append(addrs, netip.AddrPortFrom(ip, port))
		}
	}
	if len(addrs) == 0 {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf(
			"%s has no address of the family of bindAddress %s", host, c.tcp.bind)}
	}
	conn, err := raceDial(ctx, d, addrs, c.tcp.delay)
	if err != nil {
		return nil, err
	}
	if err := c.tcp.opts.apply(conn); err != nil {
		abort.Conn(conn)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: conn.RemoteAddr(), Err: err}
	}
	if c.store == nil {
		return conn, nil
	}
	c.store.check()
	cfg := c.store.state.Load().config
	below := &closeNotifyConn{Conn: conn}
	tc := tls.Client(below, cfg)
	if err := clientHandshake(ctx, tc, conn); err != nil {
		abort.Conn(conn)
		return nil, fmt.Errorf("TLS handshake with %s (%s), verifying %s: %w", host, conn.RemoteAddr(), cfg.ServerName, err)
	}
	below.established = true
	return tc, nil
}

// Reload reads the TLS files again, with tls=1.
func (c *srvClient) Reload() error {
	if c.store == nil {
		return errNothingToReload
	}
	return c.store.reload()
}
