#!/usr/bin/env bash
# make bench: measure a running `bin/mall serve` against a trivial echo server and write
# docs/benchmarks.md. The scenarios (rows) are in cmd/mallbench/scenarios.go.
#
# Uses the `make run` services (MALL_MYSQL_PORT 13306, MALL_REDIS_PORT 16379; started when not
# running, left running) but its own databases and Redis databases, so it neither disturbs nor
# depends on the data of `make run`. Three servers:
#   - mall_bench* (recreated every run, Redis db 9 flushed), seeded with `mall seed`: the main
#     server on BENCH_MALL_PORT, and a second one on the same data with the detail cache's
#     in-process level off (MALL_CATALOG_DETAIL_CACHE_L1_SIZE=0) on BENCH_MALL_NOL1_PORT;
#   - mall_bench_search* (Redis db 10) holding BENCH_SEARCH_PRODUCTS seeded products for the
#     search rows, on BENCH_MALL_SEARCH_PORT. That seed and its search index
#     (.local/bench-search/) are kept between runs and reused when complete; the first run
#     seeds them (minutes) and waits for the index to catch up before measuring anything.
# The order and bid rows write: for the whole `mallbench run` MariaDB runs with durable commits
# (innodb_flush_log_at_trx_commit=1, set with SET GLOBAL and restored on exit; the binary log
# is off in scripts/services.sh, so sync_binlog does not apply), and the report says so.
#
# Variables: BENCH_DURATION (10s per row), BENCH_WARMUP (2s), BENCH_CONNS (64), BENCH_RUN
# (regexp: only matching rows; the baseline always runs), BENCH_OUT (docs/benchmarks.md),
# BENCH_MALL_PORT (18080), BENCH_BASELINE_PORT (18081), BENCH_MALL_NOL1_PORT (18082),
# BENCH_MALL_SEARCH_PORT (18083), BENCH_IDEMPOTENCY_STORE (redis | mysql: the servers' idempotency.store, default redis), BENCH_KAFKA_PORT (18092: the first server's embedded broker, which the settlement rows produce to), BENCH_WS_PORT (18084: `mallbench ws-server`, the realtime hub
# behind Mall's HTTP stack on Redis db 9, for the WebSocket rows), BENCH_SEED_PRODUCTS (300), BENCH_SEARCH_PRODUCTS (100000; 0
# skips the search server and its rows), BENCH_SEARCH_RESEED=1 (drop and reseed the search
# data), BENCH_BASELINE_ONLY=1 (do not build or start bin/mall; its rows are reported as not
# run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

MYSQL_PORT=${MALL_MYSQL_PORT:-13306}
REDIS_PORT=${MALL_REDIS_PORT:-16379}
MALL_PORT=${BENCH_MALL_PORT:-18080}
BASE_PORT=${BENCH_BASELINE_PORT:-18081}
NOL1_PORT=${BENCH_MALL_NOL1_PORT:-18082}
SEARCH_PORT=${BENCH_MALL_SEARCH_PORT:-18083}
WS_PORT=${BENCH_WS_PORT:-18084}
KAFKA_PORT=${BENCH_KAFKA_PORT:-18092}
SEED_PRODUCTS=${BENCH_SEED_PRODUCTS:-300}
SEARCH_PRODUCTS=${BENCH_SEARCH_PRODUCTS:-100000}
SEED_PASSWORD=bench-seed-password
WORK=.local/bench
BIG=.local/bench-search # kept between runs (make clean leaves it too)
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

for p in "$MALL_PORT" "$BASE_PORT" "$NOL1_PORT" "$SEARCH_PORT" "$WS_PORT"; do
	if code "$p" / >/dev/null; then die "port $p is already in use (set BENCH_MALL_PORT / BENCH_BASELINE_PORT / BENCH_MALL_NOL1_PORT / BENCH_MALL_SEARCH_PORT / BENCH_WS_PORT)"; fi
done

# The WebSocket rows hold 5,000 connections open: a descriptor per end, both on this machine.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < 12000)); then log "warning: ulimit -n is $(ulimit -n); the 5,000-connection WebSocket rows need about 11,000"; fi

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown ]] && ! git diff-index --quiet HEAD -- 2>/dev/null; then commit+=-dirty; fi

pids=()
flush_prev="" # innodb_flush_log_at_trx_commit before this run set it (restored on exit)
cleanup() {
	local p
	if [[ -n $flush_prev ]]; then
		sql -e "SET GLOBAL innodb_flush_log_at_trx_commit = $flush_prev" ||
			log "could not restore innodb_flush_log_at_trx_commit=$flush_prev"
	fi
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

mall_url="" nol1_url="" search_url="" skip=""
# start_mall NAME PORT [VAR=VALUE...]: bin/mall serve in the background with extra environment;
# sets mall_pid once /readyz answers 200.
start_mall() {
	local name=$1 port=$2
	shift 2
	log "starting bin/mall serve ($name) on 127.0.0.1:$port (log: $WORK/$name.log)"
	env "$@" MALL_HTTP_ADDR="127.0.0.1:$port" bin/mall serve >"$WORK/$name.log" 2>&1 8>&- &
	mall_pid=$!
	pids+=("$mall_pid")
	for ((i = 0; ; i++)); do
		kill -0 "$mall_pid" 2>/dev/null || { tail -n 20 "$WORK/$name.log" >&2; die "bin/mall serve ($name) exited"; }
		[[ $(code "$port" /readyz || true) == 200 ]] && break
		((i < 480)) || { tail -n 20 "$WORK/$name.log" >&2; die "$name: /readyz did not answer 200 within 2 minutes"; }
		sleep 0.25
	done
}
sql() { mariadb -h 127.0.0.1 -P "$MYSQL_PORT" -umall -pmall "$@"; }

if [[ ${BENCH_BASELINE_ONLY:-} == 1 ]]; then
	skip="BENCH_BASELINE_ONLY=1"
else
	log "building bin/mall"
	go build -trimpath -ldflags "-X main.version=bench -X main.commit=$commit" -o bin/mall ./cmd/mall

	scripts/services.sh up 8>&-
	log "recreating databases mall_bench, mall_bench_shard_0, mall_bench_shard_1; flushing Redis db 9"
	sql -e '
		DROP DATABASE IF EXISTS mall_bench; CREATE DATABASE mall_bench;
		DROP DATABASE IF EXISTS mall_bench_shard_0; CREATE DATABASE mall_bench_shard_0;
		DROP DATABASE IF EXISTS mall_bench_shard_1; CREATE DATABASE mall_bench_shard_1;'
	redis-cli -p "$REDIS_PORT" -n 9 flushdb >/dev/null

	dsn="mall:mall@tcp(127.0.0.1:$MYSQL_PORT)"
	# The development settings (sandbox payments, embedded Kafka, generated JWT keys), explicitly.
	# The servers' /metrics take the ops token, as in production; mallbench sends it.
	export MALL_CONFIG=configs/development.yaml \
		MALL_APP_ENV=development \
		MALL_HTTP_OPS_TOKEN=bench-ops-token-not-secret \
		MALL_LOG_LEVEL=warn \
		MALL_RATELIMIT_ENABLED=false \
		MALL_IDEMPOTENCY_STORE="${BENCH_IDEMPOTENCY_STORE:-redis}" \
		MALL_DB_MAIN="$dsn/mall_bench" \
		MALL_DB_SHARDS="$dsn/mall_bench_shard_0,$dsn/mall_bench_shard_1" \
		MALL_REDIS_ADDR=127.0.0.1:$REDIS_PORT \
		MALL_REDIS_DB=9 \
		MALL_KAFKA_EMBEDDED=true \
		MALL_FLASH_SALE_INTAKE_RATE=100000 \
		MALL_SEARCH_BLEVE_PATH=$WORK/search.bleve \
		MALL_AUTH_JWT_KEYS_DIR=$WORK/jwt
	bin/mall migrate up >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; die "bin/mall migrate up failed"; }
	log "seeding mall_bench: bin/mall seed --products $SEED_PRODUCTS"
	bin/mall seed --products "$SEED_PRODUCTS" --password "$SEED_PASSWORD" >"$WORK/seed.log" 2>&1 ||
		{ cat "$WORK/seed.log" >&2; die "bin/mall seed failed"; }

	# The search server's data: BENCH_SEARCH_PRODUCTS products, seeded once and reused. The
	# marker $BIG/indexed records a seed whose index caught up; without it the data is reseeded
	# (or, when only the index is missing and `mall search reindex` exists, reindexed).
	search_env=(MALL_DB_MAIN="$dsn/mall_bench_search"
		MALL_DB_SHARDS="$dsn/mall_bench_search_shard_0,$dsn/mall_bench_search_shard_1"
		MALL_REDIS_DB=10 MALL_SEARCH_BLEVE_PATH=$BIG/search.bleve MALL_AUTH_JWT_KEYS_DIR=$BIG/jwt)
	search_note=""
	if ((SEARCH_PRODUCTS > 0)); then
		mkdir -p "$BIG"
		have=$(sql -N -e "SELECT COUNT(*) FROM mall_bench_search.catalog_products WHERE status = 'on_sale'" 2>/dev/null || echo 0)
		indexed=$(cat "$BIG/indexed" 2>/dev/null || echo 0)
		if [[ ${BENCH_SEARCH_RESEED:-} != 1 ]] && ((have >= SEARCH_PRODUCTS)) && ((indexed < SEARCH_PRODUCTS)) &&
			bin/mall search reindex --help >/dev/null 2>&1; then
			log "search data: $have products kept, rebuilding its index (bin/mall search reindex)"
			rm -rf "$BIG/search.bleve"
			# Data seeded by an older binary may lack newer migrations the reindex reads.
			env "${search_env[@]}" bin/mall migrate up >"$WORK/migrate-search.log" 2>&1 ||
				{ cat "$WORK/migrate-search.log" >&2; die "bin/mall migrate up (search data) failed"; }
			env "${search_env[@]}" bin/mall search reindex >"$WORK/reindex.log" 2>&1 ||
				{ cat "$WORK/reindex.log" >&2; die "bin/mall search reindex failed"; }
			indexed=$have
		fi
		if [[ ${BENCH_SEARCH_RESEED:-} == 1 ]] || ((have < SEARCH_PRODUCTS)) || ((indexed < SEARCH_PRODUCTS)); then
			log "search data: recreating mall_bench_search* and seeding $SEARCH_PRODUCTS products (minutes; reused by later runs)"
			rm -rf "$BIG/search.bleve" "$BIG/indexed"
			sql -e '
				DROP DATABASE IF EXISTS mall_bench_search; CREATE DATABASE mall_bench_search;
				DROP DATABASE IF EXISTS mall_bench_search_shard_0; CREATE DATABASE mall_bench_search_shard_0;
				DROP DATABASE IF EXISTS mall_bench_search_shard_1; CREATE DATABASE mall_bench_search_shard_1;'
			redis-cli -p "$REDIS_PORT" -n 10 flushdb >/dev/null
			t0=$SECONDS
			# Without product review (catalog.review_required=false) submit puts a product on
			# sale at once: one transaction and one event fewer per product to write and index.
			env "${search_env[@]}" MALL_CATALOG_REVIEW_REQUIRED=false \
				bin/mall seed --products "$SEARCH_PRODUCTS" --password "$SEED_PASSWORD" >"$WORK/seed-search.log" 2>&1 ||
				{ cat "$WORK/seed-search.log" >&2; die "bin/mall seed --products $SEARCH_PRODUCTS failed"; }
			search_note="seeded in $((SECONDS - t0))s this run"
			log "search data: $(head -n1 "$WORK/seed-search.log")"
		else
			search_note="reused from an earlier run"
			log "search data: reusing $have products and their index ($BIG)"
		fi
		# Its own Redis db and node lease; events of a fresh seed reach the index through this
		# server's outbox relay and indexer.
		start_mall mall-search "$SEARCH_PORT" "${search_env[@]}"
		search_url=http://127.0.0.1:$SEARCH_PORT
	fi

	start_mall mall "$MALL_PORT" MALL_KAFKA_EMBEDDED_PORT="$KAFKA_PORT"
	mall_url=http://127.0.0.1:$MALL_PORT
	# The seed's events go out through the first server's relay before a second relay (the
	# L1-less server's, on the same database) could take some of them to its own broker.
	bin/mallbench wait-index -url "$mall_url" -min 0 -timeout 2m 8>&- || die "the outbox of mall_bench did not drain"
	start_mall mall-nol1 "$NOL1_PORT" MALL_CATALOG_DETAIL_CACHE_L1_SIZE=0 MALL_DB_MIGRATE_ON_START=false \
		MALL_SEARCH_BLEVE_PATH=$WORK/search-nol1.bleve
	nol1_url=http://127.0.0.1:$NOL1_PORT

	if [[ -n $search_url ]]; then
		log "waiting for the search index to hold $SEARCH_PRODUCTS products (outbox drained)"
		t0=$SECONDS
		if bin/mallbench wait-index -url "$search_url" -min "$SEARCH_PRODUCTS" -timeout "${BENCH_INDEX_TIMEOUT:-15m}" 8>&-; then
			echo "$SEARCH_PRODUCTS" >"$BIG/indexed"
			log "search index caught up in $((SECONDS - t0))s"
		else
			log "the search index did not catch up; its rows will fail their setup"
		fi
	fi
fi

# Durable commits for the measurements (the order rows write): each commit flushes the redo log
# to disk. The dev services run with 2 (flush once a second); the previous value is restored
# on exit. The binary log is reported as it is (off in scripts/services.sh).
durable_note=""
if [[ -n $mall_url ]]; then
	flush_prev=$(sql -N -e 'SELECT @@GLOBAL.innodb_flush_log_at_trx_commit')
	sql -e 'SET GLOBAL innodb_flush_log_at_trx_commit = 1'
	read -r flush log_bin sync_binlog < <(sql -N -e 'SELECT @@GLOBAL.innodb_flush_log_at_trx_commit, @@GLOBAL.log_bin, @@GLOBAL.sync_binlog')
	[[ $flush == 1 ]] || die "innodb_flush_log_at_trx_commit is $flush after SET GLOBAL"
	durable_note="MariaDB innodb_flush_log_at_trx_commit=$flush during the run (was $flush_prev; restored after), log_bin=$log_bin, sync_binlog=$sync_binlog"
	log "$durable_note"
fi

log "starting the baseline on 127.0.0.1:$BASE_PORT"
bin/mallbench baseline -addr "127.0.0.1:$BASE_PORT" >"$WORK/baseline.log" 2>&1 8>&- &
pids+=("$!")

ws_url=""
if [[ -n $mall_url ]]; then
	log "starting mallbench ws-server on 127.0.0.1:$WS_PORT (Redis db 9)"
	bin/mallbench ws-server -addr "127.0.0.1:$WS_PORT" -redis "127.0.0.1:$REDIS_PORT" -redis-db 9 >"$WORK/ws-server.log" 2>&1 8>&- &
	pids+=("$!")
	ws_url=http://127.0.0.1:$WS_PORT
fi

note="bin/mall serve with MALL_LOG_LEVEL=warn, MALL_RATELIMIT_ENABLED=false, idempotency.store=${BENCH_IDEMPOTENCY_STORE:-redis}, seeded by \`mall seed --products $SEED_PRODUCTS\`"
note+="; the L1-disabled row: a second server on the same data with MALL_CATALOG_DETAIL_CACHE_L1_SIZE=0; flash_sale.intake_rate=100000 (the intake row measures the intake, not its pacing)"
if [[ -n $search_url ]]; then
	note+="; search rows: a third server on \`mall seed --products $SEARCH_PRODUCTS\` ($search_note), measured after its index caught up"
fi
mver=$(mariadbd --version 2>/dev/null | grep -o 'Ver [^ ]*' | cut -c5- || true)
rver=$(redis-server --version 2>/dev/null | grep -o 'v=[^ ]*' | cut -c3- || true)
note+="; MariaDB ${mver:-?} and Redis ${rver:-?} from scripts/services.sh; embedded Kafka (kfake)"
if [[ -n $durable_note ]]; then
	note+="; $durable_note; order rows: a pool of 200 fresh buyers (registered, logged in, one address) in turn, one unit of an on-sale SKU of each of the two seeded merchants per order (stock set to 10^8 first), orders left unpaid"
fi

if [[ -n $ws_url ]]; then
	note+="; WebSocket rows: \`mallbench ws-server\` (internal/platform/realtime behind httpx.NewServer, realtime.* defaults) on Redis db 9, clients and publisher in mallbench"
fi

log "running scenarios: ${BENCH_CONNS:-64} connections, ${BENCH_WARMUP:-2s} warm-up + ${BENCH_DURATION:-10s} each"
bin/mallbench run \
	-mall "$mall_url" -skip-reason "$skip" \
	-mall-nol1 "$nol1_url" -mall-search "$search_url" \
	-ws "$ws_url" -ws-redis "127.0.0.1:$REDIS_PORT" -ws-redis-db 9 \
	-seed-password "$SEED_PASSWORD" -search-min "$SEARCH_PRODUCTS" \
	-baseline "http://127.0.0.1:$BASE_PORT" -kafka "127.0.0.1:$KAFKA_PORT" \
	-conns "${BENCH_CONNS:-64}" -warmup "${BENCH_WARMUP:-2s}" -duration "${BENCH_DURATION:-10s}" \
	-run "${BENCH_RUN:-}" -out "${BENCH_OUT:-docs/benchmarks.md}" \
	-commit "$commit" -mall-bin bin/mall -server-note "$note"

for p in "${pids[@]}"; do
	kill -0 "$p" 2>/dev/null || die "a server died during the run; see $WORK/*.log"
done
log "done in $((SECONDS - START))s"
