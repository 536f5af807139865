#!/usr/bin/env bash
# The prepared GPU run for issue 5, sized for one device call (10 minutes at most; the whole
# session has 15 minutes of device time, the machine's start included):
#   1. whole MoE layers (attention side, FFN side) of DeepSeek-V3, DeepSeek-V3.2 and
#      Qwen3-235B-A22B, eager and compiled glue -> layers.csv (the glue model's check), and
#      each layer's kernels with their times -> layers-kernels.csv (which lines miss);
#   2. the dense grid (3·2^i sizes between the powers of two) of gemm and grouped_gemm for the
#      same models -> compute.csv (leave-one-out on a 2x-gap grid: the p90 goal), with each
#      row's kernel names (the tile rules of issue 16);
#   3. the Zipf-skewed grouped GEMMs with their per-expert loads -> skew/compute.csv, merged
#      with 2 into all.csv (the grouped kernel's tile model on uneven loads, issue 16).
# Each part stops starting points at its budget; a failed point is logged and skipped.
# First run on 2026-12-04 (H200; before --layer-kernels existed): parts 1-3 took 153 s in all;
# what came of it is in validation/h200-*-2026-12-04.csv and docs/compute.md.
#
#   run (device tool): bash tools/profiler/device-check.sh        (writes under $OUT)
#   here:              bash tools/profiler/device-check.sh DIR    (any CUDA machine)
# Then, on the build machine (files under the device reply's files_at; device.txt names the
# GPU: compare with the shipped table of the same kind, h100-sxm or h200-sxm):
#   afdsim compute layer-check --table h100-sxm --layers DIR/layers.csv
#   afdsim compute loo --table DIR/compute.csv        # "in-between sizes held out"
#   afdsim compute loo --table DIR/all.csv            # also "uneven loads" (tile model)
# Files come back as they are written (rows are flushed one by one), so a run cut short by
# its time limit still returns what it measured.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-${1:?usage: tools/profiler/device-check.sh OUTDIR (or set OUT)}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
models=deepseek-v3,deepseek-v3.2,qwen3-235b-a22b
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem,power.limit \
        --format=csv,noheader || true
    python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} >"$out/device.txt" 2>&1
cat "$out/device.txt"

echo "== 1. whole layers (budget ${LAYERS_BUDGET_S:-180} s)"
python3 tools/profiler/profile.py --layers --layer-kernels --layer-models "$models" \
    --budget-s "${LAYERS_BUDGET_S:-180}" --out "$out"
echo "== 2. dense grid: gemm, grouped_gemm (budget ${GRID_BUDGET_S:-270} s)"
python3 tools/profiler/profile.py --grid dense --ops gemm,grouped_gemm --models "$models" \
    --budget-s "${GRID_BUDGET_S:-270}" --out "$out"
echo "== 3. skewed grouped GEMMs with their loads (budget ${SKEW_BUDGET_S:-60} s)"
python3 tools/profiler/profile.py --ops grouped_gemm_skew --models deepseek-v3 \
    --budget-s "${SKEW_BUDGET_S:-60}" --out "$out/skew"
{ cat "$out/compute.csv"; tail -n +2 "$out/skew/compute.csv"; } >"$out/all.csv" 2>/dev/null || true
ls -la "$out" "$out/skew"
