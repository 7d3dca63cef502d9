#!/usr/bin/env bash
# The README's reference tables are complete: every public function of schema
# eventstore (names not starting with "_"), every view, and every
# eventstore.* setting the library defines appears in README.md's Reference
# section, and every SQLSTATE of class ES raised in src/ is in its SQLSTATE
# table.  Run by scripts/test.sh with PGHOST/PGPORT/PGUSER set for a running
# cluster with the library preloaded; uses a database of its own.
set -uo pipefail

ES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PSQL=${PSQL:-psql}
: "${PGHOST:?PGHOST must be set}" "${PGPORT:?PGPORT must be set}"
DB=eventstore_readme_$$
failed=0
trap '"$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1' EXIT
fail() { echo "readme_reference: FAIL: $*" >&2; failed=1; }
q() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

"$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $DB" >/dev/null || exit 1
q -c 'CREATE EXTENSION eventstore' || exit 1

# The Reference section: from "## Reference" to the next level-2 heading.
ref=$(sed -n '/^## Reference/,/^## [^R]/p' "$ES_ROOT/README.md")
[ -n "$ref" ] || { echo "readme_reference: FAIL: README.md has no '## Reference' section" >&2; exit 1; }

functions=$(q -c "SELECT DISTINCT p.proname FROM pg_proc p
                   WHERE p.pronamespace = 'eventstore'::regnamespace AND p.proname !~ '^_'
                     AND p.prorettype <> 'trigger'::regtype AND p.prokind IN ('f', 'p')
                   ORDER BY 1")
views=$(q -c "SELECT c.relname FROM pg_class c
               WHERE c.relnamespace = 'eventstore'::regnamespace AND c.relkind IN ('v', 'm') ORDER BY 1")
gucs=$(q -c "SELECT name FROM pg_settings WHERE name LIKE 'eventstore.%' ORDER BY 1")
codes=$(grep -ho "MAKE_SQLSTATE('E','S','[0-9A-Z]','[0-9A-Z]','[0-9A-Z]')" "$ES_ROOT"/src/*.[ch] |
        sed "s/MAKE_SQLSTATE('E','S','\(.\)','\(.\)','\(.\)')/ES\1\2\3/" | sort -u)

nf=0; nv=0; ng=0; nc=0
for f in $functions; do
    nf=$((nf + 1))
    grep -q -- "\`$f(" <<<"$ref" || fail "function eventstore.$f is not in the README's Reference"
done
for v in $views; do
    nv=$((nv + 1))
    grep -q -- "$v" <<<"$ref" || fail "view eventstore.$v is not in the README's Reference"
done
for g in $gucs; do
    ng=$((ng + 1))
    grep -q -- "\`$g\`" <<<"$ref" || fail "setting $g is not in the README's Reference"
done
for c in $codes; do
    nc=$((nc + 1))
    grep -q -- "\`$c\`" <<<"$ref" || fail "SQLSTATE $c is not in the README's Reference"
done
[ $nf -gt 20 ] || fail "only $nf functions found: the query is broken"
[ $ng -gt 5 ] || fail "only $ng settings found: is the library loaded?"
echo "readme_reference: $nf functions, $nv views, $ng settings, $nc SQLSTATEs of class ES checked"
[ $failed = 0 ] && echo "readme_reference: all checks passed"
exit $failed
