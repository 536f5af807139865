#!/usr/bin/env bash
# The packet level's scaling curve: one scenario at several `--threads` counts, each run's
# wall time, packet-hops per second, speed-up over the first count and peak RSS, and a check
# that every run's stdout and `--out` files are byte-identical to the first run's.
#
#   tools/threads-curve.sh AFDSIM SCENARIO OUTDIR THREADS...
#   tools/threads-curve.sh target/release/afdsim workloads/scenarios/hgx128-a2a.toml \
#       /tmp/curve 1 2 4 8 16
#
# Prints a Markdown table (also written to OUTDIR/curve.md); each run's stdout and files stay
# in OUTDIR/tN. Needs python3 for the timing (wall clock and the child's peak RSS).
# `RUN_TIMEOUT_S` (default 900) stops a run that takes longer; it is reported as such.
set -uo pipefail
bin=${1:?usage: tools/threads-curve.sh AFDSIM SCENARIO OUTDIR THREADS...}
scenario=${2:?scenario}
dir=${3:?outdir}
shift 3
[ $# -ge 1 ] || { echo "error: name at least one thread count" >&2; exit 2; }
mkdir -p "$dir"
cores=$(nproc)
{
    echo "scenario $(basename "$scenario"), $cores cores: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
    echo
    echo "| threads | wall s | M packet-hops/s | speed-up | peak RSS MB | output |"
    echo "|---:|---:|---:|---:|---:|---|"
} | tee "$dir/curve.md"
first=""
base_wall=""
for n in "$@"; do
    rm -rf "$dir/t$n"
    mkdir -p "$dir/t$n"
    # Wall clock and peak RSS of the child, measured by python3 (no /usr/bin/time needed).
    python3 - "$n" "$bin" "$scenario" "$dir/t$n" "${RUN_TIMEOUT_S:-900}" <<'EOF' >"$dir/t$n/time"
import resource, subprocess, sys, time
n, binary, scenario, out, limit = sys.argv[1:]
start = time.monotonic()
with open(f"{out}/stdout", "w") as fh:
    try:
        rc = subprocess.run([binary, "run", scenario, "--level", "packet", "--threads", n,
                             "--out", f"{out}/files"], stdout=fh, stderr=subprocess.DEVNULL,
                            timeout=float(limit)).returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
wall = time.monotonic() - start
print(rc, f"{wall:.2f}", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
EOF
    read -r rc wall rss <"$dir/t$n/time"
    hops=$(sed -n 's/^ *packet hops  *\([0-9]*\).*/\1/p' "$dir/t$n/stdout")
    if [ "$rc" != 0 ] || [ -z "$hops" ]; then
        echo "| $n | $wall | - | - | $rss | run failed (exit $rc) |" | tee -a "$dir/curve.md"
        continue
    fi
    if [ -z "$first" ]; then
        first=$n
        base_wall=$wall
        same="reference"
    elif cmp -s "$dir/t$first/stdout" "$dir/t$n/stdout" \
        && diff -r -q "$dir/t$first/files" "$dir/t$n/files" >/dev/null; then
        same="identical to $first"
    else
        same="DIFFERS from $first"
    fi
    python3 -c "import sys; n,w,h,b,r,s=sys.argv[1:]; w=float(w); \
print(f'| {n} | {w:.1f} | {int(h)/w/1e6:.2f} | {float(b)/w:.2f}x | {r} | {s} |')" \
        "$n" "$wall" "$hops" "$base_wall" "$rss" "$same" | tee -a "$dir/curve.md"
done
