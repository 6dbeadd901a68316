#!/usr/bin/env bash
# Load benchmark of session_auth against Caddy without it and against
# Caddy's own forward_auth. Builds Caddy with the plugin and the emulated
# session service, starts both on loopback, and runs wrk against eight cases
# interleaved, ROUNDS times:
#   a  respond alone                  b  session_auth (cached) + respond
#   c  forward_auth + respond         d  reverse_proxy alone
#   e  session_auth + reverse_proxy   f  session_auth, a new valid token per request
#   g  reverse_proxy, the client itself sending the nine headers that
#      session_auth injects (what e's upstream request carries)
#   h  e with `header_fields user roles`: two injected headers, not nine
#   i  forward_auth to a 2xx endpoint with no body (a kept connection)
#   j  an L2 hit: a second Caddy node (its own process, the same Redis)
#      asked for new tokens that the first node resolved just before
#   k  that second node asked for one token it holds (its cached path:
#      what j costs without the lookup, on the same process)
# For each: requests/s, p50/p99 latency, and the Caddy process's CPU per
# request (utime+stime from /proc); then the medians over rounds and the
# ratios b/a, b/c, e/d, e/g, h/d (each the median of the per-round ratios).
# Then PAIR_ROUNDS paired runs of b/a, e/d and h/d: both cases of a ratio
# loaded at once, so that the machine's noise hits both alike.
#
# Then bench/protect.sh (the lookup limits and refresh ahead).
#
# usage: bench/run.sh   (env: ROUNDS=10 DURATION=3 THREADS=2 CONNS=32 PAIR_ROUNDS=5
# CASES="a b ..." PROTECT=0 to leave bench/protect.sh out)
# Loopback only; everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-3}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
OUT=bench/out
TOKEN=bench-0123456789abcdef0123456789abcdef
CASES=${CASES:-a b c d e f g h i j k}
declare -A PORT=([a]=18081 [b]=18082 [c]=18083 [d]=18084 [e]=18085 [f]=18086 [g]=18084 [h]=18087 [i]=18088 [j]=18102 [k]=18102)
declare -A NAME=(
	[a]="respond"
	[b]="session_auth + respond"
	[c]="forward_auth + respond"
	[d]="reverse_proxy"
	[e]="session_auth + reverse_proxy"
	[f]="session_auth, cold tokens"
	[g]="reverse_proxy + 9 client headers"
	[h]="session_auth (2 headers) + r_p"
	[i]="forward_auth (no body, kept conn)"
	[j]="session_auth, L2 hit (2nd node)"
	[k]="session_auth (cached), 2nd node"
)
# The headers session_auth injects for the benchmark session, sent by the
# client in case g.
IDENTITY=(
	"X-Session-User: alice" "X-Session-User-Id: u1" "X-Session-Email: alice@example.com"
	"X-Session-Name: Alice Doe" "X-Session-Org: Acme" "X-Session-Org-Id: o1"
	"X-Session-Roles: admin,dev" "X-Session-Perms: read,write" "X-Session-Admin: false"
)

mkdir -p "$OUT"
. bench/lib.sh
need_tools

echo "== building"
go build -o "$OUT/caddy" ./cmd/caddy
go build -o "$OUT/sessionsvc" ./bench/sessionsvc

free_ports 18081 18082 18083 18084 18085 18086 18087 18088 18090 18091 18095 18101 18102

start "$OUT/sessionsvc.log" "$OUT/sessionsvc" -session 127.0.0.1:18090 -upstream 127.0.0.1:18091 -prefix bench-
start "$OUT/caddy.log" "$OUT/caddy" run --config bench/Caddyfile --adapter caddyfile
CADDY=$STARTED
start_redis "$OUT/redis.log"
start "$OUT/node1.log" env CLUSTER_NODE=1 "$OUT/caddy" run --config bench/Caddyfile.node --adapter caddyfile
start "$OUT/node2.log" env CLUSTER_NODE=2 "$OUT/caddy" run --config bench/Caddyfile.node --adapter caddyfile
NODE2=$STARTED

for port in 18086 18101 18102; do wait_ok "$port" "$TOKEN"; done
# Every case must answer 200 with the token, and the session_auth and
# forward_auth cases 401 without a valid one: a benchmark of error pages
# would measure nothing.
for c in $CASES; do
	got=$(status "${PORT[$c]}" "$TOKEN")
	[ "$got" = 200 ] || { echo "case $c (${NAME[$c]}) answers $got, want 200; see $OUT/caddy.log" >&2; exit 1; }
done
for c in b c e f h i j k; do
	got=$(status "${PORT[$c]}" nope)
	[ "$got" = 401 ] || { echo "case $c (${NAME[$c]}) answers $got to a bad token, want 401" >&2; exit 1; }
done

TICK=$(getconf CLK_TCK)
# cpu_ticks CASE: the CPU of the Caddy process that serves the case.
cpu_ticks() {
	local pid=$CADDY
	case $1 in j | k) pid=$NODE2 ;; esac
	awk '{print $14 + $15}' "/proc/$pid/stat"
}

# to_us converts wrk's latency (850.00us, 1.23ms, 1.05s) to microseconds.
to_us() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) print n
		else if (v ~ /ms$/) print n * 1000
		else if (v ~ /m$/) print n * 60e6
		else if (v ~ /s$/) print n * 1e6
		else print n }'
}

RESULTS="$OUT/results.txt"
: >"$RESULTS"

# errors_in LOG: the non-2xx/3xx answers and socket errors wrk reported.
errors_in() { awk '/Non-2xx or 3xx responses:/ {n += $5} /Socket errors:/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$1"; }

# run CASE ROUND SECONDS: one wrk run; appends a line to RESULTS unless
# ROUND is "warmup".
run() {
	local c=$1 round=$2 secs=$3 log="$OUT/wrk-$1-$2.txt"
	local args=(-t"$THREADS" -c"$CONNS" -d"${secs}s" --latency --timeout 5s)
	if [ "$c" = f ]; then
		args+=(-s bench/cold.lua "http://127.0.0.1:${PORT[$c]}/" -- "r$round-$$-$(date +%s%N)")
	elif [ "$c" = j ]; then
		# Node 1 resolves the tokens first (longer, so that node 2,
		# faster, never runs past them); node 2 then reads each from
		# Redis. Only node 2's CPU is measured.
		local tag="l2-r$round-$$-$(date +%s%N)"
		timeout $((3 * secs + 30)) wrk -t"$THREADS" -c"$CONNS" -d"$((3 * secs))s" --timeout 5s \
			-s bench/cold.lua "http://127.0.0.1:18101/" -- "$tag" >"$OUT/wrk-j-fill-$round.txt"
		args+=(-s bench/cold.lua "http://127.0.0.1:${PORT[$c]}/" -- "$tag")
	elif [ "$c" = g ]; then
		for hd in "${IDENTITY[@]}"; do args+=(-H "$hd"); done
		args+=(-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:${PORT[$c]}/")
	else
		args+=(-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:${PORT[$c]}/")
	fi
	local t0 t1
	t0=$(cpu_ticks "$c")
	timeout $((secs + 30)) wrk "${args[@]}" >"$log"
	t1=$(cpu_ticks "$c")
	[ "$round" = warmup ] && return
	local rps reqs p50 p99 bad cpu
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$log")
	reqs=$(awk '/requests in/ {print $1}' "$log")
	p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$log")")
	p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$log")")
	bad=$(errors_in "$log")
	cpu=$(awk -v d="$((t1 - t0))" -v tick="$TICK" -v n="$reqs" 'BEGIN {printf "%.1f", d / tick * 1e6 / n}')
	echo "$c $round $rps $p50 $p99 $cpu $bad" >>"$RESULTS"
	printf '  round %s  %-30s %10.0f req/s  p50 %7.0f us  p99 %7.0f us  cpu %6.1f us/req  errors %s\n' \
		"$round" "${NAME[$c]}" "$rps" "$p50" "$p99" "$cpu" "$bad"
}

echo "== $(nproc) cores, wrk -t$THREADS -c$CONNS, $ROUNDS rounds x $(wc -w <<<"$CASES") cases x ${DURATION}s, loopback, $(date -u +%FT%TZ)"
echo "== warmup"
for c in $CASES; do run "$c" warmup 1; done
# The cases compared run back to back (a with b, e with d), or one apart
# (e with g, h with d), so a swing in
# the machine's load hits both sides of a ratio alike; which of the two
# goes first alternates from round to round.
for r in $(seq "$ROUNDS"); do
	echo "== round $r"
	if [ $((r % 2)) = 1 ]; then order="a b c i d e h g f k j"; else order="b a i c g h e d j k f"; fi
	for c in $order; do
		case " $CASES " in *" $c "*) run "$c" "$r" "$DURATION" ;; esac
	done
done

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { awk -v c="$1" -v k="$2" '$1 == c {print $k}' "$RESULTS" | median; }
ratio() { # median over rounds of (column $3 of case $1) / (column $3 of case $2)
	awk -v x="$1" -v y="$2" -v k="${3:-3}" '$1 == x {a[$2] = $k} $1 == y {b[$2] = $k} END {for (r in a) if (b[r] > 0) print a[r] / b[r]}' "$RESULTS" | median
}
rounds() { # the per-round ratios, for the spread
	awk -v x="$1" -v y="$2" '$1 == x {a[$2] = $3} $1 == y {b[$2] = $3} END {for (r = 1; r in a; r++) printf "%.2f ", a[r] / b[r]}' "$RESULTS"
}

echo
echo "== medians over $ROUNDS rounds"
printf '| case | requests/s | p50 | p99 | Caddy CPU per request | errors |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: |\n'
for c in $CASES; do
	errs=$(awk -v c="$c" '$1 == c {s += $7} END {print s + 0}' "$RESULTS")
	printf '| (%s) %s | %.0f | %.0f µs | %.0f µs | %.1f µs | %s |\n' "$c" "${NAME[$c]}" \
		"$(col "$c" 3)" "$(col "$c" 4)" "$(col "$c" 5)" "$(col "$c" 6)" "$errs"
done
echo
echo "requests/s ratios (median of the per-round ratios; per round in brackets):"
printf '  b/a = %.3f  [ %s]  session_auth + respond vs respond; goal >= 0.90\n' "$(ratio b a)" "$(rounds b a)"
printf '  e/d = %.3f  [ %s]  session_auth + reverse_proxy vs reverse_proxy; goal >= 0.95\n' "$(ratio e d)" "$(rounds e d)"
printf '  e/g = %.3f  [ %s]  session_auth + reverse_proxy vs reverse_proxy carrying the same headers\n' "$(ratio e g)" "$(rounds e g)"
printf '  h/d = %.3f  [ %s]  the same with header_fields user roles (2 headers injected, not 9)\n' "$(ratio h d)" "$(rounds h d)"
printf '  b/c = %.2f   [ %s]  session_auth vs forward_auth; goal >= 3\n' "$(ratio b c)" "$(rounds b c)"
printf '  f/c = %.2f   [ %s]  cold tokens (one service call each) vs forward_auth\n' "$(ratio f c)" "$(rounds f c)"
echo "Caddy CPU per request ratios (capacity when CPU-bound; steadier than requests/s on a busy machine):"
printf '  a/b = %.3f   d/e = %.3f   g/e = %.3f   d/h = %.3f   c/b = %.2f\n' "$(ratio a b 6)" "$(ratio d e 6)" "$(ratio g e 6)" "$(ratio d h 6)" "$(ratio c b 6)"
# The lookups' own cost: the CPU above the path without one (b for
# session_auth, a for forward_auth), medians over rounds.
cold=$(awk -v f="$(col f 6)" -v b="$(col b 6)" 'BEGIN {printf "%.1f", f - b}')
fwd=$(awk -v i="$(col i 6)" -v a="$(col a 6)" 'BEGIN {printf "%.1f", i - a}')
l2=$(awk -v j="$(col j 6)" -v b="$(col b 6)" 'BEGIN {printf "%.1f", j - b}')
l2k=$(awk -v j="$(col j 6)" -v k="$(col k 6)" 'BEGIN {printf "%.1f", j - k}')
echo "lookup cost (Caddy CPU per request above the path without a lookup):"
printf '  cold lookup (f-b) %s us   forward_auth, kept conn (i-a) %s us   ratio %.2f; goal <= 0.75\n' "$cold" "$fwd" "$(awk -v x="$cold" -v y="$fwd" 'BEGIN {print x / y}')"
printf '  L2 hit (j-b) %s us   cold lookup (f-b) %s us   ratio %.2f; goal <= 0.5\n' "$l2" "$cold" "$(awk -v x="$l2" -v y="$cold" 'BEGIN {print x / y}')"
printf '  L2 hit above the 2nd node'"'"'s own cached path (j-k) %s us   ratio to the cold lookup %.2f\n' "$l2k" "$(awk -v x="$l2k" -v y="$cold" 'BEGIN {print x / y}')"

# Paired runs: the two cases of a ratio loaded at the same time, each by
# its own wrk (one thread, half the connections). Whatever else the machine
# does during a run then slows both sides alike, so the ratio of their
# requests/s (the Caddy process sharing its CPU between them) is steadier
# than that of back-to-back runs on a noisy machine.
PAIR_ROUNDS=${PAIR_ROUNDS:-5}
PAIRED="$OUT/paired.txt"
: >"$PAIRED"
wrk_half() { # wrk_half CASE LOG
	timeout $((DURATION + 30)) wrk -t1 -c"$((CONNS / 2))" -d"${DURATION}s" --timeout 5s \
		-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:${PORT[$1]}/" >"$2"
}
echo
echo "== paired runs ($PAIR_ROUNDS rounds x ${DURATION}s; both cases at once, each from wrk -t1 -c$((CONNS / 2)))"
for r in $(seq "$PAIR_ROUNDS"); do
	for p in b/a e/d h/d; do
		x=${p%/*} y=${p#*/}
		wrk_half "$x" "$OUT/pair-$x-$r.txt" &
		wx=$!
		wrk_half "$y" "$OUT/pair-$y-$r.txt"
		wait "$wx"
		rx=$(awk '/^Requests\/sec:/ {print $2}' "$OUT/pair-$x-$r.txt")
		ry=$(awk '/^Requests\/sec:/ {print $2}' "$OUT/pair-$y-$r.txt")
		bad=$(($(errors_in "$OUT/pair-$x-$r.txt") + $(errors_in "$OUT/pair-$y-$r.txt")))
		echo "$p $r $rx $ry $bad" >>"$PAIRED"
		printf '  round %s  %s  %8.0f vs %8.0f req/s  ratio %.3f  errors %s\n' "$r" "$p" "$rx" "$ry" "$(awk -v a="$rx" -v b="$ry" 'BEGIN {print a / b}')" "$bad"
	done
done
paired() { awk -v p="$1" '$1 == p && $4 > 0 {print $3 / $4}' "$PAIRED" | median; }
paired_rounds() { awk -v p="$1" '$1 == p && $4 > 0 {printf "%.2f ", $3 / $4}' "$PAIRED"; }
echo "paired requests/s ratios (median; per round in brackets):"
printf '  b/a = %.3f  [ %s]  goal >= 0.90\n' "$(paired b/a)" "$(paired_rounds b/a)"
printf '  e/d = %.3f  [ %s]  goal >= 0.95\n' "$(paired e/d)" "$(paired_rounds e/d)"
printf '  h/d = %.3f  [ %s]  header_fields user roles\n' "$(paired h/d)" "$(paired_rounds h/d)"

# The protection of the session service and refresh ahead
# (bench/protect.sh), on its own Caddy: this one's processes stop first.
# A short DURATION (CI's smoke round) runs it short too.
cleanup
echo
if [ "${PROTECT:-1}" = 0 ]; then
	exit 0
elif [ "$DURATION" -le 2 ]; then
	FLOOD_SECS=$DURATION STEADY_SECS=3 STEADY_TOKENS=50 STAMPEDE=50 bash bench/protect.sh
else
	bash bench/protect.sh
fi
