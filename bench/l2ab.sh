#!/usr/bin/env bash
# Side-by-side comparison of two builds on the cluster's L2 hit: one
# redis-server, the emulated session service, a first node (build A) that
# resolves a run of new tokens, then two second nodes, one per build,
# loaded at the same time with those same tokens (each by its own
# `wrk -t1 -c16`), so that whatever else the machine does slows both
# alike. Prints, per round, each second node's Caddy CPU per request and
# the difference B - A.
#
# usage: bench/l2ab.sh CADDY_A CADDY_B   (env: ROUNDS=6 DURATION=3)
# Build each with `go build -o <path> ./cmd/caddy` from the checkout to
# compare. wrk and redis-server are installed from Debian when missing. Loopback only (ports 18090-18095, 18101-18103); everything it
# starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

A=${1:?usage: bench/l2ab.sh CADDY_A CADDY_B}
B=${2:?usage: bench/l2ab.sh CADDY_A CADDY_B}
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-3}
OUT=bench/out
mkdir -p "$OUT"

. bench/lib.sh
need_tools
free_ports 18090 18091 18095 18101 18102 18103
go build -o "$OUT/sessionsvc" ./bench/sessionsvc

start "$OUT/ab-sessionsvc.log" "$OUT/sessionsvc" -session 127.0.0.1:18090 -upstream 127.0.0.1:18091 -prefix bench-
start_redis "$OUT/ab-redis.log"
start "$OUT/ab-node1.log" env CLUSTER_NODE=1 "$A" run --config bench/Caddyfile.node --adapter caddyfile
start "$OUT/ab-nodeA.log" env CLUSTER_NODE=2 "$A" run --config bench/Caddyfile.node --adapter caddyfile
NODEA=$STARTED
start "$OUT/ab-nodeB.log" env CLUSTER_NODE=3 "$B" run --config bench/Caddyfile.node --adapter caddyfile
NODEB=$STARTED
for port in 18101 18102 18103; do
	wait_ok "$port" bench-warm
	got=$(status "$port" bench-warm)
	[ "$got" = 200 ] || { echo "node on port $port answers $got, want 200; see $OUT/ab-node*.log" >&2; exit 1; }
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
echo "== $(nproc) cores, $ROUNDS rounds x ${DURATION}s; A = $A, B = $B"
for r in $(seq "$ROUNDS"); do
	tag="ab-r$r-$$-$(date +%s%N)"
	timeout $((3 * DURATION + 30)) wrk -t2 -c32 -d"$((3 * DURATION))s" --timeout 5s \
		-s bench/cold.lua "http://127.0.0.1:18101/" -- "$tag" >"$OUT/ab-fill.txt"
	a0=$(cpu "$NODEA") b0=$(cpu "$NODEB")
	timeout $((DURATION + 30)) wrk -t1 -c16 -d"${DURATION}s" --timeout 5s \
		-s bench/cold.lua "http://127.0.0.1:18102/" -- "$tag" >"$OUT/ab-a.txt" &
	wa=$!
	timeout $((DURATION + 30)) wrk -t1 -c16 -d"${DURATION}s" --timeout 5s \
		-s bench/cold.lua "http://127.0.0.1:18103/" -- "$tag" >"$OUT/ab-b.txt"
	wait "$wa"
	a1=$(cpu "$NODEA") b1=$(cpu "$NODEB")
	na=$(awk '/requests in/ {print $1}' "$OUT/ab-a.txt")
	nb=$(awk '/requests in/ {print $1}' "$OUT/ab-b.txt")
	bad=$(cat "$OUT/ab-a.txt" "$OUT/ab-b.txt" | awk '/Non-2xx or 3xx responses:/ {n += $5} /Socket errors:/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}')
	if [ "${na:-0}" -eq 0 ] || [ "${nb:-0}" -eq 0 ] || [ "$bad" -ne 0 ]; then
		echo "round $r: $na and $nb requests, $bad errors: a measurement of failures would measure nothing" >&2
		exit 1
	fi
	awk -v da=$((a1 - a0)) -v db=$((b1 - b0)) -v na="$na" -v nb="$nb" -v tick="$TICK" -v r="$r" 'BEGIN {
		ca = da / tick * 1e6 / na; cb = db / tick * 1e6 / nb
		printf "  round %s  A %6.1f us/req (%d req)   B %6.1f us/req (%d req)   B - A %+6.1f us\n", r, ca, na, cb, nb, cb - ca }'
done
