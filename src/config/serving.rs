//! The `[serving]` table of a scenario: a request stream served by a deployment on the
//! scenario's fabric.
//!
//! ```toml
//! [serving]
//! traffic = "chat"            # a preset (chat, coding, agentic-coding) or a traffic file
//! rate = 8.0                  # requests/s (replaces the traffic's own rate)
//! requests = 2000
//! prefill_gpus = 16           # a separate prefill pool (P/D); leave out for aggregated
//! max_batch_per_gpu = 128
//! chunk_tokens = 8192
//! [serving.decode]            # the decode pool (aggregated: the whole pool), as in [afd]
//! mode = "afd"                # or "colocated" (expert parallelism on the same GPUs)
//! model = "deepseek-v3.2"
//! attention_gpus = 16
//! ffn_gpus = 32
//! micro_batches = 3
//! ```
//!
//! The decode pool takes the first GPUs of the fabric (attention, then FFN), the prefill
//! pool the next ones. `[serving.decode]` takes the keys of `[afd]` except those the
//! request stream sets (`batch_per_attention_gpu`, `context`, `steps`).

use std::path::Path;

use super::Ctx;
use super::afd::{AfdFile, known_hbm_gib};
use crate::afd::AfdSpec;
use crate::compute::WeightPlacement;
use crate::error::InputError;
use crate::serving::sim::{Layout, Mode};
use crate::serving::traffic::{Request, Traffic};
use crate::serving::{Deployment, ServingSpec, Slo};
use crate::topology::NodeId;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingFile {
    /// A traffic preset, a traffic file (relative to the scenario's folder), or an inline
    /// table with a traffic file's keys.
    pub traffic: toml::Value,
    /// Poisson arrival rate, requests/s; default: the traffic's.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Requests to simulate; default 1000.
    #[serde(default)]
    pub requests: Option<i64>,
    /// GPUs of a separate prefill pool (P/D disaggregation); none: aggregated serving with
    /// chunked prefill on the decode pool.
    #[serde(default)]
    pub prefill_gpus: Option<i64>,
    /// Micro-batches of a prefill iteration (default 2, DeepSeek's two-batch overlap).
    #[serde(default)]
    pub prefill_micro_batches: Option<i64>,
    /// Sequences one GPU decodes at most; default 256.
    #[serde(default)]
    pub max_batch_per_gpu: Option<i64>,
    /// Prompt tokens one GPU prefills per iteration at most; default 8192 with a prefill
    /// pool, 2048 aggregated (Sarathi-Serve's budgets are of this order).
    #[serde(default)]
    pub chunk_tokens: Option<i64>,
    /// Fraction of HBM kept for activations, CUDA graphs and fragmentation (vLLM's
    /// `gpu_memory_utilization` = 1 - this); default 0.1.
    #[serde(default)]
    pub memory_reserve: Option<f64>,
    /// Limits for goodput and `slo-search`.
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    #[serde(default)]
    pub tpot_ms: Option<f64>,
    /// Percentile the limits apply to; default 90.
    #[serde(default)]
    pub percentile: Option<f64>,
    /// Simulate every layer of each iteration (default: extrapolate from a few MoE layers,
    /// `serving::cost`).
    #[serde(default)]
    pub all_layers: Option<bool>,
    /// The decode pool, as an `[afd]` table.
    pub decode: toml::Table,
}

/// Keys of `[afd]` that the request stream sets.
const SET_BY_SERVING: [&str; 4] = ["batch_per_attention_gpu", "context", "steps", "layers"];

pub(super) fn resolve(
    cx: &Ctx,
    s: &ServingFile,
    gpus: u32,
    seed: u64,
    dir: &Path,
) -> Result<ServingSpec, InputError> {
    let key = |k: &str| format!("serving.{k}");
    for k in SET_BY_SERVING {
        if s.decode.contains_key(k) {
            return Err(cx.err(
                key(&format!("decode.{k}")),
                "not allowed here: the request stream sets it",
            ));
        }
    }
    if s.decode.get("routing").and_then(toml::Value::as_str) == Some("histogram") {
        return Err(cx.err(
            key("decode.routing"),
            "a histogram fixes the tokens of a step; serving iterations vary them: use \
             uniform or zipf",
        ));
    }
    let decode = afd_pool(cx, s.decode.clone(), gpus, seed, "decode")?;
    let colocated = decode.attention_gpus == decode.ffn_gpus;
    let decode_gpus = distinct_gpus(&decode);
    let max_batch = cx.int_in(
        &key("max_batch_per_gpu"),
        s.max_batch_per_gpu.unwrap_or(256),
        1,
        1 << 16,
    )? as u32;
    let prefill = match s.prefill_gpus {
        None => {
            if s.prefill_micro_batches.is_some() {
                return Err(cx.err(key("prefill_micro_batches"), "needs prefill_gpus"));
            }
            None
        }
        Some(p) => {
            let p = cx.int_in(&key("prefill_gpus"), p, 1, gpus as i64)? as u32;
            if decode_gpus + p > gpus {
                return Err(cx.err(
                    key("prefill_gpus"),
                    format!(
                        "{decode_gpus} decode + {p} prefill GPUs exceed the fabric's {gpus} GPUs"
                    ),
                ));
            }
            let mut t = s.decode.clone();
            t.insert("mode".into(), "colocated".into());
            t.insert("attention_gpus".into(), (p as i64).into());
            t.remove("ffn_gpus");
            let mb = s.prefill_micro_batches.unwrap_or(2);
            t.insert("micro_batches".into(), mb.into());
            // Placement options of the decode pool may not fit the prefill pool's size.
            for k in ["placement", "redundant_experts"] {
                t.remove(k);
            }
            let mut spec = afd_pool(cx, t, gpus, seed, "prefill")?;
            // The prefill pool sits after the decode pool's GPUs.
            for g in spec
                .attention_gpus
                .iter_mut()
                .chain(spec.ffn_gpus.iter_mut())
            {
                *g = NodeId(g.0 + decode_gpus);
            }
            Some(spec)
        }
    };
    let chunk = cx.int_in(
        &key("chunk_tokens"),
        s.chunk_tokens
            .unwrap_or(if prefill.is_some() { 8192 } else { 2048 }),
        1,
        1 << 20,
    )? as u32;
    let reserve = s.memory_reserve.unwrap_or(0.1);
    if !(reserve.is_finite() && (0.0..1.0).contains(&reserve)) {
        return Err(cx.err(
            key("memory_reserve"),
            format!("{reserve} is not allowed: 0 <= reserve < 1"),
        ));
    }
    let model = &decode.model;
    let hbm_gib = match s.decode.get("hbm_gib").and_then(toml::Value::as_float) {
        Some(g) => g,
        None => known_hbm_gib(decode.attention_table.device()).expect("afd::resolve checked"),
    };
    let hbm = hbm_gib * (1u64 << 30) as f64 * (1.0 - reserve);
    let experts = model.routed_experts.div_ceil(decode.ffn_gpus.len() as u64);
    let (placement, side) = if colocated {
        (WeightPlacement::Colocated { experts }, "decode GPU")
    } else {
        (WeightPlacement::AttentionSide, "attention GPU")
    };
    let weights = model.weight_bytes(placement) as f64;
    let kv_per_token = model.kv_bytes_per_token();
    let gib = |b: f64| b / (1u64 << 30) as f64;
    if !colocated {
        let ffn = model.weight_bytes(WeightPlacement::FfnSide { experts }) as f64;
        if ffn > hbm {
            return Err(cx.err(
                key("decode.ffn_gpus"),
                format!(
                    "{experts} experts per FFN GPU need {:.1} GiB of weights, more than the \
                     {:.1} GiB usable of {hbm_gib:.1} GiB HBM: use more FFN GPUs",
                    gib(ffn),
                    gib(hbm)
                ),
            ));
        }
    }
    if weights >= hbm {
        return Err(cx.err(
            key("decode"),
            format!(
                "the weights of one {side} take {:.1} GiB, all of the {:.1} GiB usable of \
                 {hbm_gib:.1} GiB HBM: no room for a KV cache",
                gib(weights),
                gib(hbm)
            ),
        ));
    }
    let kv_capacity_tokens = ((hbm - weights) / kv_per_token as f64) as u64;

    let traffic = match &s.traffic {
        toml::Value::String(name) => Traffic::by_name_or_path_in(name, dir)?,
        toml::Value::Table(t) => {
            Traffic::parse(cx.origin, &toml::to_string(t).expect("a table prints"), dir).map_err(
                |e| InputError::new(cx.origin, format!("serving.traffic.{}", e.key), e.message),
            )?
        }
        _ => {
            return Err(cx.err(
                key("traffic"),
                "a preset name, a traffic file path, or a [serving.traffic] table",
            ));
        }
    };
    let traffic = match s.rate {
        None => traffic,
        Some(r) => {
            if !(r.is_finite() && r > 0.0 && r <= 1e6) {
                return Err(cx.err(
                    key("rate"),
                    format!("{r} is not allowed: requests/s > 0 and <= 1e6"),
                ));
            }
            traffic
                .with_rate(r)
                .map_err(|e| cx.err(key("rate"), e.to_string()))?
        }
    };
    let requests = cx.int_in(&key("requests"), s.requests.unwrap_or(1000), 1, 10_000_000)? as u32;
    let slo = match (s.ttft_ms, s.tpot_ms) {
        (None, None) => {
            if s.percentile.is_some() {
                return Err(cx.err(key("percentile"), "needs ttft_ms and tpot_ms"));
            }
            None
        }
        (Some(ttft_ms), Some(tpot_ms)) => Some(
            Slo::new(ttft_ms, tpot_ms, s.percentile.unwrap_or(90.0))
                .map_err(|(k, m)| cx.err(key(k), m))?,
        ),
        _ => {
            return Err(cx.err(
                key(if s.ttft_ms.is_none() {
                    "ttft_ms"
                } else {
                    "tpot_ms"
                }),
                "ttft_ms and tpot_ms come together",
            ));
        }
    };
    let total_gpus = decode_gpus
        + prefill
            .as_ref()
            .map_or(0, |p| p.attention_gpus.len() as u32);
    let layout = Layout {
        mode: match &prefill {
            None => Mode::Aggregated,
            Some(p) => Mode::Disaggregated {
                prefill_gpus: p.attention_gpus.clone(),
            },
        },
        decode_gpus: decode.attention_gpus.clone(),
        kv_capacity_tokens,
        max_batch,
        chunk_tokens: chunk,
        kv_bytes_per_token: kv_per_token,
    };
    let deployment = match (&prefill, colocated) {
        (None, true) => Deployment::Aggregated,
        (None, false) => Deployment::AggregatedAfd,
        (Some(_), true) => Deployment::Pd,
        (Some(_), false) => Deployment::PdAfd,
    };
    Ok(ServingSpec {
        deployment,
        layout,
        decode,
        prefill,
        traffic,
        requests,
        seed,
        slo,
        all_layers: s.all_layers.unwrap_or(false),
        total_gpus,
    })
}

/// An `[afd]`-style pool from a table the serving simulation completes; errors name the
/// key under `serving.<pool>`.
fn afd_pool(
    cx: &Ctx,
    mut t: toml::Table,
    gpus: u32,
    seed: u64,
    pool: &str,
) -> Result<AfdSpec, InputError> {
    // Enough for any micro-batch count (the check that the batch fills them).
    t.insert("batch_per_attention_gpu".into(), 64.into());
    t.insert("context".into(), 1.into());
    let rekey = |e: InputError| {
        let k = e.key.strip_prefix("afd.").unwrap_or(&e.key).to_string();
        InputError::new(
            cx.origin,
            format!("serving.{pool}.{k}"),
            e.message.replace("afd.", &format!("serving.{pool}.")),
        )
    };
    let file: AfdFile = serde_path_to_error::deserialize(toml::Value::Table(t)).map_err(|e| {
        InputError::new(
            cx.origin,
            format!("serving.{pool}.{}", e.path()),
            super::one_line(e.into_inner().message()),
        )
    })?;
    let mut spec = super::afd::resolve(cx, &file, gpus, seed).map_err(rekey)?;
    // One micro-batch needs at least one sequence: the serving iterations set the batch,
    // so the template's check against batch 1 does not apply.
    spec.batch_per_attention_gpu = 0;
    Ok(spec)
}

fn distinct_gpus(spec: &AfdSpec) -> u32 {
    if spec.attention_gpus == spec.ffn_gpus {
        spec.attention_gpus.len() as u32
    } else {
        (spec.attention_gpus.len() + spec.ffn_gpus.len()) as u32
    }
}

/// Checks that every request fits an empty decode GPU's KV cache; names the request (and
/// for a trace, its line).
pub fn check_fits(
    origin: &str,
    spec: &ServingSpec,
    requests: &[Request],
) -> Result<(), InputError> {
    let cap = spec.layout.kv_capacity_tokens;
    for r in requests {
        let need = (r.input + r.output) as u64;
        if need > cap {
            let (file, key) = spec
                .traffic
                .locate(r.id)
                .unwrap_or((origin, format!("serving.traffic (request {})", r.id)));
            return Err(InputError::new(
                file,
                key,
                format!(
                    "{} input + {} output tokens need a KV cache of {need} tokens; one decode \
                     GPU holds {cap} (HBM less weights and the memory reserve), so this \
                     request can never be served",
                    r.input, r.output
                ),
            ));
        }
    }
    Ok(())
}
