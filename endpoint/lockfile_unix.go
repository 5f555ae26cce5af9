//go:build unix

package endpoint

import (
	"errors"
	"fmt"
	"os"
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
