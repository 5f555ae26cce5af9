package pathguard

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// setACL gives path a POSIX access list with a named user uid whose
// entry grants perm, under mask, as setfacl -m u:UID:PERM,m::MASK would.
func setACL(t *testing.T, path string, uid uint32, perm, mask uint16) {
	t.Helper()
	const all = 0xffffffff
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{0x01, 7, all}, {aclUser, perm, uid}, {aclGroupObj, 5, all}, {aclMask, mask, all}, {0x20, 5, all}} {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	if err := unix.Setxattr(path, "system.posix_acl_access", b, 0); err != nil {
		t.Fatalf("setting an access list on %s: %v", path, err)
	}
}

// TestACL: a file whose access list lets another user write it is
// refused, though its mode bits (group column: the mask) pass; one whose
// mask takes that write away, or whose entry is this user's, passes.
func TestACL(t *testing.T) {
	dir := t.TempDir()
	other := uint32(65534)
	if os.Geteuid() == 65534 {
		other = 65533
	}
	f := file(t, dir, "k.pem", 0o600)
	setACL(t, f, other, 6, 6)
	if got := why(f, false); !strings.Contains(got, "has an access list that lets user "+itoa(other)+" write it: setfacl -b "+f) {
		t.Errorf("an access list letting user %d write: %q", other, got)
	}
	g := file(t, dir, "g.pem", 0o600)
	setACL(t, g, other, 6, 4) // the mask takes the write away
	if got := why(g, false); got != "" {
		t.Errorf("an access list whose mask takes the write away: %q", got)
	}
	m := file(t, dir, "m.pem", 0o600)
	setACL(t, m, uint32(os.Geteuid()), 6, 6)
	if got := why(m, false); got != "" {
		t.Errorf("an access list letting this user write: %q", got)
	}
	// A directory the path passes through, open to another user.
	sub := mkdir(t, dir, "sub", 0o755)
	inSub := file(t, sub, "k.pem", 0o600)
	setACL(t, sub, other, 7, 7)
	if got := why(inSub, false); !strings.Contains(got, "its directory "+sub+" has an access list that lets user "+itoa(other)+" write it") {
		t.Errorf("a directory whose access list lets user %d write: %q", other, got)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
