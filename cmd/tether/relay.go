package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/abort"
	"github.com/tether-endpoints/tether/internal/relay"
	"github.com/tether-endpoints/tether/proxyproto"
)

func init() {
	register(&command{name: "relay", summary: "accept on one endpoint and forward each connection to another", run: runRelay})
}

const relayUsage = `Usage: tether relay [FLAGS] LISTEN CONNECT [CONNECT...]

Accepts connections on the server endpoint LISTEN and, for each one, connects
to the client endpoint CONNECT and moves bytes both ways until both sides are
done. When one side finishes sending, the other side's write half is closed
and the reverse direction keeps flowing (half-close is carried). Plain TCP
and UNIX connections are relayed with splice(2), without copying through
user space.

  $ tether relay tcp:8080 tcp:10.0.0.5:80
  $ tether relay tcp:5432:interface=127.0.0.1 unix:/run/postgresql/.s.PGSQL.5432
  $ tether relay unix:/run/app.sock:mode=660 tcp:localhost:9000
  $ tether relay --max-conns 500 --idle-timeout 10m --log-format json tcp:443 tcp:backend:443
  $ tether relay --quiet stdio: tcp:db.internal:5432

Several CONNECT strings are one balance: client endpoint over them: each
connection goes to the next in turn (--policy roundrobin, the default), or
to the first that accepts (--policy first: failover), a random one
(random), or the one with the fewest connections open (leastconn). A
backend whose dial fails is passed over for a second, doubling while it
keeps failing, and the connection is dialled to the next at once, so
that a backend going down fails no client; the relay logs it, and logs it
again when it is back. The log's target is the balance: string that
tether wrote (see tether types balance).

  $ tether relay tcp:8080 tcp:10.0.0.5:80 tcp:10.0.0.6:80
  $ tether relay --policy first tcp:5432 tcp:db1:5432 tcp:db2:5432
  $ tether relay tcp:443 srv:https:example.com   # targets from DNS SRV records

With stdio: as LISTEN (inetd, or ssh's ProxyCommand) standard input and
output are the one connection, and tether exits when it is done.

A connection is first fully established, in its own goroutine and never
in the accept loop: a tls: or ssl: LISTEN's handshake is completed (within
its handshakeTimeout) and a haproxy: LISTEN's header read, and only then is
CONNECT dialled, so a client that never finishes its handshake, or that
clientCA= refuses, never reaches the server behind the relay. If any of
this fails, or the dial does, that one connection is reset and the failure
logged with its reason. Running out of file descriptors pauses accepting
(5ms, doubling to 1s) instead of stopping the relay.

--max-conns-per-peer N bounds the connections open at once from one
client: an IPv4 address, or an IPv6 /64 (what one client can hold whole).
One more is reset as it is accepted, before any TLS handshake, so that no
one client can take every slot of --max-conns or every file descriptor,
even with connections that never finish a handshake; the others are
served as before. Refusals are logged ("too many connections from this
peer") at most once a second, with how many were not, and counted in the
metrics. Behind a haproxy: LISTEN the client is the one its PROXY header
names, counted once the header is read: the limit is only as good as the
load balancers that may send one. UNIX peers are not counted. A client
that connects again the instant its connection ends may find it counted
for that instant; and during a SIGHUP restart the new process counts
afresh while the old one drains.

A connection that ends in error (a reset or failure on either side, a
TLS peer that ends its stream without close_notify, the idle timeout, a
drain cut short) is aborted on both sides: each peer gets a
TCP reset, and a TLS peer no close_notify, so that no one takes a cut
stream for a complete one. A UNIX socket, a pipe or an exec: program
cannot be told: its peer sees an ordinary end, and the connection's log
line says so with "abort_unsignalled" (peer, upstream, or both).

One log line (log/slog, on stderr) is written per connection when it ends:
the peer as LISTEN reports it, the duration, and the bytes from and to
the peer (in JSON, durations are in seconds). Behind a load balancer, a
haproxy: LISTEN reports the original client that the PROXY protocol header
names; a connection whose header is missing or malformed is reset and
logged, and nothing is dialled for it. When CONNECT is exec:, the line
also has the program's exit status ("exit"), and a status other than 0 is
the line's error; the program's standard error is logged line by line
("exec: stderr"). --quiet leaves out all these lines and keeps warnings.

--proxy-protocol v1 or v2 sends the server behind the relay a PROXY
protocol header first, naming the original client and the address it
connected to, as haproxy's send-proxy and send-proxy-v2 do; the server
must expect it (haproxy's accept-proxy, nginx's proxy_protocol, tether's
haproxy: endpoint). The header is written in the connection's goroutine,
after the dial and before any byte of the client's. A CONNECT that is a
haproxy: client sends the header itself, naming the original client too
(in version 1 unless --proxy-protocol says v2); the relay then writes no
second one.

  $ tether relay --proxy-protocol v2 tcp:443 tcp:10.0.0.5:8443
  $ tether relay tcp:7000 exec:sh:-c:'tr a-z A-Z'

--dev-cert is for development: if LISTEN is a tls: or ssl: server that
names no certificate, tether makes a throwaway self-signed one, says so on
stderr with its SHA-256 fingerprint, and deletes it at exit (see tether
serve --help).

--metrics LISTEN serves Prometheus metrics on any server endpoint string
(tcp:9100:interface=127.0.0.1, unix:/run/tether-metrics.sock): /metrics
has connections accepted, active and ended by reason (done, dial_failed,
tls_handshake_failed, bad_proxy_header, proxy_header_write_failed,
peer_limit, idle_timeout, drain_cut, error), those --max-conns kept waiting in the
listen queue and the limit itself, bytes each way, connection duration
and dial latency histograms, the drain state, and the Go and process
collectors; /healthz answers 200 "ready", or 503 "draining" once a
signal has started the drain. (tether never refuses a connection over
--max-conns; the system does, unseen, once the listen queue is full.)

Under systemd with Type=notify (NOTIFY_SOCKET set), tether sends READY=1
once it listens and STOPPING=1 when a signal starts the drain.

SIGINT or SIGTERM stops listening at once, lets connections in flight finish
for up to --drain-timeout, then resets what is left and exits 0; a second
signal resets them at once.

SIGHUP restarts tether without refusing or cutting a connection: it starts
a new tether from the binary on disk (which may be newer) with the same
arguments, hands it the listening sockets (LISTEN's and --metrics'), and
once the new process listens, stops accepting and drains as on SIGTERM.
The new process accepts every connection from then on, including those
already waiting in the listen queue; a unix: socket keeps its file and its
lock (which names the new process). If the new process fails to start, or
is not ready within a minute, the old one goes on serving and logs why.
Under systemd, tether sends RELOADING=1, then MAINPID= the new process with
READY=1 (or READY=1 alone after a failure). A process refuses SIGHUP until
the one it replaced has finished draining, and while a restart is under
way; SIGTERM during a restart kills a new process that is not ready yet.
systemd: sockets are handed on too; stdio: keeps SIGHUP's usual meaning
(it ends tether), and fd: cannot be restarted. See docs/systemd.md.

Exit codes: 0 after a signal, 1 if listening (or making the --dev-cert
certificate) fails, 2 for bad usage or an endpoint string that does not
parse. Flags may come before or after the endpoint strings. If LISTEN is
rejected and the two look swapped (LISTEN reads as a client string and
CONNECT as a server string), tether says so. insecureSkipVerify=1 in
CONNECT (at any depth) is warned about on stderr.

Flags:
`

// serverFlags are the flags that relay and serve share.
type serverFlags struct {
	maxConns  int
	perPeer   int                // --max-conns-per-peer
	peers     *relay.PeerCounter // counts them, nil without a limit
	drain     time.Duration
	logFormat string
	quiet     bool
	devCert   bool
	metrics   string // a server endpoint string, or ""
	meter     *metrics
	// restart hands the listeners on at SIGHUP (nil: it cannot, and
	// noRestart says why, or SIGHUP is left alone if that is "").
	restart   *restarter
	noRestart string
	// lean, if not nil, serves LISTEN's listener on the relay's lean path
	// (relay_lean_linux.go) with the given drain timeout, or returns nil
	// if it cannot.
	lean func(srv endpoint.Server, ln net.Listener, sf *serverFlags, drain time.Duration) server
}

// A server serves a listener until told to stop: an endpoint.Service, or
// the relay's event core on the lean path (leanServer).
type server interface {
	// Serve serves ln until ctx ends or it fails, then drains as
	// endpoint.Service.Serve does.
	Serve(ctx context.Context, ln net.Listener) error
	// Shutdown stops accepting and drains until ctx ends, then cuts.
	Shutdown(ctx context.Context) error
	// Close stops accepting and cuts every connection.
	Close() error
	// Active is the number of connections in hand.
	Active() int
}

// inherit is the endpoint.Inheritor to parse LISTEN and --metrics with.
func (f *serverFlags) inherit() endpoint.Inheritor {
	if f.restart == nil {
		return nil // not a nil *restarter in an interface
	}
	return f.restart
}

func (f *serverFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.maxConns, "max-conns", 0, "most connections handled at once; more wait in the listen queue (0: no limit)")
	fs.IntVar(&f.perPeer, "max-conns-per-peer", 0, "most connections at once from one client (an IPv4 address, an IPv6 /64); more are reset (0: no limit)")
	fs.DurationVar(&f.drain, "drain-timeout", endpoint.DefaultDrainTimeout, "after SIGINT, SIGTERM or a SIGHUP restart, how long connections in flight may take to finish")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&f.quiet, "quiet", false, "log only warnings and errors, not one line per connection")
	fs.BoolVar(&f.devCert, "dev-cert", false, "if LISTEN is a tls: or ssl: server without a certificate, serve a throwaway self-signed one (development only)")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics (/metrics) and a health check (/healthz) on this server endpoint `string`, e.g. tcp:9100:interface=127.0.0.1")
}

// metricsOn makes the metrics if --metrics asks for them, else nil.
func (f *serverFlags) metricsOn() *metrics {
	if f.metrics != "" && f.meter == nil {
		f.meter = newMetrics()
	}
	return f.meter
}

// logger checks the flags and makes the logger, writing to w.
func (f *serverFlags) logger(w io.Writer) (*slog.Logger, error) {
	if f.drain < 0 {
		return nil, fmt.Errorf("--drain-timeout %v is negative", f.drain)
	}
	if f.perPeer < 0 {
		return nil, fmt.Errorf("--max-conns-per-peer %d is negative (0 is no limit)", f.perPeer)
	}
	f.peers = relay.NewPeerCounter(f.perPeer)
	if f.metrics != "" {
		if _, err := endpoint.ParseServer(f.metrics); err != nil {
			return nil, fmt.Errorf("--metrics: %w", err)
		}
	}
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if f.quiet {
		opts.Level = slog.LevelWarn
	}
	switch f.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.Float64Value(a.Value.Duration().Seconds())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", endpoint.Redact(f.logFormat))
}

type relayCmd struct {
	target endpoint.Client
	joiner relay.Joiner
	log    *slog.Logger
	// proxyVersion is the PROXY protocol version to send (1 or 2), or 0.
	proxyVersion int
	// proxyByClient says CONNECT is a haproxy: client, which sends the
	// header itself.
	proxyByClient bool
	m             *metrics // nil without --metrics
	// peers counts the connections per peer (--max-conns-per-peer).
	peers *relay.PeerCounter
}

func runRelay(e *env, args []string) int {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var sf serverFlags
	sf.register(fs)
	idle := fs.Duration("idle-timeout", 0, "close a connection once nothing has moved either way for this long (0: never)")
	proxyProto := fs.String("proxy-protocol", "", "send CONNECT first a PROXY protocol header of this `version` (v1 or v2) naming the original client")
	policy := fs.String("policy", "", "with several CONNECT strings, the `order` each connection tries them in: roundrobin (default), first, random or leastconn")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), relayUsage)
		fs.PrintDefaults()
	}
	pos, code, done := parseFlags(fs, args, e, nil)
	if done {
		return code
	}
	if len(pos) < 2 {
		fmt.Fprintln(e.stderr, "tether relay: want LISTEN and one or more CONNECT endpoint strings (run tether relay --help)")
		return exitUsage
	}
	if *policy != "" && len(pos) == 2 {
		fmt.Fprintln(e.stderr, "tether relay: --policy chooses among several CONNECT strings, and there is one")
		return exitUsage
	}
	log, err := sf.logger(e.stderr)
	if err == nil && *idle < 0 {
		err = fmt.Errorf("--idle-timeout %v is negative", *idle)
	}
	r := &relayCmd{joiner: relay.Joiner{IdleTimeout: *idle}, log: log, m: sf.metricsOn(), peers: sf.peers}
	switch *proxyProto {
	case "":
	case "v1", "v2":
		r.proxyVersion = int((*proxyProto)[1] - '0')
	default:
		if err == nil {
			err = fmt.Errorf("--proxy-protocol %q: want v1 or v2", endpoint.Redact(*proxyProto))
		}
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "tether relay:", err)
		return exitUsage
	}
	listenArg, connectArg := pos[0], pos[1]
	if len(pos) > 2 {
		connectArg = balanceString(pos[1:], *policy)
	}
	listen, attrs, cleanup, code := devCert(e, "relay", listenArg, sf.devCert)
	defer cleanup()
	if code >= 0 {
		return code
	}
	sf.restart, sf.noRestart = newRestarter(e, listen)
	opts := &endpoint.Options{Logger: log, Inherit: sf.inherit()}
	srv, err := opts.ParseServer(listen)
	if err != nil {
		fmt.Fprintln(e.stderr, "tether relay:", err)
		if looksSwapped(listenArg, connectArg) {
			fmt.Fprintln(e.stderr, "tether relay: the arguments look swapped: LISTEN comes first (tether relay LISTEN CONNECT)")
		}
		devCertHint(e, "relay", listenArg, sf.devCert)
		return exitUsage
	}
	if r.target, err = opts.ParseClient(connectArg); err != nil {
		fmt.Fprintln(e.stderr, "tether relay:", err)
		return exitUsage
	}
	if a, err := driver.ClientArgs(connectArg); err == nil && a.Spec.Name == "haproxy" {
		r.proxyByClient = true
	}
	warnInsecure(e, "relay", connectArg)
	setDefaultLogger(e, log)
	sf.lean = r.leanSetup()
	return serveUntilSignal(e, "relay", srv, endpoint.HandlerFunc(r.handle), &sf, log,
		append([]any{"endpoint", endpoint.Redact(listenArg), "target", endpoint.Redact(connectArg)}, attrs...)...)
}

// balanceString writes the balance: client string over several client
// strings, so that each comes back as written: in brackets (which nest)
// with its backslashes doubled, or quoted if its own brackets do not
// balance.
func balanceString(backends []string, policy string) string {
	var b strings.Builder
	b.WriteString("balance")
	for _, s := range backends {
		b.WriteByte(':')
		if driver.Unbracket("["+s+"]") == s {
			b.WriteString("[" + strings.ReplaceAll(s, `\`, `\\`) + "]")
		} else {
			b.WriteString(endpoint.Quote(s))
		}
	}
	if policy != "" {
		b.WriteString(":policy=")
		b.WriteString(endpoint.Quote(policy))
	}
	return b.String()
}

// proxyHeaderTimeout bounds writing the PROXY protocol header.
const proxyHeaderTimeout = 10 * time.Second

// handle relays one accepted connection. The upstream is dialled only
// once the connection is fully established (its TLS handshake done, its
// PROXY header read), so that a client that never finishes, or that a
// clientCA= refuses, costs the service behind the relay nothing.
func (r *relayCmd) handle(ctx context.Context, conn net.Conn) {
	start := time.Now()
	release, ok := establishAdmitted(ctx, r.peers, r.log, r.m, conn, start)
	if !ok {
		return
	}
	handedOn := false // the pair's end, elsewhere, releases it
	defer func() {
		if !handedOn {
			release()
		}
	}()
	peer := peerString(conn)
	dialCtx := ctx
	if r.proxyByClient {
		v := max(r.proxyVersion, 1)
		dialCtx = proxyproto.NewContext(ctx, &proxyproto.Header{Version: v,
			Source: conn.RemoteAddr(), Destination: conn.LocalAddr()})
	}
	dialStart := time.Now()
	up, err := r.target.Dial(dialCtx)
	r.m.dialed(time.Since(dialStart))
	if err != nil {
		r.m.end(endDialFailed, start, 0, 0)
		r.log.Warn("dial failed; connection reset", append([]any{"peer", peer, "duration", time.Since(start),
			"error", err}, unsignalled(endpoint.Abort(conn), nil)...)...)
		return
	}
	if r.proxyVersion != 0 && !r.proxyByClient {
		up.SetWriteDeadline(time.Now().Add(proxyHeaderTimeout))
		err := proxyproto.Write(up, r.proxyVersion, conn.RemoteAddr(), conn.LocalAddr())
		if err != nil {
			r.m.end(endHeaderFailed, start, 0, 0)
			r.log.Warn("sending the PROXY protocol header failed; connection reset", append([]any{"peer", peer,
				"duration", time.Since(start), "error", err},
				unsignalled(endpoint.Abort(conn), endpoint.Abort(up))...)...)
			return
		}
		up.SetWriteDeadline(time.Time{})
	}
	in := conn
	if pc, ok := conn.(*proxyproto.Conn); ok {
		// Its header is read and nothing after it is held back: relay the
		// socket itself, which keeps the splice path.
		in = pc.NetConn()
	}
	if r.handOff(ctx, conn, in, up, peer, start, release) {
		handedOn = true
		return
	}
	// A pair neither the core nor parking takes (exec:, stdio:, parking
	// switched off) goes on in fresh goroutines (Join's two), detached:
	// this one, its stack grown by a TLS handshake and the dial, returns.
	// A cut cancels jctx.
	jctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	if done, ok := endpoint.Detach(ctx, conn, cancel); ok {
		r.m.holdActive()
		handedOn = true
		go func() {
			r.join(jctx, in, up, peer, start, release)
			cancel(nil)
			r.m.releaseActive()
			done()
		}()
		return
	}
	cancel(nil)
	handedOn = true
	r.join(ctx, in, up, peer, start, release)
}

// join relays a pair with Join, in the goroutine that calls it, and writes
// its log line.
func (r *relayCmd) join(ctx context.Context, in, up net.Conn, peer string, start time.Time, release func()) {
	res := r.joiner.Join(ctx, in, up)
	release() // before anything slower: the client may be connecting again
	err := res.Err
	var more []any
	// Join has closed up; an exec: program has exited by now.
	if p, ok := up.(interface {
		Wait() error
		ProcessState() *os.ProcessState
	}); ok {
		if ps := p.ProcessState(); ps != nil {
			more = append(more, "exit", ps.String())
		}
		if werr := p.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("%s: %w", up.RemoteAddr(), werr)
		}
	}
	more = append(more, unsignalledSides(res.Unsignalled[0], res.Unsignalled[1])...)
	logEnd(r.log, r.m, peer, start, res.AToB, res.BToA, err, more...)
}

// A started pair is one the relay's handler hands on and returns: the
// event core's (relay.Pair) or a parked TLS pair's (relay.Parked).
type startedPair interface {
	Start(done func(relay.Result))
	Cut(cause error)
}

// handOff gives a pair to the relay's event core (Linux; see
// docs/relay-core.md) if both are plain sockets, or parks it if one is TLS
// over a socket; neither needs a goroutine per idle connection: the
// handler returns at once, and the Service goes on counting the connection
// (--max-conns, the drain) until the pair ends, when its log line is
// written. It returns false, having done nothing, when neither can take
// the pair (exec:, stdio:, another system): Join it then.
func (r *relayCmd) handOff(ctx context.Context, conn, in, up net.Conn, peer string, start time.Time, release func()) bool {
	var p startedPair
	if cp, ok := r.joiner.Adopt(in, up); ok {
		p = cp
	} else if pp, ok := r.joiner.Park(in, up); ok {
		p = pp
	} else {
		return false
	}
	done, detached := endpoint.Detach(ctx, conn, p.Cut)
	if detached {
		r.m.holdActive() // the handler returns; the pair is still active
		p.Start(func(res relay.Result) {
			release()
			logEnd(r.log, r.m, peer, start, res.AToB, res.BToA, res.Err,
				unsignalledSides(res.Unsignalled[0], res.Unsignalled[1])...)
			r.m.releaseActive()
			done()
		})
		return true
	}
	// Not served by a Service (called directly): see the pair end here.
	ended := make(chan relay.Result, 1)
	p.Start(func(res relay.Result) { ended <- res })
	var res relay.Result
	select {
	case res = <-ended:
	case <-ctx.Done():
		p.Cut(context.Cause(ctx))
		res = <-ended
	}
	release()
	logEnd(r.log, r.m, peer, start, res.AToB, res.BToA, res.Err,
		unsignalledSides(res.Unsignalled[0], res.Unsignalled[1])...)
	return true
}

// holdActive and releaseActive count a connection as active beyond its
// handler's return (instrument counts it while the handler runs).
func (m *metrics) holdActive() {
	if m != nil {
		m.active.Inc()
	}
}

func (m *metrics) releaseActive() {
	if m != nil {
		m.active.Dec()
	}
}

// establish completes an accepted connection's opening phases (a TLS
// handshake, a PROXY protocol header) here, in the connection's goroutine,
// each within its own timeout. If one fails, the connection is reset, the
// failure logged, and establish returns false.
func establish(ctx context.Context, log *slog.Logger, m *metrics, conn net.Conn, start time.Time) bool {
	err := endpoint.Handshake(ctx, conn)
	if err == nil {
		return true
	}
	m.end(establishReason(err), start, 0, 0)
	msg := "TLS handshake failed; connection reset"
	if errors.Is(err, proxyproto.ErrBadHeader) {
		msg = "bad PROXY protocol header; connection reset"
	}
	log.Warn(msg, append([]any{"peer", addrString(conn.RemoteAddr()), "duration", time.Since(start), "error", err},
		unsignalled(endpoint.Abort(conn), nil)...)...)
	return false
}

// establishAdmitted establishes conn (see establish) and counts it
// against --max-conns-per-peer, returning what uncounts it when it ends;
// false if it was refused or failed (it is then reset, logged and counted
// as ended). It is counted before its TLS handshake, by the socket's peer,
// so that connections that never finish one count too; behind a PROXY
// header, once the header is read, by the client the header names.
func establishAdmitted(ctx context.Context, peers *relay.PeerCounter, log *slog.Logger, m *metrics, conn net.Conn, start time.Time) (release func(), ok bool) {
	behind := behindProxyHeader(conn)
	release = func() {}
	if !behind {
		if release, ok = admitPeer(peers, log, m, conn, start); !ok {
			return nil, false
		}
	}
	if !establish(ctx, log, m, conn, start) {
		release()
		return nil, false
	}
	if behind {
		return admitPeer(peers, log, m, conn, start)
	}
	return release, true
}

// behindProxyHeader says whether conn's peer is named by a PROXY protocol
// header (a haproxy: LISTEN, perhaps under TLS), which asking for it
// before the header is read would wait for.
func behindProxyHeader(conn net.Conn) bool {
	for _, c := range abort.Layers(conn) {
		if _, ok := c.(*proxyproto.Conn); ok {
			return true
		}
	}
	return false
}

// admitPeer counts conn against --max-conns-per-peer by the peer it
// reports, and returns what uncounts it. One over the limit is reset,
// logged (see refusalLine) and counted as ended, and admitPeer returns
// false. A peer that is not IP (UNIX) is not limited.
func admitPeer(peers *relay.PeerCounter, log *slog.Logger, m *metrics, conn net.Conn, start time.Time) (release func(), ok bool) {
	addr := peerAddr(conn.RemoteAddr())
	if peers.Admit(addr) {
		return func() { peers.Release(addr) }, true
	}
	m.end(endPeerLimit, start, 0, 0)
	more := unsignalled(endpoint.Abort(conn), nil)
	if logIt, skipped := refusalLine(); logIt {
		log.Warn(relay.ErrPeerLimit.Error(), append([]any{"peer", addrString(conn.RemoteAddr()),
			"max_conns_per_peer", peers.Max(), "not_logged_since", skipped}, more...)...)
	}
	return nil, false
}

// refusals spaces the log lines of connections refused over
// --max-conns-per-peer: at most one a second, saying how many were not
// logged since the last (the metrics count every one), so that a client
// hammering the relay does not fill its log.
var refusals struct {
	sync.Mutex
	last    time.Time
	skipped int
}

func refusalLine() (logIt bool, skipped int) {
	refusals.Lock()
	defer refusals.Unlock()
	if now := time.Now(); now.Sub(refusals.last) >= time.Second {
		refusals.last, skipped, refusals.skipped = now, refusals.skipped, 0
		return true, skipped
	}
	refusals.skipped++
	return false, 0
}

// peerAddr is the IP address of a peer (a *net.TCPAddr's, or one that
// prints as IP:port), or the zero Addr if it has none.
func peerAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case interface{ AddrPort() netip.AddrPort }:
		return a.AddrPort().Addr()
	case nil:
		return netip.Addr{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap.Addr()
}

// unsignalled turns the errors of aborting the peer's and the upstream's
// connections into the log attribute that says which of them could not be
// told that their stream was cut (see endpoint.ErrAbortUnsignalled).
func unsignalled(peerErr, upErr error) []any {
	return unsignalledSides(errors.Is(peerErr, endpoint.ErrAbortUnsignalled),
		errors.Is(upErr, endpoint.ErrAbortUnsignalled))
}

// unsignalledSides is the "abort_unsignalled" log attribute: "peer",
// "upstream" or "peer,upstream", the sides whose transport (a UNIX socket,
// a pipe) could not carry the reset of an aborted connection, so that they
// saw an ordinary end of a cut stream. Nothing when both were told.
func unsignalledSides(peer, upstream bool) []any {
	switch {
	case peer && upstream:
		return []any{"abort_unsignalled", "peer,upstream"}
	case peer:
		return []any{"abort_unsignalled", "peer"}
	case upstream:
		return []any{"abort_unsignalled", "upstream"}
	}
	return nil
}

// setDefaultLogger makes log the default logger, which endpoints log with
// (an exec: client logs its program's standard error there), when tether
// writes to the process's own stderr: not when a test runs it in-process.
func setDefaultLogger(e *env, log *slog.Logger) {
	if e.stderr == os.Stderr {
		slog.SetDefault(log)
	}
}

// logEnd writes the line that ends every connection.
func logEnd(log *slog.Logger, m *metrics, peer string, start time.Time, fromPeer, toPeer int64, err error, more ...any) {
	m.end(reasonOf(err), start, fromPeer, toPeer)
	if !log.Enabled(context.Background(), slog.LevelInfo) {
		return // --quiet: nothing to build the line for, once per connection
	}
	attrs := append([]any{"peer", peer, "duration", time.Since(start), "from_peer", fromPeer, "to_peer", toPeer}, more...)
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	log.Info("connection ended", attrs...)
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// serveUntilSignal serves srv with h until SIGINT or SIGTERM, then drains
// for up to the drain timeout; a second signal cuts the drain short. With
// a restarter, SIGHUP hands the listeners to a new process (restart.go)
// and, once it is ready, drains the same way. It returns the exit code.
func serveUntilSignal(e *env, name string, srv endpoint.Server, h endpoint.Handler, sf *serverFlags, log *slog.Logger, attrs ...any) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	hups := make(chan os.Signal, 1)
	if sf.restart != nil || sf.noRestart != "" {
		signal.Notify(hups, syscall.SIGHUP)
		defer signal.Stop(hups)
	}
	if sf.restart != nil {
		defer sf.restart.stop()
	}

	ln, err := srv.Listen(context.Background())
	if err != nil {
		fmt.Fprintf(e.stderr, "tether %s: %v\n", name, err)
		return exitFailure
	}
	drain := sf.drain
	if drain == 0 {
		drain = -1 // the Service's "no drain"; its zero means its default
	}
	stopMetrics := func() {}
	if m := sf.metricsOn(); m != nil {
		h = m.instrument(h)
		addr, stop, err := m.serve(sf.metrics, sf.inherit(), log)
		if err != nil {
			ln.Close()
			fmt.Fprintf(e.stderr, "tether %s: --metrics: %v\n", name, err)
			return exitFailure
		}
		stopMetrics = stop
		defer stop()
		log.Info("serving metrics", "addr", addrString(addr), "endpoint", endpoint.Redact(sf.metrics))
	}
	var svc server
	if sf.lean != nil {
		svc = sf.lean(srv, ln, sf, drain)
	}
	if svc == nil {
		s := &endpoint.Service{Handler: h, MaxConns: sf.maxConns, DrainTimeout: drain, Log: log}
		sf.metricsOn().count(s)
		svc = s
	}
	log.Info("listening", append([]any{"addr", addrString(ln.Addr())}, attrs...)...)
	took := sf.restart != nil && sf.restart.HasParent()
	if sf.restart != nil {
		// Every listener is made: the process that started this one, if
		// any, may stop accepting.
		if err := sf.restart.ready(); err != nil {
			log.Warn("telling the old process this one is ready failed", "error", err)
		}
	}
	if took {
		// The old process tells the service manager, which hears only its
		// main process until then (MAINPID=).
		old := sf.restart.parent
		log.Info("took over the listeners from the old process", "old_pid", old)
		go func() {
			<-sf.restart.parentGone
			log.Info("the old process has exited; SIGHUP may restart again", "old_pid", old)
		}()
	} else if err := sdNotify("READY=1\nSTATUS=listening on " + addrString(ln.Addr())); err != nil {
		log.Warn("telling the service manager tether is ready failed", "error", err)
	}
	served := make(chan error, 1)
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	go func() { served <- svc.Serve(serveCtx, ln) }()
	handed := false // the listeners are the new process's

	var restarting <-chan restartResult
	// handedOn ends the restart: the new process serves from now on.
	handedOn := func(res restartResult) {
		handed = true
		stopMetrics() // the new process serves them, and /healthz says ready
		state := "READY=1\nSTATUS=handed on to PID " + strconv.Itoa(res.pid)
		if res.pid > 0 {
			state = "MAINPID=" + strconv.Itoa(res.pid) + "\n" + state
		} else {
			log.Warn("the service manager cannot be told the new main PID", "error", res.err)
		}
		if err := sdNotify(state); err != nil {
			log.Warn("telling the service manager about the new process failed", "error", err)
		}
		log.Info("restarted: the new process serves; not accepting; draining", "new_pid", res.pid,
			"connections", svc.Active(), "drain_timeout", sf.drain)
	}
wait:
	for {
		select {
		case <-hups:
			switch {
			case sf.restart == nil:
				log.Warn("SIGHUP: cannot restart; going on serving", "reason", sf.noRestart)
			case restarting != nil:
				log.Warn("SIGHUP: a restart is in progress already; ignored")
			case sf.restart.busy() != "":
				log.Warn("SIGHUP: cannot restart yet; going on serving", "reason", sf.restart.busy())
			default:
				log.Info("restarting: starting a new process to hand the listeners to", "signal", "hangup")
				if err := sdNotify(reloadingState()); err != nil {
					log.Warn("telling the service manager tether is restarting failed", "error", err)
				}
				restarting = sf.restart.start()
			}
		case res := <-restarting:
			restarting = nil
			if res.handedOn {
				handedOn(res)
				break wait
			}
			log.Error("restart failed; this process goes on serving", "error", res.err)
			if err := sdNotify("READY=1\nSTATUS=restart failed; listening on " + addrString(ln.Addr())); err != nil {
				log.Warn("telling the service manager tether is ready failed", "error", err)
			}
		case sig := <-sigs:
			if restarting != nil {
				// A new process that is not ready yet is killed; one that
				// is ready has the listeners already, and this process
				// only drains.
				sf.restart.stop()
				if res := <-restarting; res.handedOn {
					handedOn(res)
					break wait
				}
				log.Info("restart abandoned", "signal", sig.String())
			}
			if m := sf.metricsOn(); m != nil {
				m.draining.Store(true)
			}
			if err := sdNotify("STOPPING=1\nSTATUS=draining"); err != nil {
				log.Warn("telling the service manager tether is stopping failed", "error", err)
			}
			log.Info("shutting down: not accepting; draining", "signal", sig.String(),
				"connections", svc.Active(), "drain_timeout", sf.drain)
			break wait
		case err := <-served:
			// Serve has drained already.
			if err == nil {
				// The listener closed itself: stdio:'s one connection is done.
				log.Info("stopped: the listener has closed")
				return exitOK
			}
			log.Error("accepting failed", "error", err)
			log.Info("stopped")
			return exitFailure
		}
	}
	finished := make(chan struct{})
	if handed {
		// Serve stops its accept loop and then drains (for DrainTimeout),
		// so that a connection accepted just as the listener closes is
		// served. Shutdown would reset it, which is right when tether
		// stops, but not when a new process could have taken it.
		stopServing()
		go func() {
			<-served
			close(finished)
		}()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), max(sf.drain, 0))
		defer cancel()
		go func() {
			svc.Shutdown(ctx)
			<-served
			close(finished)
		}()
	}
	for {
		select {
		case <-finished:
			log.Info("stopped")
			return exitOK
		case <-sigs:
			log.Warn("second signal: closing connections now", "connections", svc.Active())
			svc.Close()
		case <-hups:
			log.Warn("SIGHUP while draining: ignored")
		}
	}
}
