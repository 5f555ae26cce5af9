package pathguard

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// readOnlyMount reports whether p is on a mount that is read-only.
func readOnlyMount(p string) bool {
	var s unix.Statfs_t
	return unix.Statfs(p, &s) == nil && s.Flags&unix.ST_RDONLY != 0
}

// The POSIX access list of a file, as Linux stores it in the extended
// attribute system.posix_acl_access: a 4-byte version (2), then entries
// of a 2-byte tag, 2-byte permissions and 4-byte id, little-endian.
const (
	aclVersion  = 2
	aclUser     = 0x02 // a named user
	aclGroupObj = 0x04 // the file's group
	aclGroup    = 0x08 // a named group
	aclMask     = 0x10 // the most a named user or any group is granted
	aclWrite    = 0x02
)

// aclWriters says which user or group other than root and this user an
// access list lets write p, or "" if it lets none (or p has none: then
// the mode bits say it all). A list that cannot be read as one is taken
// as letting others write.
func (g *guard) aclWriters(p string) string {
	buf := make([]byte, 512)
	n, err := unix.Lgetxattr(p, "system.posix_acl_access", buf)
	if err == unix.ERANGE {
		if n, err = unix.Lgetxattr(p, "system.posix_acl_access", nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Lgetxattr(p, "system.posix_acl_access", buf)
		}
	}
	if err != nil {
		return "" // none (ENODATA), or no access lists on this file system
	}
	b := buf[:n]
	if len(b) < 4 || binary.LittleEndian.Uint32(b) != aclVersion || (len(b)-4)%8 != 0 {
		return "has an access list that cannot be read"
	}
	type entry struct {
		tag, perm uint16
		id        uint32
	}
	var entries []entry
	mask := uint16(0o7)
	for e := b[4:]; len(e) >= 8; e = e[8:] {
		en := entry{binary.LittleEndian.Uint16(e), binary.LittleEndian.Uint16(e[2:]), binary.LittleEndian.Uint32(e[4:])}
		if en.tag == aclMask {
			mask = en.perm
		}
		entries = append(entries, en)
	}
	for _, en := range entries {
		if en.perm&mask&aclWrite == 0 {
			continue
		}
		switch {
		case en.tag == aclUser && en.id != 0 && int(en.id) != g.euid:
			return fmt.Sprintf("has an access list that lets user %d write it", en.id)
		case en.tag == aclGroup && !g.privateGroup(int(en.id)):
			return fmt.Sprintf("has an access list that lets group %d, which has members other than root and this process's user, write it", en.id)
		}
	}
	return ""
}
