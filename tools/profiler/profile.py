#!/usr/bin/env python3
"""afdsim's profiler: measure one GPU into a compute table afdsim can load.

    python3 tools/profiler/profile.py --out DIR [--grid main|dense] [--budget-s 900]
                                      [--models deepseek-v3,qwen3-235b-a22b] [--ops gemm,...]
    python3 tools/profiler/profile.py --out DIR --smoke      # tiny grid, any device, seconds

Writes DIR/compute.csv (the long-form format of docs/compute.md and
workloads/compute/README: one timed operator per row) and DIR/env.json (the machine).
Load it with `afdsim compute query --table DIR/compute.csv ...`.

The shapes come from the model files in workloads/models/*.toml, so a model added there is
measured without editing this script. See tools/profiler/README.md for the grid and method.
"""
import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import time

COLS = ["device", "op", "dtype", "m", "n", "k", "groups", "batch", "ctx", "heads",
        "kv_heads", "head_dim", "m_max", "time_us", "tflops", "gbps", "reps", "impl", "kernel", "loads"]
HERE = os.path.dirname(os.path.abspath(__file__))
# This file is named like the standard library's `profile`, which torch.compile imports: keep
# its folder off the module path so that `import profile` finds the standard one.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]
MODELS_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "workloads", "models"))
OPS = ["hbm_copy", "gemm", "grouped_gemm", "grouped_gemm_skew", "mla_decode", "hbm_read",
       "dsa_indexer", "gqa_decode", "mla_prefill", "gqa_prefill"]

# ----------------------------------------------------------------------------- the grid
# Powers of two cover the range; `dense` adds 3·2^i between them (halves the interpolation
# gap, which is where leave-one-out error comes from: docs/compute.md).
def pow2(lo, hi):
    v, out = lo, []
    while v <= hi:
        out.append(v)
        v *= 2
    return out


def grid(kind, dense):
    g = {
        "m": pow2(1, 8192),                      # GEMM tokens
        "groups": [1, 2, 4, 8, 16, 32, 64],      # experts in one grouped GEMM
        "tokens": pow2(1, 4096),                 # tokens per expert
        "batch": [1, 4, 16, 32, 64, 128, 256],   # decoding sequences
        "ctx": pow2(512, 32768),                 # cached context
        "prefill": pow2(512, 16384),             # prefill length
        "copy_mib": [8, 64, 256, 1024, 4096],
    }[kind]
    if dense and kind in ("m", "tokens", "ctx", "prefill"):
        g = sorted(set(g) | {3 * v // 2 for v in g[1:]})   # 3, 6, 12 … between 2, 4, 8 …
    return g


SMOKE = {"m": [1, 8, 33], "groups": [1, 3], "tokens": [1, 5], "batch": [1, 3],
         "ctx": [16, 64], "prefill": [32], "copy_mib": [1]}


# ----------------------------------------------------------------------------- skew draws
def skew_draws(t, shapes, smoke):
    """The skewed grouped-GEMM cases, in measurement order: (n, k, label, groups, T, s, loads)
    for the first two grouped shapes, T tokens over `groups` experts drawn from Zipf(s)
    popularity in a random expert order, from one CPU generator seeded 7. Deterministic for a
    torch version: tools/profiler/skew_loads.py replays it to recover the loads of tables
    measured before the `loads` column existed."""
    gen = t.Generator().manual_seed(7)
    cases = [(3, 12)] if smoke else [(gr, T) for gr in (8, 16, 32) for T in (256, 1024, 4096, 16384)]
    for (n, k), label in list(shapes.items())[: (1 if smoke else 2)]:
        for groups, T in cases:
            for s in (0.5, 1.0, 1.5):
                w = 1.0 / t.arange(1, groups + 1, dtype=t.float64) ** s
                w = w[t.randperm(groups, generator=gen)]
                cnt = t.multinomial(w / w.sum(), T, replacement=True, generator=gen).bincount(minlength=groups)
                yield n, k, label, groups, T, s, cnt


# ----------------------------------------------------------------------------- shapes
def load_models(names):
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError:
            sys.exit("profile.py needs Python >= 3.11 (tomllib) or the tomli package")
    models = {}
    for f in sorted(os.listdir(MODELS_DIR)):
        if f.endswith(".toml"):
            with open(os.path.join(MODELS_DIR, f), "rb") as fh:
                m = tomllib.load(fh)
            if not names or m["name"] in names:
                models[m["name"]] = m
    missing = set(names or []) - set(models)
    if missing:
        sys.exit(f"unknown model(s) {sorted(missing)}; known: {sorted(os.listdir(MODELS_DIR))}")
    return models


def shapes(models):
    """GEMM (n, k) and grouped (n, k) shapes, attention geometries, each with a label."""
    gemm, grouped, mla, gqa, dsa = {}, {}, {}, {}, {}
    for name, m in models.items():
        h, a, moe = m["hidden"], m["attention"], m["moe"]
        def add(d, key, label):
            d.setdefault(key, f"{name}.{label}")
        if a["kind"] == "mla":
            rope, nope, kvl, ql = a["qk_rope_head_dim"], a["qk_nope_head_dim"], a["kv_lora_rank"], a["q_lora_rank"]
            add(gemm, (ql + kvl + rope, h), "qkv_a")
            add(gemm, (a["heads"] * (nope + rope), ql), "q_b")
            add(gemm, (h, a["heads"] * a["v_head_dim"]), "o_proj")
            add(mla, (a["heads"], kvl + rope, kvl), "mla")
            if "sparse" in a:
                s = a["sparse"]
                add(gemm, (s["indexer_heads"] * s["indexer_head_dim"], ql), "indexer_q")
                add(gemm, (s["indexer_head_dim"], h), "indexer_k")
                add(gemm, (s["indexer_heads"], h), "indexer_weights")
                add(dsa, (s["indexer_heads"], s["indexer_head_dim"], s["topk"]), "indexer")
        else:
            d = a["head_dim"]
            if "q_lora_rank" in a:  # low-rank query (Step-3's MFA): q_a with K and V, then q_b
                add(gemm, (a["q_lora_rank"] + 2 * a["kv_heads"] * d, h), "q_a_kv")
                add(gemm, (a["heads"] * d, a["q_lora_rank"]), "q_b")
            else:
                add(gemm, ((a["heads"] + 2 * a["kv_heads"]) * d, h), "qkv")
            add(gemm, (h, a["heads"] * d), "o_proj")
            add(gqa, (a["heads"], a["kv_heads"], d), "gqa")
        add(gemm, (moe["routed_experts"], h), "router")
        f = moe["expert_ffn"]
        add(gemm, (2 * f, h), "expert_up_gate")
        add(gemm, (h, f), "expert_down")
        add(grouped, (2 * f, h), "expert_up_gate")
        add(grouped, (h, f), "expert_down")
        moe_layers = sum(b - a + 1 for a, b in m.get("moe_layers", []))
        if m.get("dense_layers", 0) > 0 or (moe_layers and moe_layers < m["layers"]):
            add(gemm, (2 * m["dense_ffn"], h), "dense_up_gate")
            add(gemm, (h, m["dense_ffn"]), "dense_down")
    return gemm, grouped, mla, gqa, dsa


SMOKE_SHAPES = ({(64, 32): "smoke.a", (48, 64): "smoke.b"}, {(32, 16): "smoke.g"},
                {(4, 24, 16): "smoke.mla"}, {(4, 2, 8): "smoke.gqa"}, {(4, 8, 8): "smoke.dsa"})


# ----------------------------------------------------------------------------- timing
class Profiler:
    def __init__(self, args, table=True):
        import torch
        self.torch = torch
        self.args = args
        self.cuda = torch.cuda.is_available() and not args.cpu
        self.dev = torch.device("cuda" if self.cuda else "cpu")
        self.name = torch.cuda.get_device_name(0) if self.cuda else (platform.processor() or "cpu")
        self.fp8 = getattr(torch, "float8_e4m3fn", None) if self.cuda else None
        # Weights rotate over copies so that the working set exceeds L2 (cold weights, as in a
        # layer-by-layer forward pass). 50 MB: H100/H200 L2; larger GPUs: raise --l2-mib.
        self.l2_bytes = args.l2_mib * 2**20
        self.t0 = time.time()
        os.makedirs(args.out, exist_ok=True)
        if table:
            self.fh = open(os.path.join(args.out, "compute.csv"), "w", newline="")
            self.w = csv.DictWriter(self.fh, fieldnames=COLS)
            self.w.writeheader()
        self.log_fh = open(os.path.join(args.out, "log.txt" if table else "layers-log.txt"), "w")
        self.ok = self.failed = 0

    def log(self, *a):
        s = " ".join(str(x) for x in a)
        print(s, flush=True)
        self.log_fh.write(s + "\n")
        self.log_fh.flush()

    def time_left(self):
        return self.args.budget_s - (time.time() - self.t0)

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def copies(self, nbytes):
        return max(1, min(8, math.ceil(2 * self.l2_bytes / max(nbytes, 1))))

    def rand(self, *shape, dtype=None):
        t = self.torch
        x = t.randn(*shape, device=self.dev, dtype=t.float32)
        return x.to(dtype or t.bfloat16)

    def measure(self, fn):
        """Mean time of one call in microseconds: warm up, size the loop to ~20 ms, replay
        it in a CUDA graph (no launch gaps) or, where capture fails, eagerly."""
        t = self.torch
        fn(); fn(); self.sync()
        s = time.perf_counter(); fn(); self.sync()
        one = max(time.perf_counter() - s, 1e-6)
        reps = int(max(3, min(self.args.max_reps, 0.02 / one)))
        if not self.cuda:
            s = time.perf_counter()
            for _ in range(reps):
                fn()
            return (time.perf_counter() - s) * 1e6 / reps, reps, "eager"
        graph = None
        try:
            side = t.cuda.Stream()
            side.wait_stream(t.cuda.current_stream())
            with t.cuda.stream(side):
                fn()
            t.cuda.current_stream().wait_stream(side)
            graph = t.cuda.CUDAGraph()
            with t.cuda.graph(graph):
                for _ in range(reps):
                    fn()
            graph.replay(); self.sync()
        except Exception:
            graph = None
            self.sync()
        e0, e1 = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)
        e0.record()
        if graph is not None:
            graph.replay()
        else:
            for _ in range(reps):
                fn()
        e1.record(); self.sync()
        return e0.elapsed_time(e1) * 1e3 / reps, reps, "graph" if graph is not None else "eager"

    def kernels(self, fn):
        """The GPU kernels one call of `fn` launches, by name, in launch order, each once
        (joined by ` ; `): which kernel configuration a size ran (docs/compute.md), so that
        the interpolation's tile rules can be checked on a new GPU. Empty on the CPU, and
        where torch's profiler fails (logged; the point is kept)."""
        if not self.cuda:
            return ""
        try:
            from torch.autograd import DeviceType
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                fn(); self.sync()
            names = []
            for e in prof.events():
                if e.device_type == DeviceType.CUDA and e.name not in names:
                    names.append(e.name)
            return " ; ".join(names)
        except Exception as e:
            self.log(f"kernel names not recorded: {type(e).__name__}: {str(e)[:200]}")
            return ""

    def kernel_times(self, fn):
        """What one eager call of `fn` spends, per kernel name in launch order: (name, calls,
        total us). On the GPU each kernel's device time; on the CPU each op's own (self)
        time, so that nested ops are not counted twice. Empty where torch's profiler fails
        (logged)."""
        try:
            from torch.autograd import DeviceType
            from torch.profiler import ProfilerActivity, profile
            act = ProfilerActivity.CUDA if self.cuda else ProfilerActivity.CPU
            with profile(activities=[act]) as prof:
                fn(); self.sync()
            want = DeviceType.CUDA if self.cuda else DeviceType.CPU
            out = {}
            for e in prof.events():
                if e.device_type != want:
                    continue
                us = e.time_range.elapsed_us() if self.cuda else e.self_cpu_time_total
                calls, total = out.get(e.name, (0, 0.0))
                out[e.name] = (calls + 1, total + us)
            return [(name, calls, total) for name, (calls, total) in out.items()]
        except Exception as e:
            self.log(f"kernel times not recorded: {type(e).__name__}: {str(e)[:200]}")
            return []

    def point(self, label, build):
        """build() -> (fn, row fields, flops, bytes, impl). Failures are logged, not fatal."""
        if self.time_left() < 0:
            return False
        try:
            fn, row, flops, nbytes, impl = build()
            us, reps, how = self.measure(fn)
            out = {c: "" for c in COLS}
            out.update(row)
            out.update(device=self.name, time_us=f"{us:.3f}", reps=reps, impl=f"{how}/{impl}",
                       kernel=self.kernels(fn))
            out["tflops"] = f"{flops / us / 1e6:.2f}" if flops else ""
            out["gbps"] = f"{nbytes / us / 1e3:.1f}" if nbytes else ""
            self.w.writerow(out); self.fh.flush()
            self.ok += 1
        except Exception as e:
            self.failed += 1
            self.log(f"FAIL {label}: {type(e).__name__}: {str(e)[:200]}")
        finally:
            if self.cuda:
                self.torch.cuda.empty_cache()
        return True

    # ------------------------------------------------------------------------- operators
    def hbm_copy(self, g):
        for mib in g("copy_mib"):
            def b(mib=mib):
                x = self.rand(mib * 2**20 // 2); y = self.torch.empty_like(x)
                return (lambda: y.copy_(x)), dict(op="hbm_copy", dtype="bf16", k=mib * 2**20), 0, 2.0 * mib * 2**20, "copy_"
            self.point(f"hbm_copy {mib} MiB", b)

    def gemm(self, g, shapes, dtypes):
        t = self.torch
        for dtype in dtypes:
            for (n, k), label in shapes.items():
                for m in g("m"):
                    def b(n=n, k=k, m=m, label=label, dtype=dtype):
                        esize = 1 if dtype == "fp8" else 2
                        c = self.copies(n * k * esize)
                        x = self.rand(m, k)
                        ws = [self.rand(n, k) for _ in range(c)]
                        i = [0]
                        if dtype == "bf16":
                            def fn():
                                i[0] = (i[0] + 1) % c
                                return x @ ws[i[0]].t()
                            impl = "matmul"
                        else:
                            x8 = x.to(self.fp8); w8 = [w.to(self.fp8) for w in ws]
                            sa = t.ones(m, 1, device=self.dev); sb = t.ones(1, n, device=self.dev)
                            def fn():
                                i[0] = (i[0] + 1) % c
                                return t._scaled_mm(x8, w8[i[0]].t(), scale_a=sa, scale_b=sb, out_dtype=t.bfloat16)
                            impl = "scaled_mm"
                        row = dict(op="gemm", dtype=dtype, m=m, n=n, k=k)
                        return fn, row, 2.0 * m * n * k, n * k * esize + m * k * esize + m * n * 2, f"{impl}/{label}"
                    self.point(f"gemm {dtype} {label} m={m}", b)

    def _grouped_fn(self, x, ws, offs, g, tokens, k):
        """A balanced or uneven grouped GEMM: torch._grouped_mm where it exists (CUDA, sm90+),
        else a bmm (balanced) or a loop over experts (uneven)."""
        t = self.torch
        c, i = len(ws), [0]
        if self.cuda and hasattr(t, "_grouped_mm"):
            t._grouped_mm(x, ws[0], offs=offs)
            def fn():
                i[0] = (i[0] + 1) % c
                return t._grouped_mm(x, ws[i[0]], offs=offs)
            return fn, "grouped_mm"
        if tokens is not None:
            xb = x.view(g, tokens, k)
            def fn():
                i[0] = (i[0] + 1) % c
                return t.bmm(xb, ws[i[0]])
            return fn, "bmm"
        bounds = [0] + offs.tolist()
        def fn():
            i[0] = (i[0] + 1) % c
            return [x[bounds[e]:bounds[e + 1]] @ ws[i[0]][e] for e in range(g)]
        return fn, "loop"

    def grouped(self, g, shapes, dtypes):
        t = self.torch
        for dtype in dtypes:
            for (n, k), label in shapes.items():
                for groups in g("groups"):
                    for m in g("tokens"):
                        if groups * m > 65536:
                            continue
                        def b(n=n, k=k, groups=groups, m=m, label=label, dtype=dtype):
                            esize = 1 if dtype == "fp8" else 2
                            c = self.copies(groups * n * k * esize)
                            offs = t.arange(1, groups + 1, device=self.dev, dtype=t.int32) * m
                            if dtype == "bf16":
                                x = self.rand(groups * m, k)
                                ws = [self.rand(groups, n, k).transpose(-2, -1) for _ in range(c)]
                                fn, impl = self._grouped_fn(x, ws, offs, groups, m, k)
                            else:
                                x8 = self.rand(groups * m, k).to(self.fp8)
                                ws = [self.rand(groups, n, k).to(self.fp8).transpose(-2, -1) for _ in range(c)]
                                sa = t.ones(groups * m, device=self.dev); sb = t.ones(groups, n, device=self.dev)
                                i = [0]
                                t._scaled_grouped_mm(x8, ws[0], sa, sb, offs=offs, out_dtype=t.bfloat16)
                                def fn():
                                    i[0] = (i[0] + 1) % c
                                    return t._scaled_grouped_mm(x8, ws[i[0]], sa, sb, offs=offs, out_dtype=t.bfloat16)
                                impl = "scaled_grouped_mm"
                            row = dict(op="grouped_gemm", dtype=dtype, m=m, n=n, k=k, groups=groups)
                            flops = 2.0 * groups * m * n * k
                            nbytes = groups * (n * k * esize + m * k * esize + m * n * 2)
                            return fn, row, flops, nbytes, f"{impl}/{label}"
                        self.point(f"grouped {dtype} {label} g={groups} m={m}", b)

    def grouped_skew(self, g, shapes, smoke):
        """Uneven loads: T tokens over g experts with Zipf(s) popularity, seeded; bf16. The
        row's `loads` column keeps the tokens of every expert (`;`-separated), which the
        kernel's tile model needs (docs/compute.md)."""
        t = self.torch
        for n, k, label, groups, T, s, cnt in skew_draws(t, shapes, smoke):
            def b(n=n, k=k, groups=groups, T=T, cnt=cnt, s=s, label=label):
                c = self.copies(groups * n * k * 2)
                x = self.rand(T, k)
                offs = t.cumsum(cnt, 0).to(device=self.dev, dtype=t.int32)
                ws = [self.rand(groups, n, k).transpose(-2, -1) for _ in range(c)]
                fn, impl = self._grouped_fn(x, ws, offs, groups, None, k)
                row = dict(op="grouped_gemm_skew", dtype="bf16", m=T // groups, m_max=int(cnt.max()),
                           n=n, k=k, groups=groups, loads=";".join(str(int(v)) for v in cnt.tolist()))
                return fn, row, 2.0 * T * n * k, groups * n * k * 2.0, f"{impl}/zipf{s}/{label}"
            self.point(f"skew {label} g={groups} T={T} s={s}", b)

    def mla_decode(self, g, geoms):
        """Absorbed MLA decode (heads query heads over one latent KV head of width dk, values
        over the first dv), unfused bmm + softmax + bmm; and hbm_read of the same bytes."""
        t = self.torch
        for (heads, dk, dv), label in geoms.items():
            for bsz in g("batch"):
                for L in g("ctx"):
                    if bsz * L * dk * 2 > 12 * 2**30:
                        continue
                    def b(bsz=bsz, L=L, heads=heads, dk=dk, dv=dv, label=label):
                        q = self.rand(bsz, heads, dk); kv = self.rand(bsz, L, dk); scale = dk ** -0.5
                        def fn():
                            p = t.softmax((t.bmm(q, kv.transpose(1, 2)) * scale).float(), dim=-1).to(t.bfloat16)
                            return t.bmm(p, kv[:, :, :dv])
                        row = dict(op="mla_decode", dtype="bf16", batch=bsz, ctx=L, heads=heads, kv_heads=1, head_dim=dk)
                        return fn, row, 2.0 * bsz * heads * L * (dk + dv), bsz * L * dk * 2.0, f"bmm_softmax/{label}"
                    self.point(f"mla_decode b={bsz} L={L}", b)
                    def r(bsz=bsz, L=L, dk=dk):
                        kv = self.rand(bsz * L * dk)
                        row = dict(op="hbm_read", dtype="bf16", batch=bsz, ctx=L, head_dim=dk, k=bsz * L * dk * 2)
                        return (lambda: kv.sum()), row, 0, bsz * L * dk * 2.0, "sum"
                    self.point(f"hbm_read b={bsz} L={L}", r)

    def dsa_indexer(self, g, geoms):
        """DeepSeek-V3.2 lightning indexer: scores of every cached token, relu, head-weighted
        sum, top-k (bf16 here; the model runs it in fp8)."""
        t = self.torch
        for (heads, d, topk), label in geoms.items():
            for bsz in g("batch"):
                for L in g("ctx"):
                    if L <= topk:
                        continue
                    def b(bsz=bsz, L=L, heads=heads, d=d, topk=topk, label=label):
                        q = self.rand(bsz, heads, d); kk = self.rand(bsz, L, d); w = self.rand(bsz, heads, 1)
                        def fn():
                            s = t.relu(t.bmm(q, kk.transpose(1, 2))) * w
                            return t.topk(s.sum(1), topk, dim=-1).indices
                        row = dict(op="dsa_indexer", dtype="bf16", batch=bsz, ctx=L, heads=heads, head_dim=d)
                        return fn, row, 2.0 * bsz * heads * L * d, bsz * L * d * 2.0, f"bmm_topk/{label}"
                    self.point(f"dsa_indexer b={bsz} L={L}", b)

    def gqa_decode(self, g, geoms):
        F = self.torch.nn.functional
        for (heads, kvh, d), label in geoms.items():
            for bsz in g("batch"):
                for L in g("ctx"):
                    def b(bsz=bsz, L=L, heads=heads, kvh=kvh, d=d, label=label):
                        q = self.rand(bsz, heads, 1, d); k = self.rand(bsz, kvh, L, d); v = self.rand(bsz, kvh, L, d)
                        fn = lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                        row = dict(op="gqa_decode", dtype="bf16", batch=bsz, ctx=L, heads=heads, kv_heads=kvh, head_dim=d)
                        return fn, row, 4.0 * bsz * heads * L * d, 4.0 * bsz * kvh * L * d, f"sdpa/{label}"
                    self.point(f"gqa_decode {label} b={bsz} L={L}", b)

    def prefill(self, g, mla, gqa):
        """Causal prefill attention of one sequence (SDPA): MLA in its MHA form (qk = nope +
        rope, v padded to qk), GQA as is."""
        F = self.torch.nn.functional
        cases = [("mla_prefill", h, h, dk, lb) for (h, dk, _), lb in mla.items()]
        cases += [("gqa_prefill", h, kvh, d, lb) for (h, kvh, d), lb in gqa.items()]
        for op, h, kvh, d, label in cases:
            if op == "mla_prefill" and not self.args.smoke:
                d = 192  # nope 128 + rope 64: the MHA form used in prefill
            for S in g("prefill"):
                def b(op=op, h=h, kvh=kvh, d=d, S=S, label=label):
                    q = self.rand(1, h, S, d); k = self.rand(1, kvh, S, d); v = self.rand(1, kvh, S, d)
                    fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=kvh != h)
                    row = dict(op=op, dtype="bf16", batch=1, ctx=S, heads=h, kv_heads=kvh, head_dim=d)
                    return fn, row, 2.0 * h * S * S * d, 0, f"sdpa_causal/{label}"
                self.point(f"{op} {label} S={S}", b)

    def env(self):
        t = self.torch
        info = {"device": self.name, "torch": t.__version__, "cuda": t.version.cuda,
                "python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d"),
                "grid": "smoke" if self.args.smoke else self.args.grid, "profiler": "tools/profiler/profile.py"}
        if self.cuda:
            p = t.cuda.get_device_properties(0)
            info.update(sms=p.multi_processor_count, mem_gib=round(p.total_memory / 2**30, 1))
            try:
                info["nvidia_smi"] = subprocess.run(
                    ["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem,power.limit",
                     "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
            except Exception as e:
                info["nvidia_smi"] = str(e)
        with open(os.path.join(self.args.out, "env.json"), "w") as fh:
            json.dump(info, fh, indent=1)
        self.log("env", info)


def run_layers(args):
    """--layers: whole-layer timing (tools/profiler/layers.py) into DIR/layers.csv."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("afdsim_layers", os.path.join(HERE, "layers.py"))
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
    names = [n for n in args.layer_models.split(",") if n] or (
        layers.SMOKE_MODELS if args.smoke else layers.DEFAULT_MODELS)
    models = load_models(names)
    prof = Profiler(args, table=False)
    modes = [m for m in args.layer_modes.split(",") if m] or (
        ["eager", "compiled"] if prof.cuda else ["eager"])
    bad = set(modes) - {"eager", "compiled"}
    if bad:
        sys.exit(f"--layer-modes: unknown {sorted(bad)}; allowed: eager, compiled")
    prof.env()
    n = layers.run(prof, {k: models[k] for k in names}, args.smoke, modes)
    prof.log(f"done: {n} layer rows, {prof.failed} failed, {time.time() - prof.t0:.1f}s")
    return 0 if n > 0 else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (compute.csv, env.json, log.txt)")
    p.add_argument("--smoke", action="store_true", help="tiny shapes on any device (CPU works), seconds")
    p.add_argument("--cpu", action="store_true", help="use the CPU even where CUDA is available")
    p.add_argument("--grid", choices=["main", "dense"], default="main",
                   help="dense adds 3*2^i sizes between the powers of two")
    p.add_argument("--models", default="", help="comma-separated model names (default: all in workloads/models)")
    p.add_argument("--ops", default=",".join(OPS), help=f"comma-separated subset of {','.join(OPS)}")
    p.add_argument("--dtypes", default="bf16,fp8", help="GEMM dtypes (fp8 needs CUDA)")
    p.add_argument("--budget-s", type=float, default=3600.0, help="stop starting new points after this")
    p.add_argument("--max-reps", type=int, default=200)
    p.add_argument("--l2-mib", type=int, default=50, help="L2 size to defeat with rotating weights")
    p.add_argument("--layers", action="store_true",
                   help="time whole MoE layers (attention side, FFN side) into DIR/layers.csv "
                        "instead of the per-operator table; compare with `afdsim compute layer-check`")
    p.add_argument("--layer-models", default="",
                   help="models for --layers (default: deepseek-v3, deepseek-v3.2, qwen3-235b-a22b; "
                        "smoke: qwen3-30b-a3b, deepseek-v3.2)")
    p.add_argument("--layer-modes", default="",
                   help="glue implementations for --layers: eager, compiled (default: both on CUDA, "
                        "eager on the CPU)")
    p.add_argument("--layer-kernels", action="store_true",
                   help="with --layers: also each layer's kernels (one eager call: name, calls, "
                        "device time; on the CPU the ops' own times) into DIR/layers-kernels.csv")
    p.add_argument("--list", action="store_true",
                   help="print the shapes and grid that would be measured, and exit (no torch needed)")
    args = p.parse_args(argv)
    ops = [o for o in args.ops.split(",") if o]
    unknown = set(ops) - set(OPS)
    if unknown:
        p.error(f"unknown op(s) {sorted(unknown)}")

    if args.list:
        names = [n for n in args.models.split(",") if n]
        gemm, grouped, mla, gqa, dsa = SMOKE_SHAPES if args.smoke else shapes(load_models(names))
        for kind, d in (("gemm", gemm), ("grouped_gemm", grouped), ("mla_decode", mla),
                        ("gqa_decode", gqa), ("dsa_indexer", dsa)):
            for key, label in sorted(d.items()):
                print(kind, ",".join(str(v) for v in key), label)
        for kind in ("m", "groups", "tokens", "batch", "ctx", "prefill", "copy_mib"):
            vals = SMOKE[kind] if args.smoke else grid(kind, args.grid == "dense")
            print("grid", kind, ",".join(map(str, vals)))
        return 0

    if args.layers:
        return run_layers(args)
    prof = Profiler(args)
    if args.smoke:
        gemm, grouped, mla, gqa, dsa = SMOKE_SHAPES
        g = lambda kind: SMOKE[kind]
    else:
        names = [n for n in args.models.split(",") if n]
        gemm, grouped, mla, gqa, dsa = shapes(load_models(names))
        g = lambda kind: grid(kind, args.grid == "dense")
    dtypes = [d for d in args.dtypes.split(",") if d]
    if "fp8" in dtypes and prof.fp8 is None:
        prof.log("skip fp8: needs CUDA and a torch with float8_e4m3fn")
        dtypes.remove("fp8")
    prof.env()
    sections = [("hbm_copy", lambda: prof.hbm_copy(g)),
                ("gemm", lambda: prof.gemm(g, gemm, dtypes)),
                ("grouped_gemm", lambda: prof.grouped(g, grouped, dtypes)),
                ("grouped_gemm_skew", lambda: prof.grouped_skew(g, grouped, args.smoke)),
                ("mla_decode", lambda: prof.mla_decode(g, mla)),
                ("dsa_indexer", lambda: prof.dsa_indexer(g, dsa)),
                ("gqa_decode", lambda: prof.gqa_decode(g, gqa)),
                ("prefill", lambda: prof.prefill(g, mla if "mla_prefill" in ops else {},
                                                 gqa if "gqa_prefill" in ops else {}))]
    for name, run in sections:
        if name != "prefill" and name not in ops and not (name == "mla_decode" and "hbm_read" in ops):
            continue
        s = time.time()
        try:
            run()
        except Exception as e:
            prof.log(f"SECTION FAIL {name}: {type(e).__name__}: {e}")
        prof.log(f"section {name}: {time.time() - s:.1f}s, {prof.ok} points, {prof.failed} failed")
    prof.fh.close()
    prof.log(f"done: {prof.ok} points, {prof.failed} failed, {time.time() - prof.t0:.1f}s -> "
             f"{os.path.join(args.out, 'compute.csv')}")
    return 0 if prof.ok > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
