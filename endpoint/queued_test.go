//go:build unix

package endpoint

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestServiceQueued: with MaxConns 1, the connections that arrive while
// one is served wait in the listen queue, and Queued counts each of them
// once it is accepted: over tcp and over unix (the socket under the
// wrapper that removes its file). A Service without MaxConns counts none
// (TestRelayMetrics).
func TestServiceQueued(t *testing.T) {
	for _, s := range []string{"tcp:0:interface=127.0.0.1", "unix:" + t.TempDir() + "/q.sock"} {
		t.Run(s[:3], func(t *testing.T) {
			ln, err := Listen(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			var queued atomic.Int64
			svc := &Service{MaxConns: 1, Queued: func() { queued.Add(1) },
				Handler: HandlerFunc(func(ctx context.Context, c net.Conn) { io.Copy(c, c) })}
			go svc.Serve(context.Background(), ln)
			defer svc.Close()
			network := ln.Addr().Network()
			dial := func() net.Conn {
				c, err := net.DialTimeout(network, ln.Addr().String(), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(15 * time.Second))
				return c
			}
			echo := func(c net.Conn, msg string) {
				t.Helper()
				io.WriteString(c, msg)
				c.(interface{ CloseWrite() error }).CloseWrite()
				if got, err := io.ReadAll(c); string(got) != msg || err != nil {
					t.Fatalf("echo %q, %v; want %q", got, err, msg)
				}
				c.Close()
			}
			a := dial()
			io.WriteString(a, "a")
			if _, err := io.ReadFull(a, make([]byte, 1)); err != nil {
				t.Fatal(err) // a is being served and holds the one slot
			}
			b, c := dial(), dial() // they wait in the queue
			echo(a, "")
			echo(b, "b")
			echo(c, "c")
			if n := queued.Load(); n != 2 {
				t.Errorf("Queued called %d times; want 2", n)
			}
		})
	}
}
