package endpoint

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// socketListening reports whether a UNIX socket bound at path is
// listening, from the kernel's table (/proc/net/unix), without connecting
// to anything. known is false when the table cannot be read. A socket
// bound under a relative name, or through a link, is not matched.
func socketListening(path string) (listening, known bool) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false, false
	}
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		return false, false
	}
	defer f.Close()
	const acceptConn = 0x10000 // __SO_ACCEPTCON: the socket listens
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || (fields[7] != path && fields[7] != abs) {
			continue
		}
		if flags, err := strconv.ParseUint(fields[3], 16, 32); err == nil && flags&acceptConn != 0 {
			return true, true
		}
	}
	return false, sc.Err() == nil
}
