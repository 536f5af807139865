#!/usr/bin/env bash
# Golden outputs: runs every shipped scenario, fabric, validation case and sweep, and a
# slo-search comparison, and writes what each prints into OUT/. Two such folders, made before and
# after a change that must not change results, compare with `diff -r BEFORE AFTER`.
#
#   tools/golden.sh OUT [AFDSIM]      # AFDSIM: the binary (default target/release/afdsim)
#   GOLDEN_SKIP='hgx128' tools/golden.sh OUT   # leave out outputs whose name matches (a regex)
#
# Wall-clock figures (sweep timings, progress lines) are not written: only stdout of commands
# whose stdout is deterministic, and the files a run writes with --out/--trace.
set -euo pipefail
out=${1:?usage: tools/golden.sh OUT [AFDSIM]}
bin=${2:-target/release/afdsim}
cd "$(dirname "$0")/.."
mkdir -p "$out"
out=$(cd "$out" && pwd)
run() { # name, command...
    local name=$1; shift
    if [[ -n "${GOLDEN_SKIP:-}" && "$name" =~ $GOLDEN_SKIP ]]; then return; fi
    local rc=0
    "$@" >"$out/$name.stdout" 2>"$out/$name.stderr" || rc=$?
    echo "$rc" >"$out/$name.rc"
    # stderr may hold progress lines with wall times: keep only lines that name an error.
    grep -E '^(error|warning)' "$out/$name.stderr" >"$out/$name.err" || true
    rm "$out/$name.stderr"
}

run default "$bin" run --json
for s in workloads/scenarios/*.toml; do
    n=$(basename "$s" .toml)
    mkdir -p "$out/run-$n"
    run "run-$n" "$bin" run "$s" --json --out "$out/run-$n" --trace "$out/run-$n/trace.json"
    run "run-$n-text" "$bin" run "$s"
done
# Other levels where the scenario is small enough to run fast.
for s in star-8gpu-all-to-all hgx16-a2a-dcqcn default afd-dsv32-4hgx colocated-dsv32-4hgx; do
    for l in packet flow analytical; do
        run "level-$s-$l" "$bin" run "workloads/scenarios/$s.toml" --json --level "$l"
    done
done
for f in fabrics/*.toml; do
    run "fabric-$(basename "$f" .toml)" "$bin" fabric show "$f"
done
run validate "$bin" validate --json
run validate-text "$bin" validate
for sw in workloads/sweeps/*.toml; do
    n=$(basename "$sw" .toml)
    rm -rf "$out/sweep-$n"
    run "sweep-$n-list" "$bin" sweep "$sw" --list
    run "sweep-$n" "$bin" sweep "$sw" --out "$out/sweep-$n" --jobs 2
    rm -f "$out/sweep-$n.stdout"   # holds wall times; the point files are what matter
    run "merge-$n" "$bin" merge "$out/sweep-$n" --out "$out/sweep-$n.csv"
    run "report-$n" "$bin" report "$out/sweep-$n.csv" --out "$out/report-$n"
done
run slo-search "$bin" slo-search workloads/scenarios/serving-{aggregated,pd,pd-afd}-64.toml \
    --requests 300 --probes 4 --json
run slo-search-text "$bin" slo-search workloads/scenarios/serving-kv-pressure.toml \
    --requests 200 --probes 4
# Sweep outputs carry their wall time per point: drop those fields.
find "$out" -path '*/sweep-*' -name '*.json' -exec sed -i -E 's/"(wall_s|wall_ms|elapsed_s)": [0-9.e+-]+/"\1": 0/' {} +
echo "golden outputs in $out"
