"""Whole-layer timing: one MoE layer of a model, attention side and FFN side, run as a whole.

The operator sequence mirrors what `afdsim compute layer` assembles (src/compute/layer.rs),
kernel for kernel, with the same big kernels as the per-operator table (scaled_mm /
scaled_grouped_mm FP8 GEMMs, matmul / grouped_mm BF16 GEMMs, unfused absorbed MLA decode, SDPA
GQA decode, the bmm + top-k DSA indexer) plus the glue between them: RMSNorm, FP8
quantisation, RoPE, the MLA absorb / un-absorb bmms, router softmax + top-k, SiLU*mul,
residual adds, the combine's weighted sum. Comparing the two (`afdsim compute layer-check`)
tells how far an assembled layer is from the layer timed whole: the glue model's check
(docs/compute.md, "Glue operators").

The layer also does what the assembly has no line for: it writes the new token's K/V (and
DSA indexer key) into the cache, gathers DSA's top-k latent rows, and copies for `cat` and
`.contiguous()`; layer-check shows what that costs.

Two glue implementations (`mode`):
- `eager`: plain PyTorch ops (several kernels per RMSNorm or quantisation);
- `compiled`: each glue function through torch.compile (fused Triton kernels, as vLLM and
  SGLang build their glue); the GEMMs and attention stay the same calls.
Either way the whole layer is captured in one CUDA graph (no launch gaps), like the table.

Weights rotate over copies so that the working set exceeds twice the L2 (cold weights, as in a
forward pass through all layers). The KV cache is BF16, as in the table's decode rows.
"""
LAYER_COLS = ["device", "model", "side", "layer", "gemm_dtype", "tokens", "ctx", "experts",
              "tokens_per_expert", "mode", "time_us", "reps", "impl"]
# --layer-kernels: one row per (layer row, kernel name) of one eager call, in launch order.
# The kernels' sum against the layer's graph time is what runs between them; the kernels
# themselves, against the assembly's lines, say which lines miss (docs/compute.md).
KERNEL_COLS = ["device", "model", "side", "tokens", "ctx", "experts", "tokens_per_expert",
               "mode", "kernel", "calls", "time_us"]

# (tokens, ctx) for the attention side, (experts, tokens per expert) for the FFN side.
GRID = {
    "attention": [(t, c) for c in (2048, 8192) for t in (1, 8, 32, 64, 128, 256)],
    "ffn": [(e, x) for e in (4, 8, 16) for x in (8, 32, 128, 512)],
}
SMOKE_GRID = {"attention": [(2, 64), (1, 2304)], "ffn": [(2, 3)]}
DEFAULT_MODELS = ["deepseek-v3", "deepseek-v3.2", "qwen3-235b-a22b"]
SMOKE_MODELS = ["qwen3-30b-a3b", "deepseek-v3.2"]


class Glue:
    """The glue kernels; `compile` wraps each in torch.compile."""

    def __init__(self, torch, compile_):
        self.t = torch
        # Quantisation runs wherever torch has the dtype (CPU too); FP8 GEMMs need CUDA.
        self.fp8 = torch.float8_e4m3fn
        wrap = (lambda f: torch.compile(f, dynamic=True)) if compile_ else (lambda f: f)
        self.rmsnorm = wrap(self._rmsnorm)
        self.quant = wrap(self._quant)
        self.rope = wrap(self._rope)
        self.silu_mul = wrap(self._silu_mul)
        self.router = wrap(self._router)
        self.combine = wrap(self._combine)
        self.add = wrap(self._add)
        self.scale_rows = wrap(self._scale_rows)
        self.dequant = wrap(self._dequant)

    def _rmsnorm(self, x, w):
        xf = x.float()
        return (xf * self.t.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * w

    def _quant(self, x):
        """Per-row FP8 (e4m3) with an fp32 scale: the quantisation before an FP8 GEMM."""
        amax = x.abs().amax(-1, keepdim=True).float().clamp(min=1e-4)
        scale = amax / 448.0
        return (x.float() / scale).to(self.fp8), scale

    def _rope(self, x, cos, sin):
        """Rotate-half RoPE over the last dim of x [T, H, d] with cos/sin [T, 1, d/2]."""
        h = x.shape[-1] // 2
        a, b = x[..., :h], x[..., h:]
        return self.t.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)

    def _silu_mul(self, gu):
        f = gu.shape[-1] // 2
        return self.t.nn.functional.silu(gu[..., :f]) * gu[..., f:]

    def _router(self, logits, k):
        p = self.t.softmax(logits.float(), dim=-1)
        w, idx = self.t.topk(p, k, dim=-1)
        return w / w.sum(-1, keepdim=True), idx

    def _combine(self, parts, w, residual):
        """Weighted sum of [T, n, h] partial outputs with [T, n] weights, plus the residual."""
        return (parts.float() * w.unsqueeze(-1)).sum(1).to(parts.dtype) + residual

    def _add(self, a, b):
        return a + b

    def _scale_rows(self, y, w):
        return (y.float() * w).to(y.dtype)

    def _dequant(self, x8, scale):
        """FP8 rows with their fp32 scales back to BF16 (FP8 dispatch into BF16 experts)."""
        return (x8.float() * scale).to(self.t.bfloat16)


class Layer:
    """Builds the two sides of one MoE layer of `model` (a parsed workloads/models TOML)."""

    def __init__(self, prof, model, gemm_dtype, glue):
        self.p = prof
        self.t = prof.torch
        self.m = model
        self.dt = gemm_dtype
        self.g = glue
        self.h = model["hidden"]

    # --------------------------------------------------------------------- building blocks
    def shared_here(self):
        """Whether the shared expert runs on the attention side (as layer.rs decides)."""
        return (self.m["moe"].get("shared_experts", 0) > 0
                and self.m.get("shared_expert_side", "attention") == "attention")

    def weight(self, n, k, dtype=None):
        """An (n, k) weight in the GEMM dtype (FP8 with a per-column scale), or `dtype`."""
        w = self.p.rand(n, k)
        if (dtype or self.dt) == "fp8":
            return (w.to(self.p.fp8), self.t.ones(1, n, device=self.p.dev))
        return (w, None)

    def gemm(self, x, w, dtype=None):
        """x @ w.T in `dtype` (default: the model's): FP8 quantises x first (glue)."""
        t = self.t
        wt, ws = w
        if (dtype or self.dt) == "fp8":
            x8, sx = self.g.quant(x)
            return t._scaled_mm(x8, wt.t(), scale_a=sx, scale_b=ws, out_dtype=t.bfloat16)
        return x @ wt.t()

    def gemm_q(self, x8, sx, w):
        """An FP8 GEMM on an already quantised input."""
        t = self.t
        return t._scaled_mm(x8, w[0].t(), scale_a=sx, scale_b=w[1], out_dtype=t.bfloat16)

    def rope_tables(self, T, d):
        pos = self.t.arange(T, device=self.p.dev, dtype=self.t.float32).unsqueeze(-1)
        inv = 1.0 / (10000 ** (self.t.arange(0, d // 2, device=self.p.dev).float() / (d // 2)))
        f = pos * inv
        return f.cos().to(self.t.bfloat16).unsqueeze(1), f.sin().to(self.t.bfloat16).unsqueeze(1)

    # --------------------------------------------------------------------- attention side
    def attention_weights(self, ctx):
        m, h = self.m, self.h
        a, moe = m["attention"], m["moe"]
        W = {"in_norm": self.p.rand(h), "post_norm": self.p.rand(h)}
        if a["kind"] == "mla":
            ql, kvl, rope = a["q_lora_rank"], a["kv_lora_rank"], a["qk_rope_head_dim"]
            nope, v, H = a["qk_nope_head_dim"], a["v_head_dim"], a["heads"]
            W.update(qkv_a=self.weight(ql + kvl + rope, h), q_norm=self.p.rand(ql),
                     kv_norm=self.p.rand(kvl), q_b=self.weight(H * (nope + rope), ql),
                     w_uk=self.p.rand(H, nope, kvl), w_uv=self.p.rand(H, kvl, v),
                     o=self.weight(h, H * v))
            s = a.get("sparse")
            if s is not None and ctx > s["topk"]:
                W.update(iq=self.weight(s["indexer_heads"] * s["indexer_head_dim"], ql),
                         ik=self.weight(s["indexer_head_dim"], h, "bf16"),
                         iw=self.weight(s["indexer_heads"], h, "bf16"),
                         ik_norm=self.p.rand(s["indexer_head_dim"]))
        else:
            H, kvh, d = a["heads"], a["kv_heads"], a["head_dim"]
            W.update(qkv=self.weight((H + 2 * kvh) * d, h), o=self.weight(h, H * d))
            if a.get("qk_norm"):
                W.update(qn=self.p.rand(d), kn=self.p.rand(d))
        W["router"] = self.weight(moe["routed_experts"], h, "bf16")
        if self.shared_here():
            f = moe["expert_ffn"] * moe["shared_experts"]
            W.update(sh_ug=self.weight(2 * f, h), sh_d=self.weight(h, f))
        return W

    def attention_state(self, T, ctx):
        """The activations and caches one call reads: hidden states, KV caches, combine
        buffers (what arrives from the FFN GPUs), rope tables."""
        m, h = self.m, self.h
        a, moe = m["attention"], m["moe"]
        S = {"x": self.p.rand(T, h)}
        inputs = moe["top_k"] + (1 if self.shared_here() else 0)
        S["recv"] = self.p.rand(T, inputs, h)
        if a["kind"] == "mla":
            kvl, rope = a["kv_lora_rank"], a["qk_rope_head_dim"]
            S["kv"] = self.p.rand(T, ctx, kvl + rope)
            S["cos"], S["sin"] = self.rope_tables(T, rope)
            s = a.get("sparse")
            if s is not None and ctx > s["topk"]:
                S["ikv"] = self.p.rand(T, ctx, s["indexer_head_dim"])
        else:
            d, kvh = a["head_dim"], a["kv_heads"]
            window = a.get("sliding_window")
            c = ctx  # layer `dense_layers`: sliding layers are not the ones timed here
            if window and a.get("sliding_every") and m.get("dense_layers", 0) % a["sliding_every"] == 0:
                c = min(ctx, window)
            S["k"] = self.p.rand(T, kvh, c, d)
            S["v"] = self.p.rand(T, kvh, c, d)
            S["cos"], S["sin"] = self.rope_tables(T, d)
        return S

    def attention(self, W, S):
        t, g, m = self.t, self.g, self.m
        a, moe = m["attention"], m["moe"]
        x = S["x"]
        T = x.shape[0]
        y = g.rmsnorm(x, W["in_norm"])
        if a["kind"] == "mla":
            ql, kvl, rope = a["q_lora_rank"], a["kv_lora_rank"], a["qk_rope_head_dim"]
            nope, v, H = a["qk_nope_head_dim"], a["v_head_dim"], a["heads"]
            qkv = self.gemm(y, W["qkv_a"])
            q_a = g.rmsnorm(qkv[:, :ql].contiguous(), W["q_norm"])
            kv_a = g.rmsnorm(qkv[:, ql:ql + kvl].contiguous(), W["kv_norm"])
            if self.dt == "fp8":
                q_a8, q_as = g.quant(q_a)
                q = self.gemm_q(q_a8, q_as, W["q_b"])
            else:
                q = self.gemm(q_a, W["q_b"])
            q = q.view(T, H, nope + rope)
            q_rope = g.rope(q[..., nope:], S["cos"], S["sin"])
            k_rope = g.rope(qkv[:, ql + kvl:].unsqueeze(1), S["cos"], S["sin"])
            q_lat = t.bmm(q[..., :nope].transpose(0, 1), W["w_uk"]).transpose(0, 1)  # absorb
            kv = S["kv"]
            kv[:, -1, :kvl] = kv_a  # the new token's latent and rope key into the cache
            kv[:, -1, kvl:] = k_rope.squeeze(1)
            s = a.get("sparse")
            if "ikv" in S:
                ih, idim = s["indexer_heads"], s["indexer_head_dim"]
                if self.dt == "fp8":
                    iq = self.gemm_q(q_a8, q_as, W["iq"])
                else:
                    iq = self.gemm(q_a, W["iq"])
                S["ikv"][:, -1] = g.rmsnorm(self.gemm(y, W["ik"], "bf16"), W["ik_norm"])
                iw = self.gemm(y, W["iw"], "bf16")
                sc = t.relu(t.bmm(iq.view(T, ih, idim), S["ikv"].transpose(1, 2))) * iw.unsqueeze(-1)
                idx = t.topk(sc.sum(1), s["topk"], dim=-1).indices
                kv = kv.gather(1, idx.unsqueeze(-1).expand(-1, -1, kv.shape[-1]))
            qc = t.cat((q_lat, q_rope), dim=-1)
            p = t.softmax((t.bmm(qc, kv.transpose(1, 2)) * (kvl + rope) ** -0.5).float(), dim=-1)
            o = t.bmm(p.to(t.bfloat16), kv[:, :, :kvl])                                # [T, H, kvl]
            o = t.bmm(o.transpose(0, 1), W["w_uv"]).transpose(0, 1).reshape(T, H * v)  # un-absorb
        else:
            H, kvh, d = a["heads"], a["kv_heads"], a["head_dim"]
            qkv = self.gemm(y, W["qkv"])
            q = qkv[:, :H * d].view(T, H, d)
            k = qkv[:, H * d:(H + kvh) * d].view(T, kvh, d)
            if a.get("qk_norm"):
                q, k = g.rmsnorm(q, W["qn"]), g.rmsnorm(k, W["kn"])
            q, k = g.rope(q, S["cos"], S["sin"]), g.rope(k, S["cos"], S["sin"])
            S["k"][:, :, -1] = k  # the new token's key and value into the cache
            S["v"][:, :, -1] = qkv[:, (H + kvh) * d:].view(T, kvh, d)
            o = t.nn.functional.scaled_dot_product_attention(
                q.unsqueeze(2), S["k"], S["v"], enable_gqa=True).reshape(T, H * d)
        x = g.add(self.gemm(o, W["o"]), x)
        y = g.rmsnorm(x, W["post_norm"])
        w, _ = g.router(self.gemm(y, W["router"], "bf16"), moe["top_k"])
        if m["comm"]["dispatch_dtype"] == "fp8":
            y8, ys = g.quant(y)  # the dispatch copy
        parts_w = w
        if "sh_ug" in W:
            if self.dt == "fp8" and m["comm"]["dispatch_dtype"] == "fp8":
                gu = self.gemm_q(y8, ys, W["sh_ug"])
            else:
                gu = self.gemm(y, W["sh_ug"])
            self.gemm(g.silu_mul(gu), W["sh_d"])
            parts_w = t.cat((w, t.ones(T, 1, device=w.device)), dim=-1)
        return g.combine(S["recv"], parts_w.to(t.bfloat16), x)

    # --------------------------------------------------------------------- FFN side
    def ffn_weights(self, E):
        f, h = self.m["moe"]["expert_ffn"], self.h
        if self.dt == "fp8":
            ug = self.p.rand(E, 2 * f, h).to(self.p.fp8).transpose(-2, -1)
            dn = self.p.rand(E, h, f).to(self.p.fp8).transpose(-2, -1)
            return {"ug": ug, "dn": dn, "sug": self.t.ones(E, 2 * f, device=self.p.dev),
                    "sdn": self.t.ones(E, h, device=self.p.dev)}
        return {"ug": self.p.rand(E, 2 * f, h).transpose(-2, -1),
                "dn": self.p.rand(E, h, f).transpose(-2, -1)}

    def ffn_state(self, E, X):
        t, h = self.t, self.h
        S = {"offs": t.arange(1, E + 1, device=self.p.dev, dtype=t.int32) * X,
             "gate": self.p.rand(E * X, 1).float()}
        if self.m["comm"]["dispatch_dtype"] == "fp8":
            S["x8"] = self.p.rand(E * X, h).to(self.g.fp8)
            S["xs"] = t.ones(E * X, 1, device=self.p.dev)
        else:
            S["x"] = self.p.rand(E * X, h)
        return S

    def grouped(self, x, w, offs, E):
        t = self.t
        if self.p.cuda and hasattr(t, "_grouped_mm"):
            return t._grouped_mm(x, w, offs=offs)
        return t.bmm(x.view(E, -1, x.shape[-1]), w).reshape(-1, w.shape[-1])

    def ffn(self, W, S):
        t, g = self.t, self.g
        E = S["offs"].shape[0]
        if self.dt == "fp8":
            x8, xs = (S["x8"], S["xs"]) if "x8" in S else g.quant(S["x"])
            gu = t._scaled_grouped_mm(x8, W["ug"], xs.view(-1), W["sug"], offs=S["offs"],
                                      out_dtype=t.bfloat16)
            a8, as_ = g.quant(g.silu_mul(gu))
            y = t._scaled_grouped_mm(a8, W["dn"], as_.view(-1), W["sdn"], offs=S["offs"],
                                     out_dtype=t.bfloat16)
        else:
            x = g.dequant(S["x8"], S["xs"]) if "x8" in S else S["x"]
            gu = self.grouped(x, W["ug"], S["offs"], E)
            y = self.grouped(g.silu_mul(gu), W["dn"], S["offs"], E)
        return g.scale_rows(y, S["gate"])


def weight_bytes(W):
    n = 0
    for v in W.values():
        for x in (v if isinstance(v, tuple) else (v,)):
            if x is not None and hasattr(x, "element_size"):
                n += x.numel() * x.element_size()
    return n


def run(prof, models, smoke, modes):
    """Time every (model, side, point, mode); write DIR/layers.csv. Returns rows written."""
    import csv
    import os
    t = prof.torch
    grid = SMOKE_GRID if smoke else GRID
    path = os.path.join(prof.args.out, "layers.csv")
    fh = open(path, "w", newline="")
    w = csv.DictWriter(fh, fieldnames=LAYER_COLS)
    w.writeheader()
    kw = kfh = None
    if getattr(prof.args, "layer_kernels", False):
        kfh = open(os.path.join(prof.args.out, "layers-kernels.csv"), "w", newline="")
        kw = csv.DictWriter(kfh, fieldnames=KERNEL_COLS)
        kw.writeheader()
    written = 0
    for mode in modes:
        try:
            glue = Glue(t, mode == "compiled")
        except Exception as e:
            prof.log(f"FAIL layers mode {mode}: {type(e).__name__}: {str(e)[:200]}")
            continue
        for name, model in models.items():
            dt = model.get("gemm_dtype", "bf16")
            if dt == "fp8" and prof.fp8 is None:
                dt = "bf16"  # CPU smoke: no FP8 GEMMs; the row records what ran
            L = Layer(prof, model, dt, glue)
            layer = model.get("dense_layers", 0)
            for side in ("attention", "ffn"):
                for a, b in grid[side]:
                    if prof.time_left() < 0:
                        break
                    label = f"layer {mode} {name} {side} {a} {b}"
                    try:
                        if side == "attention":
                            Ws = [L.attention_weights(b)]
                            Ws += [L.attention_weights(b) for _ in range(prof.copies(weight_bytes(Ws[0])) - 1)]
                            S = L.attention_state(a, b)
                            call = L.attention
                        else:
                            Ws = [L.ffn_weights(a)]
                            Ws += [L.ffn_weights(a) for _ in range(prof.copies(weight_bytes(Ws[0])) - 1)]
                            S = L.ffn_state(a, b)
                            call = L.ffn
                        i = [0]

                        def fn(Ws=Ws, S=S, call=call, i=i):
                            i[0] = (i[0] + 1) % len(Ws)
                            return call(Ws[i[0]], S)
                        us, reps, how = prof.measure(fn)
                        row = dict(device=prof.name, model=name, side=side, layer=layer,
                                   gemm_dtype=dt, mode=mode, time_us=f"{us:.3f}", reps=reps,
                                   impl=f"{how}/{len(Ws)} weight copies",
                                   tokens="", ctx="", experts="", tokens_per_expert="")
                        if side == "attention":
                            row.update(tokens=a, ctx=b)
                        else:
                            row.update(experts=a, tokens_per_expert=b)
                        w.writerow(row)
                        fh.flush()
                        written += 1
                        if kw is not None:
                            point = {k: row[k] for k in ("device", "model", "side", "tokens", "ctx",
                                                         "experts", "tokens_per_expert", "mode")}
                            for kname, calls, kus in prof.kernel_times(fn):
                                kw.writerow(dict(point, kernel=kname, calls=calls,
                                                 time_us=f"{kus:.3f}"))
                            kfh.flush()
                        prof.log(f"{label}: {us:.1f} us")
                    except Exception as e:
                        prof.failed += 1
                        prof.log(f"FAIL {label}: {type(e).__name__}: {str(e)[:200]}")
                    finally:
                        Ws = S = None
                        if prof.cuda:
                            t.cuda.empty_cache()
    fh.close()
    if kfh is not None:
        kfh.close()
    prof.log(f"layers: {written} rows -> {path}")
    return written
