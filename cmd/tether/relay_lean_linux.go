package main

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/internal/lean"
	"github.com/tether-endpoints/tether/internal/relay"
	"golang.org/x/sys/unix"
)

// The lean path (docs/relay-core.md): a plain tcp LISTEN relayed to a plain
// tcp CONNECT of an IP literal, with nothing to do in between (no PROXY
// header to send), accepts bare descriptors (lean.Listen), starts
// a non-blocking connect (lean.Target) and hands both to the
// event core, which completes the connect: no net.Conn, no Go poller
// registration, no descriptor duplicated, no goroutine waiting on a dial.
// TETHER_RELAY_LEAN=off switches it off (and TETHER_RELAY_CORE=off, which
// leaves no core to hand to).
var leanOff = os.Getenv("TETHER_RELAY_LEAN") == "off"

// leanSetup decides whether the relay takes the lean path, and if so
// returns the function that wraps LISTEN's listener for it.
func (r *relayCmd) leanSetup() func(endpoint.Server, net.Listener) net.Listener {
	if leanOff || r.proxyVersion != 0 || r.proxyByClient || !relay.CoreAvailable() {
		return nil
	}
	t, ok := lean.Client(r.target)
	if !ok {
		return nil
	}
	r.lean = t
	// Made once: nothing allocated per connection for them.
	r.leanConnecting = relay.Connecting{Timeout: t.Timeout(), Wrap: t.DialError, Done: r.m.dialed}
	return func(srv endpoint.Server, ln net.Listener) net.Listener {
		ln, ok := lean.Listen(srv, ln)
		if ok {
			r.log.Info("relaying on the lean path: bare descriptors, connects completed by the event core")
		}
		return ln
	}
}

// leanConn relays conn if it is a lean.Conn (else it returns false): it
// starts the connect, hands both descriptors to the core and returns, the
// connection detached; the log line and metrics come when the pair ends,
// as handOff's do.
func (r *relayCmd) leanConn(ctx context.Context, conn net.Conn) bool {
	lc, ok := conn.(lean.Conn)
	if !ok {
		return false
	}
	start := time.Now()
	peer := addrString(lc.RemoteAddr())
	up, err := r.lean.Connect()
	if err != nil {
		r.m.dialed(time.Since(start))
		r.m.end(endDialFailed, start, 0, 0)
		r.log.Warn("dial failed; connection reset", append([]any{"peer", peer, "duration", time.Since(start),
			"error", err}, unsignalled(endpoint.Abort(conn), nil)...)...)
		return true
	}
	in := lc.TakeFD()
	if in < 0 {
		// The Service cut it (a drain that timed out) before it was taken.
		unix.Close(up)
		r.m.dialed(time.Since(start))
		logEnd(r.log, r.m, peer, start, 0, 0, context.Cause(ctx))
		return true
	}
	p, ok := r.joiner.AdoptConnecting(in, up, r.leanConnecting)
	if !ok {
		unix.SetsockoptLinger(in, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
		unix.Close(in)
		unix.Close(up)
		r.m.dialed(time.Since(start))
		logEnd(r.log, r.m, peer, start, 0, 0, errors.New("the relay's event core cannot take the connection; connection reset"))
		return true
	}
	ended := func(res relay.Result) {
		var de *relay.DialError
		if errors.As(res.Err, &de) {
			r.m.end(endDialFailed, start, 0, 0)
			r.log.Warn("dial failed; connection reset", "peer", peer, "duration", time.Since(start), "error", de.Err)
			return
		}
		logEnd(r.log, r.m, peer, start, res.AToB, res.BToA, res.Err)
	}
	done, detached := endpoint.Detach(ctx, conn, p.Cut)
	if detached {
		r.m.holdActive() // the handler returns; the pair is still active
		p.Start(func(res relay.Result) {
			ended(res)
			r.m.releaseActive()
			done()
		})
		return true
	}
	// Not served by a Service (called directly): see the pair end here.
	res := awaitPair(ctx, p)
	ended(res)
	return true
}

// awaitPair starts p and waits for it to end, cutting it if ctx ends.
func awaitPair(ctx context.Context, p *relay.Pair) relay.Result {
	ch := make(chan relay.Result, 1)
	p.Start(func(res relay.Result) { ch <- res })
	select {
	case res := <-ch:
		return res
	case <-ctx.Done():
		p.Cut(context.Cause(ctx))
		return <-ch
	}
}
