package proxyproto

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func tcpAddr(s string) *net.TCPAddr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

// v2 builds a version 2 header from its command and family bytes and a body.
func v2(verCmd, fam byte, body ...[]byte) []byte {
	b := append([]byte(nil), proxyV2Sig...)
	b = append(b, verCmd, fam, 0, 0)
	for _, p := range body {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint16(b[14:], uint16(len(b)-16))
	return b
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// proxyHeaderSeeds are valid headers: the fuzz seeds and the round-trip
// table.
var proxyHeaderSeeds = []struct {
	in   []byte
	want Header
}{
	{[]byte("PROXY TCP4 203.0.113.7 198.51.100.1 4242 443\r\n"),
		Header{Version: 1, Source: tcpAddr("203.0.113.7:4242"), Destination: tcpAddr("198.51.100.1:443")}},
	{[]byte("PROXY TCP6 2001:db8::7 2001:db8::1 4243 443\r\n"),
		Header{Version: 1, Source: tcpAddr("[2001:db8::7]:4243"), Destination: tcpAddr("[2001:db8::1]:443")}},
	{[]byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
		Header{Version: 1, Source: tcpAddr("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
			Destination: tcpAddr("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")}},
	{[]byte("PROXY TCP4 1.2.3.4 5.6.7.8 0 080\r\n"),
		Header{Version: 1, Source: tcpAddr("1.2.3.4:0"), Destination: tcpAddr("5.6.7.8:80")}},
	{[]byte("PROXY UNKNOWN\r\n"), Header{Version: 1}},
	{[]byte("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), Header{Version: 1}},
	{v2(0x21, 0x11, unhex("cb007107 c6336401 1092 01bb")),
		Header{Version: 2, Source: tcpAddr("203.0.113.7:4242"), Destination: tcpAddr("198.51.100.1:443")}},
	{v2(0x21, 0x12, unhex("cb007107 c6336401 1092 0035")),
		Header{Version: 2, Source: net.UDPAddrFromAddrPort(netip.MustParseAddrPort("203.0.113.7:4242")),
			Destination: net.UDPAddrFromAddrPort(netip.MustParseAddrPort("198.51.100.1:53"))}},
	{v2(0x21, 0x21, unhex("20010db8000000000000000000000007 20010db8000000000000000000000001 1093 01bb")),
		Header{Version: 2, Source: tcpAddr("[2001:db8::7]:4243"), Destination: tcpAddr("[2001:db8::1]:443")}},
	{v2(0x21, 0x11, unhex("cb007107 c6336401 1092 01bb"), []byte("\x01\x00\x02h2\x02\x00\x0bexample.com\x04\x00\x00")),
		Header{Version: 2, Source: tcpAddr("203.0.113.7:4242"), Destination: tcpAddr("198.51.100.1:443"),
			TLVs: []TLV{{1, []byte("h2")}, {2, []byte("example.com")}, {4, nil}}}},
	{v2(0x21, 0x31, append([]byte("/run/a.sock"), make([]byte, 97)...), append([]byte("\x00abstract"), make([]byte, 99)...)),
		Header{Version: 2, Source: &net.UnixAddr{Name: "/run/a.sock", Net: "unix"}, Destination: &net.UnixAddr{Name: "@abstract", Net: "unix"}}},
	{v2(0x20, 0x00), Header{Version: 2, Local: true}},
	{v2(0x20, 0x11, unhex("cb007107 c6336401 1092 01bb")), Header{Version: 2, Local: true}},
	{v2(0x20, 0x00, []byte("\xee\x00\x01x")), Header{Version: 2, Local: true, TLVs: []TLV{{0xee, []byte("x")}}}},
	{v2(0x21, 0x00), Header{Version: 2}},
	{v2(0x21, 0x10, []byte("ignored")), Header{Version: 2}},
}

func TestRead(t *testing.T) {
	for _, tt := range proxyHeaderSeeds {
		// What follows the header is left unread.
		r := bytes.NewReader(append(append([]byte(nil), tt.in...), "DATA"...))
		h, err := Read(r)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(*h, tt.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.in, *h, tt.want)
		}
		if r.Len() != 4 {
			t.Errorf("%q: %d bytes left after the header, want 4", tt.in, r.Len())
		}
		// Read again from what Format writes: the same header.
		b, err := h.Format()
		if err != nil {
			t.Errorf("%q: Format: %v", tt.in, err)
			continue
		}
		h2, err := Read(bytes.NewReader(b))
		if err != nil || !sameProxyHeader(h, h2) {
			t.Errorf("%q: formatted as %q, read back as %+v, %v", tt.in, b, h2, err)
		}
	}
}

func TestReadErrors(t *testing.T) {
	long := "PROXY TCP6 " + strings.Repeat("f", 100) + "\r\n"
	for in, msg := range map[string]string{
		"":                                       "the connection ended before one was read",
		"GET / HTTP/1.1\r\n":                     `missing: the connection begins with "GET / "`,
		"PROXY":                                  "the connection ended before one was read (5 bytes)",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2":         "cut short",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nmore":   "not one line ending in CRLF",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n":     "the protocol is not TCP4, TCP6 or UNKNOWN",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n":       "wants 4 fields",
		"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n":    "wants 4 fields",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n":    "wants 4 fields",
		"PROXY TCP4 ::1 5.6.7.8 1 2\r\n":         `"::1" is not an IPv4 address`,
		"PROXY TCP6 1.2.3.4 ::1 1 2\r\n":         `"1.2.3.4" is not an IPv6 address`,
		"PROXY TCP6 fe80::1%lo ::1 1 2\r\n":      `"fe80::1%lo" is not an IPv6 address`,
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n": `"65536" is not a port`,
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n":    `"-1" is not a port`,
		long:                                     "longer than 107 bytes",
		string(v2(0x21, 0x11, []byte{1, 2})):     "wants 12 bytes of addresses",
		string(v2(0x22, 0x11)):                   "command 2",
		string(v2(0x11, 0x11)):                   "version 1",
		string(v2(0x21, 0x41)):                   "0x41 are unknown",
		string(v2(0x21, 0x11, make([]byte, 12), []byte{1, 0, 5, 'x'})): "TLV cut short",
		string(proxyV2Sig[:10]):                  "version 2 header cut short",
		"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x00": "missing",
	} {
		h, err := Read(strings.NewReader(in))
		if !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: got %+v, %v; want an error wrapping ErrBadHeader saying %q", in, h, err, msg)
		}
	}
	// A header that does not arrive whole: the declared length is not there.
	short := v2(0x21, 0x11, make([]byte, 12))
	if _, err := Read(bytes.NewReader(short[:20])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated v2: %v", err)
	}
}

// sameProxyHeader compares headers as addresses: 4-in-6 addresses equal
// their IPv4 form, as a version 1 or 2 header may write either.
func sameProxyHeader(a, b *Header) bool {
	norm := func(x net.Addr) any {
		if ap, udp, ok := proxyAddrPort(x); ok {
			return fmt.Sprint(udp, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
		if u, ok := x.(*net.UnixAddr); ok {
			return *u
		}
		return x
	}
	return a.Version == b.Version && a.Local == b.Local && reflect.DeepEqual(a.TLVs, b.TLVs) &&
		reflect.DeepEqual(norm(a.Source), norm(b.Source)) && reflect.DeepEqual(norm(a.Destination), norm(b.Destination))
}

// FuzzRead reads a header, writes it and reads it again: what is
// read must never panic, never read past the header, and survive the round
// trip.
func FuzzRead(f *testing.F) {
	for _, s := range proxyHeaderSeeds {
		f.Add(s.in)
	}
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"))
	f.Add([]byte("PROXY UNKNOWN \r\r\n"))
	f.Add(v2(0x21, 0x32, make([]byte, 216)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := Read(r)
		if err != nil {
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("error %v does not wrap ErrBadHeader", err)
			}
			return
		}
		used := data[:len(data)-r.Len()]
		b, err := h.Format()
		if err != nil {
			t.Fatalf("%q read as %+v, which Format refuses: %v", used, h, err)
		}
		r2 := bytes.NewReader(b)
		h2, err := Read(r2)
		if err != nil {
			t.Fatalf("%q read as %+v, written as %q, which reads as %v", used, h, b, err)
		}
		if r2.Len() != 0 {
			t.Fatalf("%q: %d bytes of the written header left unread", b, r2.Len())
		}
		if !sameProxyHeader(h, h2) {
			t.Fatalf("%q read as %+v, written as %q, read back as %+v", used, h, b, h2)
		}
	})
}

func TestWrite(t *testing.T) {
	src, dst := tcpAddr("203.0.113.7:4242"), tcpAddr("198.51.100.1:443")
	for _, tt := range []struct {
		version  int
		src, dst net.Addr
		want     string
	}{
		{1, src, dst, "PROXY TCP4 203.0.113.7 198.51.100.1 4242 443\r\n"},
		{1, tcpAddr("[::ffff:1.2.3.4]:1"), tcpAddr("5.6.7.8:2"), "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"},
		{1, tcpAddr("1.2.3.4:1"), tcpAddr("[2001:db8::1]:2"), "PROXY TCP6 ::ffff:1.2.3.4 2001:db8::1 1 2\r\n"},
		{1, &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: "lo"}, tcpAddr("[fe80::2]:2"), "PROXY TCP6 fe80::1 fe80::2 1 2\r\n"},
		{1, nil, dst, "PROXY UNKNOWN\r\n"},
		{1, &net.UnixAddr{Name: "/a", Net: "unix"}, &net.UnixAddr{Name: "/b", Net: "unix"}, "PROXY UNKNOWN\r\n"},
		{2, src, dst, string(proxyHeaderSeeds[6].in)},
		{2, nil, nil, string(v2(0x20, 0x00))},
		{2, &net.UnixAddr{Name: "/a", Net: "unix"}, dst, string(v2(0x20, 0x00))},
		{2, (*net.TCPAddr)(nil), dst, string(v2(0x20, 0x00))},
	} {
		var b bytes.Buffer
		if err := Write(&b, tt.version, tt.src, tt.dst); err != nil || b.String() != tt.want {
			t.Errorf("v%d %v %v: wrote %q, %v; want %q", tt.version, tt.src, tt.dst, b.String(), err, tt.want)
		}
	}
	for _, h := range []Header{
		{Version: 3},
		{Version: 1, TLVs: []TLV{{1, nil}}},
		{Version: 2, Source: &net.UnixAddr{Name: strings.Repeat("x", 109), Net: "unix"}, Destination: &net.UnixAddr{Net: "unix"}},
	} {
		if _, err := h.Format(); !errors.Is(err, ErrBadHeader) {
			t.Errorf("Format(%+v) = %v, want an error", h, err)
		}
	}
}

// askingReader gives what it holds, noting the largest buffer it was
// asked to fill.
type askingReader struct {
	r       io.Reader
	largest int
}

func (a *askingReader) Read(p []byte) (int, error) {
	a.largest = max(a.largest, len(p))
	return a.r.Read(p)
}

// TestReadV2GrowsAsBytesArrive: a version 2 header that announces 65,535
// bytes of addresses and TLVs and sends ten does not make Read set aside
// 64 KiB for them: the buffer grows with what arrives. The header is cut
// short, and says so.
func TestReadV2GrowsAsBytesArrive(t *testing.T) {
	hdr := v2(0x21, 0x11)
	binary.BigEndian.PutUint16(hdr[14:], 65535)
	r := &askingReader{r: bytes.NewReader(append(hdr, make([]byte, 10)...))}
	_, err := Read(r)
	if !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), "cut short (10 of 65535 bytes") {
		t.Errorf("Read = %v; want the header cut short at 10 of 65535 bytes", err)
	}
	if r.largest > 1024 {
		t.Errorf("Read asked for %d bytes at once, for a header that had sent 26", r.largest)
	}
	// A long header that does arrive is read whole.
	tlvs := make([]byte, 5000)
	for i := 0; i < len(tlvs); i += 1000 {
		tlvs[i], tlvs[i+1], tlvs[i+2] = 0xEE, 0x03, 0xE5 // a TLV of type 0xEE, 997 bytes
	}
	long := v2(0x21, 0x11, unhex("7f000001 7f000002 1f90 0050"), tlvs)
	if h, err := Read(bytes.NewReader(long)); err != nil || h.Source.String() != "127.0.0.1:8080" {
		t.Errorf("Read of a 5,012-byte header = %+v, %v", h, err)
	}
}
