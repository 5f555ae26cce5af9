package endpoint

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/windows"
)

// On Windows a symbolic link needs a privilege (or Developer Mode) that a
// program cannot count on, so Twisted's FilesystemLock makes the lock
// another way there, and tether makes it the same way, so that the two
// still guard each other's sockets: ADDRESS.lock is a directory holding
// one file, named "symlink", whose content is the owner's process ID. It is
// made whole under a temporary name and renamed into place, which fails if
// anything is at ADDRESS.lock already, and removed file first, directory
// second.
//
// What this cannot do as the symbolic link does: removal takes two steps,
// so another process may meet a lock directory without its file; that
// counts as a lock going away (a retry, as when the lock vanishes). And
// reading the PID opens a file: only a plain directory holding a regular
// file is read, but someone who can write into the lock's directory could
// swap a link in between the check and the open.

// lockPIDFile is the name of the file in a lock directory that holds the
// owner's process ID, as Twisted names it.
const lockPIDFile = "symlink"

// errNotALock says what is wrong with something at a lock's path that is
// not a lock.
func errNotALock(path string) error {
	return fmt.Errorf("%s exists and is not a lock (a directory holding a file %q with a process ID); remove it if it is stale",
		path, lockPIDFile)
}

// makeLock makes the lock at path with pid in it. It fails with an error
// matching fs.ErrExist if anything is at path.
func makeLock(pid, path string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(path), filepath.Base(path)+".*.newlink")
	if err != nil {
		return err
	}
	pidFile := filepath.Join(tmp, lockPIDFile)
	discard := func() {
		syscall.Unlink(pidFile)
		syscall.Rmdir(tmp)
	}
	f, err := os.OpenFile(pidFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		discard()
		return err
	}
	_, err = io.WriteString(f, pid)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		discard()
		return err
	}
	// MoveFileEx without MOVEFILE_REPLACE_EXISTING (which os.Rename
	// sets) refuses to replace anything at path, with ERROR_ALREADY_EXISTS,
	// which matches fs.ErrExist.
	from, err := syscall.UTF16PtrFromString(tmp)
	if err != nil {
		discard()
		return err
	}
	to, err := syscall.UTF16PtrFromString(path)
	if err != nil {
		discard()
		return err
	}
	if err := windows.MoveFileEx(from, to, 0); err != nil {
		discard()
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
			// What a lock directory still being removed answers: if
			// something is there, report it as there.
			if _, lerr := os.Lstat(path); lerr == nil {
				err = windows.ERROR_ALREADY_EXISTS
			}
		}
		return &os.LinkError{Op: "rename", Old: tmp, New: path, Err: err}
	}
	return nil
}

// readLock returns the process ID written in the lock at path. A lock
// directory without its file is one being removed: the error then matches
// fs.ErrNotExist.
func readLock(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Type() != fs.ModeDir {
		return "", errNotALock(path) // a file, or a link or junction to elsewhere
	}
	pidFile := filepath.Join(path, lockPIDFile)
	fi, err = os.Lstat(pidFile)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", errNotALock(path)
	}
	f, err := os.Open(pidFile)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// A process ID is a few digits; more is not a lock, and is not read.
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// removeLock removes the lock at path as Twisted does, its file and then
// the directory. Anything but a plain directory at path is left alone, so
// that a link put there cannot lead the removal elsewhere.
func removeLock(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeDir {
		return errNotALock(path)
	}
	pidFile := filepath.Join(path, lockPIDFile)
	if err := syscall.Unlink(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &fs.PathError{Op: "remove", Path: pidFile, Err: err}
	}
	if err := syscall.Rmdir(path); err != nil {
		return &fs.PathError{Op: "rmdir", Path: path, Err: err}
	}
	return nil
}

// processAlive reports whether a process with this ID is running. A
// process that exists but may not be opened by this user (access denied)
// is alive, as EPERM is on Unix; so is one whose state cannot be read,
// since taking a live process's lock would be worse than refusing a dead
// one's.
func processAlive(pid int) bool {
	if pid <= 0 || uint64(pid) > math.MaxUint32 {
		return false
	}
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION|windows.SYNCHRONIZE, false, uint32(pid))
	if err != nil {
		// ERROR_INVALID_PARAMETER is what an ID no process has gets.
		return !errors.Is(err, windows.ERROR_INVALID_PARAMETER)
	}
	defer windows.CloseHandle(h)
	// A process that has exited stays openable while anyone holds a
	// handle to it; it is signalled once it has exited.
	ev, err := windows.WaitForSingleObject(h, 0)
	return err != nil || ev != windows.WAIT_OBJECT_0
}

// takeOverLock is not needed on Windows, where no process hands its sockets
// on (see Inheritor): it fails.
func takeOverLock(path string) error {
	return fmt.Errorf("lock file %s: taking over a lock: %w", path, errors.ErrUnsupported)
}
