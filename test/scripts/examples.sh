#!/usr/bin/env bash
# The client examples (examples/python, examples/node) as a test.
#
# Starts its own preloaded cluster (port $EXAMPLES_PORT, default 54421),
# creates one database per example with the extension, copies each example
# to a temporary directory (as a user would copy it into a project) and runs
# it there: Python with Debian's python3-psycopg, Node with `npm ci` from the
# committed package-lock.json.  Installs what is missing (apt-get
# python3-psycopg, nodejs, npm; npm ci).  Checks each output line by line:
#
#   - commands: opens, deposits, a resent deposit that appends nothing;
#   - a statement import: resent = no-op, overlapping = 23505;
#   - the conflicting pair of withdrawals: exactly one ES409, both land
#     (versions 3 and 4), the resent winner appends nothing;
#   - the overdraft vetoed by the projection (23514), never e-mailed;
#   - 42501 and ES002 on an attempt to rewrite history;
#   - folded balances = projection balances: alice 200.00, bob 130.00;
#   - the mailer e-mailed the 1500.00 withdrawal exactly once, saw 2
#     withdrawals, was woken by NOTIFY, and a restarted mailer has nothing
#     left after its checkpoint;
# and in the database: each stream holds 4 events, no event id twice, 2
# withdrawals went through the outbox.
#
# A prerequisite that cannot be installed (no root, no network) prints a
# SKIP line; that is success only when CI is not set.  About 15 seconds.

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ES_PORT=${EXAMPLES_PORT:-54421}
source "$ES_ROOT/scripts/cluster.sh"
set +e
set -u

WORK=$(mktemp -d /tmp/eventstore-examples.XXXXXX)
ES_PGDATA=$(mktemp -d /tmp/eventstore-examples-pg.XXXXXX)
trap 'es_stop_cluster; rm -rf "$WORK" "$ES_PGDATA"' EXIT
failures=0
skips=0
PYTHON=/usr/bin/python3   # Debian's python3-psycopg serves the system interpreter

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
skip() {
    echo "SKIP: $*"
    skips=$((skips + 1))
    if [ "${CI:-}" = true ]; then fail "prerequisite missing under CI: $*"; fi
}

apt_install() {
    [ "$(id -u)" = 0 ] || return 1
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq \
        --no-install-recommends "$@" >/dev/null 2>&1 && return 0
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq \
        --no-install-recommends "$@" >/dev/null 2>&1
}

# ---- prerequisites --------------------------------------------------------
have_python=1
if ! "$PYTHON" -c 'import psycopg' 2>/dev/null; then
    es_log "installing python3-psycopg"
    apt_install python3-psycopg
    "$PYTHON" -c 'import psycopg' 2>/dev/null || { have_python=0; skip "python example: python3-psycopg cannot be installed"; }
fi

have_node=1
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    es_log "installing nodejs npm"
    apt_install nodejs npm
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        have_node=0; skip "node example: nodejs/npm cannot be installed"
    fi
fi
if [ $have_node = 1 ]; then
    cp -r "$ES_ROOT/examples/node" "$WORK/node"
    rm -rf "$WORK/node/node_modules"
    if ! (cd "$WORK/node" && timeout 120 npm ci --no-audit --no-fund >"$WORK/npm.log" 2>&1); then
        tail -5 "$WORK/npm.log"
        have_node=0; skip "node example: npm ci failed (is the npm registry reachable?)"
    fi
fi
cp -r "$ES_ROOT/examples/python" "$WORK/python"

cmp -s "$ES_ROOT/examples/python/schema.sql" "$ES_ROOT/examples/node/schema.sql" ||
    fail "examples/python/schema.sql and examples/node/schema.sql differ"

# ---- cluster --------------------------------------------------------------
es_start_cluster
es_psql -d postgres -c 'SELECT 1' >/dev/null || { echo "FAIL: cluster did not start"; exit 1; }

# check_output NAME FILE: the lines every run must print.
check_output() {
    local name=$1 out=$2 line n
    local exact=(
        "open-alice: appended at version 1"
        "open-bob: appended at version 1"
        "dep-1: appended at version 2"
        "dep-1: already applied at version 2, nothing appended"
        "dep-2: appended at version 2"
        "stmt-1: imported 2 lines, now at version 4"
        "stmt-1: already imported, nothing appended"
        "conflict pair: versions [3, 4]"
        "wd-3: vetoed by the database (23514): insufficient funds in account-bob"
        "account-alice: folded balance 200.00 at version 4; projection 200.00 at version 4"
        "account-bob: folded balance 130.00 at version 4; projection 130.00 at version 4"
        "mailer: 2 withdrawals seen, 1 e-mail sent"
        "mailer: woken by NOTIFY: yes"
        "mailer restarted: 0 messages after its checkpoint"
    )
    for line in "${exact[@]}"; do
        n=$(grep -cxF -- "$line" "$out")
        [ "$n" = 1 ] || fail "$name: expected the line '$line' once, found it $n times"
    done
    # pattern, how many times
    local counted=(
        '^wd-[12]: ES409, account-alice moved past version 2; reading again$|1'
        '^wd-[12]: ES409|1'
        '^wd-1: appended at version [34]$|1'
        '^wd-2: appended at version [34]$|1'
        '^wd-1: already applied at version [34], nothing appended$|1'
        '^stmt-2: refused \(23505\): overlaps an imported statement: event [0-9a-f-]{36} already exists in stream "account-bob"$|1'
        '^teller rewrites history: refused \(42501\): permission denied for table events$|1'
        '^admin rewrites history: refused \(ES002\)|1'
        '^mailer: e-mail to the owner of account-alice: withdrawal of 1500\.00 \(version [34]\)$|1'
        '^mailer: e-mail|1'
        '5000\.00|0'
    )
    local item pat want
    for item in "${counted[@]}"; do
        pat=${item%|*}; want=${item##*|}
        n=$(grep -cE -- "$pat" "$out")
        [ "$n" = "$want" ] || fail "$name: expected $want line(s) matching /$pat/, found $n"
    done
}

# check_database DB: what the run left in the store.
check_database() {
    local name=$1 db=$2 got
    got=$(es_psql -d "$db" -At -F' ' -c "
        SELECT (SELECT string_agg(stream_id || '=' || n, ',' ORDER BY stream_id)
                  FROM (SELECT stream_id, count(*) AS n FROM eventstore.events GROUP BY 1) s),
               (SELECT count(*) - count(DISTINCT event_id) FROM eventstore.events),
               (SELECT count(*) FROM eventstore.outbox_messages WHERE channel = 'bank_withdrawals'),
               (SELECT string_agg(account || '=' || cents, ',' ORDER BY account) FROM bank.balances)")
    [ "$got" = "account-alice=4,account-bob=4 0 2 account-alice=20000,account-bob=13000" ] ||
        fail "$name: database holds '$got'"
}

run_example() {
    local name=$1 db=bank_$1; shift
    es_psql -d postgres -c "CREATE DATABASE $db" &&
        es_psql -d "$db" -c 'CREATE EXTENSION eventstore' || { fail "$name: database setup"; return; }
    local out=$WORK/$name.out rc=0
    (cd "$WORK/$name" && unset DATABASE_URL && PGDATABASE=$db timeout 60 "$@") >"$out" 2>&1 || rc=$?
    echo "---- $name example output"
    cat "$out"
    [ $rc = 0 ] || fail "$name: exited with $rc"
    check_output "$name" "$out"
    check_database "$name" "$db"
}

[ $have_python = 1 ] && run_example python "$PYTHON" bank.py
[ $have_node = 1 ] && run_example node node bank.js

echo
if [ $failures -gt 0 ]; then
    echo "examples: $failures check(s) failed"
    exit 1
fi
echo "examples: all checks passed ($skips skipped)"
exit 0
