// Package dns is the small DNS client that tether's srv: endpoint needs:
// it builds queries for SRV, A and AAAA records, parses the answers with
// their TTLs, sends them over UDP (and again over TCP when the answer is
// truncated) to a given nameserver or to the system's from
// /etc/resolv.conf, orders SRV records as RFC 2782 says, and caches
// answers for their TTL.
//
// Why not net.Resolver? It hides the TTLs (so nothing can be cached for
// as long as the zone says, and a changed record is picked up only by
// chance), and it cannot be pointed at one nameserver (Consul's DNS on
// 127.0.0.1:8600) without replacing its Dial. Why not a DNS library? The
// core of tether depends on the standard library and golang.org/x/sys
// only; the part of DNS needed here is a few hundred lines.
//
// It does no recursion, no DNSSEC and no EDNS: it asks a recursive
// resolver (or an authoritative one such as Consul's) and believes the
// answer, as the system's stub resolver does.
package dns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Type is a resource record type.
type Type uint16

// The record types this package reads.
const (
	TypeA     Type = 1
	TypeCNAME Type = 5
	TypeSOA   Type = 6
	TypeAAAA  Type = 28
	TypeSRV   Type = 33
)

// String returns the record type's name (A, AAAA, SRV...).
func (t Type) String() string {
	switch t {
	case TypeA:
		return "A"
	case TypeCNAME:
		return "CNAME"
	case TypeSOA:
		return "SOA"
	case TypeAAAA:
		return "AAAA"
	case TypeSRV:
		return "SRV"
	}
	return fmt.Sprintf("TYPE%d", uint16(t))
}

// classIN is the Internet class, the only one asked for.
const classIN = 1

// Response codes (RFC 1035 section 4.1.1).
const (
	RcodeSuccess  = 0
	RcodeFormErr  = 1
	RcodeServFail = 2
	RcodeNXDomain = 3
	RcodeRefused  = 5
)

// SRV is the data of an SRV record (RFC 2782).
type SRV struct {
	Priority, Weight, Port uint16
	// Target is the host name, without the trailing dot; "." (the
	// service is decidedly not available) is kept as ".".
	Target string
}

// A Record is one resource record of an answer. Only the field that its
// Type has is set: Addr for A and AAAA, SRV, Target for CNAME, and
// MinTTL for SOA (the negative caching TTL of RFC 2308).
type Record struct {
	Name   string // without the trailing dot, as sent (case kept)
	Type   Type
	TTL    uint32
	Addr   netip.Addr
	SRV    SRV
	Target string
	MinTTL uint32
}

// A Message is a parsed DNS response.
type Message struct {
	ID        uint16
	Response  bool
	Truncated bool
	Rcode     int
	// QName and QType are the question (the first; a response has one).
	QName      string
	QType      Type
	Answers    []Record
	Authority  []Record
	Additional []Record
}

// ErrFormat is wrapped by every error of Parse: the bytes are not a DNS
// message this package can read.
var ErrFormat = errors.New("malformed DNS message")

// maxName is the longest a name may be, in wire form (RFC 1035 2.3.4).
const maxName = 255

// NewQuery returns a query for name and type t with the given ID, asking
// for recursion. name may end with a dot or not; it is always absolute.
func NewQuery(id uint16, name string, t Type) ([]byte, error) {
	b := make([]byte, 12, 12+len(name)+2+4)
	binary.BigEndian.PutUint16(b[0:], id)
	b[2] = 0x01 // RD: the server may recurse for us
	binary.BigEndian.PutUint16(b[4:], 1)
	var err error
	if b, err = appendName(b, name); err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint16(b, uint16(t))
	b = binary.BigEndian.AppendUint16(b, classIN)
	return b, nil
}

// appendName writes name in wire form: labels, each with its length.
func appendName(b []byte, name string) ([]byte, error) {
	name = strings.TrimSuffix(name, ".")
	start := len(b)
	if name != "" {
		for _, label := range strings.Split(name, ".") {
			if label == "" || len(label) > 63 {
				return nil, fmt.Errorf("%q is not a domain name: labels are 1-63 bytes", name)
			}
			b = append(b, byte(len(label)))
			b = append(b, label...)
		}
	}
	b = append(b, 0)
	if len(b)-start > maxName {
		return nil, fmt.Errorf("%q is not a domain name: longer than %d bytes", name, maxName)
	}
	return b, nil
}

// Parse reads a DNS message. It checks every length against the bytes
// there are, follows compression pointers only backwards (so that no
// message loops), and fails with an error wrapping ErrFormat rather than
// read past the end.
func Parse(b []byte) (*Message, error) {
	if len(b) < 12 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a header", ErrFormat, len(b))
	}
	m := &Message{
		ID:        binary.BigEndian.Uint16(b[0:]),
		Response:  b[2]&0x80 != 0,
		Truncated: b[2]&0x02 != 0,
		Rcode:     int(b[3] & 0x0f),
	}
	qd := int(binary.BigEndian.Uint16(b[4:]))
	counts := [3]int{int(binary.BigEndian.Uint16(b[6:])), int(binary.BigEndian.Uint16(b[8:])),
		int(binary.BigEndian.Uint16(b[10:]))}
	off := 12
	for i := 0; i < qd; i++ {
		name, n, err := readName(b, off)
		if err != nil {
			return nil, err
		}
		if n+4 > len(b) {
			return nil, fmt.Errorf("%w: question cut short", ErrFormat)
		}
		if i == 0 {
			m.QName, m.QType = name, Type(binary.BigEndian.Uint16(b[n:]))
		}
		off = n + 4
	}
	sections := [3]*[]Record{&m.Answers, &m.Authority, &m.Additional}
	for s, count := range counts {
		for i := 0; i < count; i++ {
			r, n, err := readRecord(b, off)
			if err != nil {
				if m.Truncated {
					// A truncated message may end in the middle of a
					// record: keep what came whole; the caller asks
					// again over TCP anyway.
					return m, nil
				}
				return nil, err
			}
			off = n
			if r != nil {
				*sections[s] = append(*sections[s], *r)
			}
		}
	}
	return m, nil
}

// readRecord reads the record at off and returns it (nil for a type or
// class this package does not read) and the offset after it.
func readRecord(b []byte, off int) (*Record, int, error) {
	name, n, err := readName(b, off)
	if err != nil {
		return nil, 0, err
	}
	if n+10 > len(b) {
		return nil, 0, fmt.Errorf("%w: record header cut short", ErrFormat)
	}
	t := Type(binary.BigEndian.Uint16(b[n:]))
	class := binary.BigEndian.Uint16(b[n+2:])
	ttl := binary.BigEndian.Uint32(b[n+4:])
	rdlen := int(binary.BigEndian.Uint16(b[n+8:]))
	rd := n + 10
	end := rd + rdlen
	if end > len(b) {
		return nil, 0, fmt.Errorf("%w: record data cut short", ErrFormat)
	}
	if ttl > 1<<31-1 {
		ttl = 0 // RFC 2181 8: a TTL with the top bit set is zero
	}
	r := &Record{Name: name, Type: t, TTL: ttl}
	if class != classIN {
		return nil, end, nil
	}
	data := b[rd:end]
	switch t {
	case TypeA:
		if len(data) != 4 {
			return nil, 0, fmt.Errorf("%w: A record of %d bytes", ErrFormat, len(data))
		}
		r.Addr = netip.AddrFrom4([4]byte(data))
	case TypeAAAA:
		if len(data) != 16 {
			return nil, 0, fmt.Errorf("%w: AAAA record of %d bytes", ErrFormat, len(data))
		}
		r.Addr = netip.AddrFrom16([16]byte(data))
	case TypeSRV:
		if len(data) < 7 {
			return nil, 0, fmt.Errorf("%w: SRV record of %d bytes", ErrFormat, len(data))
		}
		r.SRV.Priority = binary.BigEndian.Uint16(data[0:])
		r.SRV.Weight = binary.BigEndian.Uint16(data[2:])
		r.SRV.Port = binary.BigEndian.Uint16(data[4:])
		target, tn, err := readName(b, rd+6)
		if err != nil {
			return nil, 0, err
		}
		if tn != end {
			return nil, 0, fmt.Errorf("%w: SRV record's target does not end with its data", ErrFormat)
		}
		if target == "" {
			target = "."
		}
		r.SRV.Target = target
	case TypeCNAME:
		target, tn, err := readName(b, rd)
		if err != nil {
			return nil, 0, err
		}
		if tn != end {
			return nil, 0, fmt.Errorf("%w: CNAME record's name does not end with its data", ErrFormat)
		}
		r.Target = target
	case TypeSOA:
		// MNAME, RNAME, then five 32-bit numbers, MINIMUM the last.
		_, n1, err := readName(b, rd)
		if err != nil {
			return nil, 0, err
		}
		_, n2, err := readName(b, n1)
		if err != nil {
			return nil, 0, err
		}
		if n2+20 != end {
			return nil, 0, fmt.Errorf("%w: SOA record of the wrong length", ErrFormat)
		}
		r.MinTTL = binary.BigEndian.Uint32(b[n2+16:])
	default:
		return nil, end, nil
	}
	return r, end, nil
}

// readName reads the (possibly compressed) name at off, and returns it
// without the trailing dot and the offset just after it where it
// appears (after the first pointer, if any).
func readName(b []byte, off int) (string, int, error) {
	var name []byte
	next := -1 // where the caller goes on: after the first pointer
	wire := 0  // the length of the name in wire form, for the 255 limit
	low := off // where the run of labels being read began
	for {
		if off >= len(b) {
			return "", 0, fmt.Errorf("%w: name cut short", ErrFormat)
		}
		c := int(b[off])
		switch c & 0xc0 {
		case 0x00:
			if c == 0 {
				if next < 0 {
					next = off + 1
				}
				return string(name), next, nil
			}
			if off+1+c > len(b) {
				return "", 0, fmt.Errorf("%w: label cut short", ErrFormat)
			}
			if wire += 1 + c; wire+1 > maxName {
				return "", 0, fmt.Errorf("%w: name longer than %d bytes", ErrFormat, maxName)
			}
			if len(name) > 0 {
				name = append(name, '.')
			}
			for _, ch := range b[off+1 : off+1+c] {
				if ch == '.' || ch < '!' || ch > '~' {
					// A byte that would make the text ambiguous or
					// unprintable: no host name has one.
					return "", 0, fmt.Errorf("%w: label with byte %#x", ErrFormat, ch)
				}
			}
			name = append(name, b[off+1:off+1+c]...)
			off += 1 + c
		case 0xc0:
			if off+2 > len(b) {
				return "", 0, fmt.Errorf("%w: pointer cut short", ErrFormat)
			}
			ptr := int(binary.BigEndian.Uint16(b[off:]) & 0x3fff)
			if ptr >= low {
				// Only to before every byte read so far: each pointer
				// then brings the reading closer to the start, so none
				// can loop.
				return "", 0, fmt.Errorf("%w: compression pointer forward or to itself", ErrFormat)
			}
			if next < 0 {
				next = off + 2
			}
			off, low = ptr, ptr
		default:
			return "", 0, fmt.Errorf("%w: label type %#x", ErrFormat, c&0xc0)
		}
	}
}

// equalNames compares two names as DNS does: without regard to ASCII
// case, and with or without a trailing dot.
func equalNames(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}
