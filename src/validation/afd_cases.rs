//! AFD decode cases: the pipeline closed form and byte conservation.

use super::{Case, Check};
use crate::afd::{Dedup, Stage, Transfer};
use crate::config::{Level, Scenario};

use crate::error::InputError;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "afd-pipeline-closed-form",
            run: pipeline,
        },
        Case {
            name: "afd-bytes-conservation",
            run: bytes,
        },
        Case {
            name: "stepmesh-2a2f-a2f",
            run: || stepmesh(STEPMESH_A2F, "stepmesh-2a2f-a2f", 91.0),
        },
        Case {
            name: "stepmesh-2a2f-f2a",
            run: || stepmesh(STEPMESH_F2A, "stepmesh-2a2f-f2a", 182.0),
        },
    ]
}

const PIPELINE: &str = include_str!("../../validation/afd-pipeline-closed-form.toml");
const BYTES: &str = include_str!("../../validation/afd-bytes-conservation.toml");
const STEPMESH_A2F: &str = include_str!("../../validation/stepmesh-2a2f-a2f.toml");
const STEPMESH_F2A: &str = include_str!("../../validation/stepmesh-2a2f-f2a.toml");

/// Runs an AFD scenario exactly as `afdsim run` does; a case's inputs are fixed, so an error
/// is reported as an input error of the case's file.
fn run(s: &Scenario) -> Result<(crate::afd::DecodeStep, crate::net::NetRun), InputError> {
    let o = crate::run(s, &mut |_| {})
        .map_err(|e| InputError::new(s.origin(), "afd", e.to_string()))?;
    match o.study {
        crate::StudyOutcome::Afd { step, .. } => Ok((step, o.run)),
        _ => unreachable!("an [afd] scenario yields its decode step"),
    }
}

fn pipeline() -> Result<Vec<Check>, InputError> {
    let case = "afd-pipeline-closed-form";
    let s = Scenario::parse(PIPELINE, "validation/afd-pipeline-closed-form.toml", None)?;
    let spec = s.afd().expect("[afd]");
    let (step, r) = run(&s)?;
    let dur = |i: usize| {
        let c = &r.computes[i];
        c.finish
            .expect("ran")
            .since(c.start.expect("ran"))
            .as_secs_f64()
            * 1e6
    };
    let layers = spec.shape.layers as usize;
    let (mut att, mut ffn) = (vec![0.0f64; layers], vec![0.0f64; layers]);
    for (i, (&stage, &layer)) in step
        .compute_stage
        .iter()
        .zip(&step.compute_layer)
        .enumerate()
    {
        let slot = match stage {
            Stage::Attention => &mut att[layer as usize],
            Stage::Ffn => &mut ffn[layer as usize],
            Stage::Kernel(..) => continue,
        };
        *slot = slot.max(dur(i));
    }
    let m = spec.deployment.micro_batches as f64;
    let expected = m * att.iter().sum::<f64>() + ffn[layers - 1];
    let simulated = r
        .computes
        .iter()
        .filter_map(|c| c.finish)
        .chain(r.messages.iter().filter_map(|x| x.finish))
        .max()
        .expect("tasks")
        .as_us_f64();
    let model = &spec.deployment.model;
    let slack = (0..layers)
        .filter(|&l| model.is_moe(l as u64))
        .map(|l| (m - 1.0) * att[l] / ffn[l])
        .fold(f64::INFINITY, f64::min);
    Ok(vec![
        Check::at_least(
            case,
            "precondition: min over MoE layers of (M-1) x attention / FFN",
            1.0,
            slack,
            "the closed form holds only while attention never waits for the FFN stage",
        ),
        Check::within(
            case,
            "step_us",
            expected,
            simulated,
            1.0,
            "closed form: M x sum of attention times + last FFN (pipeline fill)",
        ),
    ])
}

/// The dispatch conventions the case covers: (label, lines added to `[afd]`).
/// The shared expert on the FFN side adds no copy, so the per-expert closed form still holds.
/// The file runs under the default library (DeepEP low-latency), so each convention names
/// its deduplication.
const CONVENTIONS: [(&str, &str); 5] = [
    ("per GPU", "dedup = \"gpu\"\n"),
    ("per expert", "dedup = \"expert\"\n"),
    (
        "per GPU, bf16, eplb, zipf",
        "dedup = \"gpu\"\ndispatch_dtype = \"bf16\"\nplacement = \"eplb\"\n\
         redundant_experts = 8\nrouting = \"zipf\"\n",
    ),
    (
        "per GPU, shared expert on ffn",
        "dedup = \"gpu\"\nshared_expert_side = \"ffn\"\n",
    ),
    (
        "per expert, shared expert on ffn, zipf",
        "dedup = \"expert\"\nshared_expert_side = \"ffn\"\nrouting = \"zipf\"\n",
    ),
];

fn bytes() -> Result<Vec<Check>, InputError> {
    let case = "afd-bytes-conservation";
    let mut checks = Vec::new();
    for (label, extra) in CONVENTIONS {
        for level in [Level::Packet, Level::Flow] {
            checks.extend(bytes_at(case, label, extra, level)?);
        }
    }
    Ok(checks)
}

fn bytes_at(
    case: &'static str,
    label: &str,
    extra: &str,
    level: Level,
) -> Result<Vec<Check>, InputError> {
    let text = format!("{BYTES}{extra}");
    let s = Scenario::parse(&text, "validation/afd-bytes-conservation.toml", None)?
        .with_level(level)?;
    let spec = s.afd().expect("[afd]");
    let model = &spec.deployment.model;
    let (step, r) = run(&s)?;
    let delivered = |kind: Transfer| -> u64 {
        r.messages
            .iter()
            .zip(&step.message_kind)
            .filter(|(m, k)| **k == kind && m.finish.is_some())
            .map(|(m, _)| m.bytes)
            .sum()
    };
    // Per expert, the copies are known in closed form: every token of every MoE layer sends
    // top_k (no FFN GPU is an attention GPU here). Per GPU they are the distinct destination
    // GPUs the routing drew, counted while drawing.
    let (copies, how) = match spec.deployment.dedup {
        Dedup::Expert => (
            step.tokens * model.top_k * model.moe_layers_in(spec.shape.layers),
            "tokens x top_k x MoE layers",
        ),
        Dedup::Gpu => (
            step.token_copies,
            "sum over tokens of distinct destination GPUs",
        ),
    };
    let lvl = level.as_str();
    Ok(vec![
        Check::within(
            case,
            &format!("dispatch bytes delivered ({label}, {lvl})"),
            (copies * model.dispatch_bytes_per_token(model.dispatch_dtype)) as f64,
            delivered(Transfer::Dispatch) as f64,
            0.0,
            &format!("{how} x dispatch bytes per token"),
        ),
        Check::within(
            case,
            &format!("combine bytes delivered ({label}, {lvl})"),
            (copies * model.combine_bytes_per_token(model.combine_dtype)) as f64,
            delivered(Transfer::Combine) as f64,
            0.0,
            "the same token copies x combine bytes per token",
        ),
    ])
}

/// A StepMesh 2A2F transfer (published-measurements.md section 2) with the `stepmesh`
/// library: first start to last completion. StepMesh's Table 1 gives a budget ("Ideal
/// Overhead"), not a measurement: the transfer must fit it, and can be no faster than the
/// busiest FFN GPU's bytes at its NIC's payload rate.
fn stepmesh(text: &str, case: &'static str, budget_us: f64) -> Result<Vec<Check>, InputError> {
    let s = Scenario::parse(text, &format!("validation/{case}.toml"), None)?;
    let o = crate::run(&s, &mut |_| {})
        .map_err(|e| InputError::new(s.origin(), "traffic", e.to_string()))?;
    let simulated_us = crate::comm::span(&o.run).map_or(f64::NAN, |(f, l)| l.since(f).as_us_f64());
    let mut into = std::collections::BTreeMap::new();
    for m in s.messages() {
        *into.entry(m.dst).or_insert(0u64) += m.bytes;
    }
    let busiest = into.values().copied().max().unwrap_or(0);
    let wire = s.net().nic_wire;
    let nic = s.fabric().spec.nic.as_ref().expect("an RDMA NIC").rate;
    let payload_gbytes = nic.gbytes_per_s_f64() * wire.mtu_bytes as f64
        / (wire.mtu_bytes + wire.header_bytes) as f64;
    Ok(vec![
        Check::at_most(
            case,
            "transfer_us within the budget",
            budget_us,
            simulated_us,
            "StepMesh Introduction.md Table 1, \"Ideal Overhead\" for 2A2F (a budget: 50 ms \
             TPOT / 61 layers / 3 micro-batches), 8x400G RoCE, PFC, no CC",
        ),
        Check::at_least(
            case,
            "transfer_us, at least the bytes at NIC payload rate",
            busiest as f64 / payload_gbytes / 1e3,
            simulated_us,
            "closed-form bound: the busiest FFN GPU's bytes through its one NIC",
        ),
    ])
}
