#!/usr/bin/env bash
# Run a subset of the regression suite against a server running under
# valgrind memcheck, and fail if valgrind reports an error with a frame in
# eventstore's code.  Not part of scripts/test.sh: it takes a minute or more
# (about 75 s for the default tests on 2 cores, 6 min for every regression
# test with VALGRIND_TRACK_ORIGINS=1).
#
#   bash test/valgrind.sh                 # core append reads projections outbox aggregates
#   VALGRIND_TESTS="core aggregates" bash test/valgrind.sh
#
# Expects the extension built and installed (bash scripts/test.sh, or
# make && make install) and valgrind on PATH (apt-get install valgrind); run
# as root (the server runs as the postgres OS user) or as postgres.
#
# How: a throwaway cluster (port VALGRIND_PORT, default 54397, library
# preloaded) whose postmaster is started as
#     valgrind --trace-children=yes --track-origins=no --read-var-info=no
#              --leak-check=no --error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END
#              --suppressions=test/valgrind.supp --log-file=<dir>/%p.log postgres -D ...
# Backends, the relay launcher and its workers are forked from it, so every
# one of them runs under valgrind too (one log file per process).  pg_regress
# runs the tests against it; the server is stopped and each error block of
# the logs is examined: an error whose stack has a frame of eventstore (a
# function es_* / eventstore_* / _PG_init, a source file of src/, or
# eventstore.so) fails the run and is printed; the others (PostgreSQL's own,
# e.g. uninitialised struct padding it writes to WAL) are counted and shown.
# A "Syscall param ... points to uninitialised byte(s)" error is eventstore's
# only when the origin of the bytes is (VALGRIND_TRACK_ORIGINS=1 tells).
#
# Why not --error-exitcode: a backend exiting with that code makes the
# postmaster restart every backend, so one benign report of PostgreSQL's
# would break the rest of the run.  The logs are parsed instead.
#
# Limits: Debian's PostgreSQL is not built with USE_VALGRIND, so palloc'd
# chunks are not marked for valgrind: memcheck sees accesses to memory of a
# deleted memory context whose blocks went back to malloc, accesses outside
# malloc'd blocks and uses of never-written memory, but not a read of a
# chunk pfree'd back to its context or past a chunk inside a block.  A
# PostgreSQL built with -DUSE_VALGRIND (and --enable-cassert) finds more;
# point PATH/PG_CONFIG at it to use it.  PostgreSQL's own reports of struct
# padding written to WAL (pwrite64, about ten per run) are expected.
#
#   VALGRIND_TESTS          regression tests to run (default: core append reads projections outbox aggregates)
#   VALGRIND_INPUTDIR       where sql/ and expected/ are (default: the repository)
#   VALGRIND_PORT           port (default 54397)
#   VALGRIND_TRACK_ORIGINS  1: --track-origins=yes (slower, says where undefined values come from)
#   VALGRIND_STRICT         1: also fail on errors without an eventstore frame
#   VALGRIND_KEEP           1: keep the data directory and the logs
#   VALGRIND_IGNORE_DIFFS   1: do not fail when pg_regress reports differences
#                           (timing-sensitive waits may not hold under valgrind)

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ES_PORT=${VALGRIND_PORT:-54397}
export ES_PGDATA=$(mktemp -d /tmp/eventstore-valgrind.XXXXXX)
export ES_PRELOAD=1
unset ES_SOCKDIR
source "$ES_ROOT/scripts/cluster.sh"
set +e
set -u

TESTS=${VALGRIND_TESTS:-core append reads projections outbox aggregates}
INPUTDIR=${VALGRIND_INPUTDIR:-$ES_ROOT}
BINDIR=$(es_bindir)
PG_REGRESS=$("$(es_pg_config)" --pkglibdir)/pgxs/src/test/regress/pg_regress
WORK=$(mktemp -d /tmp/eventstore-valgrind-work.XXXXXX)
VGLOG=$ES_PGDATA/valgrind        # written by the postgres OS user
ES_SOCKDIR=$ES_PGDATA/sock
T0=$(date +%s)
log() { printf 'valgrind: [%4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }

command -v valgrind >/dev/null || { echo "valgrind: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
[ -x "$PG_REGRESS" ] || { echo "valgrind: no pg_regress at $PG_REGRESS" >&2; exit 2; }

stop_server() {
    [ -f "$ES_PGDATA/postmaster.pid" ] &&
        es_as_pg "$BINDIR/pg_ctl" -D "$ES_PGDATA" -m fast -w -t 600 stop >/dev/null 2>&1
}
cleanup() {
    stop_server
    if [ "${VALGRIND_KEEP:-0}" = 1 ]; then
        echo "valgrind: kept $ES_PGDATA (logs in $VGLOG) and $WORK" >&2
    else
        rm -rf "$ES_PGDATA" "$WORK"
    fi
}
trap cleanup EXIT

# ------------------------------------------------------------ the cluster
chown postgres: "$ES_PGDATA" 2>/dev/null; chmod 700 "$ES_PGDATA"
es_as_pg "$BINDIR/initdb" -D "$ES_PGDATA" -A trust -U postgres --no-sync >/dev/null || exit 2
es_as_pg mkdir -p "$ES_SOCKDIR" "$VGLOG"
{
    echo "port = $ES_PORT"
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$ES_SOCKDIR'"
    echo "shared_preload_libraries = 'eventstore'"
    echo "fsync = off"
    echo "max_connections = 20"
    echo "max_prepared_transactions = 4"
} | es_as_pg tee "$ES_PGDATA/postgresql.auto.conf" >/dev/null

vg_opts=(--quiet --trace-children=yes --read-var-info=no --leak-check=no
         --error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END --num-callers=40
         --error-limit=no --fullpath-after= --suppressions="$ES_ROOT/test/valgrind.supp"
         --log-file="$VGLOG/%p.log")
if [ "${VALGRIND_TRACK_ORIGINS:-0}" = 1 ]; then vg_opts+=(--track-origins=yes); else vg_opts+=(--track-origins=no); fi

log "starting postgres under valgrind (data $ES_PGDATA, port $ES_PORT)"
es_as_pg bash -c 'cd "$1" && shift && exec "$@"' _ "$ES_PGDATA" \
    valgrind "${vg_opts[@]}" "$BINDIR/postgres" -D "$ES_PGDATA" >"$WORK/server.log" 2>&1 &
export PGHOST=$ES_SOCKDIR PGPORT=$ES_PORT PGUSER=postgres
ready=0
for _ in $(seq 1 600); do
    if "$BINDIR/pg_isready" -q; then ready=1; break; fi
    sleep 1
done
if [ $ready != 1 ]; then
    echo "valgrind: the server did not come up:" >&2; tail -20 "$WORK/server.log" >&2
    exit 2
fi
log "server up"

# ------------------------------------------------------------ the tests
"$PG_REGRESS" --inputdir="$INPUTDIR" --outputdir="$WORK" --bindir="$BINDIR" \
    --load-extension=pgtap --dbname=contrib_regression $TESTS >"$WORK/pg_regress.out" 2>&1
regress_rc=$?
grep -E '^(ok|not ok|test|     )|tests? (passed|failed)' "$WORK/pg_regress.out" | sed 's/^/valgrind: regress: /' >&2
log "pg_regress finished (exit $regress_rc); stopping the server"
stop_server

# ------------------------------------------------------------ the logs
files=$(find "$VGLOG" -name '*.log' | wc -l)
root_re=$(printf '%s' "$ES_ROOT" | sed 's/[.[\*^$()+?{}|]/\\&/g')
pattern="(: (es_|eventstore_|_PG_init )|$root_re/src/|eventstore\\.so)"
# An error is eventstore's when a frame of its stack, or of the stack of the
# block it is about (alloc'd / free'd at), is eventstore's -- except for
# "Syscall param ... uninitialised byte(s)": those are written long after the
# bytes were made (WAL at commit, files), so they count only when the origin
# (VALGRIND_TRACK_ORIGINS=1) is in eventstore.
awk -v pat="$pattern" -v out="$WORK/ours.txt" -v other="$WORK/others.txt" '
    /VALGRINDERROR-BEGIN/ { inblock = 1; block = FILENAME ":\n"; kind = ""; origin = ""; inorigin = 0; next }
    /VALGRINDERROR-END/   {
        mine = (kind ~ /Syscall param/) ? (origin ~ pat) : (block ~ pat)
        if (mine) { print block > out; ours++ } else { print block > other; others++ }
        inblock = 0; next
    }
    inblock {
        block = block $0 "\n"
        if (kind == "" && $0 ~ /^==[0-9]+== [A-Z]/) kind = $0
        if ($0 ~ /Uninitialised value was created/) inorigin = 1
        if (inorigin) origin = origin $0 "\n"
    }
    END { printf "%d %d\n", ours, others }' "$VGLOG"/*.log >"$WORK/counts" 2>/dev/null
read -r ours others <"$WORK/counts" 2>/dev/null
ours=${ours:-0}; others=${others:-0}
elapsed=$(( $(date +%s) - T0 ))
echo "valgrind: $files processes ran under valgrind; errors with an eventstore frame: $ours; other errors: $others; tests: $TESTS; pg_regress exit $regress_rc; ${elapsed}s"
failed=0
if [ "$ours" -gt 0 ]; then
    echo "valgrind: FAIL: errors in eventstore (first 200 lines):"
    head -200 "$WORK/ours.txt"
    failed=1
fi
if [ "$others" -gt 0 ]; then
    echo "valgrind: errors without an eventstore frame (first 60 lines; add a suppression to test/valgrind.supp if benign):"
    head -60 "$WORK/others.txt"
    [ "${VALGRIND_STRICT:-0}" = 1 ] && failed=1
fi
if [ $regress_rc != 0 ]; then
    echo "valgrind: pg_regress reported differences (first 80 lines of regression.diffs):"
    head -80 "$WORK/regression.diffs" 2>/dev/null
    [ "${VALGRIND_IGNORE_DIFFS:-0}" = 1 ] || failed=1
fi
[ $failed = 0 ] && echo "valgrind: PASS" || echo "valgrind: FAILED"
exit $failed
