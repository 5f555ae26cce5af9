//go:build unix

package endpoint

import (
	"os"
	"syscall"
)

// fileDevIno returns the device and inode of the file fi describes: a file
// replaced by rename has a new inode.
func fileDevIno(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino)
	}
	return 0, 0
}
