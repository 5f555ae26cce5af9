// Package proxyproto reads and writes the PROXY protocol, versions 1 (text)
// and 2 (binary), with which a load balancer or relay tells the server
// behind it the addresses of the connection it received: haproxy's
// send-proxy and send-proxy-v2, nginx's proxy_protocol. See
// https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt.
//
// Read and Write work on any reader and writer; NewListener wraps any
// net.Listener so that each accepted Conn reads its header lazily, in the
// connection's own goroutine, within a timeout. Package endpoint's haproxy:
// type is built on it, but nothing here needs endpoint strings.
package proxyproto

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrBadHeader is wrapped by Read's errors and by the error of a Conn
// whose header is missing, late or malformed.
var ErrBadHeader = errors.New("proxyproto: bad PROXY protocol header")

// DefaultHeaderTimeout is how long a Conn waits for its header when its
// listener was given no timeout.
const DefaultHeaderTimeout = 10 * time.Second

// A Header is what a PROXY protocol header says: the addresses of the
// connection that a proxy received and is passing on.
// See https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt.
type Header struct {
	// Version is 1 (the text form) or 2 (the binary form).
	Version int
	// Local is version 2's LOCAL command: the proxy made the connection
	// itself (a health check), and its own addresses stand. Version 1
	// writes it as UNKNOWN.
	Local bool
	// Source is the original client's address and Destination the address
	// it connected to: *net.TCPAddr, or in version 2 also *net.UDPAddr and
	// *net.UnixAddr. Both nil (v1 UNKNOWN, v2 LOCAL or AF_UNSPEC) means
	// the header names no addresses. Writing a pair that the version
	// cannot carry (a UNIX address in v1, a TCP and a UNIX address) writes
	// it so too.
	Source, Destination net.Addr
	// TLVs are version 2's type-length-value extensions, in order, as read;
	// this package does not interpret them.
	TLVs []TLV
}

// A TLV is one type-length-value extension of a version 2 header.
type TLV struct {
	Type  byte
	Value []byte
}

// The limits and constants of the protocol.
const (
	proxyV1MaxLen = 107 // the longest v1 line, CRLF included
	proxyV2Fixed  = 16  // signature, version and command, family, length
	proxyUnixLen  = 108 // a v2 UNIX address, NUL-padded
)

var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// proxyError makes an error that wraps ErrBadHeader (and cause).
func proxyError(cause error, format string, args ...any) error {
	return &headerError{msg: "PROXY protocol header: " + fmt.Sprintf(format, args...), cause: cause}
}

// headerError is a bad header: what is wrong, and the error that revealed
// it, if any (an i/o timeout, an unexpected end of file).
type headerError struct {
	msg   string
	cause error
}

func (e *headerError) Error() string {
	if e.cause == nil {
		return e.msg
	}
	return e.msg + ": " + e.cause.Error()
}

func (e *headerError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrBadHeader}
	}
	return []error{ErrBadHeader, e.cause}
}

// Read reads one PROXY protocol header, version 1 or 2, from r.
// It reads the header and not one byte more, so r may be the connection
// itself and what follows the header is left to be read from it; it reads
// in small pieces to do so. Every error wraps ErrBadHeader.
func Read(r io.Reader) (*Header, error) {
	var buf [proxyV1MaxLen]byte
	// "PROXY " and the first six bytes of the v2 signature tell the
	// versions apart, and every valid header is at least that long.
	if n, err := io.ReadFull(r, buf[:6]); err != nil {
		if n == 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, proxyError(err, "the connection ended before one was read (%d bytes)", n)
	}
	switch {
	case string(buf[:6]) == "PROXY ":
		return readProxyV1(r, buf[:])
	case bytes.Equal(buf[:6], proxyV2Sig[:6]):
		return readProxyV2(r, buf[:])
	}
	return nil, proxyError(nil, "missing: the connection begins with %q", buf[:6])
}

func readProxyV1(r io.Reader, buf []byte) (*Header, error) {
	n := 6
	for {
		need := proxyV1MinRest(buf[:n])
		if need == 0 {
			break
		}
		if n+need > proxyV1MaxLen {
			return nil, proxyError(nil, "version 1 line longer than %d bytes: %q", proxyV1MaxLen, buf[:n])
		}
		m, err := io.ReadFull(r, buf[n:n+need])
		n += m
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, proxyError(err, "version 1 line cut short: %q", buf[:n])
		}
	}
	return parseProxyV1(buf[:n])
}

// proxyV1MinRest returns how many more bytes a v1 line that begins with
// line must have at least: 0 when it is complete (or cannot be valid, which
// parsing then says), never more than the shortest valid ending, so that
// reading that many never reads past the line.
func proxyV1MinRest(line []byte) int {
	switch {
	case bytes.HasSuffix(line, []byte("\r\n")):
		return 0
	case bytes.IndexByte(line, '\n') >= 0 || bytes.IndexByte(line[:len(line)-1], '\r') >= 0:
		return 0 // a line break inside: invalid
	case line[len(line)-1] == '\r':
		return 1
	}
	fields := strings.Split(string(line[6:]), " ")
	proto := fields[0]
	if len(fields) == 1 {
		best := -1
		for _, p := range []struct {
			name string
			rest int // after the name: " a b c d\r\n" or "\r\n"
		}{{"UNKNOWN", 2}, {"TCP4", 10}, {"TCP6", 10}} {
			if strings.HasPrefix(p.name, proto) {
				if n := len(p.name) - len(proto) + p.rest; best < 0 || n < best {
					best = n
				}
			}
		}
		if best < 0 {
			return 0
		}
		return best
	}
	switch {
	case proto == "UNKNOWN":
		return 2
	case proto != "TCP4" && proto != "TCP6" || len(fields) > 5:
		return 0
	}
	// Each field still to come needs a space and a character, the
	// current one a character if it is empty, and then CRLF.
	n := (5-len(fields))*2 + 2
	if fields[len(fields)-1] == "" {
		n++
	}
	return n
}

func parseProxyV1(line []byte) (*Header, error) {
	bad := func(why string) (*Header, error) {
		return nil, proxyError(nil, "version 1 line %q: %s", line, why)
	}
	body, crlf := bytes.CutSuffix(line[6:], []byte("\r\n"))
	fields := strings.Split(string(body), " ")
	h := &Header{Version: 1}
	switch {
	case fields[0] != "UNKNOWN" && fields[0] != "TCP4" && fields[0] != "TCP6":
		return bad("the protocol is not TCP4, TCP6 or UNKNOWN")
	case fields[0] != "UNKNOWN" && len(fields) > 5:
		return bad("wants 4 fields after the protocol, separated by single spaces")
	case !crlf || bytes.ContainsAny(body, "\r\n"):
		return bad("not one line ending in CRLF")
	case fields[0] == "UNKNOWN":
		return h, nil // the rest of the line is to be ignored
	case len(fields) != 5:
		return bad("wants 4 fields after the protocol, separated by single spaces")
	}
	var addrs [2]netip.AddrPort
	for i := range addrs {
		ip, err := netip.ParseAddr(fields[1+i])
		if err != nil || ip.Zone() != "" || (fields[0] == "TCP4") != ip.Is4() {
			return bad(fmt.Sprintf("%q is not an %s address", fields[1+i], map[bool]string{true: "IPv4", false: "IPv6"}[fields[0] == "TCP4"]))
		}
		port, err := strconv.ParseUint(fields[3+i], 10, 16)
		if err != nil {
			return bad(fmt.Sprintf("%q is not a port 0-65535", fields[3+i]))
		}
		addrs[i] = netip.AddrPortFrom(ip, uint16(port))
	}
	h.Source, h.Destination = net.TCPAddrFromAddrPort(addrs[0]), net.TCPAddrFromAddrPort(addrs[1])
	return h, nil
}

// proxyV2AddrLen is the length of a v2 family's address block.
func proxyV2AddrLen(fam byte) (int, bool) {
	switch fam {
	case 0x00:
		return 0, true
	case 0x11, 0x12: // TCP and UDP over IPv4
		return 12, true
	case 0x21, 0x22: // over IPv6
		return 36, true
	case 0x31, 0x32: // UNIX stream and datagram
		return 2 * proxyUnixLen, true
	}
	return 0, false
}

// readGrowing reads n bytes from r into a buffer that grows as they
// arrive, not one of n bytes made at once: the length comes from a peer
// not yet trusted, who could otherwise make each connection cost 64 KiB
// for the 16 bytes it sent. It returns what it read, with the error.
func readGrowing(r io.Reader, n int) ([]byte, error) {
	const chunk = 512 // what an ordinary header's addresses and TLVs fit in
	b := make([]byte, 0, min(n, chunk))
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n-len(b), len(b)))
		}
		m, err := r.Read(b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		if err != nil && len(b) < n {
			return b, err
		}
	}
	return b, nil
}

func readProxyV2(r io.Reader, buf []byte) (*Header, error) {
	if n, err := io.ReadFull(r, buf[6:proxyV2Fixed]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, proxyError(err, "version 2 header cut short (%d bytes)", 6+n)
	}
	if !bytes.Equal(buf[:12], proxyV2Sig) {
		return nil, proxyError(nil, "missing: the connection begins with %q", buf[:12])
	}
	verCmd, fam := buf[12], buf[13]
	if verCmd>>4 != 2 {
		return nil, proxyError(nil, "version 2 signature with version %d", verCmd>>4)
	}
	cmd := verCmd & 0xf
	if cmd > 1 {
		return nil, proxyError(nil, "version 2 command %d is neither LOCAL (0) nor PROXY (1)", cmd)
	}
	body, err := readGrowing(r, int(binary.BigEndian.Uint16(buf[14:16])))
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, proxyError(err, "version 2 header cut short (%d of %d bytes of addresses and TLVs)",
			len(body), binary.BigEndian.Uint16(buf[14:16]))
	}
	h := &Header{Version: 2, Local: cmd == 0}
	alen, known := proxyV2AddrLen(fam)
	switch {
	case h.Local:
		// The receiver uses its own addresses, whatever the family says;
		// TLVs are read where it is clear where they begin.
		if !known || len(body) < alen {
			return h, nil
		}
	case fam == 0x00:
	case fam>>4 == 0 || fam&0xf == 0:
		// AF_UNSPEC or an unspecified protocol: addresses to ignore.
		return h, nil
	case !known:
		return nil, proxyError(nil, "version 2 address family and protocol 0x%02x are unknown", fam)
	case len(body) < alen:
		return nil, proxyError(nil, "version 2 family 0x%02x wants %d bytes of addresses, the header has %d", fam, alen, len(body))
	default:
		h.Source, h.Destination = proxyV2Addrs(fam, body[:alen])
	}
	for rest := body[alen:]; len(rest) > 0; {
		if len(rest) < 3 || len(rest) < 3+int(binary.BigEndian.Uint16(rest[1:3])) {
			return nil, proxyError(nil, "version 2 TLV cut short (%d bytes left)", len(rest))
		}
		n := 3 + int(binary.BigEndian.Uint16(rest[1:3]))
		h.TLVs = append(h.TLVs, TLV{Type: rest[0], Value: append([]byte(nil), rest[3:n]...)})
		rest = rest[n:]
	}
	return h, nil
}

func proxyV2Addrs(fam byte, b []byte) (src, dst net.Addr) {
	switch fam >> 4 {
	case 1, 2:
		n := 4
		if fam>>4 == 2 {
			n = 16
		}
		s, _ := netip.AddrFromSlice(b[:n])
		d, _ := netip.AddrFromSlice(b[n : 2*n])
		sp := netip.AddrPortFrom(s, binary.BigEndian.Uint16(b[2*n:]))
		dp := netip.AddrPortFrom(d, binary.BigEndian.Uint16(b[2*n+2:]))
		if fam&0xf == 2 {
			return net.UDPAddrFromAddrPort(sp), net.UDPAddrFromAddrPort(dp)
		}
		return net.TCPAddrFromAddrPort(sp), net.TCPAddrFromAddrPort(dp)
	default:
		network := "unix"
		if fam&0xf == 2 {
			network = "unixgram"
		}
		return &net.UnixAddr{Name: proxyUnixName(b[:proxyUnixLen]), Net: network},
			&net.UnixAddr{Name: proxyUnixName(b[proxyUnixLen:]), Net: network}
	}
}

// proxyUnixName reads a NUL-padded UNIX socket path; one that begins with
// NUL is an abstract name, written @name as Go writes it.
func proxyUnixName(b []byte) string {
	cstr := func(b []byte) string {
		if i := bytes.IndexByte(b, 0); i >= 0 {
			b = b[:i]
		}
		return string(b)
	}
	if b[0] == 0 {
		if name := cstr(b[1:]); name != "" {
			return "@" + name
		}
		return ""
	}
	return cstr(b)
}

// proxyAddrPort returns an IP address and port of a TCP or UDP address.
func proxyAddrPort(a net.Addr) (ap netip.AddrPort, udp, ok bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		if a == nil {
			return ap, false, false
		}
		ap = a.AddrPort()
	case *net.UDPAddr:
		if a == nil {
			return ap, false, false
		}
		ap, udp = a.AddrPort(), true
	default:
		return ap, false, false
	}
	return netip.AddrPortFrom(ap.Addr().WithZone(""), ap.Port()), udp, ap.Addr().IsValid()
}

// Format writes the header in its version's form.
func (h *Header) Format() ([]byte, error) {
	switch h.Version {
	case 1:
		return h.formatV1()
	case 2:
		return h.formatV2()
	}
	return nil, proxyError(nil, "version %d is neither 1 nor 2", h.Version)
}

func (h *Header) formatV1() ([]byte, error) {
	if len(h.TLVs) > 0 {
		return nil, proxyError(nil, "version 1 cannot carry TLVs")
	}
	src, sudp, sok := proxyAddrPort(h.Source)
	dst, dudp, dok := proxyAddrPort(h.Destination)
	if h.Local || !sok || !dok || sudp || dudp {
		return []byte("PROXY UNKNOWN\r\n"), nil
	}
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	proto := "TCP4"
	if !s.Is4() || !d.Is4() {
		proto = "TCP6"
		s, d = netip.AddrFrom16(s.As16()), netip.AddrFrom16(d.As16())
	}
	return fmt.Appendf(nil, "PROXY %s %s %s %d %d\r\n", proto, s, d, src.Port(), dst.Port()), nil
}

func (h *Header) formatV2() ([]byte, error) {
	b := make([]byte, proxyV2Fixed, 64)
	copy(b, proxyV2Sig)
	b[12] = 0x21 // version 2, PROXY
	fam := byte(0x00)
	src, sudp, sok := proxyAddrPort(h.Source)
	dst, dudp, dok := proxyAddrPort(h.Destination)
	su, suok := h.Source.(*net.UnixAddr)
	du, duok := h.Destination.(*net.UnixAddr)
	switch {
	case h.Local:
		b[12] = 0x20
	case sok && dok && sudp == dudp:
		s, d := src.Addr().Unmap(), dst.Addr().Unmap()
		if s.Is4() && d.Is4() {
			fam = 0x10
			b = append(b, s.AsSlice()...)
			b = append(b, d.AsSlice()...)
		} else {
			fam = 0x20
			s16, d16 := s.As16(), d.As16()
			b = append(b, s16[:]...)
			b = append(b, d16[:]...)
		}
		fam |= 1
		if sudp {
			fam++
		}
		b = binary.BigEndian.AppendUint16(b, src.Port())
		b = binary.BigEndian.AppendUint16(b, dst.Port())
	case suok && duok && su != nil && du != nil && su.Net == du.Net:
		fam = 0x31
		if su.Net == "unixgram" {
			fam = 0x32
		}
		for _, name := range []string{su.Name, du.Name} {
			var p [proxyUnixLen]byte
			if len(name) > 1 && name[0] == '@' { // "@" alone: a file of that name
				name = "\x00" + name[1:]
			}
			if len(name) > proxyUnixLen {
				return nil, proxyError(nil, "UNIX address %q is longer than %d bytes", name, proxyUnixLen)
			}
			copy(p[:], name)
			b = append(b, p[:]...)
		}
	}
	b[13] = fam
	for _, t := range h.TLVs {
		if len(t.Value) > 0xffff {
			return nil, proxyError(nil, "TLV of type 0x%02x is longer than 65535 bytes", t.Type)
		}
		b = append(b, t.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(t.Value)))
		b = append(b, t.Value...)
	}
	if len(b)-proxyV2Fixed > 0xffff {
		return nil, proxyError(nil, "addresses and TLVs are longer than 65535 bytes")
	}
	binary.BigEndian.PutUint16(b[14:16], uint16(len(b)-proxyV2Fixed))
	return b, nil
}

// Write writes a PROXY protocol header of the given version (1
// or 2) that names src as the original client and dst as the address it
// connected to, in one Write. Addresses the version cannot carry (nil, a
// UNIX address in version 1, a TCP and a UNIX address together) are
// written as version 1's UNKNOWN or version 2's LOCAL, which tell the
// receiver to use the connection's own addresses.
func Write(w io.Writer, version int, src, dst net.Addr) error {
	h := &Header{Version: version, Source: src, Destination: dst}
	if version == 2 && !proxyV2Carries(src, dst) {
		h.Local = true // as haproxy does for connections it cannot describe
	}
	b, err := h.Format()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func proxyV2Carries(src, dst net.Addr) bool {
	_, sudp, sok := proxyAddrPort(src)
	_, dudp, dok := proxyAddrPort(dst)
	su, suok := src.(*net.UnixAddr)
	du, duok := dst.(*net.UnixAddr)
	return sok && dok && sudp == dudp || suok && duok && su != nil && du != nil && su.Net == du.Net
}

type contextKey struct{}

// NewContext returns a context that carries h. A haproxy: client endpoint
// (package endpoint) sends the header that its Dial's context carries:
// tether relay passes the original client's addresses to the server
// behind it so.
func NewContext(ctx context.Context, h *Header) context.Context {
	return context.WithValue(ctx, contextKey{}, h)
}

// FromContext returns the header that ctx carries, or nil.
func FromContext(ctx context.Context) *Header {
	h, _ := ctx.Value(contextKey{}).(*Header)
	return h
}
