//! Model definitions: `workloads/models/*.toml` as written -> a validated [`Model`].
//!
//! A model file holds the config.json figures that set operator shapes (hidden size, attention
//! geometry, experts); [`crate::compute::layer`] maps them to operators. Byte and FLOP
//! accounting lives here so that the AFD pipeline and the validation cases share one copy.

use std::path::Path;

use serde::Deserialize;

use crate::error::InputError;

use super::table::Dtype;

/// Values per FP8 scale in DeepEP-style dispatch (one fp32 scale per 128 values).
pub const FP8_SCALE_BLOCK: u64 = 128;
const FP8_SCALE_BYTES: u64 = 4;
/// Values per MXFP4 scale (OCP Microscaling: one E8M0 byte per block of 32 E2M1 values).
pub const MXFP4_BLOCK: u64 = 32;
pub const MXFP4_SCALE_BYTES: u64 = 1;

const EMBEDDED: [(&str, &str); 7] = [
    (
        "deepseek-v3",
        include_str!("../../workloads/models/deepseek-v3.toml"),
    ),
    (
        "deepseek-v3.2",
        include_str!("../../workloads/models/deepseek-v3.2.toml"),
    ),
    (
        "kimi-k2",
        include_str!("../../workloads/models/kimi-k2.toml"),
    ),
    (
        "qwen3-235b-a22b",
        include_str!("../../workloads/models/qwen3-235b-a22b.toml"),
    ),
    (
        "qwen3-30b-a3b",
        include_str!("../../workloads/models/qwen3-30b-a3b.toml"),
    ),
    (
        "gpt-oss-120b",
        include_str!("../../workloads/models/gpt-oss-120b.toml"),
    ),
    ("step3", include_str!("../../workloads/models/step3.toml")),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: String,
    hidden: u64,
    #[serde(default)]
    vocab: Option<u64>,
    layers: u64,
    #[serde(default)]
    dense_layers: Option<u64>,
    #[serde(default)]
    moe_layers: Option<Vec<(u64, u64)>>,
    dense_ffn: u64,
    gemm_dtype: String,
    shared_expert_side: String,
    attention: RawAttention,
    moe: RawMoe,
    comm: RawComm,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttention {
    kind: String,
    heads: u64,
    kv_bytes_per_value: u64,
    // MLA
    q_lora_rank: Option<u64>,
    kv_lora_rank: Option<u64>,
    qk_rope_head_dim: Option<u64>,
    qk_nope_head_dim: Option<u64>,
    v_head_dim: Option<u64>,
    sparse: Option<RawSparse>,
    // GQA (q_lora_rank, above, also: a low-rank query, Step-3's MFA)
    kv_heads: Option<u64>,
    head_dim: Option<u64>,
    qk_norm: Option<bool>,
    sliding_window: Option<u64>,
    sliding_every: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSparse {
    indexer_heads: u64,
    indexer_head_dim: u64,
    topk: u64,
    indexer_kv_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMoe {
    routed_experts: u64,
    shared_experts: u64,
    top_k: u64,
    expert_ffn: u64,
    #[serde(default)]
    expert_weight_dtype: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComm {
    dispatch_dtype: String,
    combine_dtype: String,
}

/// Multi-head latent attention (DeepSeek-V3 family).
#[derive(Clone, Debug, PartialEq)]
pub struct Mla {
    pub heads: u64,
    pub q_lora_rank: u64,
    pub kv_lora_rank: u64,
    pub qk_rope_head_dim: u64,
    pub qk_nope_head_dim: u64,
    pub v_head_dim: u64,
    pub sparse: Option<Sparse>,
}

/// DeepSeek Sparse Attention: indexer over all tokens, MLA over the top `topk`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sparse {
    pub indexer_heads: u64,
    pub indexer_head_dim: u64,
    pub topk: u64,
    pub indexer_kv_bytes: u64,
}

/// Grouped-query attention.
#[derive(Clone, Debug, PartialEq)]
pub struct Gqa {
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub qk_norm: bool,
    /// A low-rank query (Step-3's multi-matrix factorization attention): the hidden vector is
    /// projected to this rank with K and V, RMS-normalised, then up to every head's query
    /// (vLLM `Step3TextAttention`: `qkv_proj`, `inter_norm`, `wq`). `None`: one projection.
    pub q_lora_rank: Option<u64>,
    /// `Some((window, every))`: layers 0, every, 2·every … attend to the last `window` tokens.
    pub sliding: Option<(u64, u64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Attention {
    Mla(Mla),
    Gqa(Gqa),
}

/// Where the shared expert runs in AFD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Attention,
    Ffn,
}

/// A validated model definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: String,
    pub hidden: u64,
    /// Vocabulary size (`vocab_size`): embedding and LM head rows. Optional in a model file;
    /// without it the weight accounting leaves both out.
    pub vocab: Option<u64>,
    pub layers: u64,
    /// Which layers are MoE layers (the others run the dense FFN), one flag per layer
    /// (`layers` of them); read it through [`Model::is_moe`] and [`Model::moe_index`].
    pub moe_mask: Vec<bool>,
    pub dense_ffn: u64,
    pub gemm_dtype: Dtype,
    pub shared_expert_side: Side,
    pub attention: Attention,
    pub kv_bytes_per_value: u64,
    pub routed_experts: u64,
    pub shared_experts: u64,
    pub top_k: u64,
    pub expert_ffn: u64,
    /// Weight format of the routed experts (`moe.expert_weight_dtype`; default `gemm_dtype`):
    /// the dtype of their grouped GEMMs and of their resident bytes. `Mxfp4` runs them with
    /// BF16 activations. Shared experts, dense FFN and attention stay in `gemm_dtype`.
    pub expert_dtype: Dtype,
    pub dispatch_dtype: Dtype,
    pub combine_dtype: Dtype,
}

/// FLOPs of decoding one token, summed over all layers, in the Step-3 report's categories.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeFlops {
    /// Score and value products against the KV cache (plus the DSA indexer).
    pub attention: f64,
    /// Attention projections, including MLA's absorbed up-projections.
    pub linear: f64,
    /// Routed + shared experts and dense FFN layers (the router excluded).
    pub ffn: f64,
}

impl Model {
    /// A model shipped with the binary (see [`Model::embedded_names`]).
    pub fn embedded(name: &str) -> Result<Model, InputError> {
        let (n, text) = EMBEDDED.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            InputError::new(
                "<command line>",
                "--model",
                format!(
                    "unknown model `{name}` (known: {})",
                    Model::embedded_names().join(", ")
                ),
            )
        })?;
        Model::parse(&format!("<embedded {n}.toml>"), text)
    }

    pub fn embedded_names() -> Vec<&'static str> {
        EMBEDDED.iter().map(|(n, _)| *n).collect()
    }

    pub fn load(path: &Path) -> Result<Model, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::for_path(path, "", format!("cannot read model file: {e}")))?;
        Model::parse(&path.display().to_string(), &text)
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Model, InputError> {
        // Key path and line of a type error, an unknown or a missing key; the line (and
        // the key that line sets) of a syntax error.
        let raw: RawModel = crate::input::parse_toml(text, file)?;
        let err = |key: &str, msg: String| InputError::new(file, key, msg);
        let pos = |key: &str, v: u64| {
            if v == 0 {
                Err(err(key, "must be ≥ 1".into()))
            } else {
                Ok(v)
            }
        };
        let need = |key: &str, v: Option<u64>| match v {
            Some(v) if v > 0 => Ok(v),
            Some(_) => Err(err(key, "must be ≥ 1".into())),
            None => Err(err(key, "is required for this attention kind".into())),
        };
        // Attention GEMMs and activations: bf16 or fp8 (mxfp4 is a weight format only).
        let dtype = |key: &str, s: &str| match Dtype::parse(s) {
            Some(d @ (Dtype::Bf16 | Dtype::Fp8)) => Ok(d),
            _ => Err(err(key, format!("`{s}` is not a dtype (bf16 or fp8)"))),
        };
        let gemm_dtype = dtype("gemm_dtype", &raw.gemm_dtype)?;
        let expert_dtype = match raw.moe.expert_weight_dtype.as_deref() {
            None => gemm_dtype,
            Some(s) => Dtype::parse(s).ok_or_else(|| {
                err(
                    "moe.expert_weight_dtype",
                    format!("`{s}` is not an expert weight format (bf16, fp8 or mxfp4)"),
                )
            })?,
        };
        let a = &raw.attention;
        let attention = match a.kind.as_str() {
            "mla" => Attention::Mla(Mla {
                heads: pos("attention.heads", a.heads)?,
                q_lora_rank: need("attention.q_lora_rank", a.q_lora_rank)?,
                kv_lora_rank: need("attention.kv_lora_rank", a.kv_lora_rank)?,
                qk_rope_head_dim: need("attention.qk_rope_head_dim", a.qk_rope_head_dim)?,
                qk_nope_head_dim: need("attention.qk_nope_head_dim", a.qk_nope_head_dim)?,
                v_head_dim: need("attention.v_head_dim", a.v_head_dim)?,
                sparse: match &a.sparse {
                    None => None,
                    Some(s) => Some(Sparse {
                        indexer_heads: pos("attention.sparse.indexer_heads", s.indexer_heads)?,
                        indexer_head_dim: pos(
                            "attention.sparse.indexer_head_dim",
                            s.indexer_head_dim,
                        )?,
                        topk: pos("attention.sparse.topk", s.topk)?,
                        indexer_kv_bytes: s.indexer_kv_bytes,
                    }),
                },
            }),
            "gqa" => {
                let heads = pos("attention.heads", a.heads)?;
                let kv_heads = need("attention.kv_heads", a.kv_heads)?;
                if heads % kv_heads != 0 {
                    return Err(err(
                        "attention.kv_heads",
                        format!("{kv_heads} does not divide heads = {heads}"),
                    ));
                }
                let sliding = match (a.sliding_window, a.sliding_every) {
                    (None, None) => None,
                    (Some(w), Some(e)) => Some((
                        pos("attention.sliding_window", w)?,
                        pos("attention.sliding_every", e)?,
                    )),
                    _ => {
                        return Err(err(
                            "attention.sliding_window",
                            "sliding_window and sliding_every go together".into(),
                        ));
                    }
                };
                Attention::Gqa(Gqa {
                    heads,
                    kv_heads,
                    head_dim: need("attention.head_dim", a.head_dim)?,
                    qk_norm: a.qk_norm.unwrap_or(false),
                    sliding,
                    q_lora_rank: a
                        .q_lora_rank
                        .map(|r| pos("attention.q_lora_rank", r))
                        .transpose()?,
                })
            }
            other => {
                return Err(err(
                    "attention.kind",
                    format!("`{other}` is not an attention kind (mla or gqa)"),
                ));
            }
        };
        let side = match raw.shared_expert_side.as_str() {
            "attention" => Side::Attention,
            "ffn" => Side::Ffn,
            other => {
                return Err(err(
                    "shared_expert_side",
                    format!("`{other}`: expected attention or ffn"),
                ));
            }
        };
        let layers = pos("layers", raw.layers)?;
        let moe_mask = match (raw.dense_layers, &raw.moe_layers) {
            (Some(d), None) => {
                if d > layers {
                    return Err(err(
                        "dense_layers",
                        format!("{d} exceeds layers = {layers}"),
                    ));
                }
                (0..layers).map(|l| l >= d).collect()
            }
            (None, Some(ranges)) => {
                let mut mask = vec![false; layers as usize];
                for &(first, last) in ranges {
                    if first > last || last >= layers {
                        return Err(err(
                            "moe_layers",
                            format!(
                                "[{first}, {last}] is not a range of layer indices \
                                 (first <= last < layers = {layers})"
                            ),
                        ));
                    }
                    for l in first..=last {
                        if std::mem::replace(&mut mask[l as usize], true) {
                            return Err(err("moe_layers", format!("layer {l} is listed twice")));
                        }
                    }
                }
                mask
            }
            _ => {
                return Err(err(
                    "dense_layers",
                    "give either dense_layers (the first layers are dense, the rest MoE) or \
                     moe_layers (ranges [first, last] of MoE layer indices), not both or \
                     neither"
                        .into(),
                ));
            }
        };
        let routed = pos("moe.routed_experts", raw.moe.routed_experts)?;
        let top_k = pos("moe.top_k", raw.moe.top_k)?;
        if top_k > routed {
            return Err(err(
                "moe.top_k",
                format!("{top_k} exceeds routed_experts = {routed}"),
            ));
        }
        if !(1..=4).contains(&a.kv_bytes_per_value) {
            return Err(err(
                "attention.kv_bytes_per_value",
                format!("{} is outside 1..=4", a.kv_bytes_per_value),
            ));
        }
        Ok(Model {
            name: raw.name,
            hidden: pos("hidden", raw.hidden)?,
            vocab: raw.vocab.map(|v| pos("vocab", v)).transpose()?,
            layers,
            moe_mask,
            dense_ffn: pos("dense_ffn", raw.dense_ffn)?,
            gemm_dtype,
            shared_expert_side: side,
            attention,
            kv_bytes_per_value: a.kv_bytes_per_value,
            routed_experts: routed,
            shared_experts: raw.moe.shared_experts,
            top_k,
            expert_ffn: pos("moe.expert_ffn", raw.moe.expert_ffn)?,
            expert_dtype,
            dispatch_dtype: dtype("comm.dispatch_dtype", &raw.comm.dispatch_dtype)?,
            combine_dtype: dtype("comm.combine_dtype", &raw.comm.combine_dtype)?,
        })
    }

    /// Bytes of one token's hidden vector sent to one destination: BF16 = 2 B per value; FP8 =
    /// 1 B per value + one 4-byte scale per 128 values (DeepSeek-V3: 7,168 + 224 = 7,392 B;
    /// DeepEP's 7,408 adds 16 B of routing metadata, not counted here); MXFP4 (no model file
    /// sends it: `comm` dtypes are bf16 or fp8) = 4 bits per value + one byte per 32 values.
    pub fn activation_bytes_per_token(&self, dtype: Dtype) -> u64 {
        match dtype {
            Dtype::Bf16 => self.hidden * 2,
            Dtype::Fp8 => self.hidden + self.hidden.div_ceil(FP8_SCALE_BLOCK) * FP8_SCALE_BYTES,
            Dtype::Mxfp4 => {
                self.hidden.div_ceil(2) + self.hidden.div_ceil(MXFP4_BLOCK) * MXFP4_SCALE_BYTES
            }
        }
    }

    /// Dispatch bytes per (token, destination) in `dtype`.
    pub fn dispatch_bytes_per_token(&self, dtype: Dtype) -> u64 {
        self.activation_bytes_per_token(dtype)
    }

    /// Combine bytes per (token, destination) in `dtype`.
    pub fn combine_bytes_per_token(&self, dtype: Dtype) -> u64 {
        self.activation_bytes_per_token(dtype)
    }

    /// KV-cache bytes one token adds to one layer (MLA: latent + rope, plus the DSA indexer's
    /// keys; GQA: K and V of every KV head).
    pub fn kv_bytes_per_token_per_layer(&self) -> u64 {
        match &self.attention {
            Attention::Mla(m) => {
                (m.kv_lora_rank + m.qk_rope_head_dim) * self.kv_bytes_per_value
                    + m.sparse.as_ref().map_or(0, |s| s.indexer_kv_bytes)
            }
            Attention::Gqa(g) => 2 * g.kv_heads * g.head_dim * self.kv_bytes_per_value,
        }
    }

    /// KV-cache bytes one token occupies over all layers (the DSA indexer's keys included).
    /// Sliding-window layers are counted like the others: an upper bound for an engine that
    /// frees the tokens that left the window.
    pub fn kv_bytes_per_token(&self) -> u64 {
        self.layers * self.kv_bytes_per_token_per_layer()
    }

    /// Number of MoE layers.
    pub fn moe_layers(&self) -> u64 {
        self.moe_mask.iter().filter(|&&m| m).count() as u64
    }

    /// Number of dense-FFN layers.
    pub fn dense_layers(&self) -> u64 {
        self.layers - self.moe_layers()
    }

    /// Whether layer `layer` (0-based) is a MoE layer; false beyond the model's layers.
    pub fn is_moe(&self, layer: u64) -> bool {
        self.moe_mask.get(layer as usize).copied().unwrap_or(false)
    }

    /// The rank of MoE layer `layer` among the MoE layers (0 for the first); `None` for a
    /// dense layer.
    pub fn moe_index(&self, layer: u64) -> Option<u64> {
        self.is_moe(layer).then(|| {
            self.moe_mask[..layer as usize]
                .iter()
                .filter(|&&m| m)
                .count() as u64
        })
    }

    /// MoE layers among the first `layers` layers.
    pub fn moe_layers_in(&self, layers: u64) -> u64 {
        let n = (layers as usize).min(self.moe_mask.len());
        self.moe_mask[..n].iter().filter(|&&m| m).count() as u64
    }

    /// The indices of the MoE layers, in order.
    pub fn moe_layer_indices(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.layers).filter(|&l| self.is_moe(l))
    }

    /// The `n`-th MoE layer (0-based rank), if the model has that many.
    pub fn moe_layer_at(&self, n: u64) -> Option<u64> {
        self.moe_layer_indices().nth(n as usize)
    }

    /// The MoE layers as inclusive ranges, `3 ..= 60` or `4 ..= 59, 61 ..= 62`, for messages.
    pub fn moe_layers_text(&self) -> String {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for l in self.moe_layer_indices() {
            match runs.last_mut() {
                Some(r) if r.1 + 1 == l => r.1 = l,
                _ => runs.push((l, l)),
            }
        }
        let text: Vec<String> = runs.iter().map(|(a, b)| format!("{a} ..= {b}")).collect();
        if text.is_empty() {
            "none".into()
        } else {
            text.join(", ")
        }
    }

    /// Dense layers before the first MoE layer (all of them in a model without MoE layers).
    pub fn leading_dense_layers(&self) -> u64 {
        self.moe_mask.iter().take_while(|&&m| !m).count() as u64
    }

    /// Whether every dense layer comes before every MoE layer (DeepSeek's
    /// `first_k_dense_replace`); Step-3's last dense layer breaks it.
    pub fn dense_first(&self) -> bool {
        self.leading_dense_layers() == self.dense_layers()
    }

    /// Context the attention of layer `layer` reads for a sequence of `ctx` cached tokens.
    pub fn attended_ctx(&self, layer: u64, ctx: u64) -> u64 {
        match &self.attention {
            Attention::Gqa(Gqa {
                sliding: Some((w, every)),
                ..
            }) if layer.is_multiple_of(*every) => ctx.min(*w),
            Attention::Mla(Mla {
                sparse: Some(s), ..
            }) => ctx.min(s.topk),
            _ => ctx,
        }
    }

    /// KV bytes one decode step of one sequence reads over all layers, at `ctx` cached tokens.
    pub fn kv_bytes_read_per_token(&self, ctx: u64) -> f64 {
        // The DSA indexer reads every cached token's keys; the attention reads only the
        // context it attends to (sliding window, or the selected top-k).
        let indexer_bytes = match &self.attention {
            Attention::Mla(Mla {
                sparse: Some(s), ..
            }) => s.indexer_kv_bytes,
            _ => 0,
        };
        let attention_bytes = (self.kv_bytes_per_token_per_layer() - indexer_bytes) as f64;
        (0..self.layers)
            .map(|l| {
                self.attended_ctx(l, ctx) as f64 * attention_bytes
                    + ctx as f64 * indexer_bytes as f64
            })
            .sum()
    }

    /// FLOPs of decoding one token at `ctx` cached tokens, all layers. Convention: a
    /// multiply-add is 2 FLOPs; MLA in absorbed form scores over kv_lora + rope and sums values
    /// over kv_lora; GQA scores and sums over head_dim.
    pub fn decode_flops_per_token(&self, ctx: u64) -> DecodeFlops {
        let h = self.hidden as f64;
        let (mut attention, mut linear) = (0.0, 0.0);
        for l in 0..self.layers {
            let c = self.attended_ctx(l, ctx) as f64;
            match &self.attention {
                Attention::Mla(m) => {
                    let (heads, qlr, kvl, rope, nope, v) = (
                        m.heads as f64,
                        m.q_lora_rank as f64,
                        m.kv_lora_rank as f64,
                        m.qk_rope_head_dim as f64,
                        m.qk_nope_head_dim as f64,
                        m.v_head_dim as f64,
                    );
                    attention += 2.0 * heads * c * ((kvl + rope) + kvl);
                    let params = h * (qlr + kvl + rope)   // q_a + kv_a
                        + qlr * heads * (nope + rope)     // q_b
                        + heads * nope * kvl              // absorbed k up-projection
                        + heads * kvl * v                 // absorbed v up-projection
                        + heads * v * h; // o_proj
                    linear += 2.0 * params;
                    if let Some(s) = &m.sparse {
                        let (ih, id) = (s.indexer_heads as f64, s.indexer_head_dim as f64);
                        attention += 2.0 * ih * id * ctx as f64;
                        linear += 2.0 * (qlr * ih * id + h * id + h * ih);
                    }
                }
                Attention::Gqa(g) => {
                    let (heads, kvh, d) = (g.heads as f64, g.kv_heads as f64, g.head_dim as f64);
                    attention += 4.0 * heads * c * d;
                    let q = match g.q_lora_rank {
                        // Down to the rank (with K and V), then up to every head.
                        Some(r) => h * r as f64 + r as f64 * heads * d,
                        None => h * heads * d,
                    };
                    linear += 2.0 * (q + h * 2.0 * kvh * d + heads * d * h);
                }
            }
        }
        let moe =
            2.0 * 3.0 * h * self.expert_ffn as f64 * (self.top_k + self.shared_experts) as f64;
        let dense = 2.0 * 3.0 * h * self.dense_ffn as f64;
        DecodeFlops {
            attention,
            linear,
            ffn: moe * self.moe_layers() as f64 + dense * self.dense_layers() as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_bytes(name: &str, dispatch_fp8: u64, combine_bf16: u64, kv_per_layer: u64) {
        let m = Model::embedded(name).unwrap();
        assert_eq!(
            m.dispatch_bytes_per_token(Dtype::Fp8),
            dispatch_fp8,
            "{name}"
        );
        assert_eq!(
            m.combine_bytes_per_token(Dtype::Bf16),
            combine_bf16,
            "{name}"
        );
        assert_eq!(m.kv_bytes_per_token_per_layer(), kv_per_layer, "{name}");
    }

    #[test]
    fn byte_accounting() {
        // 7168 + 7168/128*4; 7168*2; (512 + 64) * 1.
        check_bytes("deepseek-v3", 7392, 14336, 576);
        check_bytes("deepseek-v3.2", 7392, 14336, 576 + 132);
        check_bytes("kimi-k2", 7392, 14336, 576);
        // 4096 + 32*4; 2*4*128*2.
        check_bytes("qwen3-235b-a22b", 4224, 8192, 2048);
        check_bytes("qwen3-30b-a3b", 2112, 4096, 2048);
        // 2880 + ceil(2880/128)=23 scales * 4; 2*8*64*2.
        check_bytes("gpt-oss-120b", 2972, 5760, 2048);
    }

    #[test]
    fn kv_bytes_read_per_token_counts_the_indexer_over_the_whole_context() {
        let v3 = Model::embedded("deepseek-v3").unwrap();
        assert_eq!(v3.kv_bytes_read_per_token(8192), 61.0 * 8192.0 * 576.0);
        let v32 = Model::embedded("deepseek-v3.2").unwrap();
        let want = 61.0 * (2048.0 * 576.0 + 8192.0 * 132.0);
        assert_eq!(v32.kv_bytes_read_per_token(8192), want);
        // gpt-oss: 18 sliding layers read 128 tokens, 18 full ones all of them.
        let oss = Model::embedded("gpt-oss-120b").unwrap();
        assert_eq!(
            oss.kv_bytes_read_per_token(4096),
            18.0 * (128.0 + 4096.0) * 2048.0
        );
    }

    #[test]
    fn every_embedded_model_parses_under_its_own_name() {
        for n in Model::embedded_names() {
            assert_eq!(Model::embedded(n).unwrap().name, n);
        }
    }

    /// Step-3: MoE layers 4 ..= 59 (`moe_layers`), dense 0-3 and the last; MFA attention.
    #[test]
    fn a_layer_pattern_with_a_dense_last_layer() {
        let m = Model::embedded("step3").unwrap();
        assert_eq!((m.moe_layers(), m.dense_layers()), (56, 5));
        let moe: Vec<bool> = [0, 3, 4, 59, 60, 61].iter().map(|&l| m.is_moe(l)).collect();
        assert_eq!(moe, [false, false, true, true, false, false]);
        assert_eq!(m.moe_index(4), Some(0));
        assert_eq!(m.moe_index(59), Some(55));
        assert_eq!(m.moe_index(60), None);
        assert_eq!(m.moe_layer_at(55), Some(59));
        assert_eq!(m.moe_layers_in(10), 6);
        assert_eq!(m.leading_dense_layers(), 4);
        assert!(!m.dense_first());
        assert_eq!(m.moe_layers_text(), "4 ..= 59");
        // DeepSeek's `dense_layers = 3` is the same as MoE layers 3 ..= 60.
        let v3 = Model::embedded("deepseek-v3").unwrap();
        let text = include_str!("../../workloads/models/deepseek-v3.toml")
            .replace("dense_layers = 3 ", "moe_layers = [[3, 60]] ");
        assert_eq!(Model::parse("m.toml", &text).unwrap(), v3);
        assert!(v3.dense_first());
        // MFA: the query down to 2048 with K and V, then up to 64 heads of 256.
        let Attention::Gqa(g) = &m.attention else {
            panic!("step3 is GQA-family")
        };
        assert_eq!(
            (g.q_lora_rank, g.kv_heads, g.head_dim),
            (Some(2048), 1, 256)
        );
        // Linear FLOPs per token and layer: 2 x (7168 x (2048 + 512) + 2048 x 16384 +
        // 16384 x 7168).
        let per_layer = 2.0 * (7168.0 * 2560.0 + 2048.0 * 16384.0 + 16384.0 * 7168.0);
        assert_eq!(m.decode_flops_per_token(4096).linear, 61.0 * per_layer);
    }

    #[test]
    fn a_bad_layer_pattern_names_moe_layers() {
        let good = include_str!("../../workloads/models/step3.toml");
        check_error(
            &good.replace("moe_layers = [[4, 59]]", "moe_layers = [[4, 61]]"),
            "moe_layers",
            "first <= last < layers = 61",
        );
        check_error(
            &good.replace("moe_layers = [[4, 59]]", "moe_layers = [[4, 40], [30, 50]]"),
            "moe_layers",
            "layer 30 is listed twice",
        );
        check_error(
            &good.replace(
                "moe_layers = [[4, 59]]",
                "moe_layers = [[4, 59]]\ndense_layers = 4",
            ),
            "dense_layers",
            "not both or neither",
        );
        check_error(
            &good.replace("moe_layers = [[4, 59]]", ""),
            "dense_layers",
            "not both or neither",
        );
        check_error(
            &good.replace("q_lora_rank = 2048", "q_lora_rank = 0"),
            "attention.q_lora_rank",
            "≥ 1",
        );
    }

    fn check_error(text: &str, key: &str, fragment: &str) {
        let e = Model::parse("m.toml", text).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains(fragment), "{e}");
    }

    #[test]
    fn bad_model_files_name_the_key() {
        let good = include_str!("../../workloads/models/qwen3-30b-a3b.toml");
        check_error(
            &good.replace("top_k = 8", "top_k = 800"),
            "moe.top_k",
            "exceeds",
        );
        check_error(
            &good.replace("kind = \"gqa\"", "kind = \"mqa\""),
            "attention.kind",
            "mqa",
        );
        check_error(
            &good.replace("kv_heads = 4 ", "kv_heads = 5 "),
            "attention.kv_heads",
            "divide",
        );
        check_error(
            &good.replace("hidden = 2048", "hidden = 0"),
            "hidden",
            "≥ 1",
        );
        let e = Model::parse("m.toml", &good.replace("hidden = 2048", "hidden = -3")).unwrap_err();
        assert!(e.key.starts_with("hidden (line "), "{e}");
        let e = Model::parse("m.toml", "").unwrap_err();
        assert!(e.message.contains("missing field `name`"), "{e}");
        let e = Model::parse("m.toml", &format!("{good}\nbogus = 1\n")).unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
    }
}
