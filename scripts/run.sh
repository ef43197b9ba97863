#!/usr/bin/env bash
# make run: local services, migrate, seed (when available), then `bin/mall serve` in the
# foreground. Ctrl-C stops the server; the services keep running (make services-down).
#
# Expects bin/mall (make run builds it first). Ports come from MALL_MYSQL_PORT (13306),
# MALL_REDIS_PORT (16379) and MALL_PG_PORT (15432); MALL_* configuration already in the
# environment wins over what is derived here.
set -euo pipefail
cd "$(dirname "$0")/.."

MYSQL_PORT=${MALL_MYSQL_PORT:-13306}
REDIS_PORT=${MALL_REDIS_PORT:-16379}
PG_PORT=${MALL_PG_PORT:-15432}

scripts/services.sh up

# The binary's defaults are production's; development settings (sandbox payments, embedded
# Kafka, generated JWT keys, the development encryption key and RTMP secret) are switched on
# here, explicitly. MALL_CONFIG=other.yaml replaces them.
export MALL_CONFIG=${MALL_CONFIG:-configs/development.yaml}
export MALL_DB_MAIN=${MALL_DB_MAIN:-"mall:mall@tcp(127.0.0.1:$MYSQL_PORT)/mall"}
export MALL_DB_SHARDS=${MALL_DB_SHARDS:-"mall:mall@tcp(127.0.0.1:$MYSQL_PORT)/mall_shard_0,mall:mall@tcp(127.0.0.1:$MYSQL_PORT)/mall_shard_1"}
export MALL_REDIS_ADDR=${MALL_REDIS_ADDR:-127.0.0.1:$REDIS_PORT}
export MALL_HTTP_ADDR=${MALL_HTTP_ADDR:-:8080}

bin/mall migrate up

# A platform admin to log in with. `mall admin create` is idempotent and leaves the password
# of an existing account alone, so these credentials hold from the first run on (unless that
# email was registered another way). Not in production: create real admins by hand there.
admin_email=${MALL_DEV_ADMIN_EMAIL:-admin@mall.local}
admin_password=${MALL_DEV_ADMIN_PASSWORD:-mall-admin-dev}
admin_msg=""
if [[ ${MALL_APP_ENV:-development} != production ]]; then
	MALL_ADMIN_PASSWORD=$admin_password bin/mall admin create --email "$admin_email" >/dev/null
	admin_msg="    dev admin  $admin_email / $admin_password   (platform_admin)"
fi

# --- seed hook -------------------------------------------------------------------------------
# `mall seed` creates the demo platform (accounts, two merchants, a catalog on sale) through
# the services; it is idempotent ("already seeded" on later runs), so make run calls it every
# time. The demo accounts share the dev admin's password. (`mall help seed` exits 0 even for
# unknown topics, so ask for the subcommand's own --help instead.) MALL_SEED_PRODUCTS sizes it.
seed_msg=""
if [[ ${MALL_APP_ENV:-development} != production ]] && bin/mall seed --help >/dev/null 2>&1; then
	echo "run: seeding demo data (bin/mall seed)" >&2
	seed_out=$(MALL_LOG_LEVEL=${MALL_LOG_LEVEL:-warn} bin/mall seed --products "${MALL_SEED_PRODUCTS:-300}" --password "$admin_password")
	echo "$seed_out" >&2
	# The login table (every line after the "demo logins" header), for the ready message.
	seed_msg=$(sed -n '/^demo logins/,$p' <<<"$seed_out" | sed 's/^/  /')$'\n'
fi
# ---------------------------------------------------------------------------------------------

host=${MALL_HTTP_ADDR%:*}
port=${MALL_HTTP_ADDR##*:}
case $host in "" | 0.0.0.0 | "[::]") host=localhost ;; esac
probe=$host
[[ $probe == localhost ]] && probe=127.0.0.1
base="http://$host:$port"
if [[ -n $admin_msg ]]; then
	admin_msg+=$'\n'"    log in     curl -s -X POST $base/api/v1/auth/login -H 'Content-Type: application/json' \\"
	admin_msg+=$'\n'"                 -d '{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}'"$'\n'
fi

# status PATH: the HTTP status of GET PATH, using bash's /dev/tcp (no curl needed).
status() {
	local fd code
	{ exec {fd}<>"/dev/tcp/$probe/$port"; } 2>/dev/null || return 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" "$host" >&"$fd"
	read -r -t 5 _ code _ <&"$fd" || true
	exec {fd}>&-
	echo "${code:-0}"
}

# Announce the addresses once the server is ready; the server itself owns the foreground.
server=$$
(
	for ((i = 0; i < 480; i++)); do
		kill -0 "$server" 2>/dev/null || exit 0
		if [[ $(status /readyz) == 200 ]]; then
			cat >&2 <<MSG

  Mall is ready at $base
    API docs   $base/docs   (OpenAPI: $base/openapi.json)
    health     $base/healthz   ready: $base/readyz   metrics: $base/metrics
${admin_msg}${seed_msg}  Ctrl-C stops the server; the local services keep running (make services-down stops them).

MSG
			exit 0
		fi
		sleep 0.25
	done
	echo "run: $base/readyz did not answer 200 within 2 minutes; see the log above" >&2
) &

echo "run: starting bin/mall serve on $base" >&2
exec bin/mall serve
