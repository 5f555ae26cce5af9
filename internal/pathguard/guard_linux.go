package pathguard

import "golang.org/x/sys/unix"

// readOnlyFS reports whether p is on a file system mounted read-only.
func readOnlyFS(p string) bool {
	var s unix.Statfs_t
	return unix.Statfs(p, &s) == nil && s.Flags&unix.ST_RDONLY != 0
}
