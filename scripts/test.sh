#!/usr/bin/env bash
# make test / make test-short / make fuzz.
#
#   scripts/test.sh          services up on the TEST ports, go test -race ./..., services down
#   scripts/test.sh fuzz     run every Fuzz target for $FUZZTIME (default 10s) on the test services
#
# Variables: PKG (default ./...), TESTFLAGS (extra go test flags, e.g. "-short" or "-run Outbox"),
# FUZZTIME. The test services use their own ports and data directory so they never clash with
# `make run`: MALL_TEST_MYSQL_PORT (23306), MALL_TEST_REDIS_PORT (26379), MALL_TEST_PG_PORT
# (25432), MALL_TEST_SVC_DIR (.local/test-services). They are stopped when the tests end, however
# they end; two `make test` in one checkout take turns (flock) instead of stopping each other's
# services.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

PKG=${PKG:-./...}
TESTFLAGS=${TESTFLAGS:-}

fuzz() {
	local fuzztime=${FUZZTIME:-10s} list line pkg failed=0 n=0
	local -a names=()
	# `go test -list` prints a package's matching names, then its "ok <pkg>" line.
	list=$(go test -list '^Fuzz' $PKG 2>&1) || echo "fuzz: warning: listing failed for some packages:" >&2
	while IFS= read -r line; do
		case $line in
		Fuzz*) names+=("$line") ;;
		"ok "*)
			pkg=$(awk '{print $2}' <<<"$line")
			for f in "${names[@]}"; do
				n=$((n + 1))
				echo "fuzz: $pkg $f ($fuzztime)"
				go test -run '^$' -fuzz "^$f\$" -fuzztime "$fuzztime" "$pkg" || failed=1
			done
			names=()
			;;
		FAIL* | *"build failed"* | *"setup failed"*) echo "$line" >&2; names=() ;;
		esac
	done <<<"$list"
	[[ $n -gt 0 ]] || echo "fuzz: no Fuzz targets in $PKG"
	return $failed
}

# Tests must not see a developer's run configuration (MALL_DB_MAIN, MALL_HTTP_ADDR, ...).
for v in $(compgen -e | grep '^MALL_' || true); do
	case $v in MALL_TEST_*) ;; *) unset "$v" ;; esac
done
export MALL_MYSQL_PORT=${MALL_TEST_MYSQL_PORT:-23306}
export MALL_REDIS_PORT=${MALL_TEST_REDIS_PORT:-26379}
export MALL_PG_PORT=${MALL_TEST_PG_PORT:-25432}
export MALL_SVC_DIR=${MALL_TEST_SVC_DIR:-$PWD/.local/test-services}

mkdir -p "$(dirname "$MALL_SVC_DIR")"
exec 9>"$MALL_SVC_DIR.lock"
if ! flock -n 9; then
	echo "test: another make test is using $MALL_SVC_DIR; waiting for it" >&2
	flock 9
fi

cleanup() { scripts/services.sh down 9>&- || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS
scripts/services.sh up 9>&- # the daemons must not inherit the lock
eval "$(scripts/services.sh env)"
echo "test: services ready in $((SECONDS - start))s; go test -race -count=1 -timeout 30m $TESTFLAGS $PKG" >&2

status=0
if [[ ${1:-} == fuzz ]]; then
	fuzz 9>&- || status=$?
	exit $status
fi
# shellcheck disable=SC2086 # TESTFLAGS and PKG are word lists on purpose
go test -race -count=1 -timeout 30m $TESTFLAGS $PKG 9>&- || status=$?
echo "test: go test exited $status after $((SECONDS - start))s" >&2
exit $status
