#!/usr/bin/env bash
# Charts of one benchmark run: bench/chart.sh RESULTS.json [OUTPUT_PREFIX]
#
# Reads the JSON that bench/run.sh writes (one object per line) and draws, with
# gnuplot, two SVGs next to it (or at OUTPUT_PREFIX-ratios.svg / -latency.svg):
#
#   ratios   one horizontal bar per case and baseline: eventstore / baseline
#            (higher is better for eventstore), a line at 1.0, a red tick at
#            the case's target where one is stated (green bar: target met, red:
#            missed, grey: no target);
#   latency  p50 and p99 per case, eventstore next to its baseline (log scale).
#
# Needs gnuplot (Debian: gnuplot-nox).  Without it, says so and exits 0: a
# chart is a convenience, never a reason for the benchmark to fail.
set -euo pipefail

JSON=${1:?usage: bench/chart.sh RESULTS.json [OUTPUT_PREFIX]}
PREFIX=${2:-${JSON%.json}}
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "chart: gnuplot not found (apt-get install gnuplot-nox); no chart drawn" >&2
    exit 0
fi
TMP=$(mktemp -d /tmp/eventstore-chart.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# Targets, as stated in issue 15 (append, sync_commit=off, batch, import),
# issue 11 (append to a named store), issue 12 (subscription drain) and in the README's targets table (the rest).  Key: case|clients|baseline; a
# clients field of * matches any.  Value: the lowest ratio that meets it.
targets() {
    cat <<'EOF'
append|1|raw	0.95
append|8|raw	0.90
append sync_commit=off|*|raw	0.90
batch of 100|*|raw	0.95
append|*|plpgsql	1.00
append sync_commit=off|*|plpgsql	1.00
batch of 100|*|plpgsql	1.00
append + projection|*|hand	0.87
read_stream 1000|*|raw	0.95
read_all batches of 1000|*|raw	0.90
subscription drain, default synchronous_commit|*|read_all loop	0.80
subscription drain, consumer's synchronous_commit=off|*|read_all loop	0.80
hot stream (successes)|*|plpgsql	2.00
relay throughput|*|hand	1.00
import|*|raw COPY	0.80
append to a named store|*|default_store	0.98
append to a named store, sync_commit=off|*|default_store	0.98
EOF
}

# One line per JSON object: case, clients, baseline, ratio, the four latencies
# (empty when absent), tab-separated.
awk '
function get(k,   m) {
    if (match($0, "\"" k "\": (\"[^\"]*\"|[-0-9.eE+]+)")) {
        m = substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 4)
        gsub(/"/, "", m); return m
    }
    return ""
}
/"case":/ {
    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", get("case"), get("clients"), get("baseline"),
        get("ratio"), get("ours_p50_ms"), get("baseline_p50_ms"), get("ours_p99_ms"), get("baseline_p99_ms")
}' "$JSON" > "$TMP/rows.tsv"

# Ratio data: index, ratio, target (or -1), colour, label.  Listed top down in
# the order of the run's table.
targets > "$TMP/targets.tsv"
awk -F'\t' '
NR == FNR { split($1, k, "|"); t[k[1] "|" k[2] "|" k[3]] = $2; next }
$4 != "" && $4 != "n/a" {
    tg = -1
    if ((($1 "|" $2 "|" $3) in t)) tg = t[$1 "|" $2 "|" $3]
    else if ((($1 "|*|" $3) in t)) tg = t[$1 "|*|" $3]
    col = tg < 0 ? "0x8c8c8c" : ($4 + 0 >= tg ? "0x2e8b57" : "0xc0392b")
    lab = $1 ($2 != "" ? ", " $2 " cl." : "") " / " $3
    n++; line[n] = sprintf("%s\t%s\t%s\t%s", $4, tg, col, lab)
}
END { for (i = 1; i <= n; i++) printf "%d\t%s\n", n - i, line[i] }
' "$TMP/targets.tsv" "$TMP/rows.tsv" > "$TMP/ratios.dat"

# Latency data: index, ours p50, base p50, ours p99, base p99, label.
awk -F'\t' '
$5 != "" && $6 != "" && $5 + 0 > 0 && $6 + 0 > 0 {
    lab = $1 ($2 != "" ? ", " $2 " cl." : "") " / " $3
    n++; line[n] = sprintf("%s\t%s\t%s\t%s\t%s", $5, $6, $7, $8, lab)
}
END { for (i = 1; i <= n; i++) printf "%d\t%s\n", n - i, line[i] }
' "$TMP/rows.tsv" > "$TMP/latency.dat"

TITLE=$(basename "$JSON" .json)
nr=$(wc -l < "$TMP/ratios.dat"); nl=$(wc -l < "$TMP/latency.dat")
[ "$nr" -gt 0 ] || { echo "chart: no ratios in $JSON; no chart drawn" >&2; exit 0; }

# Ratios above XMAX (the aggregate's 40-60x) are drawn to the edge and
# labelled with their value, so that the bars near 1.0 stay readable.
XMAX=${CHART_XMAX:-3}
gnuplot <<EOF
set datafile separator "\t"
set terminal svg size 1100,$((130 + 24 * nr)) dynamic noenhanced font "sans,11" background "white"
set output "$PREFIX-ratios.svg"
set title "eventstore / baseline, higher is better ($TITLE)"
set border 3
set xtics nomirror 0.25
set ytics nomirror scale 0
set grid xtics lc rgb "0xdddddd"
set xrange [0:$XMAX]
set yrange [-0.7:$nr - 0.3]
set xlabel "ratio (eventstore's rate / baseline's rate); bars beyond $XMAX are cut short, with their value written in them"
set key outside top center horizontal maxcols 4
set arrow 1 from 1, graph 0 to 1, graph 1 nohead lw 1.5 lc rgb "black" dt 2 front
c(r) = r > $XMAX ? $XMAX : r
plot "$TMP/ratios.dat" using (c(\$2)):1:(0):(c(\$2)):(\$1 - 0.35):(\$1 + 0.35):4:ytic(5) with boxxyerror fs solid 0.8 noborder lc rgb variable notitle, \
     "" using (\$3 > 0 ? \$3 : NaN):(\$1 - 0.45):(0):(0.9) with vectors nohead lw 3 lc rgb "0xd35400" title "target", \
     "" using (\$2 > $XMAX ? NaN : \$2):1:(sprintf(" %.2f", \$2)) with labels left font "sans,9" notitle, \
     "" using (\$2 > $XMAX ? $XMAX : NaN):1:(sprintf("%.2f > ", \$2)) with labels right font "sans,9" tc rgb "white" notitle, \
     NaN with boxes fs solid 0.8 lc rgb "0x2e8b57" title "target met", \
     NaN with boxes fs solid 0.8 lc rgb "0xc0392b" title "target missed", \
     NaN with boxes fs solid 0.8 lc rgb "0x8c8c8c" title "no target"
EOF

if [ "$nl" -gt 0 ]; then
gnuplot <<EOF
set datafile separator "\t"
set terminal svg size 1100,$((140 + 40 * nl)) dynamic noenhanced font "sans,11" background "white"
set output "$PREFIX-latency.svg"
set title "latency per transaction, ms, log scale, lower is better ($TITLE)"
set border 3
set xtics nomirror
set ytics nomirror scale 0
set grid xtics mxtics lc rgb "0xdddddd"
set logscale x 10
set xrange [0.01:*]
set yrange [-0.7:$nl - 0.3]
set xlabel "ms"
set key outside top center horizontal
plot "$TMP/latency.dat" using 2:(\$1 + 0.30):(0.01):2:(\$1 + 0.21):(\$1 + 0.39):ytic(6) with boxxyerror fs solid 1.0 noborder lc rgb "0x1f4e99" title "eventstore p50", \
     "" using 3:(\$1 + 0.10):(0.01):3:(\$1 + 0.01):(\$1 + 0.19) with boxxyerror fs solid 1.0 noborder lc rgb "0x555555" title "baseline p50", \
     "" using 4:(\$1 - 0.10):(0.01):4:(\$1 - 0.19):(\$1 - 0.01) with boxxyerror fs solid 1.0 noborder lc rgb "0x8fb3e8" title "eventstore p99", \
     "" using 5:(\$1 - 0.30):(0.01):5:(\$1 - 0.39):(\$1 - 0.21) with boxxyerror fs solid 1.0 noborder lc rgb "0xbdbdbd" title "baseline p99"
EOF
fi
if [ "$nl" -gt 0 ]; then echo "chart: $PREFIX-ratios.svg and $PREFIX-latency.svg"; else echo "chart: $PREFIX-ratios.svg"; fi
