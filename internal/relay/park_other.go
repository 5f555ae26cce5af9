//go:build !linux

package relay

import "net"

// A Parked pair is two connections joined with no goroutine while idle.
// There is no watcher but on Linux: Park always declines, and Join does
// the work.
type Parked struct{ pair }

// Park prepares a pair to be joined with no goroutine while idle; elsewhere
// than Linux it never can, and returns false: Join them instead.
func (j *Joiner) Park(a, b net.Conn) (*Parked, bool) { return nil, false }

// Start starts the pair (see the Linux version); never reached here.
func (p *Parked) Start(done func(Result)) {}

// Cut ends the pair with a reset (see the Linux version); never reached
// here.
func (p *Parked) Cut(cause error) {}

func (p *Parked) unwatchLocked() {}
func (p *Parked) settle()        {}
