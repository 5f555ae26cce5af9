//go:build !linux

package relay

// CoreAvailable returns false: there is no event core here, and so no
// Serve (the relay's lean path) either.
func CoreAvailable() bool { return false }
