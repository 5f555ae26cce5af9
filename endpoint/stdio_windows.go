package endpoint

import (
	"errors"
	"os"
)

// pollable returns f as it is: the console, pipes and files of Windows
// are read as they were given.
func pollable(f *os.File) (*os.File, bool) { return f, false }

func sameOpenFile(a, b *os.File) bool { return false }

func blockingAgain(*os.File) {}

// setSocketAddrs leaves c's addresses as they are on Windows. Standard
// input and output are a console, pipes or files there: Windows has no
// inetd or socket activation to hand a program its connection's socket as
// standard input, so the socket is not looked for, and a stdio connection
// is always addressed as "stdio".
func setSocketAddrs(*stdioConn) {}

// setStdioLinger fails on Windows: standard input is never a socket there.
func setStdioLinger(*os.File, int) error {
	return errors.New("standard input is not a socket: no reset can be sent")
}
