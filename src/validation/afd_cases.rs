//! AFD decode cases: the pipeline closed form and byte conservation.

use super::{Case, Check};
use crate::afd::{Stage, Transfer};
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
    ]
}

const PIPELINE: &str = include_str!("../../validation/afd-pipeline-closed-form.toml");
const BYTES: &str = include_str!("../../validation/afd-bytes-conservation.toml");

/// Runs an AFD scenario exactly as `afdsim run` does; a case's inputs are fixed, so an error
/// is reported as an input error of the case's file.
fn run(s: &Scenario) -> Result<(crate::afd::DecodeStep, crate::packet::PacketRun), InputError> {
    let o = crate::run(s, &mut |_, _| {})
        .map_err(|e| InputError::new(&s.origin, "afd", e.to_string()))?;
    let step = o.step.expect("an [afd] scenario yields its decode step");
    Ok((step, o.run))
}

fn pipeline() -> Result<Vec<Check>, InputError> {
    let case = "afd-pipeline-closed-form";
    let s = Scenario::parse(PIPELINE, "validation/afd-pipeline-closed-form.toml", None)?;
    let spec = s.afd.as_ref().expect("[afd]");
    let (step, r) = run(&s)?;
    let dur = |i: usize| {
        let c = &r.computes[i];
        c.finish
            .expect("ran")
            .since(c.start.expect("ran"))
            .as_secs_f64()
            * 1e6
    };
    let layers = spec.layers as usize;
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
        };
        *slot = slot.max(dur(i));
    }
    let m = spec.micro_batches as f64;
    let expected = m * att.iter().sum::<f64>() + ffn[layers - 1];
    let simulated = r
        .computes
        .iter()
        .filter_map(|c| c.finish)
        .chain(r.messages.iter().filter_map(|x| x.finish))
        .max()
        .expect("tasks")
        .as_us_f64();
    let slack = (spec.model.dense_layers as usize..layers)
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

fn bytes() -> Result<Vec<Check>, InputError> {
    let case = "afd-bytes-conservation";
    let mut checks = Vec::new();
    for level in [Level::Packet, Level::Flow] {
        let s = Scenario::parse(BYTES, "validation/afd-bytes-conservation.toml", None)?
            .with_level(level)?;
        let model = &s.afd.as_ref().expect("[afd]").model;
        let (step, r) = run(&s)?;
        let delivered = |kind: Transfer| -> u64 {
            r.messages
                .iter()
                .zip(&step.message_kind)
                .filter(|(m, k)| **k == kind && m.finish.is_some())
                .map(|(m, _)| m.bytes)
                .sum()
        };
        let pairs = step.token_gpu_pairs;
        checks.push(Check::within(
            case,
            &format!("dispatch bytes delivered ({})", level.as_str()),
            (pairs * model.dispatch_bytes_per_token(model.dispatch_dtype)) as f64,
            delivered(Transfer::Dispatch) as f64,
            0.0,
            "sum over tokens of distinct destination GPUs x dispatch bytes per token",
        ));
        checks.push(Check::within(
            case,
            &format!("combine bytes delivered ({})", level.as_str()),
            (pairs * model.combine_bytes_per_token(model.combine_dtype)) as f64,
            delivered(Transfer::Combine) as f64,
            0.0,
            "the same (token, GPU) pairs x combine bytes per token",
        ));
    }
    Ok(checks)
}
