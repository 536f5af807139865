//! Communication-kernel cases (`src/comm/`): a closed form at one packet, combine against
//! dispatch, and the libraries against published kernel figures, in sample and out of
//! sample (docs/comm.md says which figure each library's parameters were fitted on).

use super::{Case, Check};
use crate::config::Scenario;
use crate::engine::{Dur, Time};
use crate::error::InputError;
use crate::net::NetRun;
use crate::topology::NodeKind;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "comm-one-token",
            run: one_token,
        },
        Case {
            name: "comm-combine-vs-dispatch",
            run: combine_vs_dispatch,
        },
        Case {
            name: "deepep-ll",
            run: deepep_ll,
        },
        Case {
            name: "deepep-normal-sm-bound",
            run: sm_bound,
        },
        Case {
            name: "nccl-torch-a2a-h100",
            run: torch_a2a,
        },
        Case {
            name: "afd-comm-fixed-closed-form",
            run: afd_fixed,
        },
        Case {
            name: "comm-sm-contention",
            run: sm_contention,
        },
    ]
}

const SM_CONTENTION: &str = include_str!("../../validation/comm-sm-contention.toml");

const AFD_FIXED: &str = include_str!("../../validation/afd-comm-fixed-closed-form.toml");

const ONE_TOKEN: &str = include_str!("../../validation/comm-one-token.toml");
const COMBINE: &str = include_str!("../../validation/comm-combine-vs-dispatch.toml");
const DEEPEP_LL: &str = include_str!("../../validation/deepep-ll.toml");
const SM_BOUND: &str = include_str!("../../validation/deepep-normal-sm-bound.toml");
const TORCH_A2A: &str = include_str!("../../validation/nccl-torch-a2a-h100.toml");

/// The libraries with costs (every preset but `ideal`) that move data over NVLink.
const NVLINK_LIBRARIES: [&str; 4] = ["nccl", "deepep-normal", "deepep-ll", "nvl-one-sided"];

/// `text` with `from` replaced once by `to` (which must apply), parsed as case `case`.
fn variant(text: &str, from: &str, to: &str, case: &str) -> Result<Scenario, InputError> {
    let t = text.replacen(from, to, 1);
    assert!(from == to || t != text, "{case}: {from:?} not in its file");
    Scenario::parse(&t, &format!("validation/{case}.toml"), None)
}

/// Runs a scenario as `afdsim run` does; the time from its first launch to its last flag.
fn kernel_time(s: &Scenario) -> Result<(Dur, NetRun), InputError> {
    let o = crate::run(s, &mut |_| {})
        .map_err(|e| InputError::new(s.origin(), "traffic", e.to_string()))?;
    let (a, b) = crate::comm::span(&o.run).unwrap_or((Time::ZERO, Time::ZERO));
    Ok((b.since(a), o.run))
}

fn one_token() -> Result<Vec<Check>, InputError> {
    let case = "comm-one-token";
    let mut out = Vec::new();
    for lib in NVLINK_LIBRARIES {
        let s = variant(
            ONE_TOKEN,
            "kernel = \"nccl\"",
            &format!("kernel = \"{lib}\""),
            case,
        )?;
        let call = &s.kernels()[0];
        let m = &s.messages()[0];
        // One packet store-and-forward on each hop of its path.
        let topo = &s.fabric().topology;
        let wire = m.bytes + s.net().nvlink_wire.header_bytes as u64;
        assert!(
            m.bytes <= s.net().nvlink_wire.mtu_bytes as u64,
            "one packet"
        );
        let (mut at, mut path) = (m.src, Dur::ZERO);
        while at != m.dst {
            let l = &topo.links()[topo.next_hops(at, m.dst)[0].0 as usize];
            path += l.rate.serialize(wire) + l.latency;
            if topo.kind(l.to) == NodeKind::Switch {
                path += s.net().switch.latency;
            }
            at = l.to;
        }
        let lib = &call.library;
        let expected = lib.start_cost() + path + lib.end_cost();
        let (t, _) = kernel_time(&s)?;
        out.push(Check::within(
            case,
            &format!("{lib_name} time_us", lib_name = lib.name),
            expected.as_us_f64(),
            t.as_us_f64(),
            0.01,
            "closed form: launch + barrier + one packet's path + flag + poll",
        ));
    }
    Ok(out)
}

fn combine_vs_dispatch() -> Result<Vec<Check>, InputError> {
    let case = "comm-combine-vs-dispatch";
    let mut out = Vec::new();
    for lib in NVLINK_LIBRARIES {
        let text = COMBINE.replacen("kernel = \"deepep-ll\"", &format!("kernel = \"{lib}\""), 1);
        let d = variant(&text, "dispatch", "dispatch", case)?;
        let c = variant(
            &text,
            "direction = \"dispatch\"",
            "direction = \"combine\"",
            case,
        )?;
        let bytes = |s: &Scenario| s.messages().iter().map(|m| m.bytes).sum::<u64>();
        assert_eq!(bytes(&d), bytes(&c), "equal bytes both ways");
        let (td, _) = kernel_time(&d)?;
        let (tc, _) = kernel_time(&c)?;
        out.push(Check::at_least(
            case,
            &format!("{lib} combine / dispatch time"),
            1.0,
            tc.as_ps() as f64 / td.as_ps() as f64,
            "direction: a combine moves the same bytes back and its receivers reduce them",
        ));
    }
    Ok(out)
}

fn deepep_ll() -> Result<Vec<Check>, InputError> {
    // (EP, dispatch us, combine us, dispatch in the fit) from DeepEP docs/legacy.md.
    const ROWS: [(u32, f64, f64, bool); 5] = [
        (8, 77.0, 114.0, false),
        (16, 118.0, 195.0, true),
        (32, 155.0, 273.0, true),
        (64, 173.0, 314.0, false),
        (128, 192.0, 369.0, true),
    ];
    let mut out = Vec::new();
    for (ep, dispatch_us, combine_us, fitted) in ROWS {
        let case = format!("deepep-ll-ep{ep}");
        let nodes = format!("nodes = {}", ep / 8);
        let text = DEEPEP_LL.replacen("nodes = 2", &nodes, 1);
        let text = if ep == 8 {
            text.replacen(
                &nodes,
                &format!("{nodes}\n[fabric.scale_out]\ntopology = \"none\""),
                1,
            )
        } else {
            text
        };
        let d = variant(&text, "dispatch", "dispatch", &case)?;
        let c = variant(
            &text.replacen(
                "dtype = \"fp8\"\nmetadata_bytes = 16",
                "dtype = \"bf16\"",
                1,
            ),
            "direction = \"dispatch\"",
            "direction = \"combine\"",
            &case,
        )?;
        let fit = |f: bool| {
            if f { "in the fit" } else { "out of sample" }
        };
        out.push(Check::within(
            &case,
            &format!("dispatch_us ({})", fit(fitted)),
            dispatch_us,
            kernel_time(&d)?.0.as_us_f64(),
            20.0,
            "DeepEP docs/legacy.md low-latency table (H800, CX7 400G, 128 tokens, FP8)",
        ));
        out.push(Check::within(
            &case,
            "combine_us (out of sample)",
            combine_us,
            kernel_time(&c)?.0.as_us_f64(),
            20.0,
            "DeepEP docs/legacy.md low-latency table (H800, CX7 400G, 128 tokens, BF16)",
        ));
    }
    Ok(out)
}

/// Bytes each rank receives (its own included) / time, GB/s, averaged over ranks.
fn recv_gbytes_per_s(s: &Scenario, t: Dur) -> f64 {
    let call = &s.kernels()[0];
    let bytes: u64 = s.messages()[call.messages.clone()]
        .iter()
        .map(|m| m.bytes)
        .chain(call.local.iter().map(|l| l.bytes))
        .sum();
    bytes as f64 / s.fabric().topology.gpus() as f64 / t.as_secs_f64() / 1e9
}

fn sm_bound() -> Result<Vec<Check>, InputError> {
    let h20 = variant(SM_BOUND, "hgx-h100", "hgx-h100", "deepep-normal-h20-ep8")?;
    let h200 = variant(SM_BOUND, "hgx-h100", "hgx-h200", "uccl-ep-h200-ep8")?;
    let h200_combine = variant(
        &SM_BOUND.replacen("hgx-h100", "hgx-h200", 1).replacen(
            "dtype = \"fp8\"",
            "dtype = \"bf16\"",
            1,
        ),
        "direction = \"dispatch\"",
        "direction = \"combine\"",
        "uccl-ep-h200-ep8",
    )?;
    let rate =
        |s: &Scenario| -> Result<f64, InputError> { Ok(recv_gbytes_per_s(s, kernel_time(s)?.0)) };
    Ok(vec![
        Check::within(
            "deepep-normal-h20-ep8",
            "nvl_recv_gbytes_per_s (in the fit)",
            337.0,
            rate(&h20)?,
            15.0,
            "DeepEP issue 16: intranode EP8 dispatch, 24 SMs, H20",
        ),
        Check::within(
            "uccl-ep-h200-ep8",
            "dispatch nvl_recv_gbytes_per_s (out of sample)",
            320.0,
            rate(&h200)?,
            15.0,
            "uccl ep/README.md @021c2c0: normal EP8, 24 SMs, 8x H200",
        ),
        Check::within(
            "uccl-ep-h200-ep8",
            "combine nvl_send_gbytes_per_s (out of sample)",
            319.0,
            rate(&h200_combine)?,
            15.0,
            "uccl ep/README.md @021c2c0: normal EP8, 24 SMs, 8x H200",
        ),
    ])
}

fn torch_a2a() -> Result<Vec<Check>, InputError> {
    let case = "nccl-torch-a2a-h100";
    let s = variant(TORCH_A2A, "", "", case)?;
    let (t, _) = kernel_time(&s)?;
    Ok(vec![Check::within(
        case,
        "time_us, 242 MB per rank (out of sample)",
        699.9,
        t.as_us_f64(),
        10.0,
        "pplx-kernels README @2bd6e30, torch all_to_all_single on 8x H100",
    )])
}

/// An AFD step with one micro-batch under each fixed-cost-only library against `ideal`: the
/// difference is the fixed costs of two kernel calls per MoE layer (see the case's file).
fn afd_fixed() -> Result<Vec<Check>, InputError> {
    let case = "afd-comm-fixed-closed-form";
    let step_us = |s: &Scenario| -> Result<f64, InputError> {
        let o = crate::run(s, &mut |_| {})
            .map_err(|e| InputError::new(s.origin(), "afd", e.to_string()))?;
        Ok(o.afd().expect("an [afd] scenario").tpot_ms * 1e3)
    };
    let ideal = variant(AFD_FIXED, "comm = \"ideal\"", "comm = \"ideal\"", case)?;
    let base = step_us(&ideal)?;
    let spec = ideal.afd().expect("[afd]");
    let moe_layers = spec.deployment.model.moe_layers_in(spec.shape.layers) as f64;
    // The slowest FFN kernel of each MoE layer but the last, at full speed: an FFN GPU's
    // receive of the next layer's dispatch holds its SMs while it runs.
    let o = crate::run(&ideal, &mut |_| {})
        .map_err(|e| InputError::new(ideal.origin(), "afd", e.to_string()))?;
    let step = o.step().expect("an [afd] scenario");
    let mut ffn_us = vec![0.0f64; spec.shape.layers as usize];
    for ((c, stage), &layer) in step
        .workload
        .computes
        .iter()
        .zip(&step.compute_stage)
        .zip(&step.compute_layer)
    {
        if *stage == crate::afd::Stage::Ffn {
            let l = &mut ffn_us[layer as usize];
            *l = l.max(c.duration.as_us_f64());
        }
    }
    let overlapped_ffn_us: f64 = ffn_us[..ffn_us.len() - 1].iter().sum();
    let gpu_sms = spec.deployment.gpu_sms as f64;
    let mut out = Vec::new();
    for lib in ["nccl", "nvl-one-sided", "stepmesh"] {
        let s = variant(
            AFD_FIXED,
            "comm = \"ideal\"",
            &format!("comm = \"{lib}\""),
            case,
        )?;
        let l = &s.afd().expect("[afd]").deployment.comm;
        assert!(
            l.reduce.is_none() && l.local_copy.is_none() && l.rdma_rate.is_none(),
            "{lib}: fixed costs only"
        );
        let per_call = (l.start_cost() + l.end_cost()).as_us_f64();
        let held = (l.sms as f64).min(gpu_sms);
        out.push(Check::within(
            case,
            &format!("{lib} step - ideal step, us"),
            moe_layers * 2.0 * per_call + overlapped_ffn_us * held / (gpu_sms - held),
            step_us(&s)? - base,
            0.1,
            "closed form: MoE layers x 2 calls x (launch + barrier + flag + poll) + the FFN \
             kernels the next receive overlaps x S / (N - S)",
        ));
    }
    Ok(out)
}

/// A compute kernel overlapping a kernel call that holds some of its GPU's SMs ends later by
/// the held time x the held share (see the case's file).
fn sm_contention() -> Result<Vec<Check>, InputError> {
    let case = "comm-sm-contention";
    let s = Scenario::parse(SM_CONTENTION, "validation/comm-sm-contention.toml", None)?;
    let m = &s.messages()[0];
    const GPU_SMS: u32 = 132;
    let compute = Dur::from_ns(400_000);
    let mut out = Vec::new();
    for lib in ["nccl", "deepep-ll"] {
        let library = crate::comm::Library::load(lib, std::path::Path::new("."), case, "lib")?;
        let mut w = crate::net::Workload::default();
        let c = w.compute(m.dst, compute, &[]);
        let transfers = [crate::comm::Transfer {
            src: m.src,
            dst: m.dst,
            bytes: m.bytes,
        }];
        let kernel = crate::comm::Kernel {
            library: &library,
            op: crate::comm::Op::Dispatch,
            transfers: &transfers,
            start: Time::ZERO,
            gpu_sms: GPU_SMS,
        };
        crate::comm::launch(&mut w, s.fabric(), s.net(), kernel, &mut |_| Vec::new());
        let share = library.sms.min(GPU_SMS) as f64 / GPU_SMS as f64;
        for (level, r) in [
            (
                "packet",
                crate::packet::simulate_workload(s.fabric(), s.net(), &w, &mut |_| {})
                    .map_err(|e| e.to_string()),
            ),
            (
                "flow",
                crate::flow::simulate_workload(s.fabric(), s.net(), &w, &mut |_| {})
                    .map_err(|e| e.to_string()),
            ),
        ] {
            let r = r.map_err(|e| InputError::new(s.origin(), "traffic", e))?;
            // The SMs held on GPU 1: every hold of the workload is on a delay there or on
            // GPU 0; sum the windows on GPU 1 from the run.
            let held: f64 = w
                .holds()
                .iter()
                .filter(|h| h.gpu == m.dst)
                .map(|h| {
                    let (a, b) = (&r.computes[h.from as usize], &r.computes[h.to as usize]);
                    b.finish
                        .expect("ran")
                        .since(a.start.expect("ran"))
                        .as_us_f64()
                })
                .sum();
            let crate::net::TaskRef::Compute(ci) = c else {
                unreachable!()
            };
            let took = r.computes[ci as usize].finish.expect("ran").as_us_f64();
            out.push(Check::within(
                case,
                &format!("{lib} {level} compute end, us"),
                compute.as_us_f64() + held * share,
                took,
                0.01,
                "closed form: duration + held time x held share of the SMs",
            ));
        }
    }
    Ok(out)
}
