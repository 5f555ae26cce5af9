package balance

import (
	"slices"
	"sync"
	"time"
)

// backoff is how long a member that failed fails times in a row is
// passed over: BackoffMin, doubling, at most BackoffMax.
func backoff(fails int) time.Duration {
	return min(BackoffMin<<min(fails-1, 16), BackoffMax)
}

// A Backoff passes over, for a while, the members of a set that changes
// (the targets an SRV lookup returns) that failed, as a Pool does for a
// fixed list: BackoffMin, doubling while they keep failing, up to
// BackoffMax, ended by a success. Members are named by a key. The zero
// value is ready; it is safe for concurrent use.
type Backoff struct {
	// Now is the clock; a test may set it before first use.
	Now func() time.Time

	mu sync.Mutex
	m  map[string]backoffState
}

type backoffState struct {
	fails int
	until time.Time
}

// maxBackedOff bounds the members a Backoff remembers: the keys come from
// DNS answers, which a server could make many.
const maxBackedOff = 1024

func (b *Backoff) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// Failed notes that connecting to key failed, and returns how long it is
// now passed over.
func (b *Backoff) Failed(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if b.m == nil {
		b.m = map[string]backoffState{}
	}
	if _, known := b.m[key]; !known && len(b.m) >= maxBackedOff {
		for k, s := range b.m {
			if !now.Before(s.until) {
				delete(b.m, k)
			}
		}
		if len(b.m) >= maxBackedOff {
			clear(b.m)
		}
	}
	s := b.m[key]
	s.fails++
	d := backoff(s.fails)
	s.until = now.Add(d)
	b.m[key] = s
	return d
}

// Succeeded notes that connecting to key worked, ending its backoff, and
// reports whether it had failed before (it is back).
func (b *Backoff) Succeeded(key string) (wasDown bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, wasDown = b.m[key]
	delete(b.m, key)
	return wasDown
}

// Arrange returns items with those whose key is passed over now moved to
// the end, the one whose backoff ends first first; the others keep their
// order. Nothing is left out: a member passed over is still tried when
// all the others have failed.
func Arrange[T any](b *Backoff, items []T, key func(T) string) []T {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var up, down []T
	var until []time.Time
	for _, it := range items {
		if s, ok := b.m[key(it)]; ok && now.Before(s.until) {
			down = append(down, it)
			until = append(until, s.until)
			continue
		}
		up = append(up, it)
	}
	if len(down) == 0 {
		return items
	}
	idx := make([]int, len(down))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(i, j int) int { return until[i].Compare(until[j]) })
	for _, i := range idx {
		up = append(up, down[i])
	}
	return up
}
