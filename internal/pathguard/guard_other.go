//go:build unix && !linux

package pathguard

// readOnlyMount reports whether p is on a mount that is read-only; it is
// not asked outside Linux, so there directories are held to the mode
// rules on read-only mounts too.
func readOnlyMount(p string) bool { return false }
