//go:build unix

package pathguard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mkdir makes a directory with exactly mode (no umask) and returns it.
func mkdir(t *testing.T, parent, name string, mode os.FileMode) string {
	t.Helper()
	d := filepath.Join(parent, name)
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	return d
}

// file writes a file with exactly mode and returns it.
func file(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, mode); err != nil {
		t.Fatal(err)
	}
	return f
}

// why is Check's reason alone.
func why(p string, listing bool) string {
	_, w := Check(p, listing)
	return w
}

// TestCheck: a file, the directory it is listed from, every directory the
// path passes through and every symbolic link it follows, each writable
// only by root or this user, or refused with the one that is not and the
// fix; resolved as the kernel resolves it, so that a ".." after a link
// climbs from where the link leads.
func TestCheck(t *testing.T) {
	base := t.TempDir() // 0700, under /tmp (sticky, writable by everyone)
	safe := mkdir(t, base, "safe", 0o755)
	open := mkdir(t, base, "open", 0o777)
	sticky := mkdir(t, base, "sticky", 0o777|os.ModeSticky)
	link := func(dir, name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file(t, safe, "good.pem", 0o644)
	for _, c := range []struct {
		name    string
		path    string
		listing bool
		want    string // in the answer; "" for none
	}{
		{"a file of this user, 0644", good, false, ""},
		{"a file writable by everyone", file(t, safe, "w.pem", 0o666), false, "is writable by every user (-rw-rw-rw-): chmod o-w " + filepath.Join(safe, "w.pem")},
		{"a file in a directory writable by everyone", file(t, open, "f.pem", 0o600), false, "its directory " + open + " is writable by every user"},
		{"a file of this user in a sticky directory", file(t, sticky, "f.pem", 0o600), false, ""},
		{"a directory of this user listed", safe, true, ""},
		{"a sticky directory listed: others add files", sticky, true, "is writable by every user (dtrwxrwxrwx; the sticky bit stops others replacing its files, not adding their own): use a directory of its own"},
		{"a directory writable by everyone listed", open, true, "is writable by every user"},
		{"a symbolic link in an open directory to a good file", link(open, "l.pem", good), false, "its directory " + open},
		{"a symbolic link in a good directory to a file in an open one", link(safe, "l.pem", filepath.Join(open, "f.pem")), false, "its directory " + open},
		{"a symbolic link in a good directory to a good file", link(safe, "l2.pem", good), false, ""},
		{"a relative symbolic link to a good file", link(safe, "rel.pem", "good.pem"), false, ""},
		{"a '..' after a link into an open directory", link(safe, "into", filepath.Join(open, "sub")) + "/../f.pem", false, "its directory " + open},
		{"a link to a link in an open directory to a good directory", filepath.Join(link(safe, "l1", link(open, "l2", safe)), "good.pem"), false, "its directory " + open},
		{"a path that does not resolve", filepath.Join(safe, "none.pem"), false, "cannot be checked"},
		{"a relative path", "good.pem", false, ""},
	} {
		if !filepath.IsAbs(c.path) {
			t.Chdir(safe)
		}
		fi, got := Check(c.path, c.listing)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: Check(%s, %v) = %q, want %q", c.name, c.path, c.listing, got, c.want)
		}
		if got == "" && fi == nil {
			t.Errorf("%s: Check(%s) passed and returned no file", c.name, c.path)
		}
	}
	if fi, got := Check(filepath.Join(safe, "l2.pem"), false); got != "" || !sameAs(t, fi, good) {
		t.Errorf("Check of a link to good.pem: %v, %q; want good.pem's file", fi, got)
	}
	// A file or directory of another user, or one writable by another
	// group: only root can make one here, and this machine's CI is root.
	if os.Geteuid() == 0 {
		theirs := file(t, safe, "theirs.pem", 0o600)
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if got := why(theirs, false); !strings.Contains(got, "is owned by user 65534, neither root nor this process's user (0)") {
			t.Errorf("a file of user 65534: %q", got)
		}
		// A link of another user's in a sticky directory: they can point
		// it elsewhere, as /tmp's links can be without protected_symlinks.
		theirLink := link(sticky, "theirs.pem", good)
		if err := os.Lchown(theirLink, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if got := why(theirLink, false); !strings.Contains(got, "its symbolic link "+theirLink+" is owned by user 65534") {
			t.Errorf("a link of user 65534 in a sticky directory: %q", got)
		}
		groupDir := mkdir(t, base, "group", 0o775)
		if err := os.Chown(groupDir, 0, 65534); err != nil {
			t.Fatal(err)
		}
		inGroup := file(t, groupDir, "f.pem", 0o600)
		if got := why(inGroup, false); !strings.Contains(got, "its directory "+groupDir+" is writable by group 65534") {
			t.Errorf("a file in a directory writable by group 65534: %q", got)
		}
		// A group no group file knows: its members cannot be told.
		if err := os.Chown(groupDir, 0, 4242); err != nil {
			t.Fatal(err)
		}
		if got := why(inGroup, false); !strings.Contains(got, "its directory "+groupDir+" is writable by group 4242") {
			t.Errorf("a file in a directory writable by an unknown group: %q", got)
		}
		if err := os.Chown(groupDir, 0, 0); err != nil {
			t.Fatal(err)
		}
		if got := why(inGroup, false); got != "" {
			t.Errorf("a file in a directory writable by root's group: %q", got)
		}
	} else {
		ownGroup := mkdir(t, base, "owngroup", 0o775)
		if got := why(file(t, ownGroup, "f.pem", 0o664), false); got != "" {
			t.Errorf("a file writable by this process's own group: %q", got)
		}
	}
}

// TestMapped: the overflow user stands for owners outside a user
// namespace only where the namespace does not map it itself.
func TestMapped(t *testing.T) {
	for _, c := range []struct {
		uidMap string
		uid    int
		want   bool
	}{
		{"         0          0 4294967295\n", 65534, true},
		{"         0       1001          1\n", 65534, false},
		{"0 100000 65536\n", 65534, true},
		{"0 100000 65534\n", 65534, false},
		{"0 1001 1\n1 100000 65536\n", 65534, true},
		{"", 65534, false},
	} {
		if got := mapped(c.uidMap, c.uid); got != c.want {
			t.Errorf("mapped(%q, %d) = %v, want %v", c.uidMap, c.uid, got, c.want)
		}
	}
}

// TestShow: a path with a character that cannot be printed is quoted.
func TestShow(t *testing.T) {
	if got := show("/tmp/a b"); got != "/tmp/a b" {
		t.Errorf("show(/tmp/a b) = %q", got)
	}
	if got := show("/tmp/a\x00b\n"); got != `"/tmp/a\x00b\n"` {
		t.Errorf("show of a NUL and a newline = %s", got)
	}
	if got := why("/tmp/x\x00y", false); strings.ContainsRune(got, 0) {
		t.Errorf("Check of a path with a NUL says %q", got)
	}
}

// sameAs reports whether fi is the file at path.
func sameAs(t *testing.T, fi os.FileInfo, path string) bool {
	t.Helper()
	want, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi != nil && os.SameFile(fi, want)
}

// TestReadableByOthers: a private key every user can reach and read is
// said so; one behind a directory others cannot enter is not.
func TestReadableByOthers(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} { // t.TempDir makes both 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	open := file(t, base, "key.pem", 0o644)
	if got := ReadableByOthers(open); !strings.Contains(got, "is readable by every user (-rw-r--r--): chmod o-r "+open) {
		t.Errorf("a 0644 key in 0755 directories: %q", got)
	}
	if got := ReadableByOthers(file(t, base, "key2.pem", 0o640)); got != "" {
		t.Errorf("a 0640 key: %q", got)
	}
	private := mkdir(t, base, "private", 0o710) // Debian's /etc/ssl/private
	if got := ReadableByOthers(file(t, private, "key.pem", 0o644)); got != "" {
		t.Errorf("a 0644 key in a 0710 directory: %q", got)
	}
}
