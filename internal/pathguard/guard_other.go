//go:build unix && !linux

package pathguard

// readOnlyFS reports whether p is on a file system mounted read-only; it
// is not asked outside Linux.
func readOnlyFS(p string) bool { return false }
