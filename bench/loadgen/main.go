// Command loadgen drives bench/relay.sh: the servers behind the relays
// under test and the clients in front of them.
//
//	loadgen sink   -listen ADDR              checksum what each connection sends
//	loadgen echo   -listen ADDR              echo each connection
//	loadgen answer -listen ADDR              answer one byte with it, then close first
//	loadgen bulk   -addr ADDR -bytes N       one stream of N bytes to a sink, checked
//	loadgen cps    -addr ADDR -duration D    open, echo one byte, close (client first), repeatedly
//	loadgen conns  -addr ADDR -duration D    against answer: open, one byte each way, server closes first
//	loadgen hold   -addr ADDR -n N           hold N echoed connections open until stdin closes
//	loadgen wait   -addr ADDR                wait until something listens at ADDR
//	loadgen port                             print a free loopback port
//
// bulk, conns and hold speak TLS 1.3 with -tls CERTFILE (the certificate
// to trust, for the name localhost), each connection a full handshake;
// -groups pins the key exchange. conns -count N stops after N connections.
//
// The bulk protocol works through relays that lose half-close (Twisted's
// portforward): the client sends an 8-byte big-endian length and that many
// bytes; the sink answers with the count it read and the CRC-32C of the
// bytes, and the client compares them with what it sent.
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen sink|echo|answer|bulk|cps|conns|hold|wait|port [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (sink, echo)")
	addr := fs.String("addr", "", "address to connect to")
	size := fs.Int64("bytes", 1<<30, "bytes to send (bulk)")
	dur := fs.Duration("duration", 5*time.Second, "how long to run (cps, conns)")
	conc := fs.Int("concurrency", 16, "connections in flight at once (cps, conns)")
	count := fs.Int64("count", 0, "stop after this many connections instead of after -duration (conns)")
	n := fs.Int("n", 2000, "connections to hold (hold)")
	certFile := fs.String("tls", "", "connect with TLS 1.3, trusting the certificate in this PEM file (bulk, conns, hold)")
	groups := fs.String("groups", "X25519", "TLS key exchange groups to offer, comma-separated, or default for Go's")
	fs.Parse(os.Args[2:])
	cfg, err := tlsConfig(*certFile, *groups)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "sink":
		err = serve(*listen, sink)
	case "echo":
		err = serve(*listen, echo)
	case "answer":
		err = serve(*listen, answer)
	case "bulk":
		err = bulk(*addr, *size, cfg)
	case "cps":
		err = cps(*addr, *dur, *conc)
	case "conns":
		err = conns(*addr, *dur, *conc, *count, cfg)
	case "hold":
		err = hold(*addr, *n, cfg)
	case "wait":
		err = wait(*addr)
	case "port":
		var ln net.Listener
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			fmt.Println(ln.Addr().(*net.TCPAddr).Port)
			ln.Close()
		}
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func serve(addr string, handle func(net.Conn)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// echo sends back what it reads, through a small buffer of its own: the
// standard library's io.Copy between two sockets splices, holding a pipe
// (two more descriptors) for as long as the connection is open, which
// would make the echo server, not the relay, the first to run out of
// descriptors in the scale test.
func echo(c net.Conn) {
	b := make([]byte, 4<<10)
	for {
		n, err := c.Read(b)
		if n > 0 {
			if _, werr := c.Write(b[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// sink reads one length-prefixed stream and answers with its length and
// CRC-32C, then waits for the peer to close.
func sink(c net.Conn) {
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	want := int64(binary.BigEndian.Uint64(hdr[:]))
	buf := make([]byte, 1<<20)
	var got int64
	var sum uint32
	for got < want {
		m, err := c.Read(buf[:min(int64(len(buf)), want-got)])
		sum = crc32.Update(sum, castagnoli, buf[:m])
		got += int64(m)
		if err != nil {
			break
		}
	}
	var reply [12]byte
	binary.BigEndian.PutUint64(reply[:8], uint64(got))
	binary.BigEndian.PutUint32(reply[8:], sum)
	c.Write(reply[:])
	io.Copy(io.Discard, c)
}

// blockSize is the unit of the bulk stream: a random block, with its
// index written into its first 8 bytes so that no two blocks are alike.
const blockSize = 4 << 20

func fillBlock(b, base []byte, i int64) {
	copy(b, base)
	binary.BigEndian.PutUint64(b, uint64(i))
}

func bulk(addr string, size int64, cfg *tls.Config) error {
	base := make([]byte, blockSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range base {
		base[i] = byte(r.Uint32())
	}
	// The expected checksum, computed before the clock starts.
	b := make([]byte, blockSize)
	var want uint32
	for off, i := int64(0), int64(0); off < size; off, i = off+blockSize, i+1 {
		fillBlock(b, base, i)
		want = crc32.Update(want, castagnoli, b[:min(blockSize, size-off)])
	}

	start := time.Now()
	c, err := dial(addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(size))
	if _, err := c.Write(hdr[:]); err != nil {
		return err
	}
	for off, i := int64(0), int64(0); off < size; off, i = off+blockSize, i+1 {
		fillBlock(b, base, i)
		if _, err := c.Write(b[:min(blockSize, size-off)]); err != nil {
			return fmt.Errorf("after %d bytes: %w", off, err)
		}
	}
	var reply [12]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return fmt.Errorf("reading the sink's checksum: %w", err)
	}
	secs := time.Since(start).Seconds()
	got, sum := int64(binary.BigEndian.Uint64(reply[:8])), binary.BigEndian.Uint32(reply[8:])
	if got != size || sum != want {
		return fmt.Errorf("CORRUPTED: sink got %d bytes crc32c %08x, sent %d crc32c %08x", got, sum, size, want)
	}
	fmt.Printf("bytes=%d seconds=%.3f MBps=%.1f crc32c=%08x ok%s\n", size, secs, float64(size)/secs/1e6, sum, describeTLS(c))
	return nil
}

func echoOnce(addr string, b []byte) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b[:1]); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, b[1:2]); err != nil {
		return err
	}
	if b[0] != b[1] {
		return fmt.Errorf("echoed %d, sent %d", b[1], b[0])
	}
	return nil
}

// A tally counts the connections of a rate test, and the first failure.
type tally struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value
}

// record counts one connection that ended with err.
func (t *tally) record(err error) {
	if err != nil {
		t.failed.Add(1)
		t.firstErr.CompareAndSwap(nil, err.Error())
		return
	}
	t.ok.Add(1)
}

// print writes the rate since start, then extra (if any), then the first
// failure, on one line.
func (t *tally) print(start time.Time, extra string) {
	secs := time.Since(start).Seconds()
	fmt.Printf("conns=%d failed=%d seconds=%.3f cps=%.0f%s", t.ok.Load(), t.failed.Load(), secs,
		float64(t.ok.Load())/secs, extra)
	if e := t.firstErr.Load(); e != nil {
		fmt.Printf(" first_error=%q", e)
	}
	fmt.Println()
}

func cps(addr string, d time.Duration, conc int) error {
	var n tally
	stop := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := []byte{byte(w), 0}
			for time.Now().Before(stop) {
				n.record(echoOnce(addr, b))
			}
		}()
	}
	wg.Wait()
	n.print(start, "")
	return nil
}

// hold opens n connections, echoes one byte on each (so that each is
// relayed end to end), prints "ready", and closes them when stdin ends.
func hold(addr string, n int, cfg *tls.Config) error {
	held := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := dial(addr, cfg)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		held = append(held, c)
		b := []byte{byte(i), 0}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(b[:1]); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, b[1:]); err != nil || b[1] != b[0] {
			return fmt.Errorf("connection %d: echo %v", i, err)
		}
		c.SetDeadline(time.Time{})
	}
	if len(held) > 0 {
		fmt.Printf("ready%s\n", describeTLS(held[0]))
	} else {
		fmt.Println("ready")
	}
	io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	for _, c := range held {
		c.Close()
	}
	return nil
}

func wait(addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
