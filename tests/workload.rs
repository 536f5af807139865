//! Workloads of messages and compute tasks with dependencies, against closed forms.

use afdsim::config::Scenario;
use afdsim::engine::{Dur, Time};
use afdsim::net::{MessageSpec, NetRun};
use afdsim::net::{TaskRef, Workload};
use afdsim::packet::simulate_workload;
use afdsim::topology::NodeId;

/// Two GPUs with integrated 400 Gb/s NICs on one switch (1 us links, 300 ns switch).
fn pair() -> Scenario {
    let text = r#"
name = "pair"
[fabric]
nodes = 2
gpus_per_node = 1
[fabric.nic]
rate_gbps = 400
latency_ns = 1000
[fabric.scale_out]
topology = "single-switch"
[fabric.switch]
latency_ns = 300
[[traffic]]
pattern = "message"
src = 0
dst = 1
bytes = 1
"#;
    Scenario::parse(text, "pair", None).unwrap()
}

/// Both levels execute the same workload; every test checks both against the closed form.
fn runs(s: &Scenario, w: &Workload) -> [(&'static str, NetRun); 2] {
    [
        (
            "packet",
            simulate_workload(s.fabric(), s.net(), w, &mut |_| {}).unwrap(),
        ),
        (
            "flow",
            afdsim::flow::simulate_workload(s.fabric(), s.net(), w, &mut |_| {}).unwrap(),
        ),
    ]
}

fn msg(src: u32, dst: u32, bytes: u64) -> MessageSpec {
    MessageSpec {
        src: NodeId(src),
        dst: NodeId(dst),
        bytes,
        start: Time::ZERO,
    }
}

/// One uncongested message over GPU -> switch -> GPU: (P + 1) packet times + path.
fn message_time(s: &Scenario, bytes: u64) -> Dur {
    let rate = s.fabric().topology.links()[0].rate;
    let w = s.net().nic_wire;
    let (full, rest) = (bytes / w.mtu_bytes as u64, bytes % w.mtu_bytes as u64);
    let t_full = rate.serialize((w.mtu_bytes + w.header_bytes) as u64);
    let t_last = if rest > 0 {
        rate.serialize(rest + w.header_bytes as u64)
    } else {
        t_full
    };
    let stream = t_full.saturating_mul(full) + if rest > 0 { t_last } else { Dur::ZERO };
    let lat = s.fabric().topology.links()[0].latency;
    stream + t_last + lat + lat + s.net().switch.latency
}

#[test]
fn a_chain_takes_the_sum_of_its_parts() {
    let s = pair();
    let mut w = Workload::default();
    let a = w.compute(NodeId(0), Dur::from_us(10), &[]);
    let m = w.message(msg(0, 1, 1 << 20), &[a]);
    let b = w.compute(NodeId(1), Dur::from_us(5), &[m]);
    let TaskRef::Compute(b) = b else {
        unreachable!()
    };
    let expected = Time::ZERO + Dur::from_us(10) + message_time(&s, 1 << 20) + Dur::from_us(5);
    for (level, r) in runs(&s, &w) {
        assert_eq!(r.computes[b as usize].finish, Some(expected), "{level}");
        assert_eq!(
            r.messages[0].start,
            Time::ZERO + Dur::from_us(10),
            "{level}"
        );
    }
}

#[test]
fn a_gpu_stream_runs_one_kernel_at_a_time() {
    let s = pair();
    let mut w = Workload::default();
    w.compute(NodeId(0), Dur::from_us(5), &[]);
    w.compute(NodeId(0), Dur::from_us(7), &[]);
    w.compute(NodeId(1), Dur::from_us(3), &[]);
    let at = |us| Some(Time::ZERO + Dur::from_us(us));
    for (level, r) in runs(&s, &w) {
        let c = &r.computes;
        assert_eq!((c[0].start, c[0].finish), (at(0), at(5)), "{level}");
        assert_eq!((c[1].start, c[1].finish), (at(5), at(12)), "{level}");
        // Another GPU's stream is independent.
        assert_eq!((c[2].start, c[2].finish), (at(0), at(3)), "{level}");
    }
}

/// M micro-batches through attention (GPU 0, a us) -> dispatch -> FFN (GPU 1, f us) ->
/// combine: with a >= f + the transfers, GPU 0 never idles, so the last combine lands at
///   M * a + dispatch + f + combine.
#[test]
fn a_micro_batch_pipeline_is_set_by_its_slowest_stage() {
    let s = pair();
    let (a, f, bytes) = (Dur::from_us(40), Dur::from_us(25), 64 * 1024);
    for m in 1..=4u64 {
        let mut w = Workload::default();
        let mut last = None;
        let mut prev_attention: Option<TaskRef> = None;
        for _ in 0..m {
            let deps: Vec<TaskRef> = prev_attention.into_iter().collect();
            let att = w.compute(NodeId(0), a, &deps);
            let dispatch = w.message(msg(0, 1, bytes), &[att]);
            let ffn = w.compute(NodeId(1), f, &[dispatch]);
            last = Some(w.message(msg(1, 0, bytes), &[ffn]));
            prev_attention = Some(att);
        }
        let Some(TaskRef::Message(l)) = last else {
            unreachable!()
        };
        let t = message_time(&s, bytes);
        let expected = Time::ZERO + a.saturating_mul(m) + t + f + t;
        for (level, r) in runs(&s, &w) {
            assert_eq!(
                r.messages[l as usize].finish,
                Some(expected),
                "{level}, M = {m}"
            );
        }
    }
}
