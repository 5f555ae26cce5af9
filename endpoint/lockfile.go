package endpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
)

// ErrNoLockOwner is wrapped when a UNIX client is asked to check the
// socket's lock file (checkPID=1) and no live process holds it.
var ErrNoLockOwner = errors.New("endpoint: no live process holds the lock file")

// The lock file is Twisted's FilesystemLock, so that tether and Twisted
// programs guard each other's sockets: a symbolic link named ADDRESS.lock
// whose target is the owner's process ID. A symlink is made atomically, and
// its target read without opening anything.
//
// The lock's directory may be writable by others, who can put anything at
// ADDRESS.lock at any moment, a link to any file included. So the lock is
// only ever handled with calls that act on the name itself and never
// follow a link there: symlink, readlink and unlink (not os.Remove, whose
// fallback is rmdir). Nothing opens, stats or changes the file a lock
// points at; its target is only text to parse as a process ID.
//
// Windows has no such links for everyone, and Twisted makes the lock there
// in another form; tether follows it (see lockfile_windows.go). The calls
// that differ are makeLock, readLock, removeLock and processAlive.

// errLockHeld is returned when a live process holds the lock. It matches
// syscall.EADDRINUSE, because that is what the caller wants to know.
type errLockHeld struct {
	path string
	pid  int
}

func (e *errLockHeld) Error() string {
	return fmt.Sprintf("in use: lock file %s is held by live process %d", e.path, e.pid)
}

func (e *errLockHeld) Is(target error) bool { return target == syscall.EADDRINUSE }

// acquireLock takes the lock at path for this process. clean is false when
// it took over the lock of a process that is gone, in which case that
// process's socket may still be lying around.
func acquireLock(path string) (clean bool, err error) {
	clean = true
	pid := strconv.Itoa(os.Getpid())
	// Each pass either succeeds, fails, or removes a stale lock; a loop that
	// keeps losing races to other processes gives up rather than spin.
	for attempt := 0; attempt < 100; attempt++ {
		err := makeLock(pid, path)
		if err == nil {
			return clean, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return false, err
		}
		owner, alive, err := lockOwner(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed between our symlink and readlink
		}
		if err != nil {
			return false, err
		}
		if alive {
			return false, &errLockHeld{path, owner}
		}
		if err := removeLock(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("removing stale lock file %s of dead process %d: %w", path, owner, err)
		}
		clean = false
	}
	return false, fmt.Errorf("lock file %s: gave up after losing 100 races for it", path)
}

// releaseLock removes the lock at path if this process holds it: a lock
// that someone has replaced since is not ours to remove. Should it be
// replaced between readlink and unlink, unlink removes only the name.
func releaseLock(path string) {
	if pid, _, err := lockOwner(path); err == nil && pid == os.Getpid() {
		removeLock(path)
	}
}

// lockOwner reads the lock at path and says whether its owner is alive.
func lockOwner(path string) (pid int, alive bool, err error) {
	target, err := readLock(path)
	if err != nil {
		return 0, false, err
	}
	pid, err = strconv.Atoi(target)
	if err != nil || pid <= 0 {
		return 0, false, fmt.Errorf("lock file %s points to %q, not a process ID", path, target)
	}
	return pid, processAlive(pid), nil
}

// lockHeld reports whether a live process holds the lock at path, as
// Twisted's isLocked does, but without side effects: a stale lock is left
// for the next listener to take over.
func lockHeld(path string) (bool, error) {
	_, alive, err := lockOwner(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return alive, err
}
