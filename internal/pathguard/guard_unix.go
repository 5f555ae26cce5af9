//go:build unix

// Package pathguard checks that the files an endpoint trusts, proves
// itself with or runs cannot be changed by another user.
package pathguard

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// OthersCanChange says how a user other than root and this process's
// user can change what path leads to, or "" if none can: the file (or,
// with listing, the directory whose .pem files are read) and every
// directory above it, along the path as given and along the path its
// symbolic links lead to. The rules are OpenSSH's for authorized_keys:
// each is owned by root or by this user, and is writable by neither
// every user nor a group other than root's and this process's, except a
// directory above with the sticky bit (such as /tmp), where others may
// add names but not replace this user's. A file system mounted read-only
// (a Kubernetes secret, say) is left to its mount.
//
// The files it guards are the ones that decide whom a TLS endpoint trusts,
// which key it proves itself with, and which program exec: runs: another
// user who can change them owns the endpoint.
func OthersCanChange(path string, listing bool) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	targets := []string{abs}
	if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
		targets = append(targets, real)
	}
	euid, egid := os.Geteuid(), os.Getegid()
	checked := map[string]bool{}
	for _, target := range targets {
		for p, above := target, false; !checked[p]; p, above = filepath.Dir(p), true {
			checked[p] = true
			if why := changeable(p, above, listing && !above, euid, egid); why != "" {
				if above {
					return fmt.Sprintf("its directory %s %s", p, why)
				}
				return why
			}
		}
	}
	return ""
}

// changeable checks one file or directory of a guarded path: above says
// it is a directory above the guarded file, listing that it is a directory
// whose entries are read (so no one else may add one, sticky bit or not).
func changeable(p string, above, listing bool, euid, egid int) string {
	fi, err := os.Stat(p)
	if err != nil {
		return "" // reading it says what is wrong
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	if readOnlyFS(p) {
		return "" // not even its owner can change it
	}
	mode := fi.Mode()
	if uid := int(st.Uid); uid != 0 && uid != euid {
		return fmt.Sprintf("is owned by user %d, neither root nor this process's user (%d): that user can change it; chown it to root or to user %d", uid, euid, euid)
	}
	sticky := above && mode&os.ModeSticky != 0
	switch {
	case sticky && !listing:
		return ""
	case mode.Perm()&0o002 != 0:
		return fmt.Sprintf("is writable by every user (%v): chmod o-w %s", mode, p)
	case mode.Perm()&0o020 != 0 && int(st.Gid) != 0 && int(st.Gid) != egid:
		return fmt.Sprintf("is writable by group %d (%v), not this process's group (%d): chmod g-w %s", st.Gid, mode, egid, p)
	}
	return ""
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
