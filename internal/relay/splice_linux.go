package relay

import (
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Why not the standard library's splice (TCPConn.ReadFrom, WriteTo)? It
// takes a pipe for the whole of a copy and blocks holding it, so every idle
// relayed connection pins two pipes: four more file descriptors and, with
// the 1 MiB pipes it makes, over 20 KiB of unreclaimable kernel memory per
// connection, none of it visible in the process's RSS; and its pool keeps
// pipes open after the connections are gone. It also leaves UNIX to UNIX
// copies to user space. The loop below makes the same system calls on the
// same unwrapped sockets, but holds a pipe only while bytes are in flight.

const (
	maxSplice      = 1 << 20 // bytes per splice(2), and the size of the pipes
	spliceNonblock = 0x2     // SPLICE_F_NONBLOCK: the pipe end never blocks
)

type pipe struct {
	r, w int
	data int // bytes in the pipe
}

// pipesOut counts the pipes taken and not given back; pipe2 makes a pipe.
// Both are variables for tests.
var (
	pipesOut atomic.Int64
	pipe2    = syscall.Pipe2
)

// pipes holds pipes for reuse. It is small and fixed: a burst of transfers
// makes pipes that are closed as soon as it is over. Pooled pipes that sit
// unused for pipeIdle are closed too, so a relay that has gone quiet holds
// none (each is two file descriptors).
var pipes = make(chan *pipe, 32)

const pipeIdle = 10 * time.Second

var (
	lastGet   atomic.Int64 // when getPipe last ran, in Unix nanoseconds
	trimArmed atomic.Bool  // a trimPipes timer is pending
)

func getPipe() (*pipe, error) {
	lastGet.Store(time.Now().UnixNano())
	select {
	case p := <-pipes:
		pipesOut.Add(1)
		return p, nil
	default:
	}
	var fds [2]int
	if err := pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return nil, err
	}
	pipesOut.Add(1)
	// A bigger pipe moves more per call; a smaller one (the limit in
	// /proc/sys/fs/pipe-max-size) still works.
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[0]), syscall.F_SETPIPE_SZ, maxSplice)
	return &pipe{r: fds[0], w: fds[1]}, nil
}

func putPipe(p *pipe) {
	pipesOut.Add(-1)
	if p.data == 0 {
		select {
		case pipes <- p:
			if trimArmed.CompareAndSwap(false, true) {
				time.AfterFunc(pipeIdle, trimPipes)
			}
			return
		default:
		}
	}
	closePipe(p)
}

// trimPipes closes the pooled pipes once none has been taken for pipeIdle.
func trimPipes() {
	if wait := trimIdlePipes(time.Now()); wait > 0 {
		time.AfterFunc(wait, trimPipes)
	}
}

// trimIdlePipes closes the pooled pipes if none has been taken for
// pipeIdle at now; else it returns how long to wait before looking again.
func trimIdlePipes(now time.Time) time.Duration {
	if idle := now.Sub(time.Unix(0, lastGet.Load())); idle < pipeIdle {
		return pipeIdle - idle
	}
	// Disarm first: a pipe pooled from now on arms a timer of its own.
	trimArmed.Store(false)
	for {
		select {
		case p := <-pipes:
			closePipe(p)
		default:
			return 0
		}
	}
}

// spliceable returns the raw connection of a stream socket that splice(2)
// can read from and write to, or nil.
func spliceable(c net.Conn) syscall.RawConn {
	var rc syscall.RawConn
	switch s := c.(type) {
	case *net.TCPConn:
		rc, _ = s.SyscallConn()
	case *net.UnixConn:
		if s.LocalAddr() != nil && s.LocalAddr().Network() == "unix" {
			rc, _ = s.SyscallConn()
		}
	}
	return rc
}

// spliceCopy copies from src to dst with splice(2) until end of file or an
// error, as copyConn does. If splice cannot be used (no pipe can be made,
// or the kernel refuses these sockets), it stops where nothing is in
// flight and says fallback, so the caller can go on another way.
func spliceCopy(dst, src syscall.RawConn, clock *activity) (written int64, fallback bool, err error) {
	var p *pipe
	defer func() {
		if p != nil {
			putPipe(p)
		}
	}()
	for {
		// Move what src has into an empty pipe. While src has nothing,
		// wait holding no pipe.
		var n int64
		var serr error
		rerr := src.Read(func(fd uintptr) bool {
			if p == nil {
				if p, serr = getPipe(); serr != nil {
					return true
				}
			}
			for {
				n, serr = splice(int(fd), p.w, maxSplice)
				if serr != syscall.EINTR {
					break
				}
			}
			if serr == syscall.EAGAIN {
				putPipe(p)
				p = nil
				return false
			}
			return true
		})
		switch {
		case rerr != nil: // a deadline, or the connection closed
			return written, false, rerr
		case p == nil || serr == syscall.EINVAL:
			return written, true, nil // no pipe, or not these sockets
		case serr != nil:
			return written, false, wrapSplice(serr)
		case n == 0:
			return written, false, nil // end of file
		}
		p.data = int(n)
		clock.touch()

		// Move all of it on to dst.
		werr := dst.Write(func(fd uintptr) bool {
			for p.data > 0 {
				m, err := splice(p.r, int(fd), p.data)
				switch {
				case err == syscall.EINTR:
					continue
				case err == syscall.EAGAIN:
					return false
				case err != nil:
					serr = err
					return true
				case m == 0:
					serr = io.ErrNoProgress
					return true
				}
				p.data -= int(m)
				written += m
				clock.touch()
			}
			return true
		})
		if werr != nil {
			return written, false, werr
		}
		if serr != nil {
			return written, false, wrapSplice(serr)
		}
	}
}

func wrapSplice(err error) error { return os.NewSyscallError("splice", err) }

func closePipe(p *pipe) {
	syscall.Close(p.r)
	syscall.Close(p.w)
}

// splice moves up to n bytes from rfd to wfd without blocking. The count is
// an int64 on every architecture (unix.Splice's is an int on 32-bit ones).
func splice(rfd, wfd, n int) (int64, error) {
	m, err := unix.Splice(rfd, nil, wfd, nil, n, spliceNonblock)
	return int64(m), err
}
