//go:build !linux

package endpoint

// socketListening cannot tell, elsewhere than Linux, whether a socket file
// has a listener without connecting to it, which it will not do.
func socketListening(path string) (listening, known bool) { return false, false }
