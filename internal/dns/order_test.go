package dns

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOrderPriority(t *testing.T) {
	recs := []SRV{{30, 5, 1, "c"}, {10, 5, 1, "a1"}, {20, 5, 1, "b"}, {10, 5, 1, "a2"}}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		got := Order(recs, rnd.IntN)
		if got[0].Priority != 10 || got[1].Priority != 10 || got[2].Target != "b" || got[3].Target != "c" {
			t.Fatalf("order %v: want both of priority 10, then b, then c", got)
		}
	}
}

// TestOrderWeights checks the proportions of the first choice against the
// RFC's draw exactly: with a fixed seed the counts are fixed, and the
// bound (five standard deviations) would hold for any seed but about one
// in a few million.
func TestOrderWeights(t *testing.T) {
	recs := []SRV{{1, 60, 1, "c"}, {1, 10, 1, "a"}, {1, 30, 1, "b"}, {1, 0, 1, "z"}}
	// Sorted by weight: z(0) a(10) b(30) c(60); the draw is 0..100: z
	// takes 0, a 1..10, b 11..40, c 41..100.
	want := map[string]float64{"z": 1.0 / 101, "a": 10.0 / 101, "b": 30.0 / 101, "c": 60.0 / 101}
	const n = 20000
	rnd := rand.New(rand.NewPCG(42, 14))
	count := map[string]int{}
	for range n {
		count[Order(recs, rnd.IntN)[0].Target]++
	}
	for target, p := range want {
		checkBinomial(t, target, count[target], n, p)
	}
}

// checkBinomial fails if got, out of n draws of probability p, is more
// than five standard deviations from n*p.
func checkBinomial(t *testing.T, what string, got, n int, p float64) {
	t.Helper()
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	if d := float64(got) - mean; d > 5*sd+1 || -d > 5*sd+1 {
		t.Errorf("%s chosen %d times in %d, want %.0f ± %.0f", what, got, n, mean, 5*sd+1)
	}
}

func TestOrderAllWeightsZero(t *testing.T) {
	recs := []SRV{{1, 0, 1, "a"}, {1, 0, 1, "b"}, {1, 0, 1, "c"}}
	got := Order(recs, rand.IntN)
	for i, r := range got {
		if r != recs[i] {
			t.Fatalf("weights all 0: order %v, want as given", got)
		}
	}
}

func TestOrderKeepsEverything(t *testing.T) {
	recs := []SRV{{2, 1, 1, "a"}, {1, 0, 2, "b"}, {1, 7, 3, "c"}, {2, 0, 4, "d"}, {0, 65535, 5, "e"}}
	got := Order(recs, rand.IntN)
	if len(got) != len(recs) {
		t.Fatalf("%v", got)
	}
	seen := map[SRV]bool{}
	for _, r := range got {
		seen[r] = true
	}
	for _, r := range recs {
		if !seen[r] {
			t.Fatalf("%v lost from %v", r, got)
		}
	}
}

func TestCacheTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	c := Cache[int]{Now: func() time.Time { return now }}
	c.Put("k", 1, 5*time.Second)
	c.Put("zero", 2, 0)
	if v, ok := c.Get("k"); !ok || v != 1 {
		t.Fatal("a fresh entry is missing")
	}
	if _, ok := c.Get("zero"); ok {
		t.Fatal("a TTL of 0 was cached")
	}
	now = now.Add(5 * time.Second)
	if _, ok := c.Get("k"); ok {
		t.Fatal("an entry outlived its TTL")
	}
}

// TestCacheFetchShared: callers that miss one key at once share one
// lookup; when the one doing the lookup gives up (its context ends), a
// caller still waiting looks up itself rather than fail.
func TestCacheFetchShared(t *testing.T) {
	var c Cache[int]
	var calls atomic.Int32
	release := make(chan struct{})
	lookup := func(ctx context.Context) (int, time.Duration, error) {
		calls.Add(1)
		select {
		case <-release:
			return 7, time.Hour, nil
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	const n = 20
	var wg sync.WaitGroup
	results := make(chan int, n)
	for range n {
		wg.Go(func() {
			v, err := c.Fetch(context.Background(), "k", lookup)
			if err != nil {
				t.Error(err)
			}
			results <- v
		})
	}
	for calls.Load() == 0 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != 7 {
			t.Fatalf("got %d", v)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("%d lookups for %d callers at once, want 1", got, n)
	}

	// The caller doing the lookup gives up; the one waiting goes on.
	var c2 Cache[int]
	calls.Store(0)
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	started := make(chan struct{})
	leaderDone := make(chan error)
	go func() {
		_, err := c2.Fetch(leaderCtx, "k", func(ctx context.Context) (int, time.Duration, error) {
			calls.Add(1)
			close(started)
			<-ctx.Done()
			return 0, 0, ctx.Err()
		})
		leaderDone <- err
	}()
	<-started
	followerDone := make(chan int)
	go func() {
		v, err := c2.Fetch(context.Background(), "k", func(context.Context) (int, time.Duration, error) {
			calls.Add(1)
			return 9, time.Hour, nil
		})
		if err != nil {
			t.Error(err)
		}
		followerDone <- v
	}()
	// The follower is waiting on the leader's lookup, or about to.
	cancelLeader()
	if err := <-leaderDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v", err)
	}
	if v := <-followerDone; v != 9 {
		t.Fatalf("follower got %d, want its own lookup's 9", v)
	}
}
