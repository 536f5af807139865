//! A model layer on a GPU -> per-operator times, for the attention side and the FFN side of AFD.
//!
//! Decode only: `tokens` sequences each add one token with `ctx` tokens already cached. The
//! attention side runs norms, projections, core attention, the router, the shared expert and
//! the post-combine reduction; the FFN side runs the routed experts of one GPU as grouped GEMMs.

use std::fmt;

use super::glue::Glue;
use super::model::{Attention, Gqa, Mla, Model, Side};
use super::predict::{Method, QueryError};
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
                let p = self
                    .table
                    .read_floor(kv_bytes)
                    .ok_or_else(|| QueryError::NoData {
                        table: self.table.name().to_string(),
                        op: Op::HbmRead.name(),
                        dtype: Dtype::Bf16.name(),
                    })?;
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
}

fn positive(name: &'static str, v: u64) -> Result<u64, QueryError> {
    if v == 0 {
        Err(QueryError::Invalid(format!("{name} must be ≥ 1")))
    } else {
        Ok(v)
    }
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
    /// dense layers have no router and run their FFN here (no dispatch).
    pub fn attention_side_at(
        &self,
        table: &ComputeTable,
        layer: u64,
        tokens: u64,
        ctx: u64,
        kernel: AttentionKernel,
    ) -> Result<LayerBreakdown, QueryError> {
        let t = positive("tokens", tokens)?;
        positive("ctx", ctx)?;
        if layer >= self.layers {
            return Err(QueryError::Invalid(format!(
                "layer {layer} is beyond the model's {} layers",
                self.layers
            )));
        }
        if self.shared_expert_side != Side::Attention {
            return Err(QueryError::Invalid(
                "only shared_expert_side = \"attention\" is implemented".into(),
            ));
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
        let c = self.attended_ctx(layer, ctx);
        b.glue("input rmsnorm", Glue::RmsNorm { rows: t, width: h });
        match &self.attention {
            Attention::Mla(m) => self.mla(&mut b, m, t, ctx, c, kernel)?,
            Attention::Gqa(g) => self.gqa(&mut b, g, t, c, kernel)?,
        }
        b.glue("residual add", Glue::ResidualAdd { rows: t, width: h });
        b.glue(
            "post-attention rmsnorm",
            Glue::RmsNorm { rows: t, width: h },
        );
        if layer < self.dense_layers {
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
        if self.shared_experts > 0 {
            let f = self.expert_ffn * self.shared_experts;
            if dt == Dtype::Fp8 && self.dispatch_dtype == Dtype::Fp8 {
                // Reuses the tokens quantised for dispatch.
                b.op("shared expert up+gate", OpQuery::gemm(dt, t, 2 * f, h))?;
            } else {
                b.gemm("shared expert up+gate", dt, t, 2 * f, h)?;
            }
            b.glue("shared silu*mul", Glue::SiluMul { rows: t, width: f });
            b.gemm("shared expert down", dt, t, h, f)?;
        }
        b.glue(
            "combine reduce + residual",
            Glue::CombineReduce {
                rows: t,
                width: h,
                inputs: self.top_k + 1,
            },
        );
        Ok(b.out)
    }

    fn mla(
        &self,
        b: &mut Builder,
        m: &Mla,
        t: u64,
        ctx: u64,
        c: u64,
        kernel: AttentionKernel,
    ) -> Result<(), QueryError> {
        let (h, dt) = (self.hidden, self.gemm_dtype);
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
        b.glue(
            "mla absorb (q_nope @ W_UK)",
            Glue::Bmm {
                batch: heads,
                m: t,
                n: kvl,
                k: m.qk_nope_head_dim,
            },
        );
        if let Some(s) = m.sparse.as_ref().filter(|s| ctx > s.topk) {
            // DSA indexer: its own projections (not in the table: roofline), then the scoring
            // of every cached token and the top-k.
            let (ih, id) = (s.indexer_heads, s.indexer_head_dim);
            // Its input is the already-quantised q_a output: no extra quantisation.
            b.op(
                "indexer q proj",
                OpQuery::gemm(dt, t, ih * id, m.q_lora_rank),
            )?;
            b.op("indexer k proj", OpQuery::gemm(Dtype::Bf16, t, id, h))?;
            b.op("indexer head weights", OpQuery::gemm(Dtype::Bf16, t, ih, h))?;
            b.glue("indexer k norm", Glue::RmsNorm { rows: t, width: id });
            let q = OpQuery::attention(Op::DsaIndexer, t, ctx, ih, 0, id);
            match kernel {
                // The table's unfused BF16 PyTorch indexer (bmm, relu, weighted sum, topk).
                AttentionKernel::Measured => b.op("dsa indexer + topk", q)?,
                // A fused FP8 indexer (DeepGEMM-class): the larger of reading its key cache at
                // the floor / efficiency and its FP8 FLOPs at the table's FP8 GEMM rate.
                AttentionKernel::MemoryFloor { .. } => {
                    let flops = 2.0 * (t * ctx * ih * id) as f64;
                    let rate = b
                        .table
                        .roofline()
                        .get(Op::Gemm, Dtype::Fp8)
                        .or_else(|| b.table.roofline().get(Op::Gemm, Dtype::Bf16))
                        .map(|f| f.flops_per_us);
                    b.core(
                        "dsa indexer (fused)",
                        q,
                        (t * ctx * s.indexer_kv_bytes) as f64,
                        kernel,
                    )?;
                    if let (Some(rate), Some(last)) = (rate, b.out.ops.last_mut()) {
                        last.time_us = last.time_us.max(flops / rate);
                    }
                }
            }
        }
        let latent_bytes = (kvl + rope) * self.kv_bytes_per_value;
        b.core(
            "mla decode",
            OpQuery::attention(Op::MlaDecode, t, c, heads, 1, kvl + rope),
            (t * c * latent_bytes) as f64,
            kernel,
        )?;
        b.glue(
            "mla un-absorb (o @ W_UV)",
            Glue::Bmm {
                batch: heads,
                m: t,
                n: m.v_head_dim,
                k: kvl,
            },
        );
        b.gemm("o proj", dt, t, h, heads * m.v_head_dim)?;
        Ok(())
    }

    fn gqa(
        &self,
        b: &mut Builder,
        g: &Gqa,
        t: u64,
        c: u64,
        kernel: AttentionKernel,
    ) -> Result<(), QueryError> {
        let (h, dt) = (self.hidden, self.gemm_dtype);
        let d = g.head_dim;
        b.gemm("qkv proj", dt, t, (g.heads + 2 * g.kv_heads) * d, h)?;
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
        b.core(
            "gqa decode",
            OpQuery::attention(Op::GqaDecode, t, c, g.heads, g.kv_heads, d),
            (t * c * self.kv_bytes_per_token_per_layer()) as f64,
            kernel,
        )?;
        b.gemm("o proj", dt, t, h, g.heads * d)?;
        Ok(())
    }

    /// The FFN side of one MoE layer on one GPU: `experts_per_gpu` experts with
    /// `tokens_per_expert` tokens each (balanced load).
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
        let (h, f, dt) = (self.hidden, self.expert_ffn, self.gemm_dtype);
        let mut b = Builder {
            table,
            out: LayerBreakdown {
                side: "ffn",
                ops: Vec::with_capacity(8),
            },
        };
        let rows = e * x;
        match (self.dispatch_dtype, dt) {
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
        if dt == Dtype::Fp8 {
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
        (tokens * self.top_k).div_ceil(self.routed_experts).max(1)
    }

    /// The first MoE layer that attends to the whole context (not a sliding-window one).
    pub fn first_full_moe_layer(&self) -> u64 {
        (self.dense_layers..self.layers)
            .find(|&l| !self.is_sliding(l))
            .unwrap_or(self.dense_layers)
    }

    fn is_sliding(&self, layer: u64) -> bool {
        matches!(&self.attention, Attention::Gqa(Gqa { sliding: Some((_, every)), .. }) if layer.is_multiple_of(*every))
    }
}
