package balance

import (
	"slices"
	"testing"
	"time"
)

// clock is a test's time, moved by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newPool(n int, p Policy) (*Pool, *clock) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	pool := New(n, p)
	pool.Now = c.now
	return pool, c
}

func TestRoundRobinExact(t *testing.T) {
	p, _ := newPool(3, RoundRobin)
	var firsts []int
	for range 9 {
		firsts = append(firsts, p.Order()[0])
	}
	if want := []int{0, 1, 2, 0, 1, 2, 0, 1, 2}; !slices.Equal(firsts, want) {
		t.Fatalf("first choices %v, want %v", firsts, want)
	}
	if got := p.Order(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("a whole order: %v, want the rest after the first", got)
	}
}

func TestRoundRobinSkipsBackedOff(t *testing.T) {
	p, c := newPool(3, RoundRobin)
	p.Failed(1)
	count := make([]int, 3)
	for range 10 {
		o := p.Order()
		count[o[0]]++
		if o[len(o)-1] != 1 {
			t.Fatalf("order %v: the backed-off backend must come last", o)
		}
	}
	if count[0] != 5 || count[2] != 5 {
		t.Fatalf("with backend 1 backed off: %v, want 5 and 5 to the others", count)
	}
	c.t = c.t.Add(BackoffMin)
	seen := map[int]bool{}
	for range 3 {
		seen[p.Order()[0]] = true
	}
	if !seen[1] {
		t.Fatal("the backoff is over, but backend 1 is not tried first again")
	}
}

func TestBackoffDoubles(t *testing.T) {
	p, _ := newPool(2, First)
	var got []time.Duration
	for range 7 {
		got = append(got, p.Failed(0))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("backoffs %v, want %v seconds", got, want)
		}
	}
	if o := p.Order(); !slices.Equal(o, []int{1, 0}) {
		t.Fatalf("first with 0 backed off: %v", o)
	}
	if !p.Succeeded(0) || p.Succeeded(0) {
		t.Fatal("Succeeded reports a backend back once")
	}
	if o := p.Order(); !slices.Equal(o, []int{0, 1}) {
		t.Fatalf("first after 0 came back: %v", o)
	}
}

func TestLeastConn(t *testing.T) {
	p, _ := newPool(3, LeastConn)
	// Equal counts: round robin.
	for want := range 3 {
		i := p.Order()[0]
		if i != want {
			t.Fatalf("equal counts: chose %d, want %d", i, want)
		}
		p.Acquire(i)
	}
	p.Release(1)
	if i := p.Order()[0]; i != 1 {
		t.Fatalf("backend 1 has the fewest: chose %d", i)
	}
	p.Acquire(0)
	if o := p.Order(); o[len(o)-1] != 0 {
		t.Fatalf("backend 0 has the most: order %v", o)
	}
}

func TestRandomCoversAll(t *testing.T) {
	p, _ := newPool(4, Random)
	seen := make([]int, 4)
	for range 400 {
		o := p.Order()
		if len(o) != 4 {
			t.Fatalf("order %v", o)
		}
		seen[o[0]]++
	}
	for i, n := range seen {
		// 400 draws of 1/4: below 40 is more than 9 standard deviations off.
		if n < 40 {
			t.Fatalf("random first choices %v: backend %d is hardly chosen", seen, i)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for i, name := range Policies {
		if p, ok := ParsePolicy(name); !ok || int(p) != i || p.String() != name {
			t.Errorf("%s", name)
		}
	}
	if _, ok := ParsePolicy("source"); ok {
		t.Error("an unknown policy was taken")
	}
}

// A connection that a failed backend passed on to the next: round robin
// goes on after the one that took it.
func TestRoundRobinAfterFailover(t *testing.T) {
	p, _ := newPool(3, RoundRobin)
	var took []int
	for range 4 {
		o := p.Order()
		i := o[0]
		if i == 2 {
			p.Failed(2)
			i = o[1]
			p.Took(i)
		}
		took = append(took, i)
	}
	if want := []int{0, 1, 0, 1}; !slices.Equal(took, want) {
		t.Fatalf("took %v, want %v", took, want)
	}
}

// TestBackoffArrange: a failed member goes to the end for 1 s, doubling
// while it fails, until a success; members passed over keep none out.
func TestBackoffArrange(t *testing.T) {
	now := time.Unix(1000, 0)
	b := &Backoff{Now: func() time.Time { return now }}
	id := func(s string) string { return s }
	in := []string{"a", "b", "c"}
	if got := Arrange(b, in, id); !slices.Equal(got, in) {
		t.Fatalf("nothing failed: %v", got)
	}
	if d := b.Failed("a"); d != BackoffMin {
		t.Fatalf("first failure: %v", d)
	}
	if d := b.Failed("a"); d != 2*BackoffMin {
		t.Fatalf("second failure: %v", d)
	}
	b.Failed("b") // until 1001; a until 1002
	if got := Arrange(b, in, id); !slices.Equal(got, []string{"c", "b", "a"}) {
		t.Fatalf("a and b failed: %v, want c, then b (back first), then a", got)
	}
	now = now.Add(1500 * time.Millisecond)
	if got := Arrange(b, in, id); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("b's backoff over: %v", got)
	}
	if !b.Succeeded("a") || b.Succeeded("c") {
		t.Fatal("Succeeded must say whether the member had failed")
	}
	if got := Arrange(b, in, id); !slices.Equal(got, in) {
		t.Fatalf("after a's success: %v", got)
	}
	for range 20 {
		b.Failed("z")
	}
	if d := b.Failed("z"); d != BackoffMax {
		t.Fatalf("many failures: %v, want the cap %v", d, BackoffMax)
	}
}
