package main

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-endpoints/tether/internal/relay"
)

// idleConn is a served connection with serve's --idle-timeout: once
// nothing has moved either way for the timeout, a watchdog sets both
// deadlines in the past, and the Read or Write that this ends fails with
// relay.ErrIdle (counted and logged as the relay's idle timeout is). The
// operations themselves set no deadline and retry nothing: a *tls.Conn
// keeps a write timeout as a permanent error, and chargen's reader, which
// is sent nothing, must not be cut while the lines flow the other way. A
// Write counts as movement when it returns: one that waits for room for
// longer than the timeout, however much of it went out meanwhile, counts
// as idle, as a receiver that takes nothing does in tether relay.
type idleConn struct {
	net.Conn
	idle  time.Duration
	start time.Time
	last  atomic.Int64 // nanoseconds after start at which bytes last moved
	idled atomic.Bool  // the watchdog has cut the connection

	mu    sync.Mutex
	timer *time.Timer
}

func newIdleConn(c net.Conn, idle time.Duration) *idleConn {
	ic := &idleConn{Conn: c, idle: idle, start: time.Now()}
	ic.mu.Lock()
	ic.timer = time.AfterFunc(idle, ic.check)
	ic.mu.Unlock()
	return ic
}

// check runs when the idle timeout may have passed: it cuts the connection
// if nothing moved since, and otherwise looks again when it could have.
func (c *idleConn) check() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer == nil {
		return // closed
	}
	quiet := time.Since(c.start) - time.Duration(c.last.Load())
	if quiet < c.idle {
		c.timer.Reset(c.idle - quiet)
		return
	}
	c.idled.Store(true)
	c.Conn.SetDeadline(aLongTimeAgo)
}

// NetConn returns the connection, so that Abort reaches its socket.
func (c *idleConn) NetConn() net.Conn { return c.Conn }

func (c *idleConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	return n, c.after(n, err)
}

func (c *idleConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	return n, c.after(n, err)
}

// after notes bytes moved, and names an error that the watchdog caused.
func (c *idleConn) after(n int, err error) error {
	if n > 0 {
		c.last.Store(int64(time.Since(c.start)))
	}
	if err != nil && c.idled.Load() {
		return fmt.Errorf("nothing moved either way for %v: %w", c.idle, relay.ErrIdle)
	}
	return err
}

// CloseWrite passes a half-close on to the connection (exec's end of
// output), if it has one.
func (c *idleConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close stops the watchdog and closes the connection.
func (c *idleConn) Close() error {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	return c.Conn.Close()
}
