package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches and parses (with Prometheus's own text parser) the
// metrics at addr.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the value of the family's series whose labels include
// label=want ("" for a series without labels).
func value(t *testing.T, fams map[string]*dto.MetricFamily, name, label, want string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range f.Metric {
		match := label == ""
		for _, l := range m.Label {
			if l.GetName() == label && l.GetValue() == want {
				match = true
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, want)
	return 0
}

// TestRelayMetrics: after a known load, the metrics say exactly what the
// load did (connections accepted and ended, by reason; bytes each way;
// dials; those --max-conns kept waiting), and /healthz says ready.
func TestRelayMetrics(t *testing.T) {
	up, target := listenTest(t, "tcp")
	echoServer(up)
	p := startTether(t, tetherBin, "relay", "--log-format", "json", "--metrics", "tcp:0:interface=127.0.0.1",
		serverEndpoint(t, "tcp"), target)
	metricsAddr := p.waitLog("serving metrics", nil)["addr"].(string)
	addr := p.addr()
	const conns, size = 5, 1000
	for i := 0; i < conns; i++ {
		c := dialAddr(t, "tcp", addr)
		c.Write(bytes.Repeat([]byte{'x'}, size))
		closeWriteT(t, c)
		if got, err := io.ReadAll(c); len(got) != size || err != nil {
			t.Fatalf("echo: %d bytes, %v", len(got), err)
		}
		c.Close()
	}
	p.waitUntil(fmt.Sprintf("%d connection ends", conns), func() bool { // with p.mu held
		n := 0
		for _, l := range p.logs {
			if l["msg"] == "connection ended" {
				n++
			}
		}
		return n >= conns
	})
	fams := scrape(t, metricsAddr)
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"tether_connections_accepted_total", "", "", conns},
		{"tether_connections_active", "", "", 0},
		{"tether_connections_ended_total", "reason", "done", conns},
		{"tether_connections_ended_total", "reason", "dial_failed", 0},
		{"tether_relayed_bytes_total", "direction", "from_peer", conns * size},
		{"tether_relayed_bytes_total", "direction", "to_peer", conns * size},
		{"tether_dial_duration_seconds", "", "", conns},
		{"tether_connection_duration_seconds", "", "", conns},
		{"tether_draining", "", "", 0},
		{"tether_connections_queued_total", "", "", 0},
		{"tether_connections_limit", "", "", 0},
	} {
		if got := value(t, fams, c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.name, c.label, c.value, got, c.want)
		}
	}
	if fams["go_goroutines"] == nil || fams["process_open_fds"] == nil {
		t.Error("the Go and process collectors are missing")
	}
	resp, err := http.Get("http://" + metricsAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ready\n" {
		t.Errorf("/healthz: %d %q, want 200 ready", resp.StatusCode, body)
	}

	// --max-conns 1: while A is served, B and C wait in the listen
	// queue; both are counted once A ends and they are served.
	q := startTether(t, tetherBin, "relay", "--log-format", "json", "--max-conns", "1",
		"--metrics", "tcp:0:interface=127.0.0.1", serverEndpoint(t, "tcp"), target)
	qMetrics := q.waitLog("serving metrics", nil)["addr"].(string)
	qAddr := q.addr()
	a := dialAddr(t, "tcp", qAddr)
	io.WriteString(a, "a")
	if _, err := io.ReadFull(a, make([]byte, 1)); err != nil {
		t.Fatal(err) // A is being served
	}
	waiting := []net.Conn{dialAddr(t, "tcp", qAddr), dialAddr(t, "tcp", qAddr)}
	for _, c := range waiting {
		io.WriteString(c, "waited")
		closeWriteT(t, c)
	}
	closeWriteT(t, a)
	io.ReadAll(a)
	for _, c := range waiting {
		c.SetDeadline(time.Now().Add(15 * time.Second))
		if got, err := io.ReadAll(c); string(got) != "waited" || err != nil {
			t.Fatalf("a waiting connection: %q, %v", got, err)
		}
	}
	q.waitUntil("3 connection ends", func() bool {
		n := 0
		for _, l := range q.logs {
			if l["msg"] == "connection ended" {
				n++
			}
		}
		return n >= 3
	})
	fams = scrape(t, qMetrics)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"tether_connections_accepted_total", 3},
		{"tether_connections_queued_total", 2},
		{"tether_connections_limit", 1},
	} {
		if got := value(t, fams, c.name, "", ""); got != c.want {
			t.Errorf("--max-conns 1: %s = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestMetricsServerTimeouts: a client of the metrics server that goes
// quiet is closed, however far it got: after a request, kept alive; in a
// request body that never comes.
func TestMetricsServerTimeouts(t *testing.T) {
	saved := metricsTimeouts
	metricsTimeouts.read, metricsTimeouts.write, metricsTimeouts.idle = 300*time.Millisecond, time.Second, 300*time.Millisecond
	t.Cleanup(func() { metricsTimeouts = saved })
	addr, stop, err := newMetrics().serve("tcp:0:interface=127.0.0.1", nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for name, req := range map[string]string{
		"kept alive after a request": "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		"a body that never comes":    "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc",
	} {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		io.WriteString(c, req)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.Copy(io.Discard, c)
		if errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("%s: the connection was still open after %v", name, time.Since(start))
		}
		c.Close()
	}
}
