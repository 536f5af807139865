//! Weights resident on one GPU: parameters and bytes for a placement of the model.
//!
//! What is counted, per matrix as the checkpoints store them:
//! - the GEMM weights (attention projections, MLA's kv_b, the DSA indexer's q projection, dense
//!   FFN, shared experts) in the model's `gemm_dtype`, the routed experts in its
//!   `expert_dtype` (`moe.expert_weight_dtype`, default `gemm_dtype`): 1 byte per parameter in
//!   FP8 plus one fp32 scale per 128×128 block (DeepSeek-V3's block-wise FP8), 2 in BF16, and
//!   in MXFP4 half a byte per parameter (E2M1) plus one 1-byte E8M0 scale per 32 consecutive
//!   values of a row, i.e. along the input dimension: gpt-oss's checkpoint holds, per layer,
//!   `experts.gate_up_proj_blocks` U8 [experts, 2·ffn, hidden/32, 16] and `_scales` U8
//!   [experts, 2·ffn, hidden/32], likewise `down_proj_*` [experts, hidden, ffn/32, ...] (the
//!   safetensors headers as third-party loaders quote them). 17 bytes per 32 parameters = 4.25
//!   bits per parameter when the row length is a multiple of 32 (a partial last block is
//!   counted whole);
//! - in BF16 always: the embedding and the LM head (not tied in any shipped model; left out
//!   when the model file has no `vocab`), the router, the DSA indexer's k projection and head
//!   weights (as [`super::layer`] runs them), and every norm weight.
//!
//! Not counted (each well under 0.1 % of the shipped models): biases (router correction bias,
//! gpt-oss's attention and expert biases, the indexer's k-norm bias), gpt-oss's attention
//! sinks, the MTP module, and runtime buffers. gpt-oss-120b's expert biases (`*_proj_bias`,
//! BF16: 36 × 128 × 3 × 2,880 = 39.8e6 parameters, 80 MB) are the largest item left out,
//! 0.12 % of its 65 GB.
//!
//! Invariant: a pure function of the model and the placement; arithmetic saturates, so absurd
//! inputs give `u64::MAX`, never a panic.

use super::model::{Attention, FP8_SCALE_BLOCK, MXFP4_BLOCK, MXFP4_SCALE_BYTES, Model, Side};
use super::table::Dtype;

/// Which weights a GPU holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightPlacement {
    /// AFD attention GPU: embeddings + LM head, every layer's attention and norms, the router,
    /// the shared expert(s) when shared_expert_side = attention, the dense layers' FFN.
    AttentionSide,
    /// AFD FFN GPU holding `experts` routed experts of EVERY MoE layer (+ the shared expert if
    /// shared_expert_side = ffn).
    FfnSide { experts: u64 },
    /// Colocated expert parallelism: everything of AttentionSide plus `experts` routed experts
    /// per MoE layer (and the shared expert wherever the model file puts it).
    Colocated { experts: u64 },
}

/// Parameters and bytes of a set of weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    params: u64,
    bytes: u64,
}

impl Tally {
    /// A `rows × cols` matrix in `dtype` (FP8: plus one fp32 scale per 128×128 block; MXFP4:
    /// each row of `cols` input values in blocks of 32, each block 16 bytes of E2M1 pairs + one
    /// E8M0 scale byte).
    fn matrix(rows: u64, cols: u64, dtype: Dtype) -> Tally {
        let params = rows.saturating_mul(cols);
        let bytes = match dtype {
            Dtype::Bf16 => params.saturating_mul(2),
            Dtype::Fp8 => {
                let blocks = rows
                    .div_ceil(FP8_SCALE_BLOCK)
                    .saturating_mul(cols.div_ceil(FP8_SCALE_BLOCK));
                params.saturating_add(blocks.saturating_mul(4))
            }
            Dtype::Mxfp4 => {
                let block_bytes = MXFP4_BLOCK / 2 + MXFP4_SCALE_BYTES;
                rows.saturating_mul(cols.div_ceil(MXFP4_BLOCK))
                    .saturating_mul(block_bytes)
            }
        };
        Tally { params, bytes }
    }

    /// A BF16 vector (a norm weight).
    fn vector(len: u64) -> Tally {
        Tally::matrix(1, len, Dtype::Bf16)
    }

    fn plus(self, o: Tally) -> Tally {
        Tally {
            params: self.params.saturating_add(o.params),
            bytes: self.bytes.saturating_add(o.bytes),
        }
    }

    fn times(self, k: u64) -> Tally {
        Tally {
            params: self.params.saturating_mul(k),
            bytes: self.bytes.saturating_mul(k),
        }
    }
}

fn sum(parts: &[Tally]) -> Tally {
    parts.iter().fold(Tally::default(), |a, &b| a.plus(b))
}

impl Model {
    /// Bytes of weights resident on one GPU for `placement` (what is counted: module doc of
    /// `compute::weights`). `experts` is not checked against the model's routed experts: a GPU
    /// may hold redundant copies of hot experts.
    pub fn weight_bytes(&self, placement: WeightPlacement) -> u64 {
        self.weights(placement).bytes
    }

    /// Parameters resident on one GPU for `placement`, counted as [`Model::weight_bytes`] is.
    pub fn weight_params(&self, placement: WeightPlacement) -> u64 {
        self.weights(placement).params
    }

    fn weights(&self, placement: WeightPlacement) -> Tally {
        let shared = self
            .ffn_block(self.expert_ffn, self.gemm_dtype)
            .times(self.shared_experts);
        let shared_on = |side: Side| {
            if self.shared_expert_side == side {
                shared
            } else {
                Tally::default()
            }
        };
        let moe = self.moe_layers();
        let routed = |experts: u64| {
            self.ffn_block(self.expert_ffn, self.expert_dtype)
                .times(experts)
                .times(moe)
        };
        let attention_side = sum(&[
            self.embeddings(),
            self.attention_weights().times(self.layers),
            self.ffn_block(self.dense_ffn, self.gemm_dtype)
                .times(self.dense_layers()),
            Tally::matrix(self.routed_experts, self.hidden, Dtype::Bf16).times(moe),
            shared_on(Side::Attention).times(moe),
        ]);
        match placement {
            WeightPlacement::AttentionSide => attention_side,
            WeightPlacement::FfnSide { experts } => {
                routed(experts).plus(shared_on(Side::Ffn).times(moe))
            }
            WeightPlacement::Colocated { experts } => sum(&[
                attention_side,
                routed(experts),
                shared_on(Side::Ffn).times(moe),
            ]),
        }
    }

    /// Embedding, LM head and the final norm.
    fn embeddings(&self) -> Tally {
        let table = self.vocab.map_or(Tally::default(), |v| {
            Tally::matrix(v, self.hidden, Dtype::Bf16)
        });
        sum(&[table, table, Tally::vector(self.hidden)])
    }

    /// One layer's attention weights and its two layer norms.
    fn attention_weights(&self) -> Tally {
        let (h, dt) = (self.hidden, self.gemm_dtype);
        let norms = Tally::vector(h).times(2);
        let attention = match &self.attention {
            Attention::Mla(m) => {
                let (heads, q, kvl, rope) =
                    (m.heads, m.q_lora_rank, m.kv_lora_rank, m.qk_rope_head_dim);
                let indexer = m.sparse.as_ref().map_or(Tally::default(), |s| {
                    let (ih, id) = (s.indexer_heads, s.indexer_head_dim);
                    sum(&[
                        Tally::matrix(ih * id, q, dt),
                        Tally::matrix(id, h, Dtype::Bf16),
                        Tally::matrix(ih, h, Dtype::Bf16),
                        Tally::vector(id),
                    ])
                });
                sum(&[
                    Tally::matrix(q, h, dt),
                    Tally::matrix(kvl + rope, h, dt),
                    Tally::matrix(heads * (m.qk_nope_head_dim + rope), q, dt),
                    Tally::matrix(heads * (m.qk_nope_head_dim + m.v_head_dim), kvl, dt),
                    Tally::matrix(h, heads * m.v_head_dim, dt),
                    Tally::vector(q),
                    Tally::vector(kvl),
                    indexer,
                ])
            }
            Attention::Gqa(g) => {
                let d = g.head_dim;
                let qk_norm = if g.qk_norm {
                    Tally::vector(d).times(2)
                } else {
                    Tally::default()
                };
                let q = match g.q_lora_rank {
                    Some(r) => sum(&[
                        Tally::matrix(r, h, dt),
                        Tally::vector(r),
                        Tally::matrix(g.heads * d, r, dt),
                    ]),
                    None => Tally::matrix(g.heads * d, h, dt),
                };
                sum(&[
                    q,
                    Tally::matrix(g.kv_heads * d, h, dt).times(2),
                    Tally::matrix(h, g.heads * d, dt),
                    qk_norm,
                ])
            }
        };
        norms.plus(attention)
    }

    /// A SwiGLU FFN of width `ffn` with weights in `dt`: gate, up and down.
    fn ffn_block(&self, ffn: u64, dt: Dtype) -> Tally {
        let h = self.hidden;
        Tally::matrix(ffn, h, dt)
            .times(2)
            .plus(Tally::matrix(h, ffn, dt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp8_matrices_carry_one_scale_per_block() {
        let t = Tally::matrix(2048, 7168, Dtype::Fp8);
        assert_eq!(t.params, 2048 * 7168);
        assert_eq!(t.bytes, 2048 * 7168 + 16 * 56 * 4);
        let b = Tally::matrix(129, 1, Dtype::Bf16);
        assert_eq!((b.params, b.bytes), (129, 258));
        assert_eq!(Tally::matrix(129, 1, Dtype::Fp8).bytes, 129 + 2 * 4);
    }

    #[test]
    fn mxfp4_rows_are_blocks_of_32_values_with_one_scale_byte() {
        // 2880 = 90 blocks of 32: 90 × (16 + 1) bytes per row.
        let t = Tally::matrix(5760, 2880, Dtype::Mxfp4);
        assert_eq!((t.params, t.bytes), (5760 * 2880, 5760 * 90 * 17));
        // A partial last block takes a whole block's bytes.
        assert_eq!(Tally::matrix(2, 33, Dtype::Mxfp4).bytes, 2 * 2 * 17);
    }

    #[test]
    fn colocated_is_attention_side_plus_ffn_side() {
        for n in Model::embedded_names() {
            let m = Model::embedded(n).unwrap();
            let a = m.weights(WeightPlacement::AttentionSide);
            let f = m.weights(WeightPlacement::FfnSide { experts: 5 });
            let c = m.weights(WeightPlacement::Colocated { experts: 5 });
            assert_eq!(a.plus(f), c, "{n}");
        }
    }
}
