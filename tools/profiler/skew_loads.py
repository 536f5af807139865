#!/usr/bin/env python3
"""Recover the per-expert loads of a table's skewed grouped-GEMM rows.

    python3 tools/profiler/skew_loads.py TABLE.csv [--write]

Tables measured before the profiler wrote a `loads` column (the shipped H100 and H200 ones)
keep only m (mean tokens per expert) and m_max for each `grouped_gemm_skew` row. The draws
are seeded (`skew_draws` in profile.py: one CPU generator, seed 7, in measurement order), so
replaying them with the same torch version (the table's env.json: 2.11.0) gives every
expert's tokens back. The shapes and their order are taken from the table's own skew rows, so
the replay does not depend on today's model files. Each replayed draw must match its row's m
and m_max, or nothing is written. With --write, the table gets a `loads` column (empty on
other rows); every other byte of the file is kept. Needs torch (CPU is enough).
"""
import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profile import skew_draws  # noqa: E402  (this folder's profile.py, not the stdlib one)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("table")
    ap.add_argument("--write", action="store_true", help="add the loads column to TABLE")
    args = ap.parse_args()
    import torch

    with open(args.table, newline="") as fh:
        text = fh.read()
    eol = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(eol)
    header = lines[0].split(",")
    if "loads" in header:
        sys.exit(f"{args.table}: already has a loads column")
    rows = list(csv.DictReader(lines))
    skew = [(i, r) for i, r in enumerate(rows) if r["op"] == "grouped_gemm_skew"]
    if not skew:
        sys.exit(f"{args.table}: no grouped_gemm_skew rows")
    shapes = {}
    for _, r in skew:
        shapes.setdefault((int(r["n"]), int(r["k"])), r["impl"].split("/")[-1])
    found = {}
    for n, k, label, groups, T, s, cnt in skew_draws(torch, shapes, smoke=False):
        key = (n, k, groups, T // groups, f"zipf{s}")
        found[key] = [int(v) for v in cnt.tolist()]
    loads = {}
    for i, r in skew:
        zipf = next(p for p in r["impl"].split("/") if p.startswith("zipf"))
        key = (int(r["n"]), int(r["k"]), int(r["groups"]), int(r["m"]), zipf)
        cnt = found.get(key)
        if cnt is None:
            sys.exit(f"{args.table}: no replayed draw for row {i + 2} {key}")
        if max(cnt) != int(r["m_max"]) or sum(cnt) // len(cnt) != int(r["m"]):
            sys.exit(f"{args.table}: row {i + 2} {key}: replay gives m_max {max(cnt)}, "
                     f"the table {r['m_max']} (another torch version?)")
        loads[i] = ";".join(map(str, cnt))
    print(f"{args.table}: {len(loads)} skew rows replayed, m and m_max all match "
          f"(torch {torch.__version__})")
    if not args.write:
        return
    out = [lines[0] + ",loads"]
    for i, line in enumerate(lines[1:]):
        if line == "" and i == len(lines) - 2:
            out.append("")
            continue
        out.append(line + "," + loads.get(i, ""))
    with open(args.table, "w", newline="") as fh:
        fh.write(eol.join(out))


if __name__ == "__main__":
    main()
