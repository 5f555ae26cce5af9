//go:build unix

package endpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
)

// makeLock makes the lock at path, a symbolic link whose target is pid. It
// fails with an error matching fs.ErrExist if anything is at path.
func makeLock(pid, path string) error { return os.Symlink(pid, path) }

// readLock returns the target of the lock at path, without following it.
func readLock(path string) (string, error) {
	target, err := os.Readlink(path)
	if err != nil {
		if errors.Is(err, syscall.EINVAL) {
			return "", fmt.Errorf("%s exists and is not a lock (a symbolic link to a process ID); remove it if it is stale", path)
		}
		return "", err
	}
	return target, nil
}

// removeLock unlinks the name path, whatever it is: unlink, unlike
// os.Remove, never falls back to rmdir.
func removeLock(path string) error { return syscall.Unlink(path) }

// processAlive reports whether a process with this ID exists. EPERM means
// it exists but belongs to someone else: alive.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// takeOverLock makes the lock at path name this process, for a socket that
// the process that held it (the parent, which handed the socket on) is
// giving up, or that no live process holds. The new lock is made under a
// temporary name and renamed over the old, which replaces the name itself
// in one step, so that at no moment is the socket unguarded. A lock held
// by another live process is an error (matching EADDRINUSE), as in
// acquireLock.
func takeOverLock(path string) error {
	owner, alive, err := lockOwner(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case alive && owner != os.Getppid() && owner != os.Getpid():
		return &errLockHeld{path, owner}
	}
	tmp := path + "." + strconv.Itoa(os.Getpid())
	if err := makeLock(strconv.Itoa(os.Getpid()), tmp); err != nil {
		return fmt.Errorf("taking over lock file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		removeLock(tmp)
		return fmt.Errorf("taking over lock file %s: %w", path, err)
	}
	return nil
}
