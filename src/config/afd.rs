//! The `[afd]` table of a scenario: an AFD decode deployment on the scenario's fabric.

use super::Ctx;
use crate::afd::{AfdSpec, Routing};
use crate::compute::{AttentionKernel, ComputeTable, Model};
use crate::error::InputError;
use crate::topology::NodeId;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfdFile {
    /// `afd` (attention and experts on separate GPUs, default) or `colocated` (the
    /// DeepSeek-style baseline: attention data-parallel and the experts spread over the
    /// same GPUs; `ffn_gpus` is then not used).
    #[serde(default)]
    pub mode: Option<String>,
    /// An embedded model (`deepseek-v3.2`, ...) or a model file.
    pub model: String,
    /// Compute table of the attention GPUs (embedded `h100-sxm`, `h200-sxm`, or a CSV path);
    /// default `h100-sxm`.
    #[serde(default)]
    pub table: Option<String>,
    /// Compute table of the FFN GPUs; default: `table`.
    #[serde(default)]
    pub ffn_table: Option<String>,
    /// `flash-mla` (the HBM floor at 90 %, default) or `measured` (the table's unfused kernel).
    #[serde(default)]
    pub attention_kernel: Option<String>,
    /// The first `attention_gpus` GPUs of the fabric run attention, the next `ffn_gpus` the
    /// experts.
    pub attention_gpus: i64,
    #[serde(default)]
    pub ffn_gpus: Option<i64>,
    #[serde(default)]
    pub micro_batches: Option<i64>,
    pub batch_per_attention_gpu: i64,
    /// Cached tokens per sequence.
    pub context: i64,
    /// Layers to simulate; default: all of the model's.
    #[serde(default)]
    pub layers: Option<i64>,
    /// Decode steps to simulate (TPOT mean and p99 over them); default 1.
    #[serde(default)]
    pub steps: Option<i64>,
    /// `uniform` (default) or `zipf` (hot experts, a seeded permutation of which).
    #[serde(default)]
    pub routing: Option<String>,
    /// The Zipf exponent (default 1.0): the i-th hottest expert weighs 1 / i^s.
    #[serde(default)]
    pub zipf_s: Option<f64>,
    /// HBM per attention GPU, GiB; default from the attention table's device when it is a
    /// known one (H100 80 GB, H200 141 GB), required otherwise.
    #[serde(default)]
    pub hbm_gib: Option<f64>,
}

/// HBM of a device as its driver names it, GiB (vendor figures: H100 SXM 80 GB, H200
/// 141 GB, as GiB that hold that many 1e9 bytes).
pub(super) fn known_hbm_gib(device: &str) -> Option<f64> {
    if device.contains("H200") {
        Some(141e9 / (1u64 << 30) as f64)
    } else if device.contains("H100") && device.contains("80GB") {
        Some(80e9 / (1u64 << 30) as f64)
    } else {
        None
    }
}

pub(super) fn resolve(cx: &Ctx, a: &AfdFile, gpus: u32, seed: u64) -> Result<AfdSpec, InputError> {
    let key = |k: &str| format!("afd.{k}");
    let rekey = |k: &str| {
        let k = key(k);
        move |e: InputError| cx.err(k.clone(), e.to_string())
    };
    let model = Model::embedded(&a.model)
        .or_else(|_| Model::load(std::path::Path::new(&a.model)))
        .map_err(|_| {
            cx.err(
                key("model"),
                format!(
                    "`{}` is neither an embedded model ({}) nor a readable model file",
                    a.model,
                    Model::embedded_names().join(", ")
                ),
            )
        })?;
    let table_name = a.table.as_deref().unwrap_or("h100-sxm");
    let attention_table = ComputeTable::by_name_or_path(table_name).map_err(rekey("table"))?;
    let ffn_table = match a.ffn_table.as_deref() {
        None => attention_table.clone(),
        Some(t) => ComputeTable::by_name_or_path(t).map_err(rekey("ffn_table"))?,
    };
    let kernel = match a.attention_kernel.as_deref().unwrap_or("flash-mla") {
        "flash-mla" => AttentionKernel::FLASH_MLA,
        "measured" => AttentionKernel::Measured,
        other => {
            return Err(cx.err(
                key("attention_kernel"),
                format!("`{other}` is not allowed: flash-mla or measured"),
            ));
        }
    };
    let colocated = match a.mode.as_deref().unwrap_or("afd") {
        "afd" => false,
        "colocated" => true,
        other => {
            return Err(cx.err(
                key("mode"),
                format!("`{other}` is not allowed: afd or colocated"),
            ));
        }
    };
    let na = cx.int_in(&key("attention_gpus"), a.attention_gpus, 1, gpus as i64)? as u32;
    let nf = match (colocated, a.ffn_gpus) {
        (false, Some(n)) => cx.int_in(&key("ffn_gpus"), n, 1, gpus as i64)? as u32,
        (false, None) => return Err(cx.err(key("ffn_gpus"), "required for mode = \"afd\"")),
        (true, None) => na,
        (true, Some(_)) => {
            return Err(cx.err(
                key("ffn_gpus"),
                "not used by mode = \"colocated\" (the experts share the attention GPUs)",
            ));
        }
    };
    if !colocated && na + nf > gpus {
        return Err(cx.err(
            key("ffn_gpus"),
            format!("{na} attention + {nf} FFN GPUs exceed the fabric's {gpus} GPUs"),
        ));
    }
    if !model.routed_experts.is_multiple_of(nf as u64) {
        return Err(cx.err(
            key("ffn_gpus"),
            format!(
                "{} routed experts do not divide over {nf} FFN GPUs (contiguous placement)",
                model.routed_experts
            ),
        ));
    }
    let micro_batches =
        cx.int_in(&key("micro_batches"), a.micro_batches.unwrap_or(1), 1, 64)? as u32;
    let batch = cx.int_in(
        &key("batch_per_attention_gpu"),
        a.batch_per_attention_gpu,
        1,
        1 << 16,
    )? as u32;
    if batch < micro_batches {
        return Err(cx.err(
            key("batch_per_attention_gpu"),
            format!("{batch} sequences cannot fill {micro_batches} micro-batches"),
        ));
    }
    let context = cx.int_in(&key("context"), a.context, 1, 1 << 24)? as u64;
    let layers = cx.int_in(
        &key("layers"),
        a.layers.unwrap_or(model.layers as i64),
        1,
        model.layers as i64,
    )? as u64;
    // The KV cache of an attention GPU's sequences, every layer of the model (a step that
    // simulates fewer layers still serves the whole model), must fit its HBM. A lower bound:
    // weights and activations come on top.
    let hbm_gib = match a.hbm_gib {
        Some(g) if g.is_finite() && g > 0.0 && g <= 1e5 => g,
        Some(g) => {
            return Err(cx.err(
                key("hbm_gib"),
                format!("{g} is not allowed: > 0 and <= 100000"),
            ));
        }
        None => known_hbm_gib(attention_table.device()).ok_or_else(|| {
            cx.err(
                key("hbm_gib"),
                format!(
                    "required: the attention table's device `{}` has no known HBM size",
                    attention_table.device()
                ),
            )
        })?,
    };
    let kv_per_seq =
        context as f64 * model.layers as f64 * model.kv_bytes_per_token_per_layer() as f64;
    let (kv_bytes, hbm_bytes) = (batch as f64 * kv_per_seq, hbm_gib * (1u64 << 30) as f64);
    if kv_bytes > hbm_bytes {
        let gib = |b: f64| b / (1u64 << 30) as f64;
        return Err(cx.err(
            key("batch_per_attention_gpu"),
            format!(
                "{batch} sequences x {context} tokens of KV cache need {:.1} GiB per attention \
                 GPU, {:.1} GiB more than its {hbm_gib:.1} GiB of HBM (before weights); at \
                 most {} sequences fit",
                gib(kv_bytes),
                gib(kv_bytes - hbm_bytes),
                (hbm_bytes / kv_per_seq) as u64
            ),
        ));
    }
    Ok(AfdSpec {
        model,
        attention_table,
        ffn_table,
        kernel,
        attention_gpus: (0..na).map(NodeId).collect(),
        ffn_gpus: if colocated {
            (0..na).map(NodeId).collect()
        } else {
            (na..na + nf).map(NodeId).collect()
        },
        micro_batches,
        batch_per_attention_gpu: batch,
        context,
        layers,
        steps: cx.int_in(&key("steps"), a.steps.unwrap_or(1), 1, 10_000)? as u32,
        routing: match (a.routing.as_deref().unwrap_or("uniform"), a.zipf_s) {
            ("uniform", None) => Routing::Uniform,
            ("uniform", Some(_)) => {
                return Err(cx.err(key("zipf_s"), "needs routing = \"zipf\""));
            }
            ("zipf", s) => {
                let s = s.unwrap_or(1.0);
                if !(s.is_finite() && (0.0..=4.0).contains(&s)) {
                    return Err(cx.err(key("zipf_s"), format!("{s} is not allowed: 0 ..= 4")));
                }
                // The hot experts' permutation is a stream of the run's seed.
                Routing::Zipf {
                    s,
                    seed: seed ^ 0x5A1F,
                }
            }
            (other, _) => {
                return Err(cx.err(
                    key("routing"),
                    format!("`{other}` is not allowed: uniform or zipf"),
                ));
            }
        },
    })
}
