#!/usr/bin/env bash
# Private MariaDB, Redis and PostgreSQL instances for `make run` and `make test`.
#
#   scripts/services.sh up|down|status|env
#
# Everything lives under $MALL_SVC_DIR (default .local/services); ports come from
# MALL_MYSQL_PORT / MALL_REDIS_PORT / MALL_PG_PORT. Missing Debian packages are
# installed with apt-get when running as root (also nginx, libnginx-mod-rtmp and ffmpeg,
# which the live rooms' tests run themselves; see scripts/nginx-live.sh). Idempotent: `up` twice is fine,
# `down` stops exactly the processes it started (by PID file).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${MALL_SVC_DIR:-$ROOT/.local/services}
MYSQL_PORT=${MALL_MYSQL_PORT:-13306}
REDIS_PORT=${MALL_REDIS_PORT:-16379}
PG_PORT=${MALL_PG_PORT:-15432}
SERVICES=${MALL_SERVICES:-"mysql redis pg"}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)

log() { echo "services: $*" >&2; }
die() { log "error: $*"; exit 1; }

want() { [[ " $SERVICES " == *" $1 "* ]]; }

ensure_packages() {
	local missing=()
	want mysql && ! command -v mariadbd >/dev/null && missing+=(mariadb-server mariadb-client)
	want redis && ! command -v redis-server >/dev/null && missing+=(redis-server)
	want pg && [[ -z "$PGBIN" || ! -x "$PGBIN/initdb" ]] && missing+=(postgresql)
	# Live rooms' end-to-end tests run a private nginx with the RTMP module and publish with
	# ffmpeg (internal/live); they fail, never skip, without these.
	[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || missing+=(nginx)
	[[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ]] || missing+=(libnginx-mod-rtmp)
	command -v ffmpeg >/dev/null || missing+=(ffmpeg)
	[[ ${#missing[@]} -eq 0 ]] && return 0
	[[ $(id -u) -eq 0 ]] || die "missing packages: ${missing[*]} (run as root or: sudo apt-get install -y ${missing[*]})"
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Debian's postinst scripts try to start the system services; keep them from doing so.
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	rm -f /usr/sbin/policy-rc.d
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
}

alive() { [[ -f "$1" ]] && kill -0 "$(head -n1 "$1")" 2>/dev/null; }

wait_for() { # name, tries, command...
	local name=$1 tries=$2; shift 2
	for ((i = 0; i < tries; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.25
	done
	die "$name did not become ready; see the log under $DIR"
}

mysql_up() {
	local d=$DIR/mysql
	mkdir -p "$d"
	if alive "$d/mysqld.pid"; then log "mysql already running on $MYSQL_PORT"; return; fi
	# Another checkout's instance on the same port (its data dir, its pid file): use it.
	if mariadb-admin -h 127.0.0.1 -P "$MYSQL_PORT" -umall -pmall ping >/dev/null 2>&1; then
		mariadb -h 127.0.0.1 -P "$MYSQL_PORT" -umall -pmall \
			-e 'CREATE DATABASE IF NOT EXISTS mall; CREATE DATABASE IF NOT EXISTS mall_shard_0; CREATE DATABASE IF NOT EXISTS mall_shard_1;'
		log "mysql already answering on 127.0.0.1:$MYSQL_PORT (started elsewhere; not managed here)"
		return
	fi
	if [[ ! -d "$d/data/mysql" ]]; then
		mariadb-install-db --no-defaults --datadir="$d/data" --auth-root-authentication-method=normal \
			--skip-test-db >"$d/install.log" 2>&1 || die "mariadb-install-db failed: $d/install.log"
	fi
	mariadbd --no-defaults --user=root --datadir="$d/data" --port="$MYSQL_PORT" --socket="$d/sock" \
		--bind-address=127.0.0.1 --skip-name-resolve --pid-file="$d/mysqld.pid" \
		--log-error="$d/error.log" --max-connections=1000 --innodb-buffer-pool-size=256M \
		--innodb-flush-log-at-trx-commit=2 --innodb-lock-wait-timeout=10 \
		--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
		--transaction-isolation=READ-COMMITTED >/dev/null 2>&1 &
	wait_for mysql 240 mariadb-admin --socket="$d/sock" -uroot ping
	mariadb --socket="$d/sock" -uroot <<SQL
CREATE USER IF NOT EXISTS 'mall'@'%' IDENTIFIED BY 'mall';
GRANT ALL PRIVILEGES ON *.* TO 'mall'@'%' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS mall;
CREATE DATABASE IF NOT EXISTS mall_shard_0;
CREATE DATABASE IF NOT EXISTS mall_shard_1;
SQL
	log "mysql ready on 127.0.0.1:$MYSQL_PORT (user mall/mall)"
}

redis_up() {
	local d=$DIR/redis
	mkdir -p "$d"
	if alive "$d/redis.pid"; then log "redis already running on $REDIS_PORT"; return; fi
	if [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; then
		log "redis already answering on 127.0.0.1:$REDIS_PORT (started elsewhere; not managed here)"
		return
	fi
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$d" --daemonize yes \
		--pidfile "$d/redis.pid" --logfile "$d/redis.log" --save '' --appendonly no --databases 64
	wait_for redis 80 redis-cli -p "$REDIS_PORT" ping
	log "redis ready on 127.0.0.1:$REDIS_PORT"
}

# PostgreSQL refuses to run as root, so it runs as the postgres user; that user must be able to
# reach its data directory, which a checkout under /root is not. Then the data lives in /tmp and
# the project directory holds a link to it.
pg_dir() {
	local d=$DIR/pg
	if [[ -L "$d" ]]; then readlink "$d"; return; fi
	mkdir -p "$d"
	if [[ $(id -u) -eq 0 ]] && ! runuser -u postgres -- test -w "$d" 2>/dev/null; then
		chown postgres "$d" 2>/dev/null || true
		if ! runuser -u postgres -- test -w "$d" 2>/dev/null; then
			rmdir "$d"
			local t
			t=/tmp/mall-pg-$(echo "$DIR" | md5sum | cut -c1-10)
			mkdir -p "$t" && chown postgres "$t"
			ln -s "$t" "$d"
			echo "$t"
			return
		fi
	fi
	echo "$d"
}

as_pg() { if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

pg_up() {
	local d
	d=$(pg_dir)
	if alive "$d/data/postmaster.pid"; then log "postgresql already running on $PG_PORT"; return; fi
	if "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1; then
		log "postgresql already answering on 127.0.0.1:$PG_PORT (started elsewhere; not managed here)"
		return
	fi
	if [[ ! -f "$d/data/PG_VERSION" ]]; then
		as_pg "$PGBIN/initdb" -D "$d/data" -A trust -U postgres >"$d/initdb.log" 2>&1 || die "initdb failed: $d/initdb.log"
	fi
	as_pg "$PGBIN/pg_ctl" -D "$d/data" -o "-p $PG_PORT -k $d -c listen_addresses=127.0.0.1" -l "$d/log" -w start >/dev/null
	wait_for postgresql 80 "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
	"$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='mall'" | grep -q 1 ||
		"$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE mall" >/dev/null
	log "postgresql ready on 127.0.0.1:$PG_PORT (user postgres)"
}

stop_pid() { # pidfile name
	if alive "$1"; then
		local pid
		pid=$(head -n1 "$1")
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < 120; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
		kill -9 "$pid" 2>/dev/null || true
		log "$2 stopped"
	fi
}

down() {
	want mysql && stop_pid "$DIR/mysql/mysqld.pid" mysql
	want redis && stop_pid "$DIR/redis/redis.pid" redis
	if want pg && [[ -e "$DIR/pg" ]]; then
		local d
		d=$(pg_dir)
		if alive "$d/data/postmaster.pid"; then
			as_pg "$PGBIN/pg_ctl" -D "$d/data" -m fast -w stop >/dev/null 2>&1 || stop_pid "$d/data/postmaster.pid" postgresql
			log "postgresql stopped"
		fi
	fi
}

env_out() {
	cat <<ENV
export MALL_TEST_MYSQL_DSN='mall:mall@tcp(127.0.0.1:$MYSQL_PORT)/'
export MALL_TEST_REDIS_ADDR='127.0.0.1:$REDIS_PORT'
export MALL_TEST_POSTGRES_DSN='postgres://postgres@127.0.0.1:$PG_PORT/mall?sslmode=disable'
ENV
}

case "${1:-}" in
up)
	ensure_packages
	mkdir -p "$DIR"
	want mysql && mysql_up
	want redis && redis_up
	want pg && pg_up
	;;
down) down ;;
status)
	alive "$DIR/mysql/mysqld.pid" && echo "mysql: running ($MYSQL_PORT)" || echo "mysql: stopped"
	alive "$DIR/redis/redis.pid" && echo "redis: running ($REDIS_PORT)" || echo "redis: stopped"
	[[ -e "$DIR/pg" ]] && alive "$(pg_dir)/data/postmaster.pid" && echo "postgresql: running ($PG_PORT)" || echo "postgresql: stopped"
	;;
env) env_out ;;
*) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
