#!/usr/bin/env bash
# An append costs no more CPU than the raw baseline's one-row INSERT, by
# instruction count (bench/cpu.sh: callgrind, single-user postgres,
# synchronous_commit off, N prepared calls minus 200).  The raw INSERT
# returns no row and checks no expected version; the append must still win
# on what it skips (the stream's index lookup when the shared cache of
# stream heads has the head, src/stream_head.c).  Not in CI: needs valgrind,
# about a minute.
#
#   ES_PG_CONFIG=/path/to/pg_config bash test/scripts/append_cpu.sh [N]
#
# Fails when ours > raw.  (170,652 vs 164,506 instructions per call on the
# tree before the cache; 152,946 vs 164,549 with it.)
set -euo pipefail
N=${1:-2000}
out=$(bash "$(dirname "$0")/../../bench/cpu.sh" "$N" ours raw 2>/dev/null)
echo "$out"
ours=$(awk '$1 == "ours" && $3 == "instructions" {print $2}' <<<"$out")
raw=$(awk '$1 == "raw" && $3 == "instructions" {print $2}' <<<"$out")
[ -n "$ours" ] && [ -n "$raw" ] || { echo "FAIL: bench/cpu.sh gave no figures"; exit 1; }
if [ "$ours" -gt "$raw" ]; then
    echo "FAIL: an append costs $ours instructions, the raw INSERT $raw"
    exit 1
fi
echo "ok: append $ours <= raw INSERT $raw instructions per call"
