package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/internal/relay"
	"github.com/tether-endpoints/tether/proxyproto"
)

// metrics are what relay and serve count for Prometheus (--metrics). A
// nil *metrics counts nothing, so the connection paths need no checks.
type metrics struct {
	reg      *prometheus.Registry
	accepted prometheus.Counter
	active   prometheus.Gauge
	ended    *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	// The series end adds to, looked up once: not by label per connection.
	endedBy          map[string]prometheus.Counter
	fromPeer, toPeer prometheus.Counter
	duration         prometheus.Histogram
	dial             prometheus.Histogram
	queued           prometheus.Counter
	limit            prometheus.Gauge
	draining         atomic.Bool
}

// The reasons a connection ended, as tether_connections_ended_total's
// reason label says them.
const (
	endDone         = "done"
	endDialFailed   = "dial_failed"
	endTLSFailed    = "tls_handshake_failed"
	endBadHeader    = "bad_proxy_header"
	endIdleTimeout  = "idle_timeout"
	endDrainCut     = "drain_cut"
	endError        = "error"
	endHeaderFailed = "proxy_header_write_failed"
	endPeerLimit    = "peer_limit"
)

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.accepted = prometheus.NewCounter(prometheus.CounterOpts{Name: "tether_connections_accepted_total",
		Help: "Connections accepted on LISTEN."})
	m.active = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tether_connections_active",
		Help: "Connections being served now."})
	m.ended = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_connections_ended_total",
		Help: "Connections ended, by reason."}, []string{"reason"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_relayed_bytes_total",
		Help: "Bytes moved, from the peer (to the upstream or service) and to the peer."}, []string{"direction"})
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tether_connection_duration_seconds",
		Help: "How long connections lasted, from accept to end.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 12)})
	m.dial = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tether_dial_duration_seconds",
		Help: "How long dialling CONNECT took, successful or not.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12)})
	// tether never refuses a connection over --max-conns: it stops
	// accepting, and the kernel holds the rest in the listen queue (and
	// refuses what overflows it, unseen). What tether can count is the
	// connections that waited there for a slot.
	m.queued = prometheus.NewCounter(prometheus.CounterOpts{Name: "tether_connections_queued_total",
		Help: "Connections that waited in the listen queue because --max-conns connections were being served."})
	m.limit = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tether_connections_limit",
		Help: "The most connections served at once (--max-conns); 0 is no limit."})
	draining := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tether_draining",
		Help: "1 once a signal has stopped accepting and connections are draining, else 0."}, func() float64 {
		if m.draining.Load() {
			return 1
		}
		return 0
	})
	m.reg.MustRegister(m.accepted, m.active, m.ended, m.bytes, m.duration, m.dial, m.queued, m.limit, draining,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every reason is there from the start, at 0, so that a rate over it
	// has a series to work on.
	m.endedBy = map[string]prometheus.Counter{}
	for _, r := range []string{endDone, endDialFailed, endTLSFailed, endBadHeader, endIdleTimeout, endDrainCut, endError,
		endHeaderFailed, endPeerLimit} {
		m.endedBy[r] = m.ended.WithLabelValues(r)
	}
	m.fromPeer, m.toPeer = m.bytes.WithLabelValues("from_peer"), m.bytes.WithLabelValues("to_peer")
	return m
}

// instrument counts the connections h serves.
func (m *metrics) instrument(h endpoint.Handler) endpoint.Handler {
	if m == nil {
		return h
	}
	return endpoint.HandlerFunc(func(ctx context.Context, c net.Conn) {
		m.accepted.Inc()
		m.active.Inc()
		defer m.active.Dec()
		h.ServeConn(ctx, c)
	})
}

// count sets the limit gauge to svc's MaxConns and counts the connections
// it keeps waiting.
func (m *metrics) count(svc *endpoint.Service) {
	if m == nil {
		return
	}
	m.limit.Set(float64(max(svc.MaxConns, 0)))
	svc.Queued = m.queued.Inc
}

// end counts a connection that ended for reason, with its bytes.
func (m *metrics) end(reason string, start time.Time, fromPeer, toPeer int64) {
	if m == nil {
		return
	}
	c, ok := m.endedBy[reason]
	if !ok {
		c = m.ended.WithLabelValues(reason)
	}
	c.Inc()
	m.fromPeer.Add(float64(fromPeer))
	m.toPeer.Add(float64(toPeer))
	m.duration.Observe(time.Since(start).Seconds())
}

// dialed records how long a dial took.
func (m *metrics) dialed(d time.Duration) {
	if m != nil {
		m.dial.Observe(d.Seconds())
	}
}

// reasonOf says why a connection that was served ended, from its error.
func reasonOf(err error) string {
	switch {
	case err == nil:
		return endDone
	case errors.Is(err, relay.ErrIdle):
		return endIdleTimeout
	case errors.Is(err, endpoint.ErrDrainTimeout), errors.Is(err, endpoint.ErrServiceClosed):
		return endDrainCut
	}
	return endError
}

// establishReason says why establishing a connection failed.
func establishReason(err error) string {
	if errors.Is(err, proxyproto.ErrBadHeader) {
		return endBadHeader
	}
	return endTLSFailed
}

// metricsTimeouts bound each phase of a connection to the metrics
// server, so that whoever can reach it cannot hold connections open: a
// request (headers and body) must arrive within read, its answer be taken
// within write, and a kept-alive connection is closed after idle (longer
// than Prometheus's default scrape interval of a minute, so that scrapes
// reuse it). A variable for the tests.
var metricsTimeouts = struct{ read, write, idle time.Duration }{10 * time.Second, 30 * time.Second, 2 * time.Minute}

// serve serves the metrics on the server endpoint string s: /metrics in
// Prometheus's text format, and /healthz, which answers 200 "ready" or,
// once draining, 503 "draining" (so that a load balancer stops sending).
// It returns the listener's address and a function that stops it. With
// in, the listener is handed on at a restart, as LISTEN is.
func (m *metrics) serve(s string, in endpoint.Inheritor, log *slog.Logger) (net.Addr, func(), error) {
	ln, err := (&endpoint.Options{Logger: log, Inherit: in}).Listen(context.Background(), s)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if m.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	srv := &http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: metricsTimeouts.read, ReadTimeout: metricsTimeouts.read,
		WriteTimeout: metricsTimeouts.write, IdleTimeout: metricsTimeouts.idle, MaxHeaderBytes: 16 << 10}
	go srv.Serve(ln)
	return ln.Addr(), func() { srv.Close() }, nil
}
