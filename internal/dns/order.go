package dns

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Order returns the SRV records in the order RFC 2782 says to try them:
// by priority, lowest first, and within a priority by a weighted random
// draw, without replacement. rnd(n) must return a uniform random number in
// [0, n); it is a parameter so that a test can fix the sequence.
//
// Within one priority the RFC's selection is followed to the letter:
// the records not yet ordered are listed with those of weight 0 first
// (here, and in Twisted, all by ascending weight); a number is drawn uniformly from 0 to the sum of their weights,
// inclusive; and the first record whose running sum of weights is at
// least that number is the next. A record of weight 0 is therefore
// chosen first only when the draw is 0 (a chance of 1 in the sum plus
// 1), and records of weight 0 among others come last in practice, as
// the RFC intends ("a very small chance of being selected"); when all
// the weights are 0 the draw is always 0 and the records keep the
// order the server gave, which the RFC leaves open. Twisted's
// SRVConnector.pickServer makes the same draw from the same list, so the
// two choose with the same chances.
func Order(recs []SRV, rnd func(n int) int) []SRV {
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b SRV) int { return int(a.Priority) - int(b.Priority) })
	out := make([]SRV, 0, len(sorted))
	for len(sorted) > 0 {
		// The records of the lowest priority left.
		n := 1
		for n < len(sorted) && sorted[n].Priority == sorted[0].Priority {
			n++
		}
		group := sorted[:n]
		// Weight 0 first, as the RFC asks; the rest by weight too,
		// which the RFC allows ("in any order") and Twisted does, so
		// that both give the same chances: the first record listed
		// takes the draw of 0 besides its weight's share.
		slices.SortStableFunc(group, func(a, b SRV) int { return int(a.Weight) - int(b.Weight) })
		for len(group) > 0 {
			sum := 0
			for _, r := range group {
				sum += int(r.Weight)
			}
			draw := rnd(sum + 1)
			pick, running := len(group)-1, 0
			for i, r := range group {
				running += int(r.Weight)
				if running >= draw {
					pick = i
					break
				}
			}
			out = append(out, group[pick])
			group = slices.Delete(group, pick, pick+1)
		}
		sorted = sorted[n:]
	}
	return out
}

// A Cache keeps answers for their TTL. The zero value is ready; Now, if
// set, is the clock (a test's).
type Cache[V any] struct {
	Now func() time.Time

	mu       sync.Mutex
	m        map[string]cached[V]
	inflight map[string]*flight[V]
}

// A flight is one lookup that callers of Fetch for the same key share.
type flight[V any] struct {
	done chan struct{}
	v    V
	err  error
}

type cached[V any] struct {
	v       V
	expires time.Time
}

func (c *Cache[V]) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Get returns the value under key if it has not expired.
func (c *Cache[V]) Get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Fetch returns the value under key: cached, or looked up with lookup
// and cached for the TTL it returns. Callers that miss the same key at
// once share one lookup, so that a relay's connections do not each send
// a query when an answer expires. A caller whose context ends stops
// waiting; if the lookup it waited for ended because its own caller's
// context did, it looks up itself.
func (c *Cache[V]) Fetch(ctx context.Context, key string, lookup func(context.Context) (V, time.Duration, error)) (V, error) {
	for {
		c.mu.Lock()
		if e, ok := c.m[key]; ok && c.now().Before(e.expires) {
			c.mu.Unlock()
			return e.v, nil
		}
		f, shared := c.inflight[key]
		if !shared {
			f = &flight[V]{done: make(chan struct{})}
			if c.inflight == nil {
				c.inflight = map[string]*flight[V]{}
			}
			c.inflight[key] = f
		}
		c.mu.Unlock()
		if !shared {
			var ttl time.Duration
			f.v, ttl, f.err = lookup(ctx)
			if f.err == nil {
				c.Put(key, f.v, ttl)
			}
			c.mu.Lock()
			delete(c.inflight, key)
			c.mu.Unlock()
			close(f.done)
			return f.v, f.err
		}
		select {
		case <-f.done:
			if f.err == nil || !isContextError(f.err) {
				return f.v, f.err
			}
			// The lookup ended with its caller's context; ours goes on.
		case <-ctx.Done():
			var zero V
			return zero, context.Cause(ctx)
		}
	}
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// maxCached bounds the entries of a Cache. The keys come from endpoint
// strings, so there are few; the bound is against a bug, not a load.
const maxCached = 1024

// Put keeps v under key for ttl; a ttl of zero or less keeps nothing (a
// TTL of 0 means "do not cache", RFC 1035 3.2.1).
func (c *Cache[V]) Put(key string, v V, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cached[V]{}
	}
	now := c.now()
	if len(c.m) >= maxCached {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCached {
			clear(c.m)
		}
	}
	c.m[key] = cached[V]{v, now.Add(ttl)}
}
