package testpeer

import (
	"bufio"
	"io"
	"net"
	"sync"
	"testing"
)

// A Backend is a TCP server that answers each connection with its name
// and counts the connections: one of several backends behind a balancer,
// whose answer says which one a connection reached.
type Backend struct {
	Name string
	Port int

	ln   net.Listener
	line bool
	mu   sync.Mutex
	hits int
	wg   sync.WaitGroup
}

// StartBackend starts a Backend on addr ("127.0.0.1:0", or a port it had
// before, to come back). With afterLine it reads one line first and
// answers its name and a newline: a client that writes before it reads
// must not have its connection reset by a close over unread bytes.
// Without, it writes its name and closes at once. The test's end stops it.
func StartBackend(t testing.TB, name, addr string, afterLine bool) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := &Backend{Name: name, Port: ln.Addr().(*net.TCPAddr).Port, ln: ln, line: afterLine}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(b.Stop)
	return b
}

func (b *Backend) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.hits++
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer c.Close()
			if !b.line {
				io.WriteString(c, b.Name)
				return
			}
			if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
				io.WriteString(c, b.Name+"\n")
			}
		}()
	}
}

// Stop closes the port, from then on refusing connections, and waits
// for the connections it has.
func (b *Backend) Stop() {
	b.ln.Close()
	b.wg.Wait()
}

// Hits returns how many connections the Backend has accepted.
func (b *Backend) Hits() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits
}
