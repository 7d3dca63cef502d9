#!/usr/bin/env bash
# postgres_exporter against the eventstore metrics (monitoring/postgres_exporter.yml).
#
# Installs Debian's prometheus-postgres-exporter if it is missing (its
# service is kept from starting: policy-rc.d while installing, then stopped
# and disabled), starts a throwaway cluster of its own (port 54420, library
# preloaded), runs a known workload, starts the real exporter binary on
# 127.0.0.1 only with the queries file, scrapes /metrics with curl and
# checks the eventstore series and their values.  Under CI=true a missing
# exporter that cannot be installed is a failure; otherwise the script says
# SKIP and exits 0.  Bounded: 90 s at most; cleans up after itself.
#
#   ES_EXPORTER_PG_PORT   port of the test cluster    (default 54420)
#   ES_EXPORTER_WEB_PORT  port the exporter listens on (default 54421)

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ES_PRELOAD=1
export ES_PORT=${ES_EXPORTER_PG_PORT:-54420}
WEB_PORT=${ES_EXPORTER_WEB_PORT:-54421}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-exporter.XXXXXX)
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e
if [ -n "${ES_PG_CONFIG:-}" ]; then
    es_pg_config() { echo "$ES_PG_CONFIG"; }
fi

EXPORTER=/usr/bin/prometheus-postgres-exporter
PKG=prometheus-postgres-exporter

# ---- the exporter binary: install it if missing, never let its service run
install_exporter() {
    [ "$(id -u)" = 0 ] || return 1
    command -v apt-get >/dev/null || return 1
    local added_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        added_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$PKG" >/dev/null 2>&1 ||
        { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$PKG" >/dev/null 2>&1; }
    local rc=$?
    [ $added_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    return $rc
}
if [ ! -x "$EXPORTER" ]; then
    es_log "exporter: installing $PKG"
    if ! install_exporter || [ ! -x "$EXPORTER" ]; then
        if [ "${CI:-}" = true ]; then
            echo "exporter: FAIL: $PKG is not installed and could not be installed" >&2
            exit 1
        fi
        echo "exporter: SKIP: $PKG is not installed (apt-get install $PKG as root)"
        exit 0
    fi
fi
# The package's own service (port 9187) is not ours: keep it off.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl stop "$PKG" >/dev/null 2>&1
    systemctl disable "$PKG" >/dev/null 2>&1
fi

WORK=$(mktemp -d /tmp/eventstore-exporter-work.XXXXXX)
bg_pids=()
cleanup() {
    local p
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    es_stop_cluster
    rm -rf "$ES_PGDATA" "$WORK"
}
trap cleanup EXIT
trap 'exit 124' TERM INT
(
    trap 'kill $sleeper 2>/dev/null; exit 0' TERM
    sleep 90 & sleeper=$!
    wait $sleeper
    echo "exporter: TIMEOUT after 90 s, giving up" >&2
    kill -TERM $$
) &
bg_pids+=($!)

failures=0
pass() { echo "ok - $*"; }
fail() { echo "not ok - $*"; failures=$((failures + 1)); }
check() {   # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

es_start_cluster || { echo "exporter: could not start the cluster" >&2; exit 1; }
PSQL="$(es_bindir)/psql"
q() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d exporter "$@"; }
"$PSQL" -X -q -d postgres -c 'CREATE DATABASE exporter' || exit 1
q -c 'CREATE EXTENSION eventstore' || exit 1

# ---- a known workload: 5 appends (one a batch of 3), 2 conflicts, 1 retry
q <<'SQL' >/dev/null || { echo "exporter: workload failed" >&2; exit 1; }
SELECT eventstore.stats_reset();
SELECT eventstore.append_event('acct-' || i, 0, 'Opened', '{}') FROM generate_series(1, 4) i;
SELECT eventstore.append('order-1', 0, ARRAY[eventstore.event('Placed', '{}'),
    eventstore.event('Paid', '{}'), eventstore.event('Shipped', '{}')]);
DO $$ BEGIN PERFORM eventstore.append_event('acct-1', 0, 'Opened', '{}');
          EXCEPTION WHEN SQLSTATE 'ES409' THEN NULL; END $$;
DO $$ BEGIN PERFORM eventstore.append_event('acct-2', 5, 'Opened', '{}');
          EXCEPTION WHEN SQLSTATE 'ES409' THEN NULL; END $$;
SELECT eventstore.append_event('acct-9', 0, 'Opened', '{}', NULL, 'b1eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
SELECT eventstore.append_event('acct-9', 0, 'Opened', '{}', NULL, 'b1eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
-- a consumer three published messages behind
INSERT INTO eventstore.consumers (consumer, channel) VALUES ('billing', 'exp');
SELECT eventstore.enqueue('exp', jsonb_build_object('n', i)) FROM generate_series(1, 3) i;
SQL
# wait (bounded) until the relay worker published them
for ((i = 0; i < 200; i++)); do
    [ "$(q -c 'SELECT pending FROM eventstore.relay_lag')" = 0 ] && break
    sleep 0.05
done

# an appender left open holds the horizon back while the exporter scrapes
mkfifo "$WORK/open.in"
"$PSQL" -X -q -At -d exporter <"$WORK/open.in" >"$WORK/open.out" 2>&1 &
bg_pids+=($!)
exec 3>"$WORK/open.in"
echo "BEGIN; SELECT 'pid=' || pg_backend_pid(); SELECT 'p=' || global_position FROM eventstore.append_event('acct-open', 0, 'Opened', '{}');" >&3
for ((i = 0; i < 200; i++)); do grep -q '^p=' "$WORK/open.out" && break; sleep 0.05; done
open_pid=$(sed -n 's/^pid=//p' "$WORK/open.out")
sleep 1.1      # so the hold is over a second old

# ---- the exporter, loopback only
DATA_SOURCE_NAME="host=$PGHOST port=$PGPORT user=postgres dbname=exporter sslmode=disable" \
    "$EXPORTER" --web.listen-address="127.0.0.1:$WEB_PORT" \
    --extend.query-path="$ES_ROOT/monitoring/postgres_exporter.yml" \
    --disable-settings-metrics >"$WORK/exporter.log" 2>&1 &
bg_pids+=($!)
metrics=$WORK/metrics
for ((i = 0; i < 100; i++)); do
    curl -sf --max-time 5 "http://127.0.0.1:$WEB_PORT/metrics" >"$metrics" 2>/dev/null &&
        grep -q '^eventstore_stats_appends' "$metrics" && break
    sleep 0.1
done
echo "COMMIT;" >&3
exec 3>&-

# value of series $1 (a metric name) whose labels include every label=value given after it
m() {
    local name=$1; shift
    awk -v name="$name" -v want="$*" '
        index($0, name "{") != 1 { next }
        { n = split(want, w, " "); for (i = 1; i <= n; i++) if (index($0, w[i]) == 0) next
          print $NF; exit }' "$metrics"
}
num() { if [ -z "$1" ]; then echo missing; else awk -v v="$1" 'BEGIN { printf "%.0f", v }'; fi; }

check "the exporter serves /metrics with the eventstore series" "yes" \
    "$(grep -q '^eventstore_stats_appends' "$metrics" && echo yes || { tail -5 "$WORK/exporter.log" >&2; echo no; })"
S='database="exporter" store="eventstore.events"'
check "appends" 6 "$(num "$(m eventstore_stats_appends $S)")"
check "events" 8 "$(num "$(m eventstore_stats_events $S)")"
check "batches" 1 "$(num "$(m eventstore_stats_batches $S)")"
check "conflicts" 2 "$(num "$(m eventstore_stats_conflicts $S)")"
check "retries" 1 "$(num "$(m eventstore_stats_retries $S)")"
check "vetoes" 0 "$(num "$(m eventstore_stats_vetoes $S)")"
check "bytes are positive" 1 "$(awk -v v="$(m eventstore_stats_bytes $S)" 'BEGIN { print (v > 0) }')"
check "category acct: 5 appends, 2 conflicts" "5 2" \
    "$(num "$(m eventstore_category_appends 'category="acct"' 'database="exporter"')") $(num "$(m eventstore_category_conflicts 'category="acct"' 'database="exporter"')")"
check "category order: 1 batch of 3" "3" \
    "$(num "$(m eventstore_category_events 'category="order"' 'database="exporter"')")"
check "horizon: one appender in flight" 1 \
    "$(num "$(m eventstore_horizon_in_flight 'counter="position"' 'database="exporter"')")"
check "horizon: held by the open transaction's pid" "$open_pid" \
    "$(num "$(m eventstore_horizon_oldest_pid 'counter="position"' 'database="exporter"')")"
check "horizon: gap 1, held for at least a second" "1 1" \
    "$(num "$(m eventstore_horizon_gap 'counter="position"' 'database="exporter"')") $(awk -v v="$(m eventstore_horizon_held_seconds 'counter="position"' 'database="exporter"')" 'BEGIN { print (v >= 1) }')"
check "relay: nothing pending" 0 "$(num "$(m eventstore_relay_pending 'database="exporter"')")"
check "consumer billing: 3 messages behind" 3 \
    "$(num "$(m eventstore_consumer_pending 'channel="exp"' 'consumer="billing"' 'database="exporter"')")"
check "the exporter ran every query without error" "0" \
    "$(grep -ci 'error' "$WORK/exporter.log")"

echo
if [ $failures = 0 ]; then
    echo "exporter: PASS"
else
    echo "exporter: $failures check(s) FAILED"
    grep -i eventstore "$metrics" | head -40
fi
exit $((failures > 0))
