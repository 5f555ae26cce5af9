#!/usr/bin/env bash
# bench/relay.sh: tether relay side by side with haproxy, stunnel4, socat,
# Twisted's portforward and a direct connection, on loopback, in one run.
# Every peer is started by this script on 127.0.0.1, from config files in
# its temporary directory, and killed at exit; each measurement starts its
# peer afresh. The metrics, each over $RUNS interleaved runs (default 5:
# for each run, each metric, each peer), reported as median, min-max and
# every run, with tether's ratio to each peer computed run by run:
#
#   bulk      one stream of $BYTES (default 1.5 GB) to a sink that checks
#             its length and CRC-32C; direct, tether, haproxy, socat -b
#             262144, socat (8 KiB buffer), twisted.
#   cps       connections per second for $CPS_SECONDS (default 5) with
#             $CPS_CONCURRENCY clients (default 16): connect, send one byte,
#             the server answers it and closes first, the client reads the
#             end and closes; so TIME_WAIT stays with the server and the
#             relay, not the client's ephemeral ports; after 1,000
#             connections not counted (start-up). With the rate, the
#             connection times' median, 99th and 99.9th percentiles and
#             longest (p50_us ... max_us), and a table of the 99th
#             percentile (tlshs has one too). direct, tether, haproxy,
#             socat with fork.
#   mem       the relay's RSS (VmRSS of it and any children) with $HOLD
#             (default 2000) idle connections, each verified by an echo,
#             minus before, divided by $HOLD; and the file descriptors per
#             connection (fds). tether, haproxy, twisted.
#   tlsbulk, tlshs, tlsmem   the same three over TLS 1.3 terminated by the
#             relay (ECDSA P-256 certificate made here with openssl; the
#             key exchange pinned to $TLS_GROUPS, default X25519, and
#             every handshake a full one): bulk MB/s, full handshakes per
#             second ($HS_SECONDS, default $CPS_SECONDS, server closes
#             first), RSS per idle TLS connection. tether tls:, haproxy
#             ssl crt, stunnel4; and tether with parking off
#             (tether-tls-join: TETHER_RELAY_PARK=off, a goroutine per
#             direction of a TLS pair, as before).
#   METRICS="tlsmem tlshs" runs only the metrics named (default: all).
#   PEERS="tether haproxy tether-tls haproxy-tls" keeps only the peers named.
#
# tether is measured three ways in bulk, cps and mem: as it runs by default
# (plain pairs on the event core, docs/relay-core.md), with --metrics
# (tether-metrics: Prometheus metrics served on another loopback port, so
# that their cost shows), and with the core switched off
# (tether-goroutines: TETHER_RELAY_CORE=off, a goroutine per direction);
# and in cps and the system-call count, with the lean accept-to-connect
# path off (tether-nolean: TETHER_RELAY_LEAN=off, net.Conns and Go's dial,
# as before it).
#
# Then, once, the system calls per relayed connection of tether and haproxy
# (strace -c -f on the relay over $SYSCALL_CONNS server-closes-first
# connections, default 2000; 0 skips; tether-ka0 is tether with keepAlive=0
# on both endpoint strings, as haproxy keeps no keep-alive by default, to
# show what Go's keep-alive options cost); and the scale figure: $SCALE
# (default 9000; 0 skips) idle connections held through tether and
# haproxy within the open-file limit, each echoed once, with the relay's
# RSS and descriptors (haproxy given maxconn $SCALE_MAXCONN and maxpipes
# $SCALE_MAXPIPES so that its own count of descriptors fits the limit).
#
# Needs go, haproxy, stunnel4, socat, openssl (Debian: apt-get install -y
# haproxy stunnel4 socat openssl), strace for the system-call count and
# Twisted for its rows (python3-twisted; $PYTHON, default /usr/bin/python3).
# TETHER=path uses that binary instead of building ./cmd/tether.
# Usage: bench/relay.sh
#   quick: BYTES=$((100<<20)) RUNS=2 CPS_SECONDS=1 HOLD=200 SYSCALL_CONNS=200 bench/relay.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BYTES=${BYTES:-1500000000}
RUNS=${RUNS:-5}
CPS_SECONDS=${CPS_SECONDS:-5}
HS_SECONDS=${HS_SECONDS:-$CPS_SECONDS}
CPS_CONCURRENCY=${CPS_CONCURRENCY:-16}
HOLD=${HOLD:-2000}
SYSCALL_CONNS=${SYSCALL_CONNS:-2000}
SCALE=${SCALE:-9000}
SCALE_MAXCONN=${SCALE_MAXCONN:-9500}
SCALE_MAXPIPES=${SCALE_MAXPIPES:-200}
TLS_GROUPS=${TLS_GROUPS:-X25519}
PYTHON=${PYTHON:-/usr/bin/python3}
TETHER=${TETHER:-}

need() { command -v "$1" >/dev/null || { echo "relay.sh: needs $1 (apt-get install -y $2)" >&2; exit 1; }; }
need socat socat
need haproxy haproxy
need openssl openssl
STUNNEL=$(command -v stunnel4 || command -v stunnel || true)
[ -n "$STUNNEL" ] || { echo "relay.sh: needs stunnel4 (apt-get install -y stunnel4)" >&2; exit 1; }
twisted=yes
"$PYTHON" -c 'import twisted' 2>/dev/null || { twisted=; echo "relay.sh: $PYTHON cannot import twisted (apt-get install -y python3-twisted): no twisted rows" >&2; }

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
started=$(date +%s)

if [ -z "$TETHER" ]; then
	go build -o "$work/tether" ./cmd/tether
	TETHER=$work/tether
fi
go build -o "$work/loadgen" ./bench/loadgen
LG=$work/loadgen

# The TLS rows' certificate: ECDSA P-256, self-signed for localhost, which
# loadgen -tls trusts. haproxy wants the certificate and key in one file.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" >"$work/haproxy.pem"
TLSARGS=(-tls "$work/cert.pem" -groups "$TLS_GROUPS")

# haproxy counts about 2.5 descriptors per connection (two sockets and a
# share of splice pipes) against maxconn and refuses to start if the
# open-file limit cannot cover that, so maxconn is what the limit allows.
nofile=$(ulimit -n)
HAPROXY_MAXCONN=$(((nofile - 100) * 2 / 5))
[ "$HAPROXY_MAXCONN" -gt 20000 ] && HAPROXY_MAXCONN=20000

echo "# machine"
echo "cpus: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "kernel: $(uname -sr); memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo); open files: $nofile"
echo "go: $(go version | cut -d' ' -f3); haproxy: $(haproxy -v | awk 'NR==1{print $3}'); stunnel: $("$STUNNEL" -version 2>&1 | awk '/^stunnel/{print $2; exit}'); socat: $(socat -V | awk '/socat version/{print $3}'); $(openssl version | cut -d' ' -f1-2)"
[ -n "$twisted" ] && echo "twisted: $("$PYTHON" -c 'import twisted; print(twisted.__version__)')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "BYTES=$BYTES RUNS=$RUNS CPS_SECONDS=$CPS_SECONDS HS_SECONDS=$HS_SECONDS CPS_CONCURRENCY=$CPS_CONCURRENCY HOLD=$HOLD SYSCALL_CONNS=$SYSCALL_CONNS SCALE=$SCALE TLS_GROUPS=$TLS_GROUPS"
echo

# The servers behind the relays: a checking sink for bulk, an echo server
# for held connections, and the answer-and-close-first server for cps.
SINK=$("$LG" port)
"$LG" sink -listen "127.0.0.1:$SINK" & pids+=($!)
ECHO=$("$LG" port)
"$LG" echo -listen "127.0.0.1:$ECHO" & pids+=($!)
ANSWER=$("$LG" port)
"$LG" answer -listen "127.0.0.1:$ANSWER" & pids+=($!)
for p in "$SINK" "$ECHO" "$ANSWER"; do "$LG" wait -addr "127.0.0.1:$p"; done

# haproxy as the issue configures it: mode tcp, splice-auto, two threads.
# The TLS 1.3 cipher order is the client's (AES-128-GCM first, as Go and
# tether choose) rather than OpenSSL's (AES-256-GCM first), so that every
# TLS peer does the same work; the run's output shows what was negotiated.
haproxy_cfg() { # KIND PORT TARGET
	local ssl= maxconn=$HAPROXY_MAXCONN pipes=
	[ "$1" = haproxy-tls ] && ssl="ssl crt $work/haproxy.pem ssl-min-ver TLSv1.3"
	[ "$1" = haproxy-scale ] && maxconn=$SCALE_MAXCONN pipes="maxpipes $SCALE_MAXPIPES"
	cat <<-EOF
	global
		nbthread 2
		maxconn $maxconn
		$pipes
		ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
	defaults
		mode tcp
		option splice-auto
		maxconn $maxconn
		timeout connect 5s
		timeout client 10m
		timeout server 10m
	frontend fe
		bind 127.0.0.1:$2 $ssl
		backlog 1024
		default_backend be
	backend be
		server s1 127.0.0.1:$3
	EOF
}
# stunnel4 with its defaults but for logging (errors only, as tether's
# --quiet) and the same TLS 1.3 settings.
stunnel_cfg() { # PORT TARGET
	cat <<-EOF
	foreground = yes
	pid =
	debug = 3
	[svc]
	accept = 127.0.0.1:$1
	connect = 127.0.0.1:$2
	cert = $work/cert.pem
	key = $work/key.pem
	sslVersionMin = TLSv1.3
	ciphersuites = TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
	EOF
}

# start_peer KIND TARGET_PORT: sets PEER_PORT and PEER_PID (empty for direct).
start_peer() {
	PEER_PORT=$("$LG" port) PEER_PID=
	local log=$work/$1.log
	case $1 in
	direct) PEER_PORT=$2; return ;;
	tether | tether-scale) "$TETHER" relay --quiet "tcp:$PEER_PORT:interface=127.0.0.1:backlog=1024" "tcp:127.0.0.1:$2" 2>>"$log" & ;;
	tether-metrics) "$TETHER" relay --quiet --metrics tcp:0:interface=127.0.0.1 "tcp:$PEER_PORT:interface=127.0.0.1:backlog=1024" "tcp:127.0.0.1:$2" 2>>"$log" & ;;
	tether-ka0) "$TETHER" relay --quiet "tcp:$PEER_PORT:interface=127.0.0.1:backlog=1024:keepAlive=0" "tcp:127.0.0.1:$2:keepAlive=0" 2>>"$log" & ;;
	tether-nolean) TETHER_RELAY_LEAN=off "$TETHER" relay --quiet "tcp:$PEER_PORT:interface=127.0.0.1:backlog=1024" "tcp:127.0.0.1:$2" 2>>"$log" & ;;
	tether-goroutines) TETHER_RELAY_CORE=off "$TETHER" relay --quiet "tcp:$PEER_PORT:interface=127.0.0.1:backlog=1024" "tcp:127.0.0.1:$2" 2>>"$log" & ;;
	tether-tls-join) TETHER_RELAY_PARK=off "$TETHER" relay --quiet "tls:$PEER_PORT:interface=127.0.0.1:backlog=1024:certificate=$work/cert.pem:privateKey=$work/key.pem:minVersion=1.3" "tcp:127.0.0.1:$2" 2>>"$log" & ;;
	tether-tls) "$TETHER" relay --quiet "tls:$PEER_PORT:interface=127.0.0.1:backlog=1024:certificate=$work/cert.pem:privateKey=$work/key.pem:minVersion=1.3" "tcp:127.0.0.1:$2" 2>>"$log" & ;;
	haproxy | haproxy-tls | haproxy-scale)
		haproxy_cfg "$1" "$PEER_PORT" "$2" >"$work/$1.cfg"
		haproxy -db -f "$work/$1.cfg" >>"$log" 2>&1 &
		;;
	stunnel)
		stunnel_cfg "$PEER_PORT" "$2" >"$work/stunnel.conf"
		"$STUNNEL" "$work/stunnel.conf" >>"$log" 2>&1 &
		;;
	socat) socat "TCP-LISTEN:$PEER_PORT,bind=127.0.0.1,reuseaddr,fork,backlog=1024" "TCP:127.0.0.1:$2" 2>>"$log" & ;;
	socat-b256k) socat -b 262144 "TCP-LISTEN:$PEER_PORT,bind=127.0.0.1,reuseaddr,fork,backlog=1024" "TCP:127.0.0.1:$2" 2>>"$log" & ;;
	twisted) "$PYTHON" -m twisted portforward -p "tcp:$PEER_PORT:interface=127.0.0.1" -h 127.0.0.1 -d "$2" >>"$log" 2>&1 & ;;
	*) echo "relay.sh: no peer $1" >&2; exit 1 ;;
	esac
	PEER_PID=$!
	pids+=("$PEER_PID")
	if ! "$LG" wait -addr "127.0.0.1:$PEER_PORT"; then
		echo "relay.sh: $1 did not start:" >&2
		cat "$log" >&2
		exit 1
	fi
}
stop_peer() {
	if [ -n "$PEER_PID" ]; then
		kill "$PEER_PID" 2>/dev/null || true
		wait "$PEER_PID" 2>/dev/null || true
	fi
}

# A process and its descendants (socat forks; haproxy and stunnel4 run as
# one threaded process here, but would be counted whole if they forked).
tree() {
	echo "$1"
	local c
	for c in $(pgrep -P "$1" || true); do tree "$c"; done
}
rss() { local p s=0; for p in $(tree "$1"); do s=$((s + $(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo "$s"; }
nfds() { local p s=0; for p in $(tree "$1"); do s=$((s + $(ls "/proc/$p/fd" 2>/dev/null | wc -l))); done; echo "$s"; }

mkdir "$work/res"
failures=0
# rec METRIC PEER RUN VALUE: VALUE is a number or FAIL.
rec() {
	echo "$3 $4" >>"$work/res/$1.$2"
	[ "$4" != FAIL ] || failures=$((failures + 1))
}
field() { sed -n "s/\(^\|.* \)$1=\([^ ]*\).*/\2/p" | head -1; }

# bulk METRIC KIND RUN [loadgen flags]
bulk() {
	local m=$1 k=$2 r=$3 out v
	shift 3
	start_peer "$k" "$SINK"
	if out=$("$LG" bulk -addr "127.0.0.1:$PEER_PORT" -bytes "$BYTES" "$@" 2>&1); then
		v=$(echo "$out" | field MBps)
	else
		v=FAIL # a short or corrupted stream fails the run
	fi
	rec "$m" "$k" "$r" "${v:-FAIL}"
	echo "run $r $m $k: $out"
	stop_peer
}

# conns METRIC KIND RUN SECONDS [loadgen flags]
conns() {
	local m=$1 k=$2 r=$3 s=$4 out v p99
	shift 4
	start_peer "$k" "$ANSWER"
	# Steady state: 1,000 connections first, not counted, so that no
	# peer's start-up (threads, pools, a Go heap growing) is in the rate.
	"$LG" conns -addr "127.0.0.1:$PEER_PORT" -count 1000 -concurrency "$CPS_CONCURRENCY" "$@" >/dev/null 2>&1 || true
	out=$("$LG" conns -addr "127.0.0.1:$PEER_PORT" -duration "${s}s" -concurrency "$CPS_CONCURRENCY" "$@" 2>&1) || true
	v=$(echo "$out" | field cps)
	p99=$(echo "$out" | field p99_us)
	# Failed connections fail the run: a rate bought with errors is no rate.
	[ "$(echo "$out" | field failed)" = 0 ] || v=FAIL p99=FAIL
	rec "$m" "$k" "$r" "${v:-FAIL}"
	rec "$m.p99" "$k" "$r" "${p99:-FAIL}"
	echo "run $r $m $k: $out"
	stop_peer
}

# mem METRIC KIND RUN [loadgen flags]: records METRIC (KiB per connection)
# and METRIC.fds (file descriptors per connection).
mem() {
	local m=$1 k=$2 r=$3 before after fds_before fds_after hold_pid per fds ok=yes
	shift 3
	start_peer "$k" "$ECHO"
	"$LG" hold -addr "127.0.0.1:$PEER_PORT" -n 10 "$@" </dev/null >/dev/null || ok= # warm up
	sleep 1
	before=$(rss "$PEER_PID") fds_before=$(nfds "$PEER_PID")
	rm -f "$work/hold.in" "$work/hold.out" && mkfifo "$work/hold.in"
	"$LG" hold -addr "127.0.0.1:$PEER_PORT" -n "$HOLD" "$@" <"$work/hold.in" >"$work/hold.out" 2>&1 &
	hold_pid=$!
	exec 3>"$work/hold.in"
	until grep -q ready "$work/hold.out" 2>/dev/null; do
		kill -0 "$hold_pid" 2>/dev/null || { ok=; break; }
		sleep 0.2
	done
	sleep 1
	after=$(rss "$PEER_PID") fds_after=$(nfds "$PEER_PID")
	exec 3>&-
	wait "$hold_pid" || ok=
	if [ -n "$ok" ]; then
		per=$(awk -v a="$after" -v b="$before" -v n="$HOLD" 'BEGIN {printf "%.1f", (a - b) / n}')
		fds=$(awk -v a="$fds_after" -v b="$fds_before" -v n="$HOLD" 'BEGIN {printf "%.2f", (a - b) / n}')
	else
		per=FAIL fds=FAIL
	fi
	rec "$m" "$k" "$r" "$per"
	rec "$m.fds" "$k" "$r" "$fds"
	echo "run $r $m $k: VmRSS ${before} kB before, ${after} kB with $HOLD connections: $per KiB and $fds file descriptors per connection; $(head -c 300 "$work/hold.out")"
	stop_peer
}

# PEERS="tether haproxy" keeps only those peers in every metric (default:
# all), for more runs of the comparison that matters in the same minutes.
pick() {
	local k out=
	for k in "$@"; do
		if [ -z "${PEERS:-}" ] || [[ " $PEERS " == *" $k "* ]]; then out+="$k "; fi
	done
	echo "$out"
}
bulk_peers=$(pick direct tether tether-metrics tether-goroutines haproxy socat-b256k socat${twisted:+ twisted})
cps_peers=$(pick direct tether tether-nolean tether-metrics tether-goroutines haproxy socat)
mem_peers=$(pick tether tether-metrics tether-goroutines haproxy${twisted:+ twisted})
tls_peers=$(pick tether-tls tether-tls-join haproxy-tls stunnel)
# METRICS="tlsmem tlshs" measures only those (with SYSCALL_CONNS=0 SCALE=0
# for a quick look while developing); default: all.
want() { [ -z "${METRICS:-}" ] || [[ " $METRICS " == *" $1 "* ]]; }

for r in $(seq "$RUNS"); do
	echo "# run $r of $RUNS ($(($(date +%s) - started)) s)"
	if want bulk; then for k in $bulk_peers; do bulk bulk "$k" "$r"; done; fi
	if want cps; then for k in $cps_peers; do conns cps "$k" "$r" "$CPS_SECONDS"; done; fi
	if want mem; then for k in $mem_peers; do mem mem "$k" "$r"; done; fi
	if want tlsbulk; then for k in $tls_peers; do bulk tlsbulk "$k" "$r" "${TLSARGS[@]}"; done; fi
	if want tlshs; then for k in $tls_peers; do conns tlshs "$k" "$r" "$HS_SECONDS" "${TLSARGS[@]}"; done; fi
	if want tlsmem; then for k in $tls_peers; do mem tlsmem "$k" "$r" "${TLSARGS[@]}"; done; fi
	echo
done

# System calls per relayed connection: strace counts every call of every
# thread of the relay while SYSCALL_CONNS connections go through it
# (after a warm-up, so that thread and pool start-up are not counted).
# strace slows the relay down a great deal; the counts, not the times,
# are the result. The idle relay's own calls (Go's sysmon, haproxy's
# polling) fall in the window too, and are part of the cost.
if [ "$SYSCALL_CONNS" -gt 0 ]; then
	if ! command -v strace >/dev/null; then
		echo "relay.sh: no strace (apt-get install -y strace): system calls not counted" >&2
	else
		echo "# system calls per relayed connection, $SYSCALL_CONNS server-closes-first connections, $CPS_CONCURRENCY at a time, under strace -c -f"
		for k in tether tether-ka0 tether-nolean haproxy; do
			start_peer "$k" "$ANSWER"
			"$LG" conns -addr "127.0.0.1:$PEER_PORT" -count 200 -concurrency "$CPS_CONCURRENCY" >/dev/null
			sleep 0.5
			strace -c -f -q -S calls -o "$work/strace.$k" -p "$PEER_PID" &
			st=$!
			sleep 1 # attached to every thread
			out=$("$LG" conns -addr "127.0.0.1:$PEER_PORT" -count "$SYSCALL_CONNS" -concurrency "$CPS_CONCURRENCY" 2>&1) || true
			kill -INT "$st"
			wait "$st" || true
			stop_peer
			echo "$k: $out"
			# strace -c's table: % time, seconds, usecs/call, calls, [errors,] syscall.
			awk -v n="$SYSCALL_CONNS" -v k="$k" '
				/^-/ || /^%/ || NF < 5 { next }
				{ calls = $4; errs = (NF >= 6) ? $5 : 0 }
				$NF == "total" { printf "%s: %.1f system calls per connection (%d in all, %d of them failing, EAGAIN mostly)\n", k, calls / n, calls, errs; next }
				top < 10 { top++; line = line sprintf("%s%s %.2f", (top > 1 ? ", " : ""), $NF, calls / n) }
				END { print "  most frequent, per connection: " line }
			' "$work/strace.$k" | tee "$work/syscalls.$k"
		done
		echo
	fi
fi

# The scale figure: as many idle connections as the open-file limit lets
# the relay hold, the client (loadgen hold, one descriptor each) and the
# echo server on the same machine.
if [ "$SCALE" -gt 0 ]; then
	echo "# scale: $SCALE idle relayed connections, each echoed once"
	for k in tether-scale haproxy-scale; do
		start_peer "$k" "$ECHO"
		sleep 0.5
		before=$(rss "$PEER_PID")
		rm -f "$work/hold.in" "$work/hold.out" && mkfifo "$work/hold.in"
		"$LG" hold -addr "127.0.0.1:$PEER_PORT" -n "$SCALE" <"$work/hold.in" >"$work/hold.out" 2>&1 &
		hold_pid=$!
		exec 3>"$work/hold.in"
		t0=$(date +%s.%N)
		until grep -q 'ready\|connection' "$work/hold.out" 2>/dev/null; do
			kill -0 "$hold_pid" 2>/dev/null || break
			sleep 0.2
		done
		t1=$(date +%s.%N)
		sleep 1
		after=$(rss "$PEER_PID") fds=$(nfds "$PEER_PID")
		exec 3>&-
		wait "$hold_pid" || true
		held=$SCALE
		grep -q ready "$work/hold.out" || held="$(sed -n 's/.*connection \([0-9]*\):.*/\1/p' "$work/hold.out" | head -1) (then: $(head -c 200 "$work/hold.out"))"
		echo "$k: held $held; VmRSS ${before} kB before, ${after} kB with them ($(awk -v a="$after" -v b="$before" -v n="$SCALE" 'BEGIN {printf "%.2f", (a - b) / n}') KiB each); $fds open files; opened in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s" | tee -a "$work/scale"
		stop_peer
	done
	echo
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "time taken: $(($(date +%s) - started)) s"
echo

name() {
	case $1 in
	direct) echo "direct connection" ;;
	tether) echo "**tether relay**" ;;
	tether-metrics) echo "tether relay --metrics tcp:0:interface=127.0.0.1" ;;
	tether-goroutines) echo "tether relay, core off (TETHER_RELAY_CORE=off)" ;;
	tether-nolean) echo "tether relay, lean path off (TETHER_RELAY_LEAN=off)" ;;
	haproxy) echo "haproxy (mode tcp, splice-auto, nbthread 2)" ;;
	socat) [ "$2" = cps ] && echo "socat fork" || echo "socat (default 8 KiB buffer)" ;;
	socat-b256k) echo "socat -b 262144" ;;
	twisted) echo "twisted portforward" ;;
	tether-tls) echo "**tether relay** (tls:)" ;;
	tether-tls-join) echo "tether relay (tls:), parking off (TETHER_RELAY_PARK=off)" ;;
	haproxy-tls) echo "haproxy (bind ... ssl crt)" ;;
	stunnel) echo "stunnel4" ;;
	esac
}
# stats FILE: "median min max every-run", the runs in order, FAIL shown;
# the statistics are over the runs that did not fail. (Plain awk, no
# gawk: Debian's default awk is mawk.)
medianminmax() {
	sort -g | awk '{v[++n] = $1} END {
		if (n == 0) { print "FAIL FAIL FAIL"; exit }
		med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		print med, v[1], v[n] }'
}
stats() {
	echo "$(awk '$2 != "FAIL" {print $2}' "$1" | medianminmax) $(sort -k1,1n "$1" | awk '{printf "%s%s", (NR > 1 ? " " : ""), $2}')"
}
# runratios A B: A/B for each run that both have, a line each.
runratios() {
	awk 'NR == FNR {a[$1] = $2; next} ($1 in a) && a[$1] != "FAIL" && $2 != "FAIL" && $2 + 0 > 0 {print a[$1] / $2}' "$1" "$2"
}
# ratios A B: A/B run by run, "median min max" (or "- - -"), unrounded so
# that a target such as "in every run" is judged on the true figure.
ratios() {
	[ -s "$1" ] && [ -s "$2" ] || { echo "- - -"; return; }
	runratios "$1" "$2" | medianminmax | awk '$1 == "FAIL" {print "- - -"; next} {printf "%.4f %.4f %.4f\n", $1, $2, $3}'
}
# spread A B: how sure the median of A/B is, from the runs alone: "WINS N
# LO HI", A ahead of B in WINS of the N runs, and LO-HI the interval that
# holds the true median with at least 95% chance, whatever the runs'
# distribution (order statistics: the j-th lowest and j-th highest ratio,
# j the largest with P(Binomial(N, 1/2) < j) <= 2.5%); with under six
# runs the lowest and highest run (then only 94% sure) are given.
# "- - - -" with no ratios.
spread() {
	[ -s "$1" ] && [ -s "$2" ] || { echo "- - - -"; return; }
	runratios "$1" "$2" | sort -g | awk '{v[++n] = $1; if ($1 > 1) w++} END {
			if (n == 0) { print "- - - -"; exit }
			j = 1; p = 0; c = 1
			for (i = 0; i < n; i++) { p += c / 2 ^ n; c = c * (n - i) / (i + 1); if (p > 0.025) break; j = i + 1 }
			if (j > (n + 1) / 2) j = 1
			printf "%d %d %.4f %.4f\n", w, n, v[j], v[n + 1 - j] }'
}
# sure TARGET WINS N LO HI: what the interval says of a target on a ratio.
sure() {
	awk -v t="$1" -v w="$2" -v n="$3" -v lo="$4" -v hi="$5" 'BEGIN {
		if (n == "-") { print ""; exit }
		printf "(ahead in %d of %d runs; median within %.3f-%.3f: %s)\n", w, n, lo, hi,
			(lo + 0 > t + 0) ? "surely above" : (hi + 0 < t + 0) ? "surely below" : "level within the runs'"'"' spread" }'
}
fmt() { awk -v v="$1" -v d="$2" 'BEGIN {if (v == "FAIL" || v == "-" || v == "") print v; else printf "%.*f\n", d, v}'; }
# table METRIC TITLE DECIMALS TETHER_PEER PEERS...
table() {
	local m=$1 title=$2 d=$3 t=$4 k med lo hi all rm rlo rhi
	shift 4
	echo "$title"
	echo
	echo "| | median | min-max | the $RUNS runs, in order | tether ÷ this, run by run: median (min-max) |"
	echo "|---|---|---|---|---|"
	for k in "$@"; do
		[ -s "$work/res/$m.$k" ] || continue
		read -r med lo hi all < <(stats "$work/res/$m.$k")
		read -r rm rlo rhi < <(ratios "$work/res/$m.$t" "$work/res/$m.$k")
		rm=$(fmt "$rm" 2) rlo=$(fmt "$rlo" 2) rhi=$(fmt "$rhi" 2)
		if [ "$k" = "$t" ]; then rm=1 rlo= rhi=; fi
		all=$(for v in $all; do fmt "$v" "$d"; done | paste -sd' ')
		echo "| $(name "$k" "$m") | $(fmt "$med" "$d") | $(fmt "$lo" "$d")-$(fmt "$hi" "$d") | $all | $rm${rlo:+ ($rlo-$rhi)} |"
	done
	echo
}

echo "# results"
echo
table bulk "Bulk, one stream of $BYTES bytes, CRC-32C checked, MB/s (10^6 B/s):" 0 tether $bulk_peers
table cps "Connections per second, server closes first, $CPS_CONCURRENCY at a time for ${CPS_SECONDS}s:" 0 tether $cps_peers
table cps.p99 "Connection time, 99th percentile, µs (the same runs; lower is better):" 0 tether $cps_peers
table mem "RSS per idle relayed connection, KiB ($HOLD held, each echoed once; lower is better):" 1 tether $mem_peers
table mem.fds "File descriptors per idle relayed connection:" 2 tether $mem_peers
table tlsbulk "TLS 1.3 terminated by the relay, bulk, MB/s:" 0 tether-tls $tls_peers
table tlshs "TLS 1.3 full handshakes per second (connect, handshake, one byte each way, server closes first), $CPS_CONCURRENCY at a time for ${HS_SECONDS}s:" 0 tether-tls $tls_peers
table tlshs.p99 "TLS connection time (with its full handshake), 99th percentile, µs (the same runs; lower is better):" 0 tether-tls $tls_peers
table tlsmem "RSS per idle TLS connection, KiB ($HOLD held, each echoed once; lower is better):" 1 tether-tls $tls_peers
for k in tether tether-ka0 tether-nolean haproxy; do [ -e "$work/syscalls.$k" ] && cat "$work/syscalls.$k"; done
echo
[ -e "$work/scale" ] && { echo "scale:"; cat "$work/scale"; echo; }

# The targets of issue 11, on this run's figures.
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {if (v == "" || v == "FAIL" || v == "-") print "?"; else if ((op == ">=" && v+0 >= t+0) || (op == "<=" && v+0 <= t+0) || (op == ">" && v+0 > t+0)) print "met"; else print "NOT met"}'; }
med() { [ -s "$work/res/$1.$2" ] && stats "$work/res/$1.$2" | cut -d' ' -f1 || echo -; } # - when not measured
read -r b_h_med b_h_min _ < <(ratios "$work/res/bulk.tether" "$work/res/bulk.haproxy")
read -r b_d_med b_d_min _ < <(ratios "$work/res/bulk.tether" "$work/res/bulk.direct")
read -r c_h_med _ < <(ratios "$work/res/cps.tether" "$work/res/cps.haproxy")
read -r th_med _ < <(ratios "$work/res/tlshs.tether-tls" "$work/res/tlshs.haproxy-tls")
read -r tb_med _ < <(ratios "$work/res/tlsbulk.tether-tls" "$work/res/tlsbulk.haproxy-tls")
read -r cm_h_med _ < <(ratios "$work/res/cps.tether-metrics" "$work/res/cps.haproxy")
read -r _ bm_h_min _ < <(ratios "$work/res/bulk.tether-metrics" "$work/res/bulk.haproxy")
mem_t=$(med mem tether) mem_h=$(med mem haproxy) tmem_t=$(med tlsmem tether-tls) mem_m=$(med mem tether-metrics)
echo "targets (issue 11):"
echo "  memory per idle connection <= haproxy's (aim 1 KiB): tether $mem_t KiB, haproxy $mem_h KiB  $(verdict "$mem_t" "$mem_h" '<=')"
echo "  connections/s >= haproxy's:                tether/haproxy $(fmt "$c_h_med" 3)  $(verdict "$c_h_med" 1 '>=') $(sure 1 $(spread "$work/res/cps.tether" "$work/res/cps.haproxy"))"
echo "  bulk >= haproxy's in every run:            tether/haproxy lowest run $(fmt "$b_h_min" 3) (median $(fmt "$b_h_med" 3))  $(verdict "$b_h_min" 1 '>=')"
echo "  bulk >= 0.6 of direct:                     tether/direct $(fmt "$b_d_med" 3) (lowest run $(fmt "$b_d_min" 3))  $(verdict "$b_d_med" 0.6 '>=')"
echo "  TLS memory <= 12 KiB per idle connection:  tether $tmem_t KiB  $(verdict "$tmem_t" 12 '<=')"
echo "  TLS handshakes/s ahead of haproxy:         tether/haproxy $(fmt "$th_med" 3)  $(verdict "$th_med" 1 '>') $(sure 1 $(spread "$work/res/tlshs.tether-tls" "$work/res/tlshs.haproxy-tls"))"
echo "  TLS bulk ahead of haproxy:                 tether/haproxy $(fmt "$tb_med" 3)  $(verdict "$tb_med" 1 '>') $(sure 1 $(spread "$work/res/tlsbulk.tether-tls" "$work/res/tlsbulk.haproxy-tls"))"
echo "  with --metrics: memory $mem_m KiB $(verdict "$mem_m" "$mem_h" '<='); connections/s tether/haproxy $(fmt "$cm_h_med" 3) $(verdict "$cm_h_med" 1 '>='); bulk lowest run $(fmt "$bm_h_min" 3) $(verdict "$bm_h_min" 1 '>=')"

if [ "$failures" -gt 0 ]; then
	echo
	echo "relay.sh: $failures measurement(s) FAILED (shown as FAIL above; the peers' logs were in $work)" >&2
	exit 1
fi
