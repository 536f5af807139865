//! `afdsim run --trace FILE.json`: Chrome trace events (open in Perfetto or chrome://tracing).
//!
//! One process per GPU. Its compute stream is thread 0, with one slice per kernel (AFD runs
//! name them by stage and layer). Its outgoing transfers are async slices (they overlap, so
//! they cannot share one thread's stack), named by kind and destination. A communication
//! kernel's fixed costs on the GPU (launch and barrier, local copies, flag, polling and
//! reduction: `comm::launch`) are async slices too, of category `kernel`, apart from the
//! transfers they bracket. Times are in microseconds, as the format wants; the picosecond
//! times are rounded to 1e-6 us.

use crate::afd::{DecodeStep, KernelPart, Stage, Transfer};
use crate::net::NetRun;
use crate::topology::Topology;
use serde_json::json;
use std::io::{self, Write};

/// Writes the trace of `run` (and, for an AFD run, what each task was) to `w`.
pub fn write_trace(
    w: &mut dyn Write,
    topo: &Topology,
    run: &NetRun,
    step: Option<&DecodeStep>,
) -> io::Result<()> {
    let mut first = true;
    let mut emit = |w: &mut dyn Write, v: serde_json::Value| -> io::Result<()> {
        if !first {
            w.write_all(b",\n")?;
        }
        first = false;
        w.write_all(v.to_string().as_bytes())
    };
    w.write_all(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")?;
    // Each GPU's role, from the kernels it runs (one pass).
    let mut roles = vec!["GPU"; topo.gpus() as usize];
    if let Some(st) = step {
        for (c, stage) in st.workload.computes.iter().zip(&st.compute_stage) {
            let r = &mut roles[c.gpu.0 as usize];
            *r = match (*r, stage) {
                ("GPU", Stage::Attention) => "attention",
                ("GPU", Stage::Ffn) => "FFN",
                ("FFN", Stage::Attention) | ("attention", Stage::Ffn) => "attention + FFN",
                (same, _) => same,
            };
        }
    }
    let role = |g: u32| roles[g as usize];
    for g in 0..topo.gpus() {
        emit(
            w,
            json!({"ph": "M", "name": "process_name", "pid": g, "args": {"name": format!("GPU {g} ({})", role(g))}}),
        )?;
        emit(
            w,
            json!({"ph": "M", "name": "thread_name", "pid": g, "tid": 0, "args": {"name": "compute stream"}}),
        )?;
    }
    for (i, c) in run.computes.iter().enumerate() {
        let (Some(s), Some(f)) = (c.start, c.finish) else {
            continue;
        };
        // Outside an AFD step, every compute task is a kernel call's fixed cost (a network
        // study's workload has no compute kernels).
        let stage = step.map(|st| (st.compute_stage[i], st.compute_layer[i]));
        let name = match stage {
            Some((Stage::Attention, l)) => format!("attention L{l}"),
            Some((Stage::Ffn, l)) => format!("experts L{l}"),
            Some((Stage::Kernel(kind, part), l)) => {
                let kind = match kind {
                    Transfer::Dispatch => "dispatch",
                    Transfer::Combine => "combine",
                };
                let part = match part {
                    KernelPart::Start => "launch + barrier",
                    KernelPart::Copy => "local copy",
                    KernelPart::End => "flag + poll",
                    KernelPart::Reduce => "reduction",
                };
                format!("{kind} {part} L{l}")
            }
            None => "kernel fixed cost".into(),
        };
        if stage.is_some_and(|(s, _)| !s.is_kernel()) {
            emit(
                w,
                json!({"ph": "X", "name": name, "pid": c.gpu.0, "tid": 0,
                "ts": s.as_us_f64(), "dur": f.since(s).as_us_f64()}),
            )?;
            continue;
        }
        let common =
            json!({"cat": "kernel", "name": name, "id": format!("k{i}"), "pid": c.gpu.0, "tid": 2});
        let mut b = common.clone();
        b["ph"] = json!("b");
        b["ts"] = json!(s.as_us_f64());
        emit(w, b)?;
        let mut e = common;
        e["ph"] = json!("e");
        e["ts"] = json!(f.as_us_f64());
        emit(w, e)?;
    }
    for (i, m) in run.messages.iter().enumerate() {
        let Some(f) = m.finish else { continue };
        let kind = match step.and_then(|s| s.message_kind.get(i)) {
            Some(Transfer::Dispatch) => "dispatch",
            Some(Transfer::Combine) => "combine",
            None => "message",
        };
        let name = format!("{kind} -> GPU {}", m.dst.0);
        let common = json!({"cat": kind, "name": name, "id": i, "pid": m.src.0, "tid": 1});
        let mut b = common.clone();
        b["ph"] = json!("b");
        b["ts"] = json!(m.start.as_us_f64());
        b["args"] = json!({"bytes": m.bytes});
        emit(w, b)?;
        let mut e = common;
        e["ph"] = json!("e");
        e["ts"] = json!(f.as_us_f64());
        emit(w, e)?;
    }
    w.write_all(b"\n]}\n")
}
