package relay

import (
	"errors"
	"net/netip"
	"sync"
)

// ErrPeerLimit is the Result of a connection reset as it was accepted
// because its peer had as many connections open as a PeerCounter allows.
var ErrPeerLimit = errors.New("too many connections from this peer; connection reset")

// PeerKey is what a per-peer limit counts by: an IPv4 address, or the /64
// of an IPv6 address (one host's share of a network, which a single
// client can hold whole). An IPv4 address mapped into IPv6 is the IPv4
// address.
func PeerKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// A PeerCounter counts the connections open from each peer (PeerKey) and
// refuses one more than its limit, so that no one client can take every
// slot of --max-conns, nor every descriptor. Its methods may be called
// from any goroutine; a nil *PeerCounter admits everything.
type PeerCounter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Prefix]int
}

// NewPeerCounter returns a counter that admits at most max connections
// from each peer at once, or nil (no limit) if max is not positive.
func NewPeerCounter(max int) *PeerCounter {
	if max <= 0 {
		return nil
	}
	return &PeerCounter{max: max, n: map[netip.Prefix]int{}}
}

// Max is the limit, 0 for none.
func (c *PeerCounter) Max() int {
	if c == nil {
		return 0
	}
	return c.max
}

// Admit counts a connection from a, unless a has the limit open already:
// it returns false then, and counts nothing. An invalid address (a peer
// that is not IP) is admitted uncounted.
func (c *PeerCounter) Admit(a netip.Addr) bool {
	if c == nil || !a.IsValid() {
		return true
	}
	k := PeerKey(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k] >= c.max {
		return false
	}
	c.n[k]++
	return true
}

// Release uncounts a connection that Admit counted, once it has ended.
func (c *PeerCounter) Release(a netip.Addr) {
	if c == nil || !a.IsValid() {
		return
	}
	k := PeerKey(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k] <= 1 {
		delete(c.n, k)
		return
	}
	c.n[k]--
}
