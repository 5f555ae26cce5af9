package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-endpoints/tether/internal/relay"
)

// idleConn is a served connection with serve's --idle-timeout: a Read or
// Write that waits while nothing has moved either way for the timeout
// fails with relay.ErrIdle (counted and logged as the relay's idle
// timeout is). Each direction waits at most until the last movement plus
// the timeout, so that chargen's reader, which is sent nothing, is not cut
// while the lines flow the other way. Deadlines set by the service (exec's
// linger) are kept, the earlier of the two applying.
type idleConn struct {
	net.Conn
	idle  time.Duration
	start time.Time
	last  atomic.Int64 // nanoseconds after start at which bytes last moved

	mu     sync.Mutex
	rd, wd time.Time // the service's own deadlines
}

func newIdleConn(c net.Conn, idle time.Duration) *idleConn {
	return &idleConn{Conn: c, idle: idle, start: time.Now()}
}

// NetConn returns the connection, so that Abort reaches its socket.
func (c *idleConn) NetConn() net.Conn { return c.Conn }

func (c *idleConn) moved() { c.last.Store(int64(time.Since(c.start))) }

// until is when the current wait ends: the idle deadline, or the
// service's if that is earlier.
func (c *idleConn) until(own time.Time) time.Time {
	t := c.start.Add(time.Duration(c.last.Load()) + c.idle)
	if !own.IsZero() && own.Before(t) {
		return own
	}
	return t
}

func (c *idleConn) Read(p []byte) (int, error) {
	return c.wait(p, false, c.Conn.Read, c.Conn.SetReadDeadline, func() time.Time { return c.rd })
}

func (c *idleConn) Write(p []byte) (int, error) {
	return c.wait(p, true, c.Conn.Write, c.Conn.SetWriteDeadline, func() time.Time { return c.wd })
}

// wait runs op (a Read, or with all a Write, which must take all of p)
// under the idle deadline, moved on for as long as bytes keep moving
// either way.
func (c *idleConn) wait(p []byte, all bool, op func([]byte) (int, error), set func(time.Time) error, own func() time.Time) (int, error) {
	done := 0
	for {
		// Under the lock, so that a deadline the service sets meanwhile
		// (from another goroutine) is not overwritten.
		c.mu.Lock()
		mine := own()
		set(c.until(mine))
		c.mu.Unlock()
		n, err := op(p[done:])
		done += n
		if n > 0 {
			c.moved()
		}
		switch {
		case err == nil:
			return done, nil
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return done, err
		case !all && done > 0:
			return done, nil
		case !mine.IsZero() && !time.Now().Before(mine):
			return done, err // the service's own deadline
		case time.Now().Before(c.until(time.Time{})):
			continue // bytes moved meanwhile, one way or the other
		}
		return done, fmt.Errorf("nothing moved either way for %v: %w", c.idle, relay.ErrIdle)
	}
}

func (c *idleConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *idleConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd = t
	return c.Conn.SetReadDeadline(c.until(t))
}

func (c *idleConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wd = t
	return c.Conn.SetWriteDeadline(c.until(t))
}
