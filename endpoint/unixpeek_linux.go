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
		fields, name, ok := unixTableLine(sc.Text())
		if !ok || (name != path && name != abs) {
			continue
		}
		if flags, err := strconv.ParseUint(fields[3], 16, 32); err == nil && flags&acceptConn != 0 {
			return true, true
		}
	}
	return false, sc.Err() == nil
}

// unixTableLine splits a line of /proc/net/unix into its seven fields and
// the path, which is the rest of the line, spaces and all (a socket bound
// at "/run/my app.sock").
func unixTableLine(line string) (fields [7]string, name string, ok bool) {
	rest := line
	for i := range fields {
		rest = strings.TrimLeft(rest, " ")
		end := strings.IndexByte(rest, ' ')
		if end < 0 {
			return fields, "", false // no path: an unnamed socket
		}
		fields[i], rest = rest[:end], rest[end+1:]
	}
	return fields, rest, rest != ""
}
