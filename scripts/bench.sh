#!/usr/bin/env bash
# make bench: measure a running `bin/mall serve` against a trivial echo server and write
# docs/benchmarks.md. The scenarios (rows) are in cmd/mallbench/scenarios.go.
#
# Uses the `make run` services (MALL_MYSQL_PORT 13306, MALL_REDIS_PORT 16379; started when not
# running, left running) but its own databases (mall_bench*, recreated on every run) and Redis
# database 9 (flushed), so it neither disturbs nor depends on the data of `make run`.
#
# Variables: BENCH_DURATION (10s per row), BENCH_WARMUP (2s), BENCH_CONNS (64), BENCH_RUN
# (regexp: only matching rows; the baseline always runs), BENCH_OUT (docs/benchmarks.md),
# BENCH_MALL_PORT (18080), BENCH_BASELINE_PORT (18081), BENCH_BASELINE_ONLY=1 (do not build or
# start bin/mall; its rows are reported as not run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

MYSQL_PORT=${MALL_MYSQL_PORT:-13306}
REDIS_PORT=${MALL_REDIS_PORT:-16379}
MALL_PORT=${BENCH_MALL_PORT:-18080}
BASE_PORT=${BENCH_BASELINE_PORT:-18081}
WORK=.local/bench
START=$SECONDS

log() { echo "bench: $*" >&2; }
die() { log "error: $*"; exit 1; }

# code PORT PATH: HTTP status of GET PATH on 127.0.0.1:PORT (bash /dev/tcp; no curl needed).
code() {
	local fd c
	{ exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&"$fd"
	read -r -t 5 _ c _ <&"$fd" || true
	exec {fd}>&-
	echo "${c:-0}"
}

# One bench at a time per checkout: runs share .local/bench, the bench databases and the ports.
# (Children get `8>&-` so no server outlives the run holding the lock.)
mkdir -p .local
exec 8>.local/bench.lock
if ! flock -n 8; then
	log "another make bench is running in this checkout; waiting for it"
	flock 8
fi

for p in "$MALL_PORT" "$BASE_PORT"; do
	if code "$p" / >/dev/null; then die "port $p is already in use (set BENCH_MALL_PORT / BENCH_BASELINE_PORT)"; fi
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown ]] && ! git diff-index --quiet HEAD -- 2>/dev/null; then commit+=-dirty; fi

pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$WORK"
mkdir -p "$WORK" bin
log "building bin/mallbench"
go build -o bin/mallbench ./cmd/mallbench

mall_url="" skip=""
if [[ ${BENCH_BASELINE_ONLY:-} == 1 ]]; then
	skip="BENCH_BASELINE_ONLY=1"
else
	log "building bin/mall"
	go build -trimpath -ldflags "-X main.version=bench -X main.commit=$commit" -o bin/mall ./cmd/mall

	scripts/services.sh up 8>&-
	log "recreating databases mall_bench, mall_bench_shard_0, mall_bench_shard_1; flushing Redis db 9"
	mariadb -h 127.0.0.1 -P "$MYSQL_PORT" -umall -pmall -e '
		DROP DATABASE IF EXISTS mall_bench; CREATE DATABASE mall_bench;
		DROP DATABASE IF EXISTS mall_bench_shard_0; CREATE DATABASE mall_bench_shard_0;
		DROP DATABASE IF EXISTS mall_bench_shard_1; CREATE DATABASE mall_bench_shard_1;'
	redis-cli -p "$REDIS_PORT" -n 9 flushdb >/dev/null

	dsn="mall:mall@tcp(127.0.0.1:$MYSQL_PORT)"
	export MALL_APP_ENV=development \
		MALL_HTTP_ADDR=127.0.0.1:$MALL_PORT \
		MALL_LOG_LEVEL=warn \
		MALL_RATELIMIT_ENABLED=false \
		MALL_DB_MAIN="$dsn/mall_bench" \
		MALL_DB_SHARDS="$dsn/mall_bench_shard_0,$dsn/mall_bench_shard_1" \
		MALL_REDIS_ADDR=127.0.0.1:$REDIS_PORT \
		MALL_REDIS_DB=9 \
		MALL_KAFKA_EMBEDDED=true \
		MALL_SEARCH_BLEVE_PATH=$WORK/search.bleve \
		MALL_AUTH_JWT_KEYS_DIR=$WORK/jwt
	bin/mall migrate up >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; die "bin/mall migrate up failed"; }

	log "starting bin/mall serve on 127.0.0.1:$MALL_PORT (log: $WORK/mall.log)"
	bin/mall serve >"$WORK/mall.log" 2>&1 8>&- &
	mall_pid=$!
	pids+=("$mall_pid")
	for ((i = 0; ; i++)); do
		kill -0 "$mall_pid" 2>/dev/null || { tail -n 20 "$WORK/mall.log" >&2; die "bin/mall serve exited"; }
		[[ $(code "$MALL_PORT" /readyz || true) == 200 ]] && break
		((i < 480)) || { tail -n 20 "$WORK/mall.log" >&2; die "/readyz did not answer 200 within 2 minutes"; }
		sleep 0.25
	done
	mall_url=http://127.0.0.1:$MALL_PORT
fi

log "starting the baseline on 127.0.0.1:$BASE_PORT"
bin/mallbench baseline -addr "127.0.0.1:$BASE_PORT" >"$WORK/baseline.log" 2>&1 8>&- &
pids+=("$!")

note="bin/mall serve with MALL_LOG_LEVEL=warn, MALL_RATELIMIT_ENABLED=false"
mver=$(mariadbd --version 2>/dev/null | grep -o 'Ver [^ ]*' | cut -c5- || true)
rver=$(redis-server --version 2>/dev/null | grep -o 'v=[^ ]*' | cut -c3- || true)
note+="; MariaDB ${mver:-?} and Redis ${rver:-?} from scripts/services.sh; embedded Kafka (kfake)"

log "running scenarios: ${BENCH_CONNS:-64} connections, ${BENCH_WARMUP:-2s} warm-up + ${BENCH_DURATION:-10s} each"
bin/mallbench run \
	-mall "$mall_url" -skip-reason "$skip" \
	-baseline "http://127.0.0.1:$BASE_PORT" \
	-conns "${BENCH_CONNS:-64}" -warmup "${BENCH_WARMUP:-2s}" -duration "${BENCH_DURATION:-10s}" \
	-run "${BENCH_RUN:-}" -out "${BENCH_OUT:-docs/benchmarks.md}" \
	-commit "$commit" -mall-bin bin/mall -server-note "$note"

if [[ -n $mall_url ]] && ! kill -0 "$mall_pid" 2>/dev/null; then
	die "bin/mall serve died during the run; see $WORK/mall.log"
fi
log "done in $((SECONDS - START))s"
