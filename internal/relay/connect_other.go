//go:build !linux

package relay

import "time"

// A DialError is a pair's Result error when its connect failed; the event
// core, and so AdoptConnecting, is Linux's.
type DialError struct{ Err error }

func (e *DialError) Error() string { return e.Err.Error() }

// Unwrap returns the connect's error.
func (e *DialError) Unwrap() error { return e.Err }

// Connecting says how AdoptConnecting completes a connect (Linux only).
type Connecting struct {
	Timeout time.Duration
	Wrap    func(error) error
	Done    func(took time.Duration)
}

// AdoptConnecting returns false: there is no event core here.
func (j *Joiner) AdoptConnecting(a, b int, c Connecting) (*Pair, bool) { return nil, false }

// CoreAvailable returns false: there is no event core here.
func CoreAvailable() bool { return false }
