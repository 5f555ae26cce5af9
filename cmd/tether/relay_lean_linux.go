package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/internal/lean"
	"github.com/tether-endpoints/tether/internal/relay"
	"golang.org/x/sys/unix"
)

// The lean path (docs/relay-core.md): a plain tcp LISTEN relayed to a plain
// tcp CONNECT of an IP literal, with nothing to do in between (no PROXY
// header to send), is served by the event core itself. Its loops accept on
// the listening socket (lean.Socket), start each connect (lean.Target)
// and relay the pair, as haproxy's threads do: no goroutine, no net.Conn
// and no Go poller registration per connection. TETHER_RELAY_LEAN=off
// switches it off (and TETHER_RELAY_CORE=off, which leaves no core).
var leanOff = os.Getenv("TETHER_RELAY_LEAN") == "off"

const leanMsg = "relaying on the lean path: the event core accepts and connects"

// leanSetup decides whether the relay takes the lean path, and if so
// returns the function that serves LISTEN's listener on it.
func (r *relayCmd) leanSetup() func(endpoint.Server, net.Listener, *serverFlags, time.Duration) server {
	if leanOff || r.proxyVersion != 0 || r.proxyByClient || !relay.CoreAvailable() {
		return nil
	}
	t, ok := lean.Client(r.target)
	if !ok {
		return nil
	}
	return func(srv endpoint.Server, ln net.Listener, sf *serverFlags, drain time.Duration) server {
		fd, ok := lean.Socket(srv, ln)
		if !ok {
			return nil
		}
		cfg := relay.ServerConfig{
			Connect:    t.Connect,
			Connecting: relay.Connecting{Timeout: t.Timeout(), Wrap: t.DialError, Done: r.m.dialed},
			MaxConns:   sf.maxConns,
			PerPeer:    sf.peers,
			Ended:      r.leanEnded,
			AcceptFailed: func(err error, pause time.Duration) {
				r.log.Warn("accept failed; retrying", "addr", addrString(ln.Addr()), "error", err, "pause", pause)
			},
		}
		if m := r.m; m != nil {
			cfg.Accepted = func() { m.accepted.Inc(); m.active.Inc() }
			cfg.Queued = m.queued.Inc
			m.limit.Set(float64(max(sf.maxConns, 0)))
		}
		s, err := r.joiner.Serve(fd, cfg)
		if err != nil {
			unix.Close(fd)
			r.log.Warn("the event core cannot accept on LISTEN; serving it the usual way", "error", err)
			return nil
		}
		r.log.Info(leanMsg)
		return &leanServer{s: s, drain: drain, log: r.log}
	}
}

// leanEnded logs a lean pair's end and counts it, as handle does for the
// others.
func (r *relayCmd) leanEnded(peer netip.AddrPort, start time.Time, res relay.Result) {
	if r.m != nil {
		r.m.active.Dec()
	}
	if errors.Is(res.Err, relay.ErrPeerLimit) {
		r.m.end(endPeerLimit, start, 0, 0)
		if logIt, skipped := refusalLine(); logIt {
			r.log.Warn(relay.ErrPeerLimit.Error(), "peer", peer.String(), "max_conns_per_peer", r.peers.Max(),
				"not_logged_since", skipped)
		}
		return
	}
	var de *relay.DialError
	if errors.As(res.Err, &de) {
		r.m.end(endDialFailed, start, 0, 0)
		r.log.Warn("dial failed; connection reset", "peer", peer.String(), "duration", time.Since(start), "error", de.Err)
		return
	}
	p := ""
	if r.log.Enabled(context.Background(), slog.LevelInfo) {
		p = peer.String() // not made for a line --quiet drops
	}
	logEnd(r.log, r.m, p, start, res.AToB, res.BToA, res.Err)
}

// A leanServer is a relay.Server behind the server interface, with a
// Service's stopping rules (see endpoint.Service): Shutdown drains and
// then cuts, Close cuts at once, and Serve returns once accepting has
// stopped and, unless Shutdown or Close does it, the drain is over.
type leanServer struct {
	s     *relay.Server
	drain time.Duration // as Service.DrainTimeout, but 0 is not the default: a negative one cuts at once
	log   *slog.Logger

	mu       sync.Mutex
	shutdown bool
}

// Serve waits until ctx ends or accepting fails, then stops accepting and
// drains for the drain timeout. ln is closed at once: the core accepts on
// a descriptor of its own, and Go's poller need not see the socket.
func (l *leanServer) Serve(ctx context.Context, ln net.Listener) error {
	ln.Close()
	select {
	case <-ctx.Done():
	case <-l.s.Stopped():
	}
	l.s.Stop()
	l.mu.Lock()
	shutdown := l.shutdown
	l.mu.Unlock()
	if shutdown {
		return nil
	}
	// A negative drain timeout cuts at once: a context already ended.
	drain, cancel := context.WithTimeout(context.Background(), max(l.drain, 0))
	defer cancel()
	l.Shutdown(drain)
	return l.s.Err()
}

// Shutdown stops accepting and waits for the pairs in hand to end; if ctx
// ends first, it cuts them (ErrDrainTimeout), waits for their ends to be
// reported and returns ctx's error.
func (l *leanServer) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.shutdown = true
	l.mu.Unlock()
	l.s.Stop()
	select {
	case <-l.s.Drained():
		return nil
	case <-ctx.Done():
	}
	l.cut(endpoint.ErrDrainTimeout)
	<-l.s.Drained()
	return ctx.Err()
}

// cut cuts the pairs in hand, saying so as a Service does.
func (l *leanServer) cut(cause error) {
	if n := l.s.Active(); n > 0 {
		l.log.Warn("cutting the connections still open", "connections", n, "reason", cause)
	}
	l.s.Cut(cause)
}

// Close stops accepting and cuts every pair in hand (ErrServiceClosed).
func (l *leanServer) Close() error {
	l.mu.Lock()
	l.shutdown = true
	l.mu.Unlock()
	l.s.Stop()
	l.cut(endpoint.ErrServiceClosed)
	return nil
}

// Active is the number of pairs in hand.
func (l *leanServer) Active() int { return l.s.Active() }
