//! Flow-level cases: the flow (and analytical) level against the packet level on the same
//! scenario, and against the packet level's closed forms.
//!
//! The expected value of a `flow-vs-packet-*` check is the packet level's answer, a
//! different model from the one checked. Where the two should agree (nothing congested)
//! the check is a tolerance; where they should not (queues, PFC), it is a direction plus
//! the expected size, each explained in the case's scenario file.

use super::{Case, Check};
use crate::config::{STAR_SCENARIO, Scenario};
use crate::engine::{Dur, Time};
use crate::error::InputError;
use crate::input::parse_table;
use crate::net::{NetRun, Wire};
use std::path::Path;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "flow-vs-packet-single-flow",
            run: single_flow,
        },
        Case {
            name: "flow-vs-packet-permutation-spray",
            run: permutation_spray,
        },
        Case {
            name: "flow-vs-packet-nvlink-all-to-all",
            run: nvlink_all_to_all,
        },
        Case {
            name: "flow-vs-packet-incast",
            run: incast,
        },
        Case {
            name: "flow-vs-packet-ecmp-collision",
            run: ecmp_collision,
        },
        Case {
            name: "flow-closed-forms",
            run: closed_forms,
        },
    ]
}

const SINGLE_FLOW: &str = include_str!("../../validation/flow-vs-packet-single-flow.toml");
const SPRAY: &str = include_str!("../../validation/flow-vs-packet-permutation-spray.toml");
const NVLINK: &str = include_str!("../../validation/flow-vs-packet-nvlink-all-to-all.toml");
const INCAST: &str = include_str!("../../validation/flow-vs-packet-incast.toml");
const ECMP: &str = include_str!("../../validation/flow-vs-packet-ecmp-collision.toml");
const CF_SINGLE: &str = include_str!("../../validation/closed-form-single-flow.toml");
const CF_INCAST: &str = include_str!("../../validation/closed-form-incast.toml");

/// The bound for uncongested transfers.
const AGREE_PCT: f64 = 5.0;

fn origin(name: &str) -> String {
    format!("validation/{name}.toml")
}

/// A case file, optionally without its switch buffer keys (what the flow level runs when
/// the file studies PFC, which it cannot represent).
fn load(text: &str, name: &str, drop_buffers: bool) -> Result<Scenario, InputError> {
    let origin = origin(name);
    let mut table = parse_table(text, &origin)?;
    if drop_buffers
        && let Some(toml::Value::Table(f)) = table.get_mut("fabric")
        && let Some(toml::Value::Table(sw)) = f.get_mut("switch")
    {
        for k in ["buffer_kib", "pfc_xoff_kib", "pfc_xon_kib"] {
            sw.remove(k);
        }
    }
    table.insert("level".into(), toml::Value::String("packet".into()));
    Scenario::from_table(table, &origin, Path::new("validation"), None)
}

fn packet(s: &Scenario) -> NetRun {
    crate::packet::simulate(s.fabric(), s.net(), s.messages(), &mut |_| {})
        .expect("flow-vs-packet cases cannot deadlock")
}

/// The flow level through the library: it never reads the buffer keys, and `load` has
/// removed them where the case needs to (the CLI would reject them).
fn flow(s: &Scenario) -> NetRun {
    crate::flow::simulate(s.fabric(), s.net(), s.messages(), &mut |_| {})
        .expect("the embedded cases end within the horizon")
}

fn analytical(s: &Scenario) -> NetRun {
    crate::flow::analytical::simulate(s.fabric(), s.net(), s.messages())
        .expect("the embedded cases end within the horizon")
}

fn makespan_us(r: &NetRun) -> f64 {
    let first = r
        .messages
        .iter()
        .map(|m| m.start)
        .min()
        .unwrap_or(Time::ZERO);
    let last = r
        .messages
        .iter()
        .filter_map(|m| m.finish)
        .max()
        .unwrap_or(first);
    last.since(first).as_us_f64()
}

fn message_us(r: &NetRun, i: usize) -> f64 {
    let m = &r.messages[i];
    m.finish.expect("lossless").since(m.start).as_us_f64()
}

fn mean_us(r: &NetRun) -> f64 {
    let n = r.messages.len() as f64;
    (0..r.messages.len()).map(|i| message_us(r, i)).sum::<f64>() / n
}

const PACKET: &str = "packet level on the same scenario";

fn single_flow() -> Result<Vec<Check>, InputError> {
    let name = "flow-vs-packet-single-flow";
    let s = load(SINGLE_FLOW, name, false)?;
    let p = packet(&s);
    Ok(vec![
        Check::within(
            name,
            "finish_us flow",
            message_us(&p, 0),
            message_us(&flow(&s), 0),
            AGREE_PCT,
            PACKET,
        ),
        Check::within(
            name,
            "finish_us analytical",
            message_us(&p, 0),
            message_us(&analytical(&s), 0),
            AGREE_PCT,
            PACKET,
        ),
    ])
}

fn permutation_spray() -> Result<Vec<Check>, InputError> {
    let name = "flow-vs-packet-permutation-spray";
    let s = load(SPRAY, name, false)?;
    let (p, f) = (packet(&s), flow(&s));
    Ok(vec![
        Check::within(
            name,
            "makespan_us",
            makespan_us(&p),
            makespan_us(&f),
            AGREE_PCT,
            PACKET,
        ),
        Check::within(
            name,
            "mean message_us",
            mean_us(&p),
            mean_us(&f),
            AGREE_PCT,
            PACKET,
        ),
    ])
}

fn nvlink_all_to_all() -> Result<Vec<Check>, InputError> {
    let name = "flow-vs-packet-nvlink-all-to-all";
    let s = load(NVLINK, name, false)?;
    let (p, f) = (packet(&s), flow(&s));
    Ok(vec![
        Check::within(
            name,
            "makespan_us",
            makespan_us(&p),
            makespan_us(&f),
            AGREE_PCT,
            PACKET,
        ),
        Check::at_most(
            name,
            "makespan_us flow <= packet",
            makespan_us(&p),
            makespan_us(&f),
            "direction: the fluid model has no egress collisions or credit stalls",
        ),
    ])
}

fn incast() -> Result<Vec<Check>, InputError> {
    let name = "flow-vs-packet-incast";
    let pfc = load(INCAST, name, false)?;
    let plain = load(INCAST, name, true)?;
    let (p_pfc, p_plain, f) = (packet(&pfc), packet(&plain), flow(&plain));
    // The victim is the last message (GPU 1 -> GPU 17).
    let victim = pfc.messages().len() - 1;
    let victim_flow = message_us(&f, victim);
    // Expected sizes (see the scenario file): with PFC the victim moves at the incast
    // flow's pace and finishes with the incast, whose time is the receiver link's (the
    // flow level's incast makespan, the closed form of `closed-form-incast`); without PFC
    // GPU 1's NIC gives it half the link, against 15/16 at the flow level.
    let with_pfc = makespan_us(&f) / victim_flow;
    let line_rate_share = 2.0 * 15.0 / 16.0;
    Ok(vec![
        Check::at_least(
            name,
            "incast makespan_us packet (PFC) >= flow",
            makespan_us(&f),
            makespan_us(&p_pfc),
            "direction: the receiver link is the bottleneck at both levels; PFC can only idle it",
        ),
        Check::within(
            name,
            "incast makespan_us packet (PFC) vs flow",
            makespan_us(&f),
            makespan_us(&p_pfc),
            AGREE_PCT,
            "expected size: a few percent at most (pause/resume round trips)",
        ),
        Check::within(
            name,
            "victim time packet (PFC) / flow",
            with_pfc,
            message_us(&p_pfc, victim) / victim_flow,
            10.0,
            "expected size: head-of-line blocking, the victim finishes with the incast \
             (flow-level incast makespan / victim flow time)",
        ),
        Check::within(
            name,
            "victim time packet (no PFC) / flow",
            line_rate_share,
            message_us(&p_plain, victim) / victim_flow,
            10.0,
            "expected size: the NIC splits its link 1/2 : 1/2, the flow level 1/16 : 15/16",
        ),
    ])
}

fn ecmp_collision() -> Result<Vec<Check>, InputError> {
    let name = "flow-vs-packet-ecmp-collision";
    let pfc = load(ECMP, name, false)?;
    let plain = load(ECMP, name, true)?;
    let f = makespan_us(&flow(&plain));
    let p_plain = makespan_us(&packet(&plain));
    let p_pfc = makespan_us(&packet(&pfc));
    Ok(vec![
        Check::within(
            name,
            "makespan_us packet (no PFC) vs flow",
            p_plain,
            f,
            AGREE_PCT,
            "expected: a collided link is shared evenly at both levels",
        ),
        Check::at_least(
            name,
            "makespan_us packet (PFC) >= flow",
            f,
            p_pfc,
            "direction: PFC pauses stall other messages of a paused NIC link",
        ),
        Check::at_most(
            name,
            "makespan ratio packet (PFC) / flow",
            1.25,
            p_pfc / f,
            "expected size: about 1.05-1.10; sanity bound 1.25",
        ),
    ])
}

/// Packet times of a `bytes` message on one link rate, in order.
fn packet_times(rate: crate::engine::Bandwidth, wire: Wire, bytes: u64) -> Vec<Dur> {
    let mut left = bytes;
    let mut out = Vec::new();
    while left > 0 {
        let p = left.min(wire.mtu_bytes as u64);
        out.push(rate.serialize(p + wire.header_bytes as u64));
        left -= p;
    }
    out
}

/// The packet level's closed forms (see `packet_cases.rs` and the scenario files), met by
/// the flow and analytical levels up to rounding the fluid finish to a whole picosecond.
fn closed_forms() -> Result<Vec<Check>, InputError> {
    let name = "flow-closed-forms";
    let mut checks = Vec::new();
    let files = [
        ("single-flow", CF_SINGLE, 1u64),
        ("incast", CF_INCAST, 16),
        ("all-to-all", STAR_SCENARIO, 7),
    ];
    for (label, text, sharing) in files {
        let s = Scenario::parse(text, label, None)?;
        let link = &s.fabric().topology.links()[0];
        let pkts = packet_times(link.rate, s.net().nic_wire, s.messages()[0].bytes);
        let all: Dur = pkts.iter().fold(Dur::ZERO, |a, &d| a + d);
        // Every case is GPU -> switch -> GPU on equal links: `sharing` messages stream
        // through the bottleneck link back to back, then the last packet crosses the
        // second hop; plus two link latencies and the switch latency.
        let expected = all.saturating_mul(sharing)
            + *pkts.last().expect("non-empty")
            + link.latency
            + link.latency
            + s.net().switch.latency;
        let start = s.messages()[0].start;
        let expected_us = (start + expected).as_us_f64();
        for (level, run) in [("flow", flow(&s)), ("analytical", analytical(&s))] {
            checks.push(Check::within(
                name,
                &format!("{label} finish_us {level}"),
                expected_us,
                run.end.as_us_f64(),
                1e-6,
                "closed form of the packet level; 1 ps of rounding allowed",
            ));
        }
    }
    Ok(checks)
}
