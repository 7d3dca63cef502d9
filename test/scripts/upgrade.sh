#!/usr/bin/env bash
# Upgrades: every release's upgrade script, walked one step at a time with
# data in the store, ends with the same catalog as a fresh CREATE EXTENSION.
#
# Run by scripts/test.sh with PGHOST, PGPORT and PGUSER set for a running
# cluster (library preloaded).  Creates two databases of its own and drops
# them at the end:
#   fresh     CREATE EXTENSION eventstore (the default version)
#   chain     CREATE EXTENSION eventstore VERSION '0.1.0', then an append, then
#             ALTER EXTENSION eventstore UPDATE TO each later version in turn
#             (the versions are the upgrade scripts' names), appending,
#             reading and checking the stream between steps.
# Then it compares a description of every object that belongs to the
# extension in both databases -- functions with their definition, owner,
# ACL and settings; tables with columns, defaults, constraints, indexes,
# triggers (and whether they are enabled), options, ACL; views; sequences;
# types; the tables pg_dump keeps (pg_extension.extconfig) and their filters
# -- and fails on any difference.  Finally the events appended before the
# upgrades are still there, in order, and appends continue at the right
# version and position, and a store made with create_store after the upgrades
# works (same stream id, its own stream, the next position).
set -uo pipefail

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PSQL=${PSQL:-psql}
: "${PGHOST:?PGHOST must be set}" "${PGPORT:?PGPORT must be set}"
FRESH=eventstore_up_fresh_$$
CHAIN=eventstore_up_chain_$$
ADMIN=es_up_admin_$$
CONSUMER=es_up_consumer_$$
WORK=$(mktemp -d /tmp/eventstore-upgrade.XXXXXX)
failed=0

cleanup() {
    "$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS $FRESH" -c "DROP DATABASE IF EXISTS $CHAIN" \
        -c "DROP ROLE IF EXISTS $ADMIN" -c "DROP ROLE IF EXISTS $CONSUMER" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "upgrade: FAIL: $*" >&2; failed=1; }
q() { local db=$1; shift; "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

"$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $FRESH" -c "DROP DATABASE IF EXISTS $CHAIN" \
    -c "CREATE DATABASE $FRESH" -c "CREATE DATABASE $CHAIN" >/dev/null || exit 1

# The versions, in upgrade order, from the upgrade scripts' file names.
versions=(0.1.0)
while :; do
    last=${versions[-1]}
    next=$(ls "$ES_ROOT"/sql/eventstore--"$last"--*.sql 2>/dev/null | sed -n 's/.*--[^-]*--\(.*\)\.sql$/\1/p' | head -1)
    [ -n "$next" ] || break
    versions+=("$next")
done
default=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$ES_ROOT/eventstore.control")
[ "${versions[-1]}" = "$default" ] || fail "the upgrade chain ends at ${versions[-1]}, the control file says $default"
echo "upgrade: chain ${versions[*]}"

q "$FRESH" -c 'CREATE EXTENSION eventstore' || fail "CREATE EXTENSION (fresh)"
q "$CHAIN" -c "CREATE EXTENSION eventstore VERSION '0.1.0'" || fail "CREATE EXTENSION VERSION 0.1.0"

# One event per version: appended before each step, all read back after it.
n=0
for v in "${versions[@]}"; do
    if [ "$v" != 0.1.0 ]; then
        q "$CHAIN" -c "ALTER EXTENSION eventstore UPDATE TO '$v'" || fail "ALTER EXTENSION UPDATE TO $v"
    fi
    got=$(q "$CHAIN" -c "SELECT extversion FROM pg_extension WHERE extname = 'eventstore'")
    [ "$got" = "$v" ] || fail "after updating to $v the extension is at $got"
    r=$(q "$CHAIN" -c "SELECT stream_version FROM eventstore.append_event('upgrade-1', $n, 'Stepped', jsonb_build_object('to', '$v'))")
    n=$((n + 1))
    [ "$r" = "$n" ] || fail "append at $v returned version '$r', expected $n"
    seen=$(q "$CHAIN" -c "SELECT string_agg(data->>'to', ' ' ORDER BY stream_version) FROM eventstore.read_stream('upgrade-1')")
    want=$(printf '%s ' "${versions[@]:0:$n}"); want=${want% }
    [ "$seen" = "$want" ] || fail "at $v read_stream returned '$seen', expected '$want'"
    # Roles the DBA gave access under 0.4.0: the upgrade carries their grants
    # over to what it replaces, and those grants must stay the DBA's (dumped
    # by pg_dump), not become the extension's initial privileges.
    if [ "$v" = 0.4.0 ]; then
        q "$CHAIN" -c "CREATE ROLE $ADMIN" -c "CREATE ROLE $CONSUMER" \
            -c "SELECT eventstore.grant_access('$ADMIN', 'admin')" \
            -c "SELECT eventstore.grant_access('$CONSUMER', 'consumer')" >/dev/null || fail "grant_access at 0.4.0"
    fi
done

# After the upgrades: no initial privilege of the extension names those roles,
# and pg_dump writes their grants, so a restore keeps them.
leaked=$(q "$CHAIN" -c "SELECT count(*) FROM pg_init_privs i, aclexplode(i.initprivs) a
                         WHERE a.grantee IN ('$ADMIN'::regrole, '$CONSUMER'::regrole)")
[ "$leaked" = 0 ] || fail "$leaked initial privileges of the extension name roles granted by the DBA (pg_dump would drop them)"
dump=$("$(dirname "$(command -v "$PSQL")")"/pg_dump -s -d "$CHAIN" 2>/dev/null || pg_dump -s -d "$CHAIN")
for g in "ON FUNCTION eventstore.add_route(channel text, event_types text\[\], categories text\[\], with_data boolean, store regclass) TO $ADMIN" \
         "ON FUNCTION eventstore.consumer_ack(consumer text, channel text, id bigint) TO $CONSUMER" \
         "ON TABLE eventstore.relay_status TO $ADMIN"; do
    grep -q -- "$g" <<<"$dump" || fail "pg_dump of the upgraded database lacks GRANT ... $g"
done
q "$CHAIN" -c "DROP OWNED BY $ADMIN, $CONSUMER" || fail "DROP OWNED"

# A description of every object of the extension, one line each, in a
# stable order; OIDs never appear, only names.
describe() {
    q "$1" <<'SQL'
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'eventstore'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
)
SELECT 'function ' || p.oid::regprocedure || ' owner=' || pg_get_userbyid(p.proowner)
       || ' acl=' || coalesce(nullif(p.proacl, acldefault('f', p.proowner))::text, '-') || ' config=' || coalesce(p.proconfig::text, '-')
       || E'\n' || pg_get_functiondef(p.oid)
  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
 WHERE p.prokind <> 'a'
UNION ALL
SELECT 'aggregate ' || p.oid::regprocedure
  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
 WHERE p.prokind = 'a'
UNION ALL
SELECT 'relation ' || c.oid::regclass || ' kind=' || c.relkind::text || ' owner=' || pg_get_userbyid(c.relowner)
       || ' acl=' || coalesce(nullif(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner))::text, '-')
       || ' options=' || coalesce(c.reloptions::text, '-')
       || ' persistence=' || c.relpersistence::text
       || coalesce(E'\n  view ' || pg_get_viewdef(c.oid), '')
       || coalesce((SELECT string_agg(E'\n  column ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                      || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                      || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
                                      || coalesce(' acl=' || a.attacl::text, ''), '' ORDER BY a.attnum)
                      FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
       || coalesce((SELECT string_agg(E'\n  constraint ' || co.conname || ' ' || pg_get_constraintdef(co.oid), '' ORDER BY co.conname)
                      FROM pg_constraint co WHERE co.conrelid = c.oid), '')
       || coalesce((SELECT string_agg(E'\n  index ' || pg_get_indexdef(i.indexrelid), '' ORDER BY i.indexrelid::regclass::text)
                      FROM pg_index i WHERE i.indrelid = c.oid), '')
       || coalesce((SELECT string_agg(E'\n  trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text, '' ORDER BY t.tgname)
                      FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal), '')
       || coalesce((SELECT E'\n  sequence ' || format_type(s.seqtypid, NULL) || ' start=' || s.seqstart
                           || ' increment=' || s.seqincrement || ' cache=' || s.seqcache || ' cycle=' || s.seqcycle::text
                      FROM pg_sequence s WHERE s.seqrelid = c.oid), '')
  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
UNION ALL
SELECT 'type ' || format_type(t.oid, NULL) || ' kind=' || t.typtype::text || ' owner=' || pg_get_userbyid(t.typowner)
       || coalesce((SELECT string_agg(' ' || a.attname || ':' || format_type(a.atttypid, a.atttypmod), ',' ORDER BY a.attnum)
                      FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '')
  FROM members m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
UNION ALL
SELECT 'schema ' || n.nspname || ' owner=' || pg_get_userbyid(n.nspowner)
       || ' acl=' || coalesce(nullif(n.nspacl, acldefault('n', n.nspowner))::text, '-')
  FROM members m JOIN pg_namespace n ON m.classid = 'pg_namespace'::regclass AND n.oid = m.objid
UNION ALL
SELECT 'other ' || pg_describe_object(m.classid, m.objid, 0)
  FROM members m
 WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass, 'pg_type'::regclass, 'pg_namespace'::regclass)
UNION ALL
SELECT 'dumped ' || cfg.rel::regclass || ' filter=' || coalesce(cfg.f, '-')
  FROM pg_extension e JOIN ext ON e.oid = ext.oid,
       unnest(e.extconfig, e.extcondition) AS cfg(rel, f)
UNION ALL
SELECT 'version ' || extversion || ' schema=' || extnamespace::regnamespace || ' relocatable=' || extrelocatable
  FROM pg_extension WHERE extname = 'eventstore'
ORDER BY 1;
SQL
}
describe "$FRESH" > "$WORK/fresh.txt" || fail "describing the fresh install"
describe "$CHAIN" > "$WORK/chain.txt" || fail "describing the upgraded install"
objects=$(grep -c -E '^(function|relation|type|aggregate|schema|other) ' "$WORK/fresh.txt")
if ! diff -u "$WORK/fresh.txt" "$WORK/chain.txt" > "$WORK/catalog.diff"; then
    fail "fresh and upgraded catalogs differ:"
    head -c 20000 "$WORK/catalog.diff" >&2
fi
[ "$objects" -gt 50 ] || fail "only $objects extension objects described: the description query is broken"

# The events written along the way are intact and appends go on after them.
r=$(q "$CHAIN" -c "SELECT stream_version FROM eventstore.append_event('upgrade-1', $n, 'After', '{}')")
[ "$r" = $((n + 1)) ] || fail "append after the upgrades returned version '$r', expected $((n + 1))"
pos=$(q "$CHAIN" -c "SELECT string_agg(global_position::text, ',' ORDER BY global_position) FROM eventstore.read_all(0)")
want=$(seq -s, 1 $((n + 1)))
[ "$pos" = "$want" ] || fail "read_all positions '$pos', expected '$want'"

# The upgraded install makes stores like a fresh one: a second store with the
# same stream id starts its own stream, at the next position of the one
# sequence, and the default store is untouched by it.
r=$(q "$CHAIN" -c "CREATE SCHEMA up_store" -c "SELECT eventstore.create_store('up_store.events')" \
      -c "SELECT stream_version || ' ' || global_position FROM eventstore.append_event('upgrade-1', 0, 'Other', '{}', store => 'up_store.events')" | tail -1)
[ "$r" = "1 $((n + 2))" ] || fail "append to a store made after the upgrades returned '$r', expected '1 $((n + 2))'"
r=$(q "$CHAIN" -c "SELECT eventstore.stream_version('upgrade-1') || ' ' || (SELECT count(*) FROM eventstore.read_all(0, 100, 'up_store.events'))")
[ "$r" = "$((n + 1)) 1" ] || fail "after appending to the new store: default store's upgrade-1 version and new store's event count '$r', expected '$((n + 1)) 1'"

echo "upgrade: ${#versions[@]} versions, $objects extension objects compared, $((n + 1)) events checked"
if [ $failed = 0 ]; then echo "upgrade: all checks passed"; else echo "upgrade: FAILED"; fi
exit $failed
