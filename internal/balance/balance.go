// Package balance chooses among several backends: the order in which one
// connection tries them under a policy (haproxy's names: first,
// roundrobin, random, leastconn), and which to pass over for a while
// because connecting to them failed, with a backoff that doubles at each
// failure in a row. It knows nothing of endpoints or sockets: a backend is
// an index, and the caller reports what happened.
package balance

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// A Policy says in which order a connection tries the backends.
type Policy int

const (
	// First tries them in the order given: failover, the first that
	// works takes every connection.
	First Policy = iota
	// RoundRobin starts each connection at the backend after the one
	// the previous connection started at, among those not backed off.
	RoundRobin
	// Random starts at a backend chosen uniformly at random, then tries
	// the others in random order.
	Random
	// LeastConn starts at the backend with the fewest connections open
	// (Acquire and Release count them), round robin among equals.
	LeastConn
)

// Policies are the policies' names, in order.
var Policies = []string{"first", "roundrobin", "random", "leastconn"}

// String returns the policy's name as policy= takes it.
func (p Policy) String() string {
	if p >= 0 && int(p) < len(Policies) {
		return Policies[p]
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy reads a policy's name.
func ParsePolicy(s string) (Policy, bool) {
	i := slices.Index(Policies, s)
	return Policy(i), i >= 0
}

// Backoff bounds: the first failure passes a backend over for
// BackoffMin, each further failure in a row doubles it, up to BackoffMax.
// A success ends it.
const (
	BackoffMin = time.Second
	BackoffMax = 30 * time.Second
)

// A Pool is the state of one list of backends. It is safe for
// concurrent use.
type Pool struct {
	n      int
	policy Policy
	// Now is the clock; a test may set it before first use.
	Now func() time.Time

	mu     sync.Mutex
	next   int // round robin: where the next connection starts
	active []int
	fails  []int       // failures in a row
	until  []time.Time // passed over until then
	rnd    *rand.Rand
}

// New returns the pool of n backends under policy p.
func New(n int, p Policy) *Pool {
	return &Pool{n: n, policy: p, active: make([]int, n), fails: make([]int, n), until: make([]time.Time, n),
		rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

func (p *Pool) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Order returns the backends one connection should try, in order: those
// not backed off, as the policy arranges them, then those backed off, the
// one whose backoff ends first first. A backed-off backend is thus still
// tried when all the others have failed: a connection is never refused
// without trying everything, and the backoff only keeps a backend that
// failed from being tried first.
func (p *Pool) Order() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	up := make([]int, 0, p.n)
	var down []int
	for i := range p.n {
		if now.Before(p.until[i]) {
			down = append(down, i)
		} else {
			up = append(up, i)
		}
	}
	switch p.policy {
	case RoundRobin, LeastConn:
		// Rotate to start at the first backend up from next, and move
		// next past it: each connection starts one further on, among
		// the backends that are up.
		if len(up) > 0 {
			k := 0
			for k < len(up) && up[k] < p.next {
				k++
			}
			k %= len(up)
			up = append(up[k:], up[:k]...)
			p.next = (up[0] + 1) % p.n
		}
		if p.policy == LeastConn {
			// Stable: among equals, the round robin order stands.
			slices.SortStableFunc(up, func(a, b int) int { return p.active[a] - p.active[b] })
		}
	case Random:
		p.rnd.Shuffle(len(up), func(i, j int) { up[i], up[j] = up[j], up[i] })
	}
	slices.SortStableFunc(down, func(a, b int) int { return p.until[a].Compare(p.until[b]) })
	return append(up, down...)
}

// Failed notes that connecting to backend i failed, and returns how long
// it is now passed over.
func (p *Pool) Failed(i int) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fails[i]++
	d := backoff(p.fails[i])
	p.until[i] = p.now().Add(d)
	return d
}

// Succeeded notes that connecting to backend i worked: its backoff ends,
// and it reports whether there was one (it is back).
func (p *Pool) Succeeded(i int) (wasDown bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	wasDown = p.fails[i] > 0
	p.fails[i], p.until[i] = 0, time.Time{}
	return wasDown
}

// Took notes that backend i took a connection that was offered first to
// a backend that failed: round robin goes on after i, so that i does not
// take the next connection too.
func (p *Pool) Took(i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.policy == RoundRobin || p.policy == LeastConn {
		p.next = (i + 1) % p.n
	}
}

// Acquire counts a connection open to backend i, for LeastConn.
func (p *Pool) Acquire(i int) {
	p.mu.Lock()
	p.active[i]++
	p.mu.Unlock()
}

// Release counts one of backend i's connections closed.
func (p *Pool) Release(i int) {
	p.mu.Lock()
	p.active[i]--
	p.mu.Unlock()
}

// Active returns how many connections are open to backend i.
func (p *Pool) Active(i int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active[i]
}
