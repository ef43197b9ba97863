#!/usr/bin/env bash
# A local nginx-rtmp for live rooms (deploy/nginx/live.conf.template), for `make run` and by
# hand. The tests in internal/live start their own on private ports instead.
#
#   scripts/nginx-live.sh up|down|status|render
#
# Encoders publish to rtmp://127.0.0.1:$RTMP_PORT/live/<stream_key>; playlists are served at
# http://127.0.0.1:$HTTP_PORT/hls/room-<id>.m3u8. Variables: MALL_LIVE_RTMP_PORT (1935),
# MALL_LIVE_HTTP_PORT (8088), MALL_LIVE_APP_URL (http://127.0.0.1:8080), MALL_LIVE_RTMP_SECRET
# (the app's live.rtmp_secret, default dev-rtmp-secret), MALL_LIVE_UPDATE (10s),
# MALL_LIVE_DIR (.local/nginx-live). Missing packages (nginx libnginx-mod-rtmp) are
# installed with apt-get when running as root.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${MALL_LIVE_DIR:-$ROOT/.local/nginx-live}
RTMP_PORT=${MALL_LIVE_RTMP_PORT:-1935}
HTTP_PORT=${MALL_LIVE_HTTP_PORT:-8088}
APP_URL=${MALL_LIVE_APP_URL:-http://127.0.0.1:8080}
SECRET=${MALL_LIVE_RTMP_SECRET:-dev-rtmp-secret}
UPDATE=${MALL_LIVE_UPDATE:-10s}
MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so

log() { echo "nginx-live: $*" >&2; }
die() { log "error: $*"; exit 1; }

nginx_bin() { command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true; }

ensure_packages() {
	local missing=()
	[[ -n "$(nginx_bin)" ]] || missing+=(nginx)
	[[ -f $MODULE ]] || missing+=(libnginx-mod-rtmp)
	[[ ${#missing[@]} -eq 0 ]] && return 0
	[[ $(id -u) -eq 0 ]] || die "missing packages: ${missing[*]} (sudo apt-get install -y ${missing[*]})"
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	rm -f /usr/sbin/policy-rc.d
}

render() {
	mkdir -p "$DIR/hls" "$DIR/tmp"
	local user_directive=""
	[[ $(id -u) -eq 0 ]] && user_directive="user root;" # workers must write $DIR/hls
	# Plain substitution of the template's ${...} placeholders (no envsubst dependency).
	sed -e "s|\${USER_DIRECTIVE}|$user_directive|g" -e "s|\${PREFIX}|$DIR|g" \
		-e "s|\${RTMP_BIND}||g" -e "s|\${RTMP_PORT}|$RTMP_PORT|g" \
		-e "s|\${HTTP_BIND}|127.0.0.1:|g" -e "s|\${HTTP_PORT}|$HTTP_PORT|g" \
		-e "s|\${APP_URL}|$APP_URL|g" -e "s|\${RTMP_SECRET}|$SECRET|g" -e "s|\${UPDATE_INTERVAL}|$UPDATE|g" \
		"$ROOT/deploy/nginx/live.conf.template" >"$DIR/nginx.conf"
	echo "$DIR/nginx.conf"
}

alive() { [[ -f "$DIR/nginx.pid" ]] && kill -0 "$(cat "$DIR/nginx.pid")" 2>/dev/null; }

case ${1:-} in
up)
	ensure_packages
	if alive; then log "already running (rtmp $RTMP_PORT, http $HTTP_PORT)"; exit 0; fi
	conf=$(render)
	nginx=$(nginx_bin)
	"$nginx" -t -q -p "$DIR" -c "$conf" -e "$DIR/error.log" || die "config test failed: $conf"
	# The template says daemon off (tests supervise it); here it runs in the background.
	nohup "$nginx" -p "$DIR" -c "$conf" -e "$DIR/error.log" >"$DIR/nginx.out" 2>&1 &
	for _ in $(seq 40); do alive && break; sleep 0.25; done
	alive || die "nginx did not start; see $DIR/error.log"
	log "rtmp://127.0.0.1:$RTMP_PORT/live/<stream_key> -> http://127.0.0.1:$HTTP_PORT/hls/room-<id>.m3u8 (app $APP_URL)"
	;;
down)
	if alive; then kill -TERM "$(cat "$DIR/nginx.pid")" && log "stopped"; else log "not running"; fi
	;;
status) alive && echo "nginx-live: running (rtmp $RTMP_PORT, http $HTTP_PORT)" || echo "nginx-live: stopped" ;;
render) render ;;
*) echo "usage: $0 up|down|status|render" >&2; exit 2 ;;
esac
