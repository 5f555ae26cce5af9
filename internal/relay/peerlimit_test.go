package relay

import (
	"net/netip"
	"testing"
)

// TestPeerCounter: at most max at once from one peer, an IPv6 /64 being
// one peer and an IPv4-mapped address its IPv4 one; a release makes room;
// nil and non-IP peers are not limited.
func TestPeerCounter(t *testing.T) {
	c := NewPeerCounter(2)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	six1, six2 := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	other6 := netip.MustParseAddr("2001:db8:1:3::1")
	for _, s := range []struct {
		admit bool // else release
		addr  netip.Addr
		want  bool
	}{
		{true, a, true}, {true, mapped, true}, {true, a, false}, // mapped is a
		{true, b, true},
		{false, a, true}, {true, a, true}, {true, a, false},
		{true, six1, true}, {true, six2, true}, {true, six1, false}, // one /64
		{true, other6, true},
		{true, netip.Addr{}, true}, {true, netip.Addr{}, true}, {true, netip.Addr{}, true},
	} {
		if !s.admit {
			c.Release(s.addr)
			continue
		}
		if got := c.Admit(s.addr); got != s.want {
			t.Errorf("Admit(%v) = %v, want %v", s.addr, got, s.want)
		}
	}
	var none *PeerCounter
	for range 5 {
		if !none.Admit(a) {
			t.Fatal("a nil PeerCounter refused")
		}
	}
	if NewPeerCounter(0) != nil || none.Max() != 0 || c.Max() != 2 {
		t.Error("NewPeerCounter(0) is not nil, or Max is wrong")
	}
	for _, x := range []netip.Addr{a, a, mapped, b, six1, six2, other6} {
		c.Release(x)
	}
	if len(c.n) != 0 {
		t.Errorf("after every release the counter holds %v", c.n)
	}
}
