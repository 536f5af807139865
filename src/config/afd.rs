//! The `[afd]` table of a scenario: an AFD decode deployment on the scenario's fabric.

use super::Ctx;
use crate::afd::{
    AfdSpec, ContextDist, Dedup, Deployment, ExpertMap, ExpertRouting, Placement, StepShape,
};
use crate::compute::{AttentionKernel, ComputeTable, Dtype, Model, Side, WeightPlacement};
use crate::engine::SimRng;
use crate::error::InputError;
use crate::topology::NodeId;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfdFile {
    /// `afd` (attention and experts on separate GPUs, default) or `colocated` (the
    /// DeepSeek-style baseline: attention data-parallel and the experts spread over the
    /// same GPUs; `ffn_gpus` is then not used).
    #[serde(default)]
    pub mode: Option<String>,
    /// An embedded model (`deepseek-v3.2`, ...) or a model file (relative to the
    /// scenario's folder).
    pub model: String,
    /// Compute table of the attention GPUs (embedded `h100-sxm`, `h200-sxm`, or a CSV path
    /// relative to the scenario's folder); default `h100-sxm`.
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
    /// Cached tokens per sequence, the same for every sequence. Either this or
    /// `context_dist`.
    #[serde(default)]
    pub context: Option<i64>,
    /// `uniform` (`context_min` ..= `context_max`) or `lognormal` (`context_mean`,
    /// `context_sigma`, clamped to `context_min` ..= `context_max`): each sequence's cached
    /// tokens drawn from a seeded stream (docs/afd.md).
    #[serde(default)]
    pub context_dist: Option<String>,
    /// Smallest context drawn (uniform: required; lognormal: the clamp, default 1).
    #[serde(default)]
    pub context_min: Option<i64>,
    /// Largest context drawn (uniform: required; lognormal: the clamp, default 2^24).
    #[serde(default)]
    pub context_max: Option<i64>,
    /// Lognormal: the mean context in tokens (of the distribution, before the clamp).
    #[serde(default)]
    pub context_mean: Option<f64>,
    /// Lognormal: the standard deviation of ln(context), 0 < sigma <= 4.
    #[serde(default)]
    pub context_sigma: Option<f64>,
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
    /// For `routing = "histogram"`: a CSV file (relative to the scenario's folder) with the
    /// header `expert,tokens` and one line per expert: how many of the step's tokens pick it
    /// in every MoE layer (or `layer,expert,tokens`: per MoE layer). Missing experts get 0; `#` starts a comment line. The counts sum
    /// to attention_gpus x batch_per_attention_gpu x top_k (docs/afd.md).
    #[serde(default)]
    pub routing_file: Option<String>,
    /// `contiguous` (default: E/F experts per FFN GPU in order), `round-robin` (expert e on
    /// GPU e mod F) or `eplb` (redundant copies of hot experts, packed to balance the
    /// expected load).
    #[serde(default)]
    pub placement: Option<String>,
    /// For `placement = "eplb"`: extra expert slots spread over the FFN GPUs (default 0).
    #[serde(default)]
    pub redundant_experts: Option<i64>,
    /// `gpu` (a token goes once to each destination GPU, DeepEP normal mode) or `expert`
    /// (once per expert, DeepEP low-latency mode); default: what the `comm` library does
    /// (`copies`), `gpu` where it says nothing.
    #[serde(default)]
    pub dedup: Option<String>,
    /// The communication library of every dispatch and combine: a preset (`ideal`,
    /// `deepep-ll`, ...) or a library file relative to the scenario's folder (docs/comm.md);
    /// default `deepep-ll` (`DEFAULT_COMM`).
    #[serde(default)]
    pub comm: Option<String>,
    /// SMs the library's kernels get (its send SMs scale in proportion); default: the
    /// library's own.
    #[serde(default)]
    pub comm_sms: Option<i64>,
    /// `fp8` or `bf16`: override the model file's dispatch dtype.
    #[serde(default)]
    pub dispatch_dtype: Option<String>,
    /// `fp8` or `bf16`: override the model file's combine dtype.
    #[serde(default)]
    pub combine_dtype: Option<String>,
    /// `attention` or `ffn`: where the shared expert(s) run, overriding the model file
    /// (`ffn`: on the FFN GPU of each token's first routed expert; docs/afd.md).
    #[serde(default)]
    pub shared_expert_side: Option<String>,
    /// HBM per attention GPU, GiB; default from the attention table's device when it is a
    /// known one (H100 80 GB, H200 141 GB), required otherwise.
    #[serde(default)]
    pub hbm_gib: Option<f64>,
    /// SMs per GPU, of which a communication kernel takes its share from the compute it
    /// overlaps; default from the attention table's device when it is a known one (H100,
    /// H200: 132), required otherwise when the library holds SMs.
    #[serde(default)]
    pub gpu_sms: Option<i64>,
}

/// SMs of a device as its driver names it: H100 SXM and H200 both have 132 (the `sms`
/// field of ../shared/compute-tables/h100-sxm.env.json and h200-sxm.env.json, read by the
/// profiler from the device).
pub(super) fn known_sms(device: &str) -> Option<u32> {
    (device.contains("H200") || (device.contains("H100") && device.contains("80GB"))).then_some(132)
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

/// Every GPU must hold its weights (the whole model's layers, whatever number a step
/// simulates): an FFN GPU its experts of every MoE layer, an attention GPU its side's
/// weights plus the KV cache of its sequences, a colocated GPU both sides. `hbm_gib`:
/// (attention, FFN) GPUs.
pub(super) fn check_weights(
    cx: &Ctx,
    model: &Model,
    experts: &ExpertMap,
    colocated: bool,
    (hbm_gib, ffn_hbm_gib): (f64, f64),
    kv_bytes: f64,
) -> Result<(), InputError> {
    let gib = |b: f64| b / (1u64 << 30) as f64;
    let bytes = |g: f64| g * (1u64 << 30) as f64;
    let slots = experts.slots_on.iter().copied().max().unwrap_or(0);
    if !colocated {
        let ffn = model.weight_bytes(WeightPlacement::FfnSide { experts: slots }) as f64;
        if ffn > bytes(ffn_hbm_gib) {
            return Err(cx.err(
                key("ffn_gpus"),
                format!(
                    "{slots} expert slots on the busiest FFN GPU need {:.1} GiB of weights \
                     (every MoE layer's), more than its {ffn_hbm_gib:.1} GiB of HBM: use more \
                     FFN GPUs",
                    gib(ffn)
                ),
            ));
        }
    }
    let (placement, side) = if colocated {
        (WeightPlacement::Colocated { experts: slots }, "GPU")
    } else {
        (WeightPlacement::AttentionSide, "attention GPU")
    };
    let weights = model.weight_bytes(placement) as f64;
    if weights + kv_bytes > bytes(hbm_gib) {
        return Err(cx.err(
            key(if colocated {
                "attention_gpus"
            } else {
                "batch_per_attention_gpu"
            }),
            format!(
                "one {side} needs {:.1} GiB of weights and {:.1} GiB of KV cache, more than \
                 its {hbm_gib:.1} GiB of HBM{}",
                gib(weights),
                gib(kv_bytes),
                if colocated {
                    ": spread the experts over more GPUs or shrink the batch"
                } else {
                    ": shrink the batch"
                }
            ),
        ));
    }
    Ok(())
}

pub(super) fn resolve(cx: &Ctx, a: &AfdFile, gpus: u32, seed: u64) -> Result<AfdSpec, InputError> {
    let mut model = model(cx, &a.model)?;
    for (k, over, field) in [
        (
            "dispatch_dtype",
            &a.dispatch_dtype,
            &mut model.dispatch_dtype,
        ),
        ("combine_dtype", &a.combine_dtype, &mut model.combine_dtype),
    ] {
        if let Some(d) = over {
            *field = match d.as_str() {
                "fp8" => Dtype::Fp8,
                "bf16" => Dtype::Bf16,
                other => {
                    return Err(cx.err(key(k), format!("`{other}` is not allowed: fp8 or bf16")));
                }
            };
        }
    }
    if let Some(side) = &a.shared_expert_side {
        model.shared_expert_side = match side.as_str() {
            "attention" => Side::Attention,
            "ffn" => Side::Ffn,
            other => {
                return Err(cx.err(
                    key("shared_expert_side"),
                    format!("`{other}` is not allowed: attention or ffn"),
                ));
            }
        };
    }
    let table_name = a.table.as_deref().unwrap_or("h100-sxm");
    let attention_table = Arc::new(table(cx, "table", table_name)?);
    let ffn_table = match a.ffn_table.as_deref() {
        None => Arc::clone(&attention_table),
        Some(t) => Arc::new(table(cx, "ffn_table", t)?),
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
    let placement = placement(cx, a, &model, nf)?;
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
    let contexts = contexts(cx, a, na, batch, seed)?;
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
    // With drawn contexts, the GPU whose sequences hold the most tokens.
    let (gpu, tokens_cached) = match &contexts {
        Context::Fixed(c) => (None, batch as u64 * c),
        Context::Drawn(d) => d
            .iter()
            .enumerate()
            .map(|(g, c)| (Some(g), c.iter().sum::<u64>()))
            .max_by_key(|&(g, t)| (t, std::cmp::Reverse(g)))
            .expect("at least one attention GPU"),
    };
    let per_token = model.layers as f64 * model.kv_bytes_per_token_per_layer() as f64;
    let (kv_bytes, hbm_bytes) = (
        tokens_cached as f64 * per_token,
        hbm_gib * (1u64 << 30) as f64,
    );
    if kv_bytes > hbm_bytes {
        let gib = |b: f64| b / (1u64 << 30) as f64;
        let (what, gpu_name) = match gpu {
            None => (
                format!("{batch} sequences x {} tokens", contexts.mean()),
                "per attention GPU".to_string(),
            ),
            Some(g) => (
                format!("{batch} sequences with {tokens_cached} drawn tokens"),
                format!("on attention GPU {g} (the one with the most)"),
            ),
        };
        let per_seq = tokens_cached as f64 / batch as f64 * per_token;
        return Err(cx.err(
            key("batch_per_attention_gpu"),
            format!(
                "{what} of KV cache need {:.1} GiB {gpu_name}, {:.1} GiB more than its \
                 {hbm_gib:.1} GiB of HBM (before weights); at most {} sequences fit",
                gib(kv_bytes),
                gib(kv_bytes - hbm_bytes),
                (hbm_bytes / per_seq) as u64
            ),
        ));
    }
    let tokens = na as u64 * batch as u64;
    let routing = routing(cx, a, &model, tokens, layers, seed)?;
    let experts = ExpertMap::new(
        placement,
        model.routed_experts,
        nf,
        &routing.expected_load(model.routed_experts, model.top_k),
    );
    check_weights(
        cx,
        &model,
        &experts,
        colocated,
        (
            hbm_gib,
            known_hbm_gib(ffn_table.device()).unwrap_or(hbm_gib),
        ),
        kv_bytes,
    )?;
    let comm = comm_library(cx, a)?;
    let gpu_sms = match (a.gpu_sms, known_sms(attention_table.device())) {
        (Some(n), _) => cx.int_in(&key("gpu_sms"), n, 1, 1024)? as u32,
        (None, Some(n)) => n,
        (None, None) if comm.sms == 0 => 0,
        (None, None) => {
            return Err(cx.err(
                key("gpu_sms"),
                format!(
                    "required: the attention table's device `{}` has no known SM count, and \
                     the `{}` kernels hold {} of them",
                    attention_table.device(),
                    comm.name,
                    comm.sms
                ),
            ));
        }
    };
    let natural = match comm.copies {
        Some(crate::comm::Copies::PerExpert) => "expert",
        Some(crate::comm::Copies::PerGpu) | None => "gpu",
    };
    let dedup = match a.dedup.as_deref().unwrap_or(natural) {
        "gpu" => Dedup::Gpu,
        "expert" => Dedup::Expert,
        other => {
            return Err(cx.err(
                key("dedup"),
                format!("`{other}` is not allowed: gpu or expert"),
            ));
        }
    };
    let steps = cx.int_in(&key("steps"), a.steps.unwrap_or(1), 1, 10_000)? as u32;
    Ok(AfdSpec {
        deployment: Deployment {
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
            routing,
            placement,
            experts,
            dedup,
            comm: Arc::new(comm),
            gpu_sms,
        },
        shape: StepShape {
            active_attention_gpus: na,
            batch_per_attention_gpu: batch,
            context: contexts.mean(),
            contexts: match contexts {
                Context::Fixed(_) => Vec::new(),
                Context::Drawn(d) => d,
            },
            prefill_tokens: 0,
            prefill_prefix: 0,
            layers,
        },
        steps,
    })
}

/// The communication library of a decode deployment that names none: DeepEP's low-latency
/// kernels, built for decode (a few to a few hundred tokens per GPU per call; DeepSeek's
/// deployment uses them for decode) and validated on DeepEP's published EP8-EP128 latencies
/// (docs/comm.md). A serving prefill pool defaults to DeepEP's normal kernels instead.
pub(super) const DEFAULT_COMM: &str = "deepep-ll";

/// The library of `[afd] comm` (default [`DEFAULT_COMM`]), with `comm_sms` SMs where given.
fn comm_library(cx: &Ctx, a: &AfdFile) -> Result<crate::comm::Library, InputError> {
    let name = a.comm.as_deref().unwrap_or(DEFAULT_COMM);
    let lib = crate::comm::Library::load(name, cx.dir, cx.origin, &key("comm"))?;
    match a.comm_sms {
        None => Ok(lib),
        Some(n) => Ok(lib.with_sms(cx.int_in(&key("comm_sms"), n, 1, 1024)? as u32)),
    }
}

fn key(k: &str) -> String {
    format!("afd.{k}")
}

/// The model `name`: an embedded one, or a model file relative to the scenario's folder. A
/// name that is neither is the scenario's error (`afd.model`); a file that can be read is
/// parsed, and its own errors name it, its key and line.
fn model(cx: &Ctx, name: &str) -> Result<Model, InputError> {
    let names = Model::embedded_names();
    if names.contains(&name) {
        return Model::embedded(name);
    }
    let path = cx.path(name);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        cx.err(
            key("model"),
            format!(
                "`{name}` is neither an embedded model ({}) nor a readable model file \
                 (`{}`: {e})",
                names.join(", "),
                path.display()
            ),
        )
    })?;
    Model::parse(&path.display().to_string(), &text)
}

/// The compute table `name` under key `k` (`table`, `ffn_table`): an embedded one, or a
/// CSV path (one with a `/` or ending in `.csv`, as `ComputeTable::by_name_or_path` tells)
/// relative to the scenario's folder. A name that is neither, or a file that cannot be
/// read, is the scenario's error; a file that can be read names its own errors.
fn table(cx: &Ctx, k: &str, name: &str) -> Result<ComputeTable, InputError> {
    let names = ComputeTable::embedded_names();
    if names.contains(&name) {
        return ComputeTable::embedded(name);
    }
    if !name.contains('/') && !name.ends_with(".csv") {
        return Err(cx.err(
            key(k),
            format!(
                "`{name}` is not an embedded compute table ({}); a table file is a path \
                 ending in .csv",
                names.join(", ")
            ),
        ));
    }
    let path = cx.path(name);
    if let Err(e) = std::fs::metadata(&path) {
        return Err(cx.err(
            key(k),
            format!(
                "`{name}` is neither an embedded compute table ({}) nor a readable CSV file \
                 (`{}`: {e})",
                names.join(", "),
                path.display()
            ),
        ));
    }
    ComputeTable::load(&path)
}

/// The context of every sequence: one length, or one drawn per sequence.
enum Context {
    Fixed(u64),
    /// Per attention GPU, each sequence's.
    Drawn(Vec<Vec<u64>>),
}

impl Context {
    /// The mean over all sequences, rounded to the nearest token.
    fn mean(&self) -> u64 {
        match self {
            Context::Fixed(c) => *c,
            Context::Drawn(d) => {
                let (n, s) = d
                    .iter()
                    .flatten()
                    .fold((0u64, 0u64), |(n, s), &c| (n + 1, s + c));
                (s + n / 2) / n.max(1)
            }
        }
    }
}

const MAX_CONTEXT: i64 = 1 << 24;

/// `context`, or `context_dist` with its parameters, drawn for `na` GPUs x `batch` sequences
/// from the run's context stream.
fn contexts(cx: &Ctx, a: &AfdFile, na: u32, batch: u32, seed: u64) -> Result<Context, InputError> {
    let params = [
        ("context_min", a.context_min.is_some()),
        ("context_max", a.context_max.is_some()),
        ("context_mean", a.context_mean.is_some()),
        ("context_sigma", a.context_sigma.is_some()),
    ];
    let Some(kind) = a.context_dist.as_deref() else {
        if let Some((k, _)) = params.iter().find(|p| p.1) {
            return Err(cx.err(key(k), "needs context_dist = \"uniform\" or \"lognormal\""));
        }
        let Some(c) = a.context else {
            return Err(cx.err(
                key("context"),
                "required: a fixed context, or context_dist for one drawn per sequence",
            ));
        };
        return Ok(Context::Fixed(
            cx.int_in(&key("context"), c, 1, MAX_CONTEXT)? as u64,
        ));
    };
    if a.context.is_some() {
        return Err(cx.err(
            key("context"),
            "not allowed with context_dist: give one or the other (a serving pool sets its \
             requests' contexts itself and takes neither)",
        ));
    }
    let bound = |k: &str, v: Option<i64>, default: Option<i64>| match v.or(default) {
        Some(v) => Ok(cx.int_in(&key(k), v, 1, MAX_CONTEXT)? as u64),
        None => Err(cx.err(key(k), format!("required for context_dist = \"{kind}\""))),
    };
    let dist = match kind {
        "uniform" => {
            if let Some((k, _)) = params[2..].iter().find(|p| p.1) {
                return Err(cx.err(key(k), "needs context_dist = \"lognormal\""));
            }
            let min = bound("context_min", a.context_min, None)?;
            let max = bound("context_max", a.context_max, None)?;
            ContextDist::Uniform { min, max }
        }
        "lognormal" => {
            let min = bound("context_min", a.context_min, Some(1))?;
            let max = bound("context_max", a.context_max, Some(MAX_CONTEXT))?;
            let mean = match a.context_mean {
                Some(m) if m.is_finite() && m >= min as f64 && m <= max as f64 => m,
                Some(m) => {
                    return Err(cx.err(
                        key("context_mean"),
                        format!("{m} is not allowed: context_min ({min}) ..= context_max ({max})"),
                    ));
                }
                None => return Err(cx.err(key("context_mean"), "required for lognormal")),
            };
            let sigma = match a.context_sigma {
                Some(s) if s.is_finite() && s > 0.0 && s <= 4.0 => s,
                Some(s) => {
                    return Err(cx.err(
                        key("context_sigma"),
                        format!("{s} is not allowed: > 0 and <= 4"),
                    ));
                }
                None => return Err(cx.err(key("context_sigma"), "required for lognormal")),
            };
            ContextDist::LogNormal {
                mean,
                sigma,
                min,
                max,
            }
        }
        other => {
            return Err(cx.err(
                key("context_dist"),
                format!("`{other}` is not allowed: uniform or lognormal"),
            ));
        }
    };
    if let ContextDist::Uniform { min, max } | ContextDist::LogNormal { min, max, .. } = dist
        && min > max
    {
        return Err(cx.err(
            key("context_max"),
            format!("{max} is below context_min ({min})"),
        ));
    }
    let mut rng = SimRng::stream(seed, crate::engine::stream::CONTEXT);
    Ok(Context::Drawn(
        (0..na)
            .map(|_| dist.draw(batch as usize, &mut rng))
            .collect(),
    ))
}

/// The placement, checked against the experts and FFN GPUs.
fn placement(cx: &Ctx, a: &AfdFile, model: &Model, nf: u32) -> Result<Placement, InputError> {
    let experts = model.routed_experts;
    let p = match (
        a.placement.as_deref().unwrap_or("contiguous"),
        a.redundant_experts,
    ) {
        ("contiguous", None) => Placement::Contiguous,
        ("round-robin", None) => Placement::RoundRobin,
        ("eplb", n) => {
            // More copies than GPUs per expert would put two copies on one GPU.
            let most = experts as i64 * (nf as i64 - 1);
            let n = cx.int_in(&key("redundant_experts"), n.unwrap_or(0), 0, most)?;
            Placement::Eplb {
                redundant: n as u64,
            }
        }
        ("contiguous" | "round-robin", Some(_)) => {
            return Err(cx.err(key("redundant_experts"), "needs placement = \"eplb\""));
        }
        (other, _) => {
            return Err(cx.err(
                key("placement"),
                format!("`{other}` is not allowed: contiguous, round-robin or eplb"),
            ));
        }
    };
    let slots = experts
        + match p {
            Placement::Eplb { redundant } => redundant,
            _ => 0,
        };
    if p == Placement::Contiguous && !experts.is_multiple_of(nf as u64) {
        return Err(cx.err(
            key("ffn_gpus"),
            format!(
                "{experts} routed experts do not divide over {nf} FFN GPUs with placement = \
                 \"contiguous\": choose placement = \"round-robin\" or \"eplb\" (which \
                 allow uneven GPUs), or a divisor of {experts}"
            ),
        ));
    }
    if slots < nf as u64 {
        return Err(cx.err(
            key("ffn_gpus"),
            format!("{nf} FFN GPUs exceed the {slots} expert slots: a GPU would hold none"),
        ));
    }
    Ok(p)
}

/// The routing: uniform, Zipf (its permutation a stream of the run's seed) or a histogram
/// file whose counts must add up to the step's `tokens` x top_k.
fn routing(
    cx: &Ctx,
    a: &AfdFile,
    model: &Model,
    tokens: u64,
    layers: u64,
    seed: u64,
) -> Result<ExpertRouting, InputError> {
    let kind = a.routing.as_deref().unwrap_or("uniform");
    if a.zipf_s.is_some() && kind != "zipf" {
        return Err(cx.err(key("zipf_s"), "needs routing = \"zipf\""));
    }
    if a.routing_file.is_some() && kind != "histogram" {
        return Err(cx.err(key("routing_file"), "needs routing = \"histogram\""));
    }
    match kind {
        "uniform" => Ok(ExpertRouting::Uniform),
        "zipf" => {
            let s = a.zipf_s.unwrap_or(1.0);
            if !(s.is_finite() && (0.0..=4.0).contains(&s)) {
                return Err(cx.err(key("zipf_s"), format!("{s} is not allowed: 0 ..= 4")));
            }
            Ok(ExpertRouting::Zipf {
                s,
                seed: seed ^ 0x5A1F,
            })
        }
        "histogram" => {
            let Some(file) = &a.routing_file else {
                return Err(cx.err(
                    key("routing_file"),
                    "required for routing = \"histogram\": a CSV of expert,tokens",
                ));
            };
            let path = cx.path(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                cx.err(
                    key("routing_file"),
                    format!("cannot read `{}`: {e}", path.display()),
                )
            })?;
            let pairs = histogram(&path.display().to_string(), &text, model, tokens, layers)?;
            Ok(ExpertRouting::Histogram { pairs })
        }
        other => Err(cx.err(
            key("routing"),
            format!("`{other}` is not allowed: uniform, zipf or histogram"),
        )),
    }
}

/// Parses a routing histogram: `expert,tokens` lines (one histogram for every MoE layer) or
/// `layer,expert,tokens` lines (one per MoE layer; `layer` the model's 0-based index; every
/// MoE layer below `layers`, the layers simulated, must be there, and lines of later layers
/// are checked and dropped). Per layer each expert at most once, each count at most `tokens`
/// (a token picks an expert once), the counts summing to `tokens` x top_k. Errors name `file`
/// and the line (a sum: the layer).
pub fn histogram(
    file: &str,
    text: &str,
    model: &Model,
    tokens: u64,
    layers: u64,
) -> Result<Vec<Vec<u64>>, InputError> {
    let experts = model.routed_experts as usize;
    // Per MoE layer ordinal (from the first MoE layer); one entry without a layer column.
    // An empty entry: a layer with no lines.
    let mut pairs: Vec<Vec<u64>> = Vec::new();
    let mut seen: Vec<Vec<bool>> = Vec::new();
    let mut layered = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = format!("line {}", i + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let Some(by_layer) = layered else {
            layered = Some(match cells[..] {
                ["expert", "tokens"] => false,
                ["layer", "expert", "tokens"] => true,
                _ => {
                    return Err(InputError::new(
                        file,
                        at,
                        "the header must be `expert,tokens` or `layer,expert,tokens`",
                    ));
                }
            });
            continue;
        };
        let c = HistogramLine::parse(file, &at, &cells, by_layer, model, tokens)?;
        if pairs.len() <= c.slot {
            pairs.resize(c.slot + 1, Vec::new());
            seen.resize(c.slot + 1, Vec::new());
        }
        if pairs[c.slot].is_empty() {
            pairs[c.slot] = vec![0; experts];
            seen[c.slot] = vec![false; experts];
        }
        if std::mem::replace(&mut seen[c.slot][c.expert], true) {
            let layer = match by_layer {
                true => format!(
                    " in layer {}",
                    model.moe_layer_at(c.slot as u64).unwrap_or_default()
                ),
                false => String::new(),
            };
            return Err(InputError::new(
                file,
                at,
                format!("expert {} appears twice{layer}", c.expert),
            ));
        }
        pairs[c.slot][c.expert] = c.tokens;
    }
    let Some(by_layer) = layered else {
        return Err(InputError::new(
            file,
            "",
            "empty: the header `expert,tokens` (or `layer,expert,tokens`) and one line per \
             expert",
        ));
    };
    if !by_layer && pairs.is_empty() {
        pairs.push(vec![0; experts]);
    }
    check_histogram_layers(file, &mut pairs, by_layer, model, tokens, layers)?;
    Ok(pairs)
}

/// One data line of a routing histogram.
struct HistogramLine {
    /// The MoE layer ordinal (0 without a layer column).
    slot: usize,
    expert: usize,
    tokens: u64,
}

impl HistogramLine {
    fn parse(
        file: &str,
        at: &str,
        cells: &[&str],
        by_layer: bool,
        model: &Model,
        tokens: u64,
    ) -> Result<HistogramLine, InputError> {
        let bad = |msg: String| InputError::new(file, at, msg);
        let (l, e, n) = match (by_layer, cells) {
            (false, [e, n]) => (None, *e, *n),
            (true, [l, e, n]) => (Some(*l), *e, *n),
            (false, _) => return Err(bad("two cells expected: expert,tokens".into())),
            (true, _) => return Err(bad("three cells expected: layer,expert,tokens".into())),
        };
        let slot = match l {
            None => 0,
            Some(l) => {
                let index = l.parse().ok().and_then(|l| model.moe_index(l));
                index.ok_or_else(|| {
                    bad(format!(
                        "layer `{l}` is not allowed: a MoE layer of the model, {}",
                        model.moe_layers_text()
                    ))
                })? as usize
            }
        };
        let experts = model.routed_experts;
        let expert: u64 = e.parse().ok().filter(|&e| e < experts).ok_or_else(|| {
            bad(format!(
                "expert `{e}` is not allowed: an integer 0 ..= {}",
                experts - 1
            ))
        })?;
        let n: u64 = n.parse().ok().filter(|&n| n <= tokens).ok_or_else(|| {
            bad(format!(
                "tokens `{n}` is not allowed: an integer 0 ..= {tokens} (the step's tokens; a \
                 token picks an expert at most once)"
            ))
        })?;
        Ok(HistogramLine {
            slot,
            expert: expert as usize,
            tokens: n,
        })
    }
}

/// Every layer present sums to `tokens` x top_k; with a layer column, every simulated MoE
/// layer is present, and the layers past those simulated are dropped.
fn check_histogram_layers(
    file: &str,
    pairs: &mut Vec<Vec<u64>>,
    by_layer: bool,
    model: &Model,
    tokens: u64,
    layers: u64,
) -> Result<(), InputError> {
    let simulated = if by_layer {
        model.moe_layers_in(layers) as usize
    } else {
        1
    };
    let missing = |slot: usize| {
        let layer = model.moe_layer_at(slot as u64).unwrap_or_default();
        InputError::new(
            file,
            "",
            format!(
                "layer {layer} has no lines: every simulated MoE layer (those below {layers}: \
                 {}) needs its counts",
                model.moe_layers_text()
            ),
        )
    };
    let need = tokens * model.top_k;
    for (i, p) in pairs.iter().enumerate() {
        let layer = model.moe_layer_at(i as u64).unwrap_or_default();
        if p.is_empty() {
            if i < simulated {
                return Err(missing(i));
            }
            continue;
        }
        let sum = p.iter().sum::<u64>();
        if sum != need {
            let which = if by_layer {
                format!("layer {layer}: ")
            } else {
                String::new()
            };
            return Err(InputError::new(
                file,
                "",
                format!(
                    "{which}the counts sum to {sum} token-expert pairs, but the step's {tokens} \
                     tokens (attention_gpus x batch_per_attention_gpu) x top_k {} need exactly \
                     {need}",
                    model.top_k
                ),
            ));
        }
    }
    if pairs.len() < simulated {
        return Err(missing(pairs.len()));
    }
    pairs.truncate(simulated.max(1));
    Ok(())
}
