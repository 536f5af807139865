//! Packet-level cases: closed forms of store-and-forward transfers.

use super::{Case, Check};
use crate::config::{DEFAULT_SCENARIO, DEFAULT_SCENARIO_ORIGIN, Scenario};
use crate::engine::{Dur, Time};
use crate::error::InputError;
use crate::packet::{PacketRun, Wire};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "closed-form-default-scenario",
            run: default_scenario,
        },
        Case {
            name: "closed-form-single-flow",
            run: single_flow,
        },
        Case {
            name: "closed-form-incast",
            run: incast,
        },
    ]
}

const SINGLE_FLOW: &str = include_str!("../../validation/closed-form-single-flow.toml");
const INCAST: &str = include_str!("../../validation/closed-form-incast.toml");

fn run(s: &Scenario) -> PacketRun {
    crate::packet::simulate(&s.fabric, &s.packet, &s.messages, &mut |_, _| {})
        .expect("closed-form cases cannot deadlock")
}

/// Wire time of each packet of a `bytes` message, in order.
fn packet_times(s: &Scenario, bytes: u64) -> Vec<Dur> {
    let Wire {
        mtu_bytes,
        header_bytes,
    } = s.packet.nic_wire;
    let rate = s.fabric.topology.links()[0].rate;
    let mut left = bytes;
    let mut out = Vec::new();
    while left > 0 {
        let p = left.min(mtu_bytes as u64);
        out.push(rate.serialize(p + header_bytes as u64));
        left -= p;
    }
    out
}

fn sum(ds: &[Dur]) -> Dur {
    ds.iter().fold(Dur::ZERO, |a, &d| a + d)
}

/// One link's latency plus the switch latency, twice the link latency in all: GPU -> switch
/// -> GPU.
fn path_latency(s: &Scenario) -> Dur {
    let l = s.fabric.topology.links()[0].latency;
    l + l + s.packet.switch.latency
}

fn last_finish(r: &PacketRun) -> Time {
    r.messages
        .iter()
        .filter_map(|m| m.finish)
        .max()
        .unwrap_or(Time::ZERO)
}

const EXACT: &str = "closed form, store-and-forward (see the scenario file)";

fn default_scenario() -> Result<Vec<Check>, InputError> {
    let s = Scenario::parse(DEFAULT_SCENARIO, DEFAULT_SCENARIO_ORIGIN, None)?;
    let n = s.fabric.topology.gpus() as u64;
    let bytes = s.messages[0].bytes;
    let pkts = packet_times(&s, bytes);
    // Every sender streams (N-1) messages back to back in permutation slots; the last packet
    // then crosses the second hop uncontended.
    let expected = sum(&pkts).saturating_mul(n - 1) + *pkts.last().unwrap() + path_latency(&s);
    let r = run(&s);
    Ok(vec![Check::within(
        "closed-form-default-scenario",
        "makespan_us",
        expected.as_us_f64(),
        last_finish(&r).as_us_f64(),
        0.0,
        EXACT,
    )])
}

fn single_flow() -> Result<Vec<Check>, InputError> {
    let s = Scenario::parse(SINGLE_FLOW, "validation/closed-form-single-flow.toml", None)?;
    let m = &s.messages[0];
    let pkts = packet_times(&s, m.bytes);
    let expected = sum(&pkts) + *pkts.last().unwrap() + path_latency(&s);
    let r = run(&s);
    let finish = r.messages[0].finish.expect("lossless").since(m.start);
    // Goodput while streaming: payload bytes over the sender's serialization time, which the
    // simulation gives as finish minus the pipeline tail (last packet's second hop + path).
    let stream = finish - *pkts.last().unwrap() - path_latency(&s);
    let goodput_gbps = m.bytes as f64 * 8.0 / stream.as_secs_f64() / 1e9;
    let rate = s.fabric.topology.links()[0].rate.gbps_f64();
    let mtu = s.packet.nic_wire.mtu_bytes as f64;
    let ideal_gbps = rate * mtu / (mtu + s.packet.nic_wire.header_bytes as f64);
    Ok(vec![
        Check::within(
            "closed-form-single-flow",
            "finish_us",
            expected.as_us_f64(),
            finish.as_us_f64(),
            0.0,
            EXACT,
        ),
        Check::within(
            "closed-form-single-flow",
            "goodput_gbps",
            ideal_gbps,
            goodput_gbps,
            0.01,
            "closed form: rate x payload / (payload + header); float rounding only",
        ),
    ])
}

fn incast() -> Result<Vec<Check>, InputError> {
    let s = Scenario::parse(INCAST, "validation/closed-form-incast.toml", None)?;
    let n = s.messages.len() as u64;
    let pkts = packet_times(&s, s.messages[0].bytes);
    let expected = pkts[0] + sum(&pkts).saturating_mul(n) + path_latency(&s);
    let r = run(&s);
    let first_done = r.messages.iter().filter_map(|m| m.finish).min().unwrap();
    let last_done = last_finish(&r);
    Ok(vec![
        Check::within(
            "closed-form-incast",
            "finish_us",
            expected.as_us_f64(),
            last_done.as_us_f64(),
            0.0,
            EXACT,
        ),
        Check::at_most(
            "closed-form-incast",
            "fairness_spread_us",
            (pkts[0].saturating_mul(n)).as_us_f64(),
            last_done.since(first_done).as_us_f64(),
            "equal shares: all senders finish within one round of N packets",
        ),
    ])
}
