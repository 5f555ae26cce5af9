package dns

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// answer builds a response to q with the given records, each written as
// wire bytes by the test: what a server would send.
func answer(q []byte, rcode byte, tc bool, records ...[]byte) []byte {
	b := append([]byte(nil), q...)
	b[2] |= 0x80
	if tc {
		b[2] |= 0x02
	}
	b[3] = rcode
	binary.BigEndian.PutUint16(b[6:], uint16(len(records)))
	for _, r := range records {
		b = append(b, r...)
	}
	return b
}

// rr writes one record whose owner is a pointer to the question's name.
func rr(t Type, ttl uint32, data []byte) []byte {
	b := []byte{0xc0, 12}
	b = binary.BigEndian.AppendUint16(b, uint16(t))
	b = binary.BigEndian.AppendUint16(b, classIN)
	b = binary.BigEndian.AppendUint32(b, ttl)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

func srvData(prio, weight, port uint16, target string) []byte {
	b := binary.BigEndian.AppendUint16(nil, prio)
	b = binary.BigEndian.AppendUint16(b, weight)
	b = binary.BigEndian.AppendUint16(b, port)
	b, _ = appendName(b, target)
	return b
}

func TestParseAnswer(t *testing.T) {
	q, err := NewQuery(0xbeef, "_xmpp._tcp.Example.test.", TypeSRV)
	if err != nil {
		t.Fatal(err)
	}
	resp := answer(q, 0, false,
		rr(TypeSRV, 60, srvData(10, 5, 5222, "a.example.test")),
		rr(TypeSRV, 30, srvData(20, 0, 5223, "")),
		rr(TypeA, 7, []byte{192, 0, 2, 1}),
		rr(Type(99), 7, []byte{1, 2, 3}), // unknown: skipped
	)
	m, err := Parse(resp)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Response || m.ID != 0xbeef || m.QType != TypeSRV || m.QName != "_xmpp._tcp.Example.test" {
		t.Fatalf("header: %+v", m)
	}
	if len(m.Answers) != 3 {
		t.Fatalf("answers: %+v", m.Answers)
	}
	if got := m.Answers[0].SRV; got != (SRV{10, 5, 5222, "a.example.test"}) || m.Answers[0].TTL != 60 {
		t.Errorf("first SRV: %+v", m.Answers[0])
	}
	if got := m.Answers[1].SRV.Target; got != "." {
		t.Errorf("root target read as %q, want \".\"", got)
	}
	if got := m.Answers[2].Addr; got != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("A: %v", got)
	}
	recs, ttl, err := fromAnswer(m, "_xmpp._tcp.example.test", TypeSRV)
	if err != nil || len(recs) != 2 || ttl.Seconds() != 30 {
		t.Errorf("fromAnswer: %v records, TTL %v, %v; want 2, 30s (the least), nil", len(recs), ttl, err)
	}
}

func TestParseRejects(t *testing.T) {
	q, _ := NewQuery(1, "a.test", TypeA)
	for name, b := range map[string][]byte{
		"short header":      q[:11],
		"question cut":      q[:len(q)-2],
		"A of 3 bytes":      answer(q, 0, false, rr(TypeA, 1, []byte{1, 2, 3})),
		"data past the end": answer(q, 0, false, rr(TypeA, 1, []byte{1, 2, 3, 4}))[:len(q)+12],
		"forward pointer":   append(append([]byte(nil), q[:12]...), 0xc0, 20),
		"self pointer":      append(append([]byte(nil), q[:12]...), 0xc0, 12),
		// A label, then a pointer back to it: reading it again would
		// find the same pointer forever.
		"pointer loop":  append(append([]byte(nil), q[:12]...), 1, 'a', 0xc0, 12),
		"label type 01": append(append([]byte(nil), q[:12]...), 0x40, 0),
	} {
		if _, err := Parse(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: Parse = %v, want ErrFormat", name, err)
		}
	}
}

func TestNewQueryRejects(t *testing.T) {
	for _, name := range []string{"a..b", string(make([]byte, 64)) + ".test", "x." + string(make([]byte, 250))} {
		if _, err := NewQuery(1, name, TypeA); err == nil {
			t.Errorf("NewQuery(%q) took a name that is not one", name)
		}
	}
}

// FuzzParse: Parse never panics or loops, and what it reads of a name it
// can write back.
func FuzzParse(f *testing.F) {
	q, _ := NewQuery(7, "_http._tcp.example.test", TypeSRV)
	f.Add(q)
	f.Add(answer(q, 0, false, rr(TypeSRV, 60, srvData(1, 2, 3, "t.example")), rr(TypeAAAA, 5, make([]byte, 16))))
	f.Add(answer(q, 3, true, rr(TypeCNAME, 5, []byte{0xc0, 12})))
	soa := append(append([]byte{0xc0, 12, 0xc0, 12}, make([]byte, 16)...), 0, 0, 0, 9)
	f.Add(answer(q, 0, false, rr(TypeSOA, 5, soa)))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		for _, sec := range [][]Record{m.Answers, m.Authority, m.Additional} {
			for _, r := range sec {
				if r.Name != "" {
					if _, err := appendName(nil, r.Name); err != nil {
						t.Fatalf("read a name it cannot write: %q: %v", r.Name, err)
					}
				}
			}
		}
	})
}
