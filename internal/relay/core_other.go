//go:build !linux

package relay

import "net"

// A Pair is two connections handed to the event core by Adopt. There is no
// event core but on Linux: Adopt always declines, and Join does the work.
type Pair struct{}

// Adopt hands the pair a, b to the event core if it can take it; elsewhere
// than Linux it never can, and returns false: Join them instead.
func (j *Joiner) Adopt(a, b net.Conn) (*Pair, bool) { return nil, false }

// Start starts moving bytes (see the Linux version); never reached here.
func (p *Pair) Start(done func(Result)) {}

// Cut ends the pair at once with a reset (see the Linux version); never
// reached here.
func (p *Pair) Cut(cause error) {}
