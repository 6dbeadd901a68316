# shellcheck shell=bash
# What bench/run.sh, bench/protect.sh and bench/l2ab.sh share, sourced
# from the checkout's top directory: the load tools, the check that the
# ports are free, processes started in the background and stopped when
# the script exits, and waiting for a site to answer.

# need_tools installs wrk and redis-server from Debian when missing.
need_tools() {
	if ! command -v wrk >/dev/null; then
		echo "== installing wrk"
		apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
	fi
	if ! command -v redis-server >/dev/null; then
		echo "== installing redis-server"
		apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >/dev/null
	fi
}

# free_ports PORT...: exits when one of them is in use.
free_ports() {
	local p
	for p in "$@"; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "port $p is in use: is another benchmark running?" >&2
			exit 1
		fi
	done
}

PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start LOG COMMAND...: runs COMMAND in the background, its output in
# LOG, until the script exits; its pid is in STARTED.
start() {
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	STARTED=$!
	PIDS+=("$STARTED")
}

# start_redis LOG: a redis-server on 127.0.0.1:18095 without persistence,
# once it accepts connections.
start_redis() {
	start "$1" redis-server --port 18095 --bind 127.0.0.1 --save '' --appendonly no
	for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/18095) 2>/dev/null && break; sleep 0.1; done
}

# status PORT TOKEN: the status of GET / on the port with the bearer token.
status() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $2" "http://127.0.0.1:$1/" || true; }

# wait_ok PORT TOKEN: waits up to 10 s for the port to answer 200.
wait_ok() {
	for _ in $(seq 100); do
		[ "$(status "$1" "$2")" = 200 ] && return
		sleep 0.1
	done
}
