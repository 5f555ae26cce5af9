//go:build unix && !linux

package pathguard

// readOnlyMount reports whether p is on a mount that is read-only; it is
// not asked outside Linux, so there directories are held to the mode
// rules on read-only mounts too.
func readOnlyMount(p string) bool { return false }

// aclWriters is not asked outside Linux, whose access lists alone it reads.
func (g *guard) aclWriters(p string) string { return "" }
