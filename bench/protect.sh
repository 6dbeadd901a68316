#!/usr/bin/env bash
# Protection of the session service and refresh ahead, measured (not a
# timed test): builds Caddy with the plugin, bench/sessionsvc (with a slow
# session service, 300 ms an answer) and bench/protectload, starts them on
# loopback and runs three measurements:
#   1. one client flooding random tokens for FLOOD_SECS (default 10):
#      session-service calls, 429s, p99 of a cached user on the flooding
#      address and of a new user on another address;
#   2. 200 new tokens at once from 200 addresses against the slow service,
#      with the default limits and with both off: the most calls and
#      connections to it at once;
#   3. steady load on STEADY_TOKENS (300) tokens with cache_ttl 5s against
#      the slow service for STEADY_SECS (default 10), with and without
#      refresh_ahead: p50/p99, requests that waited on the service.
# Loopback only; everything it starts is stopped on exit. bench/run.sh runs
# it at the end, in a short form when its DURATION is short (CI's smoke).
#
# usage: bench/protect.sh   (env: FLOOD_SECS=10 STEADY_SECS=10 STEADY_TOKENS=300)
set -euo pipefail
cd "$(dirname "$0")/.."

FLOOD_SECS=${FLOOD_SECS:-10}
STEADY_SECS=${STEADY_SECS:-10}
STEADY_TOKENS=${STEADY_TOKENS:-300}
STAMPEDE=${STAMPEDE:-200}
OUT=bench/out
mkdir -p "$OUT"
. bench/lib.sh

echo "== building (protect)"
go build -o "$OUT/caddy" ./cmd/caddy
go build -o "$OUT/sessionsvc" ./bench/sessionsvc
go build -o "$OUT/protectload" ./bench/protectload

free_ports 18090 18091 18092 18093 18094 18095 18096 18097 18099

start "$OUT/sessionsvc-protect.log" "$OUT/sessionsvc" -session 127.0.0.1:18090 -upstream 127.0.0.1:18091 -slow 127.0.0.1:18092 -prefix bench-
start "$OUT/caddy-protect.log" "$OUT/caddy" run --config bench/protect.Caddyfile --adapter caddyfile
wait_ok 18093 bench-up

L="$OUT/protectload"
echo "== 1. flood: one client, random tokens, ${FLOOD_SECS}s (defaults: lookup_limit 64, client_miss_limit 30 1s)"
timeout $((${FLOOD_SECS%.*} + 60)) "$L" -mode flood -site http://127.0.0.1:18093/ -svc http://127.0.0.1:18090 -secs "$FLOOD_SECS"
echo "== 2. stampede: $STAMPEDE new tokens at once, session service 300 ms"
echo "-- defaults (lookup_limit 64)"
timeout 120 "$L" -mode stampede -site http://127.0.0.1:18094/ -svc http://127.0.0.1:18092 -clients "$STAMPEDE"
echo "-- lookup_limit off, client_miss_limit off"
timeout 120 "$L" -mode stampede -site http://127.0.0.1:18095/ -svc http://127.0.0.1:18092 -clients "$STAMPEDE"
echo "== 3. steady: $STEADY_TOKENS tokens in use, cache_ttl 5s, session service 300 ms, ${STEADY_SECS}s, 64 loops"
echo "-- refresh_ahead 0.8 (the default)"
timeout $((${STEADY_SECS%.*} + 120)) "$L" -mode steady -site http://127.0.0.1:18096/ -admin http://127.0.0.1:18099 \
	-backend http://127.0.0.1:18092/steady -secs "$STEADY_SECS" -tokens "$STEADY_TOKENS" -workers 64
echo "-- refresh_ahead off"
timeout $((${STEADY_SECS%.*} + 120)) "$L" -mode steady -site http://127.0.0.1:18097/ -admin http://127.0.0.1:18099 \
	-backend http://127.0.0.1:18092/steady-off -secs "$STEADY_SECS" -tokens "$STEADY_TOKENS" -workers 64
