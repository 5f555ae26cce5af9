//go:build unix

// Package pathguard checks that the files an endpoint trusts, proves
// itself with or runs cannot be changed by another user.
package pathguard

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Check says how a user other than root and this process's user could
// change what path leads to, or returns "" and the file it leads to if
// none can. It resolves path as the kernel does, one name at a time from
// the root (or the working directory), and checks every directory it
// passes through, every symbolic link it follows (and so the directory
// holding it), and the file it ends at: with listing, a directory whose
// entries are read, so that no one else may add one even with the sticky
// bit. The rules are OpenSSH's for authorized_keys:
//
//   - each is owned by root or by this user;
//   - none is writable by every user, nor by a group with a member other
//     than root and this user (Debian's user-private groups pass);
//   - except a directory passed through with the sticky bit (such as
//     /tmp), where others may add names but not replace this user's;
//   - a POSIX access list (Linux) lets no other user, and no group with
//     other members, write it either;
//   - a directory with the sticky bit on a mount that is read-only, such
//     as a Kubernetes secret volume (a tmpfs of mode 1777 mounted
//     read-only in the container), is not held to the mode rules; its
//     owner still is.
//
// A caller that reads the file compares it (os.SameFile) with the one
// returned, so that a path changed between the check and the read is not
// taken for the one checked. In a user namespace where the overflow
// user (65534) is not mapped, an owner outside the namespace, shown as
// that user, is taken as root: system files seen from a rootless
// container are owned so (and so, alas, are another host user's files
// bind-mounted in).
//
// The files it guards are the ones that decide whom a TLS endpoint trusts,
// which key it proves itself with, and which program exec: runs: another
// user who can change them owns the endpoint.
func Check(path string, listing bool) (os.FileInfo, string) {
	if path == "" {
		return nil, "the path is empty"
	}
	g := newGuard()
	rest := strings.Split(path, "/")
	cur := "/"
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return nil, "cannot be checked: the working directory: " + err.Error()
		}
		rest = append(strings.Split(wd, "/"), rest...)
	}
	fi, err := os.Lstat(cur)
	if err != nil {
		return nil, "cannot be checked: " + show(err.Error())
	}
	if why := g.judge(cur, fi, true, false); why != "" {
		return nil, "its directory / " + why
	}
	links := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur holds no symbolic link: already checked
			continue
		}
		last := !more(rest)
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return nil, "cannot be checked: " + show(err.Error())
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			if links++; links > 40 {
				return nil, "cannot be checked: too many levels of symbolic links"
			}
			if why := g.owner(fi); why != "" {
				return nil, fmt.Sprintf("its symbolic link %s %s", show(next), why)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return nil, "cannot be checked: " + show(err.Error())
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(strings.Split(target, "/"), rest...)
			continue
		}
		if !last {
			if why := g.judge(next, fi, true, false); why != "" {
				return nil, fmt.Sprintf("its directory %s %s", show(next), why)
			}
			cur = next
			continue
		}
		if why := g.judge(next, fi, false, listing); why != "" {
			if next != path {
				return nil, fmt.Sprintf("%s, which it leads to, %s", show(next), why)
			}
			return nil, why
		}
		return fi, ""
	}
	// The path ends at a directory passed through already ("/", "a/..").
	fi, err = os.Stat(cur)
	if err != nil {
		return nil, "cannot be checked: " + show(err.Error())
	}
	if why := g.judge(cur, fi, false, listing); why != "" {
		return nil, why
	}
	return fi, ""
}

// more reports whether names hold a name still to resolve.
func more(names []string) bool {
	for _, n := range names {
		if n != "" && n != "." {
			return true
		}
	}
	return false
}

// A guard holds who may own and write the files checked.
type guard struct {
	euid, egid int
	overflow   int // the overflow user, taken as root in a user namespace; -1 outside one
	groupOK    map[int]bool
}

func newGuard() *guard {
	g := &guard{euid: os.Geteuid(), egid: os.Getegid(), overflow: -1, groupOK: map[int]bool{}}
	overflow := 65534
	if b, err := os.ReadFile("/proc/sys/kernel/overflowuid"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			overflow = n
		}
	}
	if b, err := os.ReadFile("/proc/self/uid_map"); err == nil && !mapped(string(b), overflow) {
		g.overflow = overflow
	}
	return g
}

// mapped reports whether a uid_map ("inside outside count" lines) maps
// the user uid of this namespace to one outside: if not, a file showing
// uid as its owner belongs to someone outside the namespace.
func mapped(uidMap string, uid int) bool {
	for _, line := range strings.Split(uidMap, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		in, err1 := strconv.ParseUint(f[0], 10, 64)
		n, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 == nil && err2 == nil && uint64(uid) >= in && uint64(uid)-in < n {
			return true
		}
	}
	return false
}

// owner checks that fi is owned by root or this user.
func (g *guard) owner(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	uid := int(st.Uid)
	if uid == 0 || uid == g.euid || uid == g.overflow {
		return ""
	}
	return fmt.Sprintf("is owned by user %d, neither root nor this process's user (%d), so that user can change it: keep the file where it and every directory above it are owned by root or by user %d", uid, g.euid, g.euid)
}

// judge checks one file or directory: above says the path passes through
// it, listing that it is a directory whose entries are read.
func (g *guard) judge(p string, fi os.FileInfo, above, listing bool) string {
	if why := g.owner(fi); why != "" {
		return why
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	mode := fi.Mode()
	sticky := mode.IsDir() && mode&os.ModeSticky != 0
	switch {
	case sticky && readOnlyMount(p):
		return ""
	case sticky && above && !listing:
		return ""
	case mode.Perm()&0o002 != 0 && sticky:
		return fmt.Sprintf("is writable by every user (%v; the sticky bit stops others replacing its files, not adding their own): use a directory of its own", mode)
	case mode.Perm()&0o002 != 0:
		return fmt.Sprintf("is writable by every user (%v): chmod o-w %s", mode, show(p))
	case mode.Perm()&0o020 != 0 && !g.privateGroup(int(st.Gid)):
		return fmt.Sprintf("is writable by group %d (%v), which has members other than root and this process's user: chmod g-w %s", st.Gid, mode, show(p))
	}
	if why := g.aclWriters(p); why != "" {
		return why + ": setfacl -b " + show(p) + ", or remove that entry"
	}
	return ""
}

// show gives a path as it is, or quoted if it holds a character that
// cannot be printed as it is.
func show(p string) string {
	for _, r := range p {
		if !strconv.IsPrint(r) {
			return strconv.Quote(p)
		}
	}
	return p
}

// privateGroup reports whether group gid has no member but root and this
// process's user, as the group files say: none has it as primary group
// and none is listed in it. Root's group itself qualifies only so.
func (g *guard) privateGroup(gid int) bool {
	if ok, seen := g.groupOK[gid]; seen {
		return ok
	}
	ok := groupMembersOnly(gid, g.euid)
	g.groupOK[gid] = ok
	return ok
}

func groupMembersOnly(gid, euid int) bool {
	if _, err := user.LookupGroupId(strconv.Itoa(gid)); err != nil {
		return false // a group no one knows: who is in it cannot be told
	}
	me := ""
	if u, err := user.LookupId(strconv.Itoa(euid)); err == nil {
		me = u.Username
	}
	// /etc/passwd: name:x:uid:gid:...
	okPasswd := scanColon("/etc/passwd", func(f []string) bool {
		return len(f) < 4 || f[3] != strconv.Itoa(gid) || f[2] == "0" || f[2] == strconv.Itoa(euid)
	})
	// /etc/group: name:x:gid:member,member
	okGroup := scanColon("/etc/group", func(f []string) bool {
		if len(f) < 4 || f[2] != strconv.Itoa(gid) || f[3] == "" {
			return true
		}
		for _, m := range strings.Split(f[3], ",") {
			if m != "root" && m != me {
				return false
			}
		}
		return true
	})
	return okPasswd && okGroup
}

// scanColon reports whether ok holds for every line of a colon-separated
// file; a file that cannot be read fails.
func scanColon(path string, ok func([]string) bool) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !ok(strings.Split(line, ":")) {
			return false
		}
	}
	return s.Err() == nil
}

// ReadableByOthers says how every user can read a private key file, or ""
// if they cannot: the file is readable by every user and so is each
// directory above it (a directory without o+x, such as Debian's
// /etc/ssl/private, keeps them out whatever the file's mode).
func ReadableByOthers(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	fi, err := os.Stat(abs)
	if err != nil || fi.Mode().Perm()&0o004 == 0 {
		return ""
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		di, err := os.Stat(d)
		if err != nil || di.Mode().Perm()&0o001 == 0 {
			return ""
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return fmt.Sprintf("is readable by every user (%v): chmod o-r %s", fi.Mode(), abs)
}
