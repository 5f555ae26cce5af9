#!/usr/bin/env bash
# bench/relay.sh: tether relay side by side with socat, Twisted's portforward
# and a direct connection, on loopback, in one run.
#
#   1. bulk: one stream of $BYTES (default 2 GiB) to a sink that checks its
#      length and CRC-32C, through each relay and directly; the median of
#      $RUNS runs (default 5), runs interleaved.
#   2. connections per second for $CPS_SECONDS (default 5) with
#      $CPS_CONCURRENCY clients (default 16): open, echo one byte, close;
#      through tether relay, through socat with fork, and directly.
#   3. memory per idle relayed connection: the relay's RSS (VmRSS in
#      /proc/PID/status) with $HOLD (default 2000) echoed connections held
#      open, minus its RSS before, divided by $HOLD; and the file
#      descriptors it holds per connection; tether and Twisted.
#
# Needs go, socat and Twisted (Debian: apt-get install -y socat python3-twisted;
# $PYTHON, default /usr/bin/python3, must import twisted).
# Usage: bench/relay.sh        e.g. BYTES=$((1<<30)) RUNS=5 bench/relay.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BYTES=${BYTES:-$((2 << 30))}
RUNS=${RUNS:-5}
CPS_SECONDS=${CPS_SECONDS:-5}
CPS_CONCURRENCY=${CPS_CONCURRENCY:-16}
HOLD=${HOLD:-2000}
PYTHON=${PYTHON:-/usr/bin/python3}

command -v socat >/dev/null || { echo "relay.sh: needs socat (apt-get install -y socat)" >&2; exit 1; }
"$PYTHON" -c 'import twisted' 2>/dev/null || { echo "relay.sh: $PYTHON cannot import twisted (apt-get install -y python3-twisted)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/tether" ./cmd/tether
go build -o "$work/loadgen" ./bench/loadgen
LG=$work/loadgen

echo "# machine"
echo "cpus: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "kernel: $(uname -sr); memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "go: $(go version | cut -d' ' -f3); socat: $(socat -V | awk '/socat version/{print $3}'); twisted: $("$PYTHON" -c 'import twisted; print(twisted.__version__)')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "BYTES=$BYTES RUNS=$RUNS CPS_SECONDS=$CPS_SECONDS CPS_CONCURRENCY=$CPS_CONCURRENCY HOLD=$HOLD"
echo

SINK=$("$LG" port)
"$LG" sink -listen "127.0.0.1:$SINK" & pids+=($!)
ECHO=$("$LG" port)
"$LG" echo -listen "127.0.0.1:$ECHO" & pids+=($!)
"$LG" wait -addr "127.0.0.1:$SINK"
"$LG" wait -addr "127.0.0.1:$ECHO"

# start_relay KIND TARGET_PORT: sets RELAY_PORT and RELAY_PID.
start_relay() {
	RELAY_PORT=$("$LG" port)
	case $1 in
	direct) RELAY_PORT=$2; RELAY_PID=; return ;;
	tether) "$work/tether" relay --quiet "tcp:$RELAY_PORT:interface=127.0.0.1:backlog=1024" "tcp:127.0.0.1:$2" & ;;
	socat) socat "TCP-LISTEN:$RELAY_PORT,bind=127.0.0.1,reuseaddr,fork,backlog=1024" "TCP:127.0.0.1:$2" & ;;
	socat-b256k) socat -b 262144 "TCP-LISTEN:$RELAY_PORT,bind=127.0.0.1,reuseaddr,fork,backlog=1024" "TCP:127.0.0.1:$2" & ;;
	twisted) "$PYTHON" -m twisted portforward -p "tcp:$RELAY_PORT:interface=127.0.0.1" -h 127.0.0.1 -d "$2" >/dev/null 2>&1 & ;;
	esac
	RELAY_PID=$!
	pids+=("$RELAY_PID")
	"$LG" wait -addr "127.0.0.1:$RELAY_PORT"
}
stop_relay() {
	if [ -n "$RELAY_PID" ]; then
		kill "$RELAY_PID" 2>/dev/null || true
		wait "$RELAY_PID" 2>/dev/null || true
	fi
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "FAIL"; else print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

echo "# bulk: $BYTES bytes, checked by length and CRC-32C at the far end"
kinds="direct tether socat socat-b256k twisted"
for r in $(seq "$RUNS"); do
	for k in $kinds; do
		start_relay "$k" "$SINK"
		if out=$("$LG" bulk -addr "127.0.0.1:$RELAY_PORT" -bytes "$BYTES" 2>&1); then
			echo "$out" | field MBps >>"$work/bulk.$k"
		else
			echo "FAILED" >>"$work/bulk.$k.fail"
		fi
		echo "run $r $k: $out"
		stop_relay
	done
done
for k in $kinds; do
	v=FAIL # a single corrupted or failed run fails the relay
	if [ -s "$work/bulk.$k" ] && [ ! -e "$work/bulk.$k.fail" ]; then v=$(median <"$work/bulk.$k"); fi
	printf -v "bulk_${k//-/_}" %s "$v"
done
echo

echo "# connections per second: open, echo one byte, close; $CPS_CONCURRENCY at a time for ${CPS_SECONDS}s"
for k in direct tether socat; do
	start_relay "$k" "$ECHO"
	out=$("$LG" cps -addr "127.0.0.1:$RELAY_PORT" -duration "${CPS_SECONDS}s" -concurrency "$CPS_CONCURRENCY")
	echo "$k: $out"
	printf -v "cps_$k" %s "$(echo "$out" | field cps)"
	printf -v "cpsfail_$k" %s "$(echo "$out" | field failed)"
	stop_relay
	sleep 2
done
echo

rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
nfds() { ls "/proc/$1/fd" | wc -l; }
echo "# memory: $HOLD idle relayed connections"
for k in tether twisted; do
	start_relay "$k" "$ECHO"
	"$LG" hold -addr "127.0.0.1:$RELAY_PORT" -n 10 </dev/null >/dev/null # warm up
	sleep 1
	before=$(rss "$RELAY_PID") fds_before=$(nfds "$RELAY_PID")
	rm -f "$work/hold.in" && mkfifo "$work/hold.in"
	"$LG" hold -addr "127.0.0.1:$RELAY_PORT" -n "$HOLD" <"$work/hold.in" >"$work/hold.out" &
	hold_pid=$!
	exec 3>"$work/hold.in"
	until grep -q ready "$work/hold.out" 2>/dev/null; do
		kill -0 "$hold_pid" 2>/dev/null || { echo "hold failed"; break; }
		sleep 0.2
	done
	sleep 1
	after=$(rss "$RELAY_PID") fds_after=$(nfds "$RELAY_PID")
	exec 3>&-
	wait "$hold_pid" || true
	per=$(awk -v a="$after" -v b="$before" -v n="$HOLD" 'BEGIN {printf "%.1f", (a - b) / n}')
	fds=$(awk -v a="$fds_after" -v b="$fds_before" -v n="$HOLD" 'BEGIN {printf "%.1f", (a - b) / n}')
	echo "$k: VmRSS ${before} kB before, ${after} kB with $HOLD connections: $per KiB and $fds file descriptors per connection"
	printf -v "mem_$k" %s "$per"
	printf -v "fds_$k" %s "$fds"
	stop_relay
done
echo

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a+0 > 0 && b+0 > 0) printf "%.2f", a / b; else print "-"}'; }
echo "# results"
echo
echo "| bulk, $((BYTES >> 20)) MiB, one stream | MB/s (median of $RUNS) | tether relay is |"
echo "|---|---|---|"
echo "| direct connection | $bulk_direct | $(ratio "$bulk_tether" "$bulk_direct") x |"
echo "| tether relay | $bulk_tether | 1 |"
echo "| socat (default, 8 KiB buffer) | $bulk_socat | $(ratio "$bulk_tether" "$bulk_socat") x |"
echo "| socat -b 262144 | $bulk_socat_b256k | $(ratio "$bulk_tether" "$bulk_socat_b256k") x |"
echo "| twisted portforward | $bulk_twisted | $(ratio "$bulk_tether" "$bulk_twisted") x |"
echo
echo "| connections per second | conn/s (failed) | tether relay is |"
echo "|---|---|---|"
echo "| direct connection | $cps_direct ($cpsfail_direct) | $(ratio "$cps_tether" "$cps_direct") x |"
echo "| tether relay | $cps_tether ($cpsfail_tether) | 1 |"
echo "| socat fork | $cps_socat ($cpsfail_socat) | $(ratio "$cps_tether" "$cps_socat") x |"
echo
echo "| per idle relayed connection ($HOLD held) | RSS, KiB | file descriptors |"
echo "|---|---|---|"
echo "| tether relay | $mem_tether | $fds_tether |"
echo "| twisted portforward | $mem_twisted | $fds_twisted |"
echo
target() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {if (v == "" || v == "FAIL" || v == "-") print "?"; else if ((op == ">=" && v+0 >= t+0) || (op == "<=" && v+0 <= t+0)) print "met"; else print "NOT met"}'; }
echo "targets:"
echo "  bulk >= tuned socat:            $(ratio "$bulk_tether" "$bulk_socat_b256k") x  $(target "$(ratio "$bulk_tether" "$bulk_socat_b256k")" 1 '>=')"
echo "  bulk >= 0.6 of direct:          $(ratio "$bulk_tether" "$bulk_direct") x  $(target "$(ratio "$bulk_tether" "$bulk_direct")" 0.6 '>=')"
echo "  conn/s >= 10 x socat fork:      $(ratio "$cps_tether" "$cps_socat") x  $(target "$(ratio "$cps_tether" "$cps_socat")" 10 '>=')"
echo "  memory <= 32 KiB per idle conn: $mem_tether KiB  $(target "$mem_tether" 32 '<=')"
