//! A model layer on a GPU -> per-operator times, for the attention side and the FFN side of AFD.
//!
//! An iteration runs `decode` sequences that each add one token with `ctx` tokens already
//! cached, plus at most one prefill chunk (`n` new tokens of a sequence with `p` cached). The
//! attention side runs norms, projections, core attention, the router, the shared expert and
//! the post-combine reduction; the FFN side runs the routed experts of one GPU as grouped GEMMs.
//! Linear operators run once over all the iteration's new tokens; core attention is the decode
//! part plus the chunk's causal attention ([`super::prefill`]). With no chunk, the breakdown is
//! the decode-only one, operator for operator.

use std::fmt;

use super::glue::Glue;
use super::model::{Attention, Gqa, Mla, Model, Side, Sparse};
use super::predict::{Method, QueryError};
use super::prefill::CausalPrefill;
use super::table::{ComputeTable, Dtype, Op, OpQuery};

/// How core decode attention is timed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttentionKernel {
    /// The table's measured kernel (`mla_decode`: unfused PyTorch bmm + softmax + bmm, about 5×
    /// the memory floor; `gqa_decode`: PyTorch SDPA).
    Measured,
    /// The memory floor (`hbm_read` of the same KV bytes) divided by `efficiency`, the fraction
    /// of the floor's bandwidth a fused kernel reaches (FlashMLA-class: 0.9).
    MemoryFloor { efficiency: f64 },
}

impl AttentionKernel {
    /// FlashMLA reports about 3,000 GB/s memory-bound on H800 (deepseek-ai/FlashMLA README),
    /// about 90 % of what a plain read reaches.
    pub const FLASH_MLA: AttentionKernel = AttentionKernel::MemoryFloor { efficiency: 0.9 };
}

impl fmt::Display for AttentionKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttentionKernel::Measured => write!(f, "measured"),
            AttentionKernel::MemoryFloor { efficiency } => {
                write!(f, "memory floor / {efficiency}")
            }
        }
    }
}

/// What one line of a breakdown timed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Work {
    /// A table operator.
    Table(OpQuery),
    /// A glue kernel.
    Glue(Glue),
    /// Reading `hbm_bytes` of KV cache at `1 / efficiency` of the memory floor.
    Floor { hbm_bytes: f64, efficiency: f64 },
    /// A prefill chunk's causal attention: T(prefix + tokens) − T(prefix).
    Prefill(CausalPrefill),
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Work::Table(q) => {
                write!(f, "{} {}", q.op.name(), q.dtype.name())?;
                for field in q.op.required() {
                    write!(f, " {}={}", field.name(), q.get(*field))?;
                }
                Ok(())
            }
            Work::Glue(g) => {
                let (flops, bytes) = g.flops_and_bytes();
                write!(f, "{} {:.3} MB", g.name(), bytes / 1e6)?;
                if flops > 0.0 {
                    write!(f, " {:.3} GFLOP", flops / 1e9)?;
                }
                Ok(())
            }
            Work::Floor {
                hbm_bytes,
                efficiency,
            } => write!(f, "hbm_read {:.3} MB / {efficiency}", hbm_bytes / 1e6),
            Work::Prefill(c) => write!(f, "{c}"),
        }
    }
}

/// How a line's time was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Table(Method),
    /// The glue model (memory-bound: bytes / HBM bandwidth + launch floor).
    Glue,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Table(m) => f.write_str(m.name()),
            Source::Glue => f.write_str("glue"),
        }
    }
}

/// One operator of a layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpTime {
    pub name: &'static str,
    pub work: Work,
    pub time_us: f64,
    pub source: Source,
}

/// The operators one side of a layer runs, in order, and their total.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerBreakdown {
    pub side: &'static str,
    pub ops: Vec<OpTime>,
}

impl LayerBreakdown {
    pub fn total_us(&self) -> f64 {
        self.ops.iter().map(|o| o.time_us).sum()
    }

    /// Time of the lines answered by the table (not glue).
    pub fn table_us(&self) -> f64 {
        self.ops
            .iter()
            .filter(|o| matches!(o.source, Source::Table(_)))
            .map(|o| o.time_us)
            .sum()
    }

    /// Time of the glue lines.
    pub fn glue_us(&self) -> f64 {
        self.total_us() - self.table_us()
    }
}

struct Builder<'a> {
    table: &'a ComputeTable,
    out: LayerBreakdown,
}

impl Builder<'_> {
    fn op(&mut self, name: &'static str, q: OpQuery) -> Result<(), QueryError> {
        let p = self.table.predict(&q)?;
        self.out.ops.push(OpTime {
            name,
            work: Work::Table(q),
            time_us: p.time_us,
            source: Source::Table(p.method),
        });
        Ok(())
    }

    fn glue(&mut self, name: &'static str, g: Glue) {
        self.out.ops.push(OpTime {
            name,
            work: Work::Glue(g),
            time_us: g.time_us(self.table.roofline()),
            source: Source::Glue,
        });
    }

    fn gemm(
        &mut self,
        name: &'static str,
        dtype: Dtype,
        m: u64,
        n: u64,
        k: u64,
    ) -> Result<(), QueryError> {
        if dtype == Dtype::Fp8 {
            self.glue("fp8 quant (input)", Glue::Fp8Quant { rows: m, width: k });
        }
        self.op(name, OpQuery::gemm(dtype, m, n, k))
    }

    /// Core attention reading `kv_bytes` in total, either measured (`q`) or at the floor.
    fn core(
        &mut self,
        name: &'static str,
        q: OpQuery,
        kv_bytes: f64,
        kernel: AttentionKernel,
    ) -> Result<(), QueryError> {
        match kernel {
            AttentionKernel::Measured => self.op(name, q),
            AttentionKernel::MemoryFloor { efficiency } => {
                if !(efficiency > 0.0 && efficiency <= 1.0) {
                    return Err(QueryError::Invalid(format!(
                        "attention kernel efficiency {efficiency} is outside (0, 1]"
                    )));
                }
                let p = self.table.read_floor(kv_bytes)?;
                self.out.ops.push(OpTime {
                    name,
                    work: Work::Floor {
                        hbm_bytes: kv_bytes,
                        efficiency,
                    },
                    time_us: p.time_us / efficiency,
                    source: Source::Table(p.method),
                });
                Ok(())
            }
        }
    }

    /// A prefill chunk's causal attention.
    fn prefill(&mut self, name: &'static str, c: CausalPrefill) -> Result<(), QueryError> {
        let p = c.time(self.table)?;
        self.out.ops.push(OpTime {
            name,
            work: Work::Prefill(c),
            time_us: p.time_us,
            source: Source::Table(p.method),
        });
        Ok(())
    }

    /// The DSA indexer's scoring of `pairs` (query, key) pairs and its top-k: the table's
    /// unfused BF16 PyTorch indexer (bmm, relu, weighted sum, topk) answering `q`, or a fused FP8
    /// indexer (DeepGEMM-class): the larger of reading `key_bytes` of its key cache at the floor
    /// / efficiency and its FP8 FLOPs at the table's FP8 GEMM rate.
    fn indexer_scoring(
        &mut self,
        names: [&'static str; 2],
        q: OpQuery,
        pairs: u64,
        key_bytes: u64,
        kernel: AttentionKernel,
    ) -> Result<(), QueryError> {
        match kernel {
            AttentionKernel::Measured => self.op(names[0], q),
            AttentionKernel::MemoryFloor { .. } => {
                let flops = 2.0 * (pairs * q.heads * q.head_dim) as f64;
                let rate = self
                    .table
                    .roofline()
                    .get(Op::Gemm, Dtype::Fp8)
                    .or_else(|| self.table.roofline().get(Op::Gemm, Dtype::Bf16))
                    .map(|f| f.flops_per_us);
                self.core(names[1], q, key_bytes as f64, kernel)?;
                if let (Some(rate), Some(last)) = (rate, self.out.ops.last_mut()) {
                    last.time_us = last.time_us.max(flops / rate);
                }
                Ok(())
            }
        }
    }
}

fn positive(name: &'static str, v: u64) -> Result<u64, QueryError> {
    if v == 0 {
        Err(QueryError::Invalid(format!("{name} must be ≥ 1")))
    } else {
        Ok(v)
    }
}

/// The new tokens of one iteration: `decode` sequences decoding one token each over `ctx`
/// cached tokens, and a prefill chunk of `chunk` tokens after `prefix` cached ones.
#[derive(Clone, Copy, Debug)]
struct Mix {
    decode: u64,
    ctx: u64,
    chunk: u64,
    prefix: u64,
}

impl Mix {
    fn new(decode: u64, ctx: u64, chunk: u64, prefix: u64) -> Result<Mix, QueryError> {
        if decode == 0 && chunk == 0 {
            return Err(QueryError::Invalid(
                "decode tokens and prefill tokens are both 0: nothing to run".into(),
            ));
        }
        if decode > 0 {
            positive("ctx", ctx)?;
        }
        let sums = [decode.checked_add(chunk), prefix.checked_add(chunk)];
        if sums.iter().any(Option::is_none) {
            return Err(QueryError::Invalid(format!(
                "token counts overflow (decode {decode}, prefill {chunk} after {prefix})"
            )));
        }
        Ok(Mix {
            decode,
            ctx,
            chunk,
            prefix,
        })
    }

    /// Rows of the linear operators: every new token of the iteration.
    fn rows(&self) -> u64 {
        self.decode + self.chunk
    }
}

/// FLOPs per (query, key) pair and head of absorbed MLA (scores over latent + rope, values over
/// the latent) over those of the measured MHA-form prefill kernel (the table's counting: scores
/// and values over `head_dim`, values padded to it).
fn absorbed_over_mha(m: &Mla) -> f64 {
    let absorbed = 2 * (m.kv_lora_rank + m.qk_rope_head_dim) + 2 * m.kv_lora_rank;
    absorbed as f64 / (4 * (m.qk_nope_head_dim + m.qk_rope_head_dim)) as f64
}

impl Model {
    /// The attention side of a full-attention MoE layer for `tokens` decoding sequences with
    /// `ctx` cached tokens each.
    pub fn attention_side(
        &self,
        table: &ComputeTable,
        tokens: u64,
        ctx: u64,
        kernel: AttentionKernel,
    ) -> Result<LayerBreakdown, QueryError> {
        let layer = self.first_full_moe_layer();
        self.attention_side_at(table, layer, tokens, ctx, kernel)
    }

    /// The attention side of layer `layer` (0-based): sliding-window layers read less context;
    /// dense layers have no router and run their FFN here (no dispatch). Decode only: the
    /// mixed iteration with no prefill chunk.
    pub fn attention_side_at(
        &self,
        table: &ComputeTable,
        layer: u64,
        tokens: u64,
        ctx: u64,
        kernel: AttentionKernel,
    ) -> Result<LayerBreakdown, QueryError> {
        positive("tokens", tokens)?;
        positive("ctx", ctx)?;
        self.attention_side_mixed(table, layer, tokens, ctx, 0, 0, kernel)
    }

    /// The attention side of layer `layer` for one iteration that runs `decode_tokens`
    /// sequences decoding one token each over `ctx` cached tokens, plus one prefill chunk of
    /// `prefill_tokens` new tokens of a sequence that already has `prefill_prefix` tokens
    /// cached (0 at the start of a prompt). Either count may be 0, not both; `ctx` matters only
    /// with decode tokens.
    ///
    /// The shared expert runs here only with `shared_expert_side = "attention"` (else on the FFN
    /// GPUs: [`Model::shared_expert_ffn_side`]).
    ///
    /// Linear operators (projections, router, shared expert, dense FFN of dense layers, norms
    /// and glue) run once at m = decode_tokens + prefill_tokens. Core attention is the decode
    /// part (as [`Model::attention_side_at`] times it) plus the chunk's causal attention over
    /// prefix + itself, T(p + n) − T(p) from the table's `mla_prefill` / `gqa_prefill` rows
    /// (quadratic causal work; see [`super::prefill`]): chunks of one prompt sum to the whole
    /// prompt's attention. `kernel` applies to the decode attention and the DSA indexer; the
    /// prefill kernel is the measured SDPA (already a fused flash kernel).
    ///
    /// Per attention kind:
    /// - dense MLA (DeepSeek-V3, Kimi K2): the chunk runs in the MHA form the table measured, so
    ///   the latents of prefix + chunk are up-projected to per-head K and V (`kv_b proj` at
    ///   m = p + n, as vLLM and SGLang do for chunked prefill); MLA's absorb / un-absorb only
    ///   run for the decode tokens.
    /// - DSA (DeepSeek-V3.2): the chunk runs in the absorbed (MQA) form over the latent, as
    ///   DeepSeek's sparse kernels do; each query attends to min(visible, topk) tokens. Timed
    ///   with the MHA kernel's rows scaled by the FLOPs per (query, key) of the absorbed form
    ///   (2.83x): i.e. at the measured kernel's TFLOPS (FlashMLA reports 580–660 TFLOPS
    ///   compute-bound for its absorbed kernel on H800, the same order; not validated). When prefix + chunk exceeds topk, the indexer scores every new
    ///   token against every token it sees (n·p + n(n+1)/2 pairs), timed as the table's decode
    ///   indexer with n queries over the mean visible context p + ⌈(n+1)/2⌉ (no prefill indexer
    ///   rows exist); its projections run once for the decode and chunk tokens that need it.
    ///   As in decode, no indexer runs while everything visible fits in topk.
    /// - GQA: sliding-window layers attend to min(window, visible) keys per query.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_side_mixed(
        &self,
        table: &ComputeTable,
        layer: u64,
        decode_tokens: u64,
        ctx: u64,
        prefill_tokens: u64,
        prefill_prefix: u64,
        kernel: AttentionKernel,
    ) -> Result<LayerBreakdown, QueryError> {
        let mix = Mix::new(decode_tokens, ctx, prefill_tokens, prefill_prefix)?;
        if layer >= self.layers {
            return Err(QueryError::Invalid(format!(
                "layer {layer} is beyond the model's {} layers",
                self.layers
            )));
        }
        let mut b = Builder {
            table,
            out: LayerBreakdown {
                side: "attention",
                ops: Vec::with_capacity(32),
            },
        };
        let h = self.hidden;
        let dt = self.gemm_dtype;
        let t = mix.rows();
        b.glue("input rmsnorm", Glue::RmsNorm { rows: t, width: h });
        match &self.attention {
            Attention::Mla(m) => self.mla(&mut b, m, layer, &mix, kernel)?,
            Attention::Gqa(g) => self.gqa(&mut b, g, layer, &mix, kernel)?,
        }
        b.glue("residual add", Glue::ResidualAdd { rows: t, width: h });
        b.glue(
            "post-attention rmsnorm",
            Glue::RmsNorm { rows: t, width: h },
        );
        if !self.is_moe(layer) {
            let f = self.dense_ffn;
            b.gemm("dense up+gate", dt, t, 2 * f, h)?;
            b.glue("silu*mul", Glue::SiluMul { rows: t, width: f });
            b.gemm("dense down", dt, t, h, f)?;
            b.glue(
                "residual add (ffn)",
                Glue::ResidualAdd { rows: t, width: h },
            );
            return Ok(b.out);
        }
        b.op(
            "router",
            OpQuery::gemm(Dtype::Bf16, t, self.routed_experts, h),
        )?;
        b.glue(
            "router softmax+topk",
            Glue::RouterTopk {
                rows: t,
                experts: self.routed_experts,
                top_k: self.top_k,
            },
        );
        if self.dispatch_dtype == Dtype::Fp8 {
            b.glue("fp8 quant (dispatch)", Glue::Fp8Quant { rows: t, width: h });
        }
        if self.shared_expert_side == Side::Attention {
            self.shared_expert(&mut b, t)?;
        }
        b.glue(
            "combine reduce + residual",
            Glue::CombineReduce {
                rows: t,
                width: h,
                // The shared expert's output is one more input where it runs here; on the
                // FFN side it comes back inside a combine copy.
                inputs: self.top_k + u64::from(self.shared_expert_side == Side::Attention),
            },
        );
        Ok(b.out)
    }

    /// The shared expert(s) for `t` tokens whose (FP8) dispatch copy already exists when the
    /// dispatch is FP8: up+gate reuses it.
    fn shared_expert(&self, b: &mut Builder, t: u64) -> Result<(), QueryError> {
        if self.shared_experts == 0 {
            return Ok(());
        }
        let (h, dt) = (self.hidden, self.gemm_dtype);
        let f = self.expert_ffn * self.shared_experts;
        if dt == Dtype::Fp8 && self.dispatch_dtype == Dtype::Fp8 {
            // Reuses the tokens quantised for dispatch.
            b.op("shared expert up+gate", OpQuery::gemm(dt, t, 2 * f, h))?;
        } else {
            b.gemm("shared expert up+gate", dt, t, 2 * f, h)?;
        }
        b.glue("shared silu*mul", Glue::SiluMul { rows: t, width: f });
        b.gemm("shared expert down", dt, t, h, f)
    }

    /// The shared expert(s) on an FFN GPU (`shared_expert_side = "ffn"`) for the `tokens`
    /// tokens assigned to it: the same GEMMs as on the attention side, on the dispatched copy
    /// of each token, plus adding the output into the token's combine copy.
    pub fn shared_expert_ffn_side(
        &self,
        table: &ComputeTable,
        tokens: u64,
    ) -> Result<LayerBreakdown, QueryError> {
        let t = positive("tokens", tokens)?;
        let mut b = Builder {
            table,
            out: LayerBreakdown {
                side: "ffn",
                ops: Vec::with_capacity(6),
            },
        };
        self.shared_expert(&mut b, t)?;
        b.glue(
            "shared output into combine",
            Glue::ResidualAdd {
                rows: t,
                width: self.hidden,
            },
        );
        Ok(b.out)
    }

    fn mla(
        &self,
        b: &mut Builder,
        m: &Mla,
        layer: u64,
        mix: &Mix,
        kernel: AttentionKernel,
    ) -> Result<(), QueryError> {
        let (h, dt, t) = (self.hidden, self.gemm_dtype, mix.rows());
        let (heads, kvl, rope) = (m.heads, m.kv_lora_rank, m.qk_rope_head_dim);
        b.gemm("q_a+kv_a proj", dt, t, m.q_lora_rank + kvl + rope, h)?;
        b.glue(
            "q_a rmsnorm",
            Glue::RmsNorm {
                rows: t,
                width: m.q_lora_rank,
            },
        );
        b.glue(
            "kv_a rmsnorm",
            Glue::RmsNorm {
                rows: t,
                width: kvl,
            },
        );
        b.gemm(
            "q_b proj",
            dt,
            t,
            heads * (m.qk_nope_head_dim + rope),
            m.q_lora_rank,
        )?;
        b.glue(
            "rope",
            Glue::Rope {
                rows: t,
                width: (heads + 1) * rope,
            },
        );
        // DSA runs the chunk in the absorbed form too; dense MLA prefill runs the MHA form.
        let absorbed = mix.decode + if m.sparse.is_some() { mix.chunk } else { 0 };
        if absorbed > 0 {
            b.glue(
                "mla absorb (q_nope @ W_UK)",
                Glue::Bmm {
                    batch: heads,
                    m: absorbed,
                    n: kvl,
                    k: m.qk_nope_head_dim,
                },
            );
        }
        if let Some(s) = &m.sparse {
            self.dsa_indexer(b, m, s, mix, kernel)?;
        }
        if mix.chunk > 0 && m.sparse.is_none() {
            b.gemm(
                "kv_b proj (prefix+chunk K/V)",
                dt,
                mix.prefix + mix.chunk,
                heads * (m.qk_nope_head_dim + m.v_head_dim),
                kvl,
            )?;
        }
        if mix.decode > 0 {
            let c = self.attended_ctx(layer, mix.ctx);
            let latent_bytes = (kvl + rope) * self.kv_bytes_per_value;
            b.core(
                "mla decode",
                OpQuery::attention(Op::MlaDecode, mix.decode, c, heads, 1, kvl + rope),
                (mix.decode * c * latent_bytes) as f64,
                kernel,
            )?;
        }
        if mix.chunk > 0 {
            let d = m.qk_nope_head_dim + rope;
            let c = CausalPrefill::new(Op::MlaPrefill, heads, heads, d, mix.prefix, mix.chunk)?;
            match &m.sparse {
                None => b.prefill("mla prefill chunk", c)?,
                Some(s) => b.prefill(
                    "mla prefill chunk (dsa)",
                    CausalPrefill {
                        window: Some(s.topk),
                        scale: absorbed_over_mha(m),
                        ..c
                    },
                )?,
            }
        }
        if absorbed > 0 {
            b.glue(
                "mla un-absorb (o @ W_UV)",
                Glue::Bmm {
                    batch: heads,
                    m: absorbed,
                    n: m.v_head_dim,
                    k: kvl,
                },
            );
        }
        b.gemm("o proj", dt, t, h, heads * m.v_head_dim)?;
        Ok(())
    }

    /// DSA indexer: its own projections (not in the table: roofline), then the scoring of
    /// every visible token and the top-k, for the decode tokens whose context exceeds topk and
    /// for a chunk whose prefix + itself does.
    fn dsa_indexer(
        &self,
        b: &mut Builder,
        m: &Mla,
        s: &Sparse,
        mix: &Mix,
        kernel: AttentionKernel,
    ) -> Result<(), QueryError> {
        let decode = if mix.ctx > s.topk { mix.decode } else { 0 };
        let (p, n) = (mix.prefix, mix.chunk);
        let chunk = if p + n > s.topk { n } else { 0 };
        let rows = decode + chunk;
        if rows == 0 {
            return Ok(());
        }
        let (h, dt) = (self.hidden, self.gemm_dtype);
        let (ih, id) = (s.indexer_heads, s.indexer_head_dim);
        // Its input is the already-quantised q_a output: no extra quantisation.
        b.op(
            "indexer q proj",
            OpQuery::gemm(dt, rows, ih * id, m.q_lora_rank),
        )?;
        b.op("indexer k proj", OpQuery::gemm(Dtype::Bf16, rows, id, h))?;
        b.op(
            "indexer head weights",
            OpQuery::gemm(Dtype::Bf16, rows, ih, h),
        )?;
        b.glue("indexer k norm", Glue::RmsNorm { rows, width: id });
        if decode > 0 {
            let ctx = mix.ctx;
            b.indexer_scoring(
                ["dsa indexer + topk", "dsa indexer (fused)"],
                OpQuery::attention(Op::DsaIndexer, decode, ctx, ih, 0, id),
                decode * ctx,
                decode * ctx * s.indexer_kv_bytes,
                kernel,
            )?;
        }
        if chunk > 0 {
            // n queries over the mean visible context: the same pairs as the causal chunk.
            let mean_ctx = p + (n + 2) / 2;
            b.indexer_scoring(
                ["dsa indexer (prefill)", "dsa indexer (fused, prefill)"],
                OpQuery::attention(Op::DsaIndexer, n, mean_ctx, ih, 0, id),
                n * p + n * (n + 1) / 2,
                (p + n) * s.indexer_kv_bytes,
                kernel,
            )?;
        }
        Ok(())
    }

    fn gqa(
        &self,
        b: &mut Builder,
        g: &Gqa,
        layer: u64,
        mix: &Mix,
        kernel: AttentionKernel,
    ) -> Result<(), QueryError> {
        let (h, dt, t) = (self.hidden, self.gemm_dtype, mix.rows());
        let d = g.head_dim;
        match g.q_lora_rank {
            // Step-3's MFA: the query down to its rank with K and V in one GEMM, normalised,
            // then up to every head (vLLM `Step3TextAttention`).
            Some(r) => {
                b.gemm("q_a + kv proj", dt, t, r + 2 * g.kv_heads * d, h)?;
                b.glue("q rmsnorm", Glue::RmsNorm { rows: t, width: r });
                b.gemm("q_b proj", dt, t, g.heads * d, r)?;
            }
            None => b.gemm("qkv proj", dt, t, (g.heads + 2 * g.kv_heads) * d, h)?,
        }
        if g.qk_norm {
            b.glue(
                "q/k rmsnorm",
                Glue::RmsNorm {
                    rows: t,
                    width: (g.heads + g.kv_heads) * d,
                },
            );
        }
        b.glue(
            "rope",
            Glue::Rope {
                rows: t,
                width: (g.heads + g.kv_heads) * d,
            },
        );
        if mix.decode > 0 {
            let c = self.attended_ctx(layer, mix.ctx);
            b.core(
                "gqa decode",
                OpQuery::attention(Op::GqaDecode, mix.decode, c, g.heads, g.kv_heads, d),
                (mix.decode * c * self.kv_bytes_per_token_per_layer()) as f64,
                kernel,
            )?;
        }
        if mix.chunk > 0 {
            let c = CausalPrefill::new(
                Op::GqaPrefill,
                g.heads,
                g.kv_heads,
                d,
                mix.prefix,
                mix.chunk,
            )?;
            let window = g.sliding.filter(|_| self.is_sliding(layer)).map(|s| s.0);
            b.prefill("gqa prefill chunk", CausalPrefill { window, ..c })?;
        }
        b.gemm("o proj", dt, t, h, g.heads * d)?;
        Ok(())
    }

    /// The FFN side of one MoE layer on one GPU: `experts_per_gpu` experts with
    /// `tokens_per_expert` tokens each (balanced load), as grouped GEMMs in the experts' weight
    /// format (`expert_dtype`; an MXFP4 GEMM is timed from the table's BF16 rows, see
    /// `ComputeTable::predict`).
    pub fn ffn_side(
        &self,
        table: &ComputeTable,
        experts_per_gpu: u64,
        tokens_per_expert: u64,
    ) -> Result<LayerBreakdown, QueryError> {
        let e = positive("experts per GPU", experts_per_gpu)?;
        let x = positive("tokens per expert", tokens_per_expert)?;
        if e > self.routed_experts {
            return Err(QueryError::Invalid(format!(
                "{e} experts per GPU exceeds the model's {} routed experts",
                self.routed_experts
            )));
        }
        // The experts' weight format; MXFP4 experts take BF16 activations (w4a16), so the glue
        // around them is that of BF16 experts.
        let (h, f, dt) = (self.hidden, self.expert_ffn, self.expert_dtype);
        let act = dt.activation();
        let mut b = Builder {
            table,
            out: LayerBreakdown {
                side: "ffn",
                ops: Vec::with_capacity(8),
            },
        };
        let rows = e.saturating_mul(x);
        match (self.dispatch_dtype, act) {
            (Dtype::Bf16, Dtype::Fp8) => {
                b.glue("fp8 quant (input)", Glue::Fp8Quant { rows, width: h })
            }
            (Dtype::Fp8, Dtype::Bf16) => {
                b.glue("fp8 dequant (input)", Glue::Fp8Dequant { rows, width: h })
            }
            _ => {}
        }
        b.op("experts up+gate", OpQuery::grouped_gemm(dt, e, x, 2 * f, h))?;
        b.glue(
            "silu*mul",
            Glue::SiluMul {
                rows: e * x,
                width: f,
            },
        );
        if act == Dtype::Fp8 {
            b.glue(
                "fp8 quant (down input)",
                Glue::Fp8Quant {
                    rows: e * x,
                    width: f,
                },
            );
        }
        b.op("experts down", OpQuery::grouped_gemm(dt, e, x, h, f))?;
        // Weighted per-token sum of this GPU's expert outputs before the combine transfer.
        b.glue(
            "weighted sum per token",
            Glue::CombineReduce {
                rows: e * x,
                width: h,
                inputs: 1,
            },
        );
        Ok(b.out)
    }

    /// The default tokens per expert when `tokens` tokens are routed over all experts evenly.
    pub fn balanced_tokens_per_expert(&self, tokens: u64) -> u64 {
        tokens
            .saturating_mul(self.top_k)
            .div_ceil(self.routed_experts)
            .max(1)
    }

    /// The first MoE layer that attends to the whole context (not a sliding-window one).
    pub fn first_full_moe_layer(&self) -> u64 {
        let first = self.moe_layer_indices().next().unwrap_or(self.layers);
        self.moe_layer_indices()
            .find(|&l| !self.is_sliding(l))
            .unwrap_or(first)
    }

    fn is_sliding(&self, layer: u64) -> bool {
        matches!(&self.attention, Attention::Gqa(Gqa { sliding: Some((_, every)), .. }) if layer.is_multiple_of(*every))
    }
}
