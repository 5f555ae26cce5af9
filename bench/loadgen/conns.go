package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// answer is the server of the connection test: it reads one byte, writes
// it back and closes (serve's deferred Close), before the client does.
// The side that closes first keeps the connection in TIME_WAIT; here that
// is the server (and a relay's accepted socket), whose port is fixed, and
// not the client, whose ephemeral ports would otherwise run out at some
// tens of thousands of connections a minute and cap every peer at the
// same figure.
func answer(c net.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return
	}
	c.Write(b[:])
}

// answerOnce is one client connection against answer: connect (and with
// cfg, a full TLS handshake), send one byte, read it back, read the
// server's end of file, and only then close.
func answerOnce(addr string, cfg *tls.Config, b []byte) (*tls.ConnectionState, error) {
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := net.Conn(raw)
	var st *tls.ConnectionState
	var tc *tls.Conn
	if cfg != nil {
		tc = tls.Client(raw, cfg)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		s := tc.ConnectionState()
		st, c = &s, tc
	}
	if _, err := c.Write(b[:1]); err != nil {
		return st, err
	}
	if _, err := io.ReadFull(c, b[1:2]); err != nil {
		return st, err
	}
	if b[0] != b[1] {
		return st, fmt.Errorf("answered %d, sent %d", b[1], b[0])
	}
	// A TLS server's end is close_notify or, at a record boundary, a bare
	// TCP end of file; crypto/tls returns io.EOF for either.
	if n, err := c.Read(b[1:2]); n != 0 || !errors.Is(err, io.EOF) {
		return st, fmt.Errorf("waiting for the server to close: read %d bytes, %v", n, err)
	}
	if tc != nil {
		// The client's own close_notify, as a well-behaved client ends:
		// a relay that keeps the client's direction open until it ends
		// (tether) takes a bare FIN for a cut stream; one that closed the
		// whole connection already (haproxy) answers it with a reset,
		// which the client does not read.
		tc.Close()
	}
	return st, nil
}

// conns runs conc clients of answerOnce in a loop, for d or, with count
// above 0, until count connections have been made (for counting a relay's
// system calls per connection), and prints the rate.
func conns(addr string, d time.Duration, conc int, count int64, cfg *tls.Config) error {
	var n tally
	var resumed, issued atomic.Int64
	var firstState atomic.Pointer[tls.ConnectionState]
	start := time.Now()
	stop := start.Add(d)
	var wg sync.WaitGroup
	// Each client's connection times, merged at the end: a relay that
	// leaves some connections waiting on a timer (a delayed ACK, say)
	// shows in the tail long before it shows in the rate.
	times := make([][]time.Duration, conc)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := []byte{byte(w), 0}
			mine := make([]time.Duration, 0, 1<<16)
			defer func() { times[w] = mine }()
			for {
				if count > 0 {
					if issued.Add(1) > count {
						return
					}
				} else if !time.Now().Before(stop) {
					return
				}
				t0 := time.Now()
				st, err := answerOnce(addr, cfg, b)
				if err == nil {
					mine = append(mine, time.Since(t0))
				}
				if st != nil {
					firstState.CompareAndSwap(nil, st)
					if st.DidResume {
						resumed.Add(1)
					}
				}
				n.record(err)
			}
		}()
	}
	wg.Wait()
	extra := latencies(slices.Concat(times...))
	if st := firstState.Load(); st != nil {
		extra += fmt.Sprintf("%s resumed_total=%d", describeState(*st), resumed.Load())
	}
	n.print(start, extra)
	return nil
}

// latencies describes the connection times: the median, the 99th and
// 99.9th percentiles and the longest, in microseconds.
func latencies(d []time.Duration) string {
	if len(d) == 0 {
		return ""
	}
	slices.Sort(d)
	at := func(q float64) int64 { return d[int(q*float64(len(d)-1))].Microseconds() }
	return fmt.Sprintf(" p50_us=%d p99_us=%d p999_us=%d max_us=%d", at(0.5), at(0.99), at(0.999), d[len(d)-1].Microseconds())
}
