package dns

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// ResolvConf is where the system's nameservers are listed.
const ResolvConf = "/etc/resolv.conf"

// A Config says whom to ask and how patiently.
type Config struct {
	// Servers are host:port addresses (IP addresses) asked in turn.
	Servers []string
	// Timeout bounds one attempt with one server (resolv.conf's
	// options timeout:N).
	Timeout time.Duration
	// Attempts is how many rounds of the servers are made (options
	// attempts:N).
	Attempts int
}

// Defaults of resolv(5), which the system's resolver uses too.
const (
	defaultTimeout  = 5 * time.Second
	defaultAttempts = 2
)

// ReadResolvConf reads the nameservers and the timeout and attempts
// options of a resolv.conf file. With no nameserver line (or no file) it
// gives the local one, as the system's resolver does.
func ReadResolvConf(path string) Config {
	c := Config{Timeout: defaultTimeout, Attempts: defaultAttempts}
	if f, err := os.Open(path); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
				continue
			}
			switch fields[0] {
			case "nameserver":
				if ip, err := netip.ParseAddr(fields[1]); err == nil && len(c.Servers) < 3 {
					// resolv(5): at most three are used.
					c.Servers = append(c.Servers, netip.AddrPortFrom(ip, 53).String())
				}
			case "options":
				for _, o := range fields[1:] {
					k, v, _ := strings.Cut(o, ":")
					n, err := strconv.Atoi(v)
					if err != nil || n < 1 {
						continue
					}
					switch k {
					case "timeout":
						c.Timeout = time.Duration(min(n, 30)) * time.Second
					case "attempts":
						c.Attempts = min(n, 5)
					}
				}
			}
		}
	}
	if len(c.Servers) == 0 {
		c.Servers = []string{"127.0.0.1:53", "[::1]:53"}
	}
	return c
}

// A NotFoundError says that a name has no record of the type asked for:
// NXDOMAIN (the name does not exist) or NODATA (it exists, with other
// types only). Both are answers, not failures of the servers.
type NotFoundError struct {
	Name     string
	Type     Type
	NXDomain bool
	// TTL is how long the absence may be cached (RFC 2308): the
	// authority's SOA, or zero when the answer had none.
	TTL time.Duration
}

// Error says which name has no record, and whether it does not exist at all.
func (e *NotFoundError) Error() string {
	if e.NXDomain {
		return fmt.Sprintf("%s: no such domain name (NXDOMAIN)", e.Name)
	}
	return fmt.Sprintf("%s: no %s record", e.Name, e.Type)
}

// Exchange asks the servers of c for name's records of type t, in turn,
// until one answers (with records, NXDOMAIN or NODATA: a server that
// fails, refuses or does not answer in time is passed over). A truncated
// UDP answer is asked for again over TCP from the same server. ctx bounds
// it all.
func (c *Config) Exchange(ctx context.Context, name string, t Type) (*Message, error) {
	if len(c.Servers) == 0 {
		return nil, errors.New("no nameserver to ask")
	}
	timeout, attempts := c.Timeout, c.Attempts
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	if attempts <= 0 {
		attempts = defaultAttempts
	}
	var errs []error
	for range attempts {
		for _, server := range c.Servers {
			m, err := exchangeOne(ctx, server, name, t, timeout)
			if err == nil {
				return m, nil
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("asking %s for %s %s: %w", server, name, t, context.Cause(ctx))
			}
			errs = append(errs, fmt.Errorf("%s: %w", server, err))
		}
	}
	return nil, fmt.Errorf("no nameserver answered for %s %s: %w", name, t, errors.Join(errs...))
}

// exchangeOne asks one server, over UDP and then, if the answer is
// truncated, over TCP.
func exchangeOne(ctx context.Context, server, name string, t Type, timeout time.Duration) (*Message, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var idb [2]byte
	rand.Read(idb[:]) // a random ID: a stray or forged answer must guess it
	id := binary.BigEndian.Uint16(idb[:])
	q, err := NewQuery(id, name, t)
	if err != nil {
		return nil, err
	}
	m, err := exchangeUDP(ctx, server, q, name, t)
	if err == nil && m.Truncated {
		m, err = exchangeTCP(ctx, server, q, name, t)
	}
	if err != nil {
		return nil, err
	}
	switch m.Rcode {
	case RcodeSuccess, RcodeNXDomain:
		return m, nil
	case RcodeServFail:
		return nil, errors.New("server failure (SERVFAIL)")
	case RcodeRefused:
		return nil, errors.New("query refused (REFUSED)")
	default:
		return nil, fmt.Errorf("answered with error code %d", m.Rcode)
	}
}

// deadline makes conn follow ctx: its deadline, and its cancellation.
func deadline(ctx context.Context, conn net.Conn) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
}

func exchangeUDP(ctx context.Context, server string, q []byte, name string, t Type) (*Message, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer deadline(ctx, conn)()
	if _, err := conn.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 512) // no EDNS: an answer over 512 bytes is truncated
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		m, err := Parse(buf[:n])
		if err != nil || !answers(m, q, name, t) {
			// Not the answer to this query (a late answer to an
			// earlier one on a reused port, or garbage): wait on.
			continue
		}
		return m, nil
	}
}

func exchangeTCP(ctx context.Context, server string, q []byte, name string, t Type) (*Message, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer deadline(ctx, conn)()
	msg := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(q)), uint16(len(q)))
	if _, err := conn.Write(append(msg, q...)); err != nil {
		return nil, err
	}
	var lb [2]byte
	if _, err := io.ReadFull(conn, lb[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(lb[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	m, err := Parse(buf)
	if err != nil {
		return nil, err
	}
	if !answers(m, q, name, t) {
		return nil, errors.New("the TCP answer is not to the question asked")
	}
	return m, nil
}

// answers reports whether m answers the query q for name and t.
func answers(m *Message, q []byte, name string, t Type) bool {
	return m.Response && m.ID == binary.BigEndian.Uint16(q) && m.QType == t && equalNames(m.QName, name)
}

// Lookup asks for name's records of type t and returns them, with the
// TTL the set may be cached for (the least of the records' TTLs, CNAMEs
// followed included). CNAMEs in the answer are followed. No record
// gives a *NotFoundError.
func (c *Config) Lookup(ctx context.Context, name string, t Type) ([]Record, time.Duration, error) {
	m, err := c.Exchange(ctx, name, t)
	if err != nil {
		return nil, 0, err
	}
	return fromAnswer(m, name, t)
}

// fromAnswer picks from m the records of type t for name, following
// CNAMEs within the answer.
func fromAnswer(m *Message, name string, t Type) ([]Record, time.Duration, error) {
	owner := name
	ttl := uint32(1<<31 - 1)
	for hops := 0; hops < 8; hops++ {
		var out []Record
		cname := ""
		for _, r := range m.Answers {
			if !equalNames(r.Name, owner) {
				continue
			}
			switch r.Type {
			case t:
				out = append(out, r)
			case TypeCNAME:
				if cname == "" {
					cname = r.Target
					ttl = min(ttl, r.TTL)
				}
			}
		}
		if len(out) > 0 {
			for _, r := range out {
				ttl = min(ttl, r.TTL)
			}
			return out, time.Duration(ttl) * time.Second, nil
		}
		if cname == "" {
			break
		}
		owner = cname
	}
	nf := &NotFoundError{Name: strings.TrimSuffix(name, "."), Type: t, NXDomain: m.Rcode == RcodeNXDomain}
	for _, r := range m.Authority {
		if r.Type == TypeSOA {
			nf.TTL = time.Duration(min(r.TTL, r.MinTTL)) * time.Second
		}
	}
	return nil, 0, nf
}

// LookupSRV returns name's SRV records as they came and their TTL.
func (c *Config) LookupSRV(ctx context.Context, name string) ([]SRV, time.Duration, error) {
	recs, ttl, err := c.Lookup(ctx, name, TypeSRV)
	if err != nil {
		return nil, 0, err
	}
	out := make([]SRV, len(recs))
	for i, r := range recs {
		out[i] = r.SRV
	}
	return out, ttl, nil
}

// LookupAddrs returns host's IPv6 and IPv4 addresses (AAAA and A, asked
// at once), and the TTL of the shorter-lived set. Either family alone is
// enough; a *NotFoundError only when neither has an address.
func (c *Config) LookupAddrs(ctx context.Context, host string) ([]netip.Addr, time.Duration, error) {
	type result struct {
		recs []Record
		ttl  time.Duration
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		recs, ttl, err := c.Lookup(ctx, host, TypeAAAA)
		ch <- result{recs, ttl, err}
	}()
	recs4, ttl4, err4 := c.Lookup(ctx, host, TypeA)
	r6 := <-ch
	var out []netip.Addr
	ttl := time.Duration(-1)
	for _, r := range []result{r6, {recs4, ttl4, err4}} {
		if r.err != nil {
			continue
		}
		for _, rec := range r.recs {
			out = append(out, rec.Addr.Unmap())
		}
		if ttl < 0 || r.ttl < ttl {
			ttl = r.ttl
		}
	}
	if len(out) > 0 {
		return out, ttl, nil
	}
	// Neither has an address: a failure to ask says more than an absence.
	for _, err := range []error{r6.err, err4} {
		if !errors.As(err, new(*NotFoundError)) {
			return nil, 0, err
		}
	}
	return nil, 0, err4
}
