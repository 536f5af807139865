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

use super::Ctx;
use super::afd::{AfdFile, check_weights, known_hbm_gib};
use crate::compute::WeightPlacement;
use crate::engine::{PS_PER_S, Time};
use crate::error::InputError;
use crate::serving::sim::{Admission, Layout, Mode};
use crate::serving::traffic::{LAST_ARRIVAL, Request, Traffic};
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
    /// P/D: KV-cache transfers share each link with the pools' iteration traffic (they get
    /// the capacity it leaves); false: they see an idle fabric. Default true.
    #[serde(default)]
    pub kv_shares_fabric: Option<toml::Value>,
    /// When a request takes KV cache: "reserve" (its whole cache, input + output, up
    /// front; never preempted; the default) or "grow" (its prompt; the cache grows a token
    /// per iteration and the newest sequences are preempted and recomputed when it runs
    /// out, as vLLM and SGLang do).
    #[serde(default)]
    pub admission: Option<toml::Value>,
    /// With `admission = "grow"`: the fraction of a GPU's KV capacity kept free when a
    /// request is admitted (vLLM's watermark); default 0.01.
    #[serde(default)]
    pub kv_watermark: Option<toml::Value>,
    /// The decode pool, as an `[afd]` table.
    pub decode: toml::Table,
    /// The prefill pool as an `[afd]`-style table (`mode`, `attention_gpus`, `ffn_gpus`,
    /// `micro_batches`, placement), with the decode pool's model and tables: an AFD prefill
    /// pool, say. Instead of `prefill_gpus`.
    #[serde(default)]
    pub prefill: Option<toml::Table>,
}

/// Keys of `[afd]` that size and shape one pool: a `[serving.prefill]` table takes these
/// (and nothing of `[serving.decode]`'s, but its communication library: see
/// `prefill_pool`).
const POOL_KEYS: [&str; 8] = [
    "mode",
    "attention_gpus",
    "ffn_gpus",
    "micro_batches",
    "placement",
    "redundant_experts",
    "comm",
    "comm_sms",
];

/// The prefill pool's communication library when `[serving.decode]` names none: DeepEP's
/// normal (throughput) kernels, which DeepSeek's deployment uses for prefill, where each GPU
/// moves thousands of tokens (the decode pool's default is its low-latency kernels,
/// `config::afd::DEFAULT_COMM`).
const PREFILL_COMM: &str = "deepep-normal";

/// Keys of `[afd]` that the request stream sets (contexts come from the requests).
const SET_BY_SERVING: [&str; 9] = [
    "batch_per_attention_gpu",
    "context",
    "context_dist",
    "context_min",
    "context_max",
    "context_mean",
    "context_sigma",
    "steps",
    "layers",
];

pub(super) fn resolve(
    cx: &Ctx,
    s: &ServingFile,
    gpus: u32,
    seed: u64,
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
    let prefill = prefill_pool(cx, s, gpus, decode_gpus, seed)?;
    if let Some(p) = &prefill {
        let n = distinct_gpus(p);
        if decode_gpus + n > gpus {
            return Err(cx.err(
                key(if s.prefill.is_some() {
                    "prefill"
                } else {
                    "prefill_gpus"
                }),
                format!("{decode_gpus} decode + {n} prefill GPUs exceed the fabric's {gpus} GPUs"),
            ));
        }
    }
    let prefill = prefill.map(|mut spec| {
        // The prefill pool sits after the decode pool's GPUs.
        for g in spec
            .attention_gpus
            .iter_mut()
            .chain(spec.ffn_gpus.iter_mut())
        {
            *g = NodeId(g.0 + decode_gpus);
        }
        spec
    });
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
    let usable_gib = hbm_gib * (1.0 - reserve);
    let hbm = usable_gib * (1u64 << 30) as f64;
    let weights = pool_weights(cx, &decode, "decode", usable_gib, reserve)?;
    if let Some(p) = &prefill {
        pool_weights(cx, p, "prefill", usable_gib, reserve)?;
    }
    let kv_per_token = model.kv_bytes_per_token();
    let kv_capacity_tokens = ((hbm - weights) / kv_per_token as f64) as u64;

    let traffic = match &s.traffic {
        toml::Value::String(name) => traffic_by_name(cx, name)?,
        toml::Value::Table(t) => {
            Traffic::parse(
                cx.origin,
                &toml::to_string(t).expect("a table prints"),
                cx.dir,
            )
            .map_err(|e| {
                // The table's own keys are the scenario's, under serving.traffic (the
                // lines of the text printed from it mean nothing); a trace's errors
                // name the trace.
                if e.file != cx.origin {
                    return e;
                }
                let k = e.key.find(" (line ").map_or(&e.key[..], |i| &e.key[..i]);
                let k = match k.starts_with("line ") || k.is_empty() {
                    true => "serving.traffic".to_string(),
                    false => format!("serving.traffic.{k}"),
                };
                InputError::new(cx.origin, k, e.message)
            })?
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
    let kv_shares_fabric = match &s.kv_shares_fabric {
        None => true,
        Some(_) if prefill.is_none() => {
            return Err(cx.err(
                key("kv_shares_fabric"),
                "needs a prefill pool (prefill_gpus or [serving.prefill]): aggregated serving \
                 sends no KV cache over the fabric",
            ));
        }
        Some(toml::Value::Boolean(b)) => *b,
        Some(v) => {
            return Err(cx.err(
                key("kv_shares_fabric"),
                format!(
                    "{v} is not allowed: true (KV-cache transfers get the link capacity the \
                     pools' iteration traffic leaves; the default) or false (they see an \
                     idle fabric)"
                ),
            ));
        }
    };
    let admission = admission(cx, s, kv_capacity_tokens)?;
    let total_gpus = decode_gpus + prefill.as_ref().map_or(0, distinct_gpus);
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
        kv_shares_fabric,
        admission,
        total_gpus,
    })
}

/// `serving.traffic = "NAME"`: a preset, or a traffic file relative to the scenario's
/// folder. A name that is neither is the scenario's error; a file that can be read names
/// its own errors (and its trace's).
fn traffic_by_name(cx: &Ctx, name: &str) -> Result<Traffic, InputError> {
    if let Some(t) = Traffic::preset(name) {
        return Ok(t);
    }
    let path = cx.path(name);
    if let Err(e) = std::fs::read_to_string(&path) {
        return Err(cx.err(
            "serving.traffic",
            format!(
                "`{name}` is neither a preset ({}) nor a readable traffic file (`{}`: {e})",
                Traffic::preset_names().join(", "),
                path.display()
            ),
        ));
    }
    Traffic::by_name_or_path(&path.display().to_string())
}

/// The admission policy: `admission` and its `kv_watermark`.
fn admission(cx: &Ctx, s: &ServingFile, kv_capacity: u64) -> Result<Admission, InputError> {
    let key = |k: &str| format!("serving.{k}");
    let grow = match &s.admission {
        None => false,
        Some(toml::Value::String(v)) if v == "reserve" => false,
        Some(toml::Value::String(v)) if v == "grow" => true,
        Some(v) => {
            return Err(cx.err(
                key("admission"),
                format!(
                    "{v} is not allowed: \"reserve\" (a request's whole KV cache, input + \
                     output, is reserved at admission; nothing is preempted; the default) or \
                     \"grow\" (admitted when its prompt fits; the cache grows a token per \
                     iteration; the newest sequences are preempted and recomputed when it runs \
                     out)"
                ),
            ));
        }
    };
    let watermark = match &s.kv_watermark {
        None => 0.01,
        Some(_) if !grow => {
            return Err(cx.err(
                key("kv_watermark"),
                "needs admission = \"grow\": with \"reserve\" a request's whole cache is \
                 reserved, so no room is kept free",
            ));
        }
        Some(v) => match v.as_float().or(v.as_integer().map(|i| i as f64)) {
            Some(w) if w.is_finite() && (0.0..1.0).contains(&w) => w,
            _ => {
                return Err(cx.err(
                    key("kv_watermark"),
                    format!(
                        "{v} is not allowed: a fraction of the KV capacity, 0 <= watermark < 1 \
                         (default 0.01)"
                    ),
                ));
            }
        },
    };
    Ok(if grow {
        Admission::Grow {
            watermark_tokens: (watermark * kv_capacity as f64) as u64,
        }
    } else {
        Admission::Reserve
    })
}

/// The weights resident on one GPU of a pool that holds sequences (an attention GPU, or an
/// expert-parallel GPU), after `afd`'s check that every GPU of the pool holds its weights in
/// the HBM left by the memory reserve (`usable_gib`; FFN GPUs: their own table's device).
fn pool_weights(
    cx: &Ctx,
    spec: &crate::afd::Deployment,
    pool: &str,
    usable_gib: f64,
    reserve: f64,
) -> Result<f64, InputError> {
    let colocated = spec.attention_gpus == spec.ffn_gpus;
    let ffn_gib =
        known_hbm_gib(spec.ffn_table.device()).map_or(usable_gib, |g| g * (1.0 - reserve));
    check_weights(
        cx,
        &spec.model,
        &spec.experts,
        colocated,
        (usable_gib, ffn_gib),
        0.0,
    )
    .map_err(|e| {
        let e = rekey(cx, pool, e);
        InputError::new(
            e.file,
            e.key,
            format!("{} (HBM less serving.memory_reserve)", e.message),
        )
    })?;
    let slots = spec.experts.slots_on.iter().copied().max().unwrap_or(0);
    let placement = if colocated {
        WeightPlacement::Colocated { experts: slots }
    } else {
        WeightPlacement::AttentionSide
    };
    Ok(spec.model.weight_bytes(placement) as f64)
}

/// An error of `afd`'s resolution of a pool, named under `serving.<pool>`.
fn rekey(cx: &Ctx, pool: &str, e: InputError) -> InputError {
    let k = e.key.strip_prefix("afd.").unwrap_or(&e.key).to_string();
    InputError::new(
        cx.origin,
        format!("serving.{pool}.{k}"),
        e.message.replace("afd.", &format!("serving.{pool}.")),
    )
}

/// The prefill pool: `prefill_gpus` expert-parallel GPUs, or a `[serving.prefill]` table,
/// over the decode pool's model, tables and routing (not its placement, sized for it).
fn prefill_pool(
    cx: &Ctx,
    s: &ServingFile,
    gpus: u32,
    decode_gpus: u32,
    seed: u64,
) -> Result<Option<crate::afd::Deployment>, InputError> {
    let key = |k: &str| format!("serving.{k}");
    check_prefill_fits(cx, s, gpus, decode_gpus)?;
    let mut t = s.decode.clone();
    // The decode pool's library where it names one (a study of one library), else the
    // prefill default; a [serving.prefill] table may still set its own.
    let named = t.contains_key("comm");
    for k in POOL_KEYS
        .iter()
        .filter(|k| !(named && k.starts_with("comm")))
    {
        t.remove(*k);
    }
    if !named {
        t.insert("comm".into(), PREFILL_COMM.into());
    }
    t.insert(
        "micro_batches".into(),
        s.prefill_micro_batches.unwrap_or(2).into(),
    );
    match (s.prefill_gpus, &s.prefill) {
        (None, None) => {
            if s.prefill_micro_batches.is_some() {
                return Err(cx.err(key("prefill_micro_batches"), "needs prefill_gpus"));
            }
            return Ok(None);
        }
        (Some(_), Some(_)) => {
            return Err(cx.err(
                key("prefill"),
                "give the prefill pool as prefill_gpus or as a [serving.prefill] table, not both",
            ));
        }
        (Some(p), None) => {
            let p = cx.int_in(&key("prefill_gpus"), p, 1, gpus as i64)?;
            t.insert("mode".into(), "colocated".into());
            t.insert("attention_gpus".into(), p.into());
        }
        (None, Some(user)) => {
            if s.prefill_micro_batches.is_some() {
                return Err(cx.err(
                    key("prefill_micro_batches"),
                    "set micro_batches in [serving.prefill] instead",
                ));
            }
            for (k, v) in user {
                if SET_BY_SERVING.contains(&k.as_str()) {
                    return Err(cx.err(
                        key(&format!("prefill.{k}")),
                        "not allowed here: the request stream sets it",
                    ));
                }
                if !POOL_KEYS.contains(&k.as_str()) {
                    return Err(cx.err(
                        key(&format!("prefill.{k}")),
                        "not allowed here: the prefill pool takes mode, attention_gpus, \
                         ffn_gpus, micro_batches, placement, redundant_experts, comm and \
                         comm_sms; the rest comes from [serving.decode]",
                    ));
                }
                t.insert(k.clone(), v.clone());
            }
        }
    }
    afd_pool(cx, t, gpus, seed, "prefill").map(Some)
}

/// The prefill pool's GPUs as written, checked against the GPUs the decode pool leaves
/// before the pool is resolved: 48 + 40 GPUs on 64 is the problem, not that the experts do
/// not divide over 40. Values that are not positive integers are left to the pool's own
/// checks.
fn check_prefill_fits(
    cx: &Ctx,
    s: &ServingFile,
    gpus: u32,
    decode_gpus: u32,
) -> Result<(), InputError> {
    let int = |v: Option<&toml::Value>| v.and_then(toml::Value::as_integer).filter(|&n| n > 0);
    let (k, n, what) = match (s.prefill_gpus, &s.prefill) {
        (Some(p), None) if p > 0 => ("prefill_gpus", p, format!("{p} prefill")),
        (None, Some(t)) => {
            let colocated = t.get("mode").and_then(toml::Value::as_str) == Some("colocated");
            let Some(na) = int(t.get("attention_gpus")) else {
                return Ok(());
            };
            match (colocated, int(t.get("ffn_gpus"))) {
                (true, _) => ("prefill.attention_gpus", na, format!("{na} prefill")),
                (false, Some(nf)) => (
                    "prefill.ffn_gpus",
                    na.saturating_add(nf),
                    format!(
                        "{} prefill ({na} attention + {nf} FFN)",
                        na.saturating_add(nf)
                    ),
                ),
                (false, None) => return Ok(()),
            }
        }
        _ => return Ok(()),
    };
    if decode_gpus as i64 + n > gpus as i64 {
        return Err(cx.err(
            format!("serving.{k}"),
            format!(
                "{decode_gpus} decode + {what} GPUs exceed the fabric's {gpus} GPUs: at most \
                 {} GPUs are left for the prefill pool",
                gpus.saturating_sub(decode_gpus)
            ),
        ));
    }
    Ok(())
}

/// An `[afd]`-style pool from a table the serving simulation completes; errors name the
/// key under `serving.<pool>`.
fn afd_pool(
    cx: &Ctx,
    mut t: toml::Table,
    gpus: u32,
    seed: u64,
    pool: &str,
) -> Result<crate::afd::Deployment, InputError> {
    // Enough for any micro-batch count (the check that the batch fills them).
    t.insert("batch_per_attention_gpu".into(), 64.into());
    t.insert("context".into(), 1.into());
    let file: AfdFile = serde_path_to_error::deserialize(toml::Value::Table(t)).map_err(|e| {
        InputError::new(
            cx.origin,
            format!("serving.{pool}.{}", e.path()),
            super::one_line(e.into_inner().message()),
        )
    })?;
    // The iterations set the step's shape: only the deployment is kept.
    let spec = super::afd::resolve(cx, &file, gpus, seed).map_err(|e| rekey(cx, pool, e))?;
    Ok(spec.deployment)
}

fn distinct_gpus(spec: &crate::afd::Deployment) -> u32 {
    if spec.attention_gpus == spec.ffn_gpus {
        spec.attention_gpus.len() as u32
    } else {
        (spec.attention_gpus.len() + spec.ffn_gpus.len()) as u32
    }
}

/// Checks that the last request arrives by [`LAST_ARRIVAL`] (a later arrival would be
/// clipped by the clock, not simulated) and that every request fits an empty decode GPU's
/// KV cache; names the request (and for a trace, its line).
pub fn check_fits(
    origin: &str,
    spec: &ServingSpec,
    requests: &[Request],
) -> Result<(), InputError> {
    if let Some(last) = requests.last()
        && last.arrival > LAST_ARRIVAL
    {
        let days = |t: Time| t.as_ps() as f64 / (86_400.0 * PS_PER_S as f64);
        let rate = spec
            .traffic
            .rate()
            .map_or(String::new(), |r| format!(" at {r} requests/s"));
        return Err(InputError::new(
            origin,
            "serving.requests",
            format!(
                "the last of {} requests{rate} arrives after {:.0} days of simulated time; at \
                 most {:.0} days are allowed (the simulator's clock ends at {:.0} days): lower \
                 serving.requests or raise serving.rate",
                requests.len(),
                days(last.arrival).floor(),
                days(LAST_ARRIVAL),
                days(Time::HORIZON).floor()
            ),
        ));
    }
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
