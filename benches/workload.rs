//! An AFD-shaped decode step as a workload, at flow and packet level: wall time and the
//! step each level computes. Not an AFD model (issue 6 builds that): fixed kernel times and
//! message sizes, to measure how the levels cope with thousands of dependent, staggered
//! messages. Run: `cargo bench --bench workload` (`AFDSIM_BENCH_FLOW_ONLY=1` skips the packet
//! level). Each flow run prints the engine's counters and a hash of every message's and
//! task's start and finish: a speed-up of either level must leave it unchanged.
//!
//! Shape: 16 attention GPUs (HGX nodes 0-1) and 16 FFN GPUs (nodes 2-3) of 4 HGX H100 nodes;
//! 61 layers x 3 micro-batches; per layer and micro-batch every attention GPU runs 60 us,
//! dispatches 60 kB to every FFN GPU, every FFN GPU runs 50 us once its 16 dispatches are in
//! and returns 120 kB to every attention GPU, whose next layer waits for those.

use afdsim::config::Scenario;
use afdsim::engine::{Dur, Time};
use afdsim::net::MessageSpec;
use afdsim::net::{TaskRef, Workload};
use afdsim::topology::NodeId;
use std::time::Instant;

fn step() -> Workload {
    let (att, ffn) = (0..16u32, 16..32u32);
    let msg = |src, dst, bytes| MessageSpec {
        src: NodeId(src),
        dst: NodeId(dst),
        bytes,
        start: Time::ZERO,
    };
    let mut w = Workload::default();
    let mut prev: Vec<Vec<Option<TaskRef>>> = vec![vec![None; 16]; 3];
    for _layer in 0..61 {
        for prev_mb in prev.iter_mut() {
            let atts: Vec<TaskRef> = att
                .clone()
                .map(|a| {
                    let deps: Vec<TaskRef> = prev_mb[a as usize].into_iter().collect();
                    w.compute(NodeId(a), Dur::from_us(60), &deps)
                })
                .collect();
            let mut to_ffn: Vec<Vec<TaskRef>> = vec![Vec::new(); 16];
            for a in att.clone() {
                for f in ffn.clone() {
                    let t = w.message(msg(a, f, 60_000), &[atts[a as usize]]);
                    to_ffn[(f - 16) as usize].push(t);
                }
            }
            let ffns: Vec<TaskRef> = ffn
                .clone()
                .map(|f| w.compute(NodeId(f), Dur::from_us(50), &to_ffn[(f - 16) as usize]))
                .collect();
            for a in att.clone() {
                let mut last = None;
                for f in ffn.clone() {
                    last = Some(w.message(msg(f, a, 120_000), &[ffns[(f - 16) as usize]]));
                }
                prev_mb[a as usize] = last;
            }
        }
    }
    w
}

fn main() {
    let text = "name = \"afd-shape\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 4\n\
                [[traffic]]\npattern = \"message\"\nsrc = 0\ndst = 1\nbytes = 1\n";
    let s = Scenario::parse(text, "<bench>", None).expect("valid");
    let w = step();
    println!(
        "AFD-shaped step: {} messages, {} compute tasks",
        w.messages.len(),
        w.computes.len()
    );
    let end = |r: &afdsim::net::NetRun| {
        r.messages
            .iter()
            .filter_map(|m| m.finish)
            .max()
            .expect("messages")
    };
    for _ in 0..3 {
        let t = Instant::now();
        let (r, st) =
            afdsim::flow::simulate_workload_with_stats(s.fabric(), s.net(), &w, &mut |_| {})
                .unwrap();
        println!(
            "  flow:   {:>8.3} s wall, step {:.1} us ({} updates, {} flows refilled, {} links \
             visited, {} stale and {} early drain events)",
            t.elapsed().as_secs_f64(),
            end(&r).as_us_f64(),
            st.updates,
            st.flows_refilled,
            st.links_visited,
            st.stale_events,
            st.early_events
        );
        // Every message's and task's times, hashed: a speed-up must not move any of them.
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let times = r.messages.iter().flat_map(|m| [Some(m.start), m.finish]);
        for t in times.chain(r.computes.iter().flat_map(|c| [c.start, c.finish])) {
            h = (h ^ t.map_or(u64::MAX, |t| t.as_ps())).wrapping_mul(0x100_0000_01b3);
        }
        println!("          times hash {h:016x}");
        if std::env::var_os("AFDSIM_BENCH_FLOW_ONLY").is_some() {
            continue;
        }
        let t = Instant::now();
        let r = afdsim::packet::simulate_workload(s.fabric(), s.net(), &w, &mut |_| {})
            .expect("no deadlock");
        println!(
            "  packet: {:>8.3} s wall, step {:.1} us, {} packet-hops",
            t.elapsed().as_secs_f64(),
            end(&r).as_us_f64(),
            r.packet_hops
        );
    }
}
