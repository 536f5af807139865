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

/// What a run did, to compare two runs of one workload: every message's start and finish,
/// every compute task's, every link's wire bytes.
type Summary = (
    Vec<(Time, Option<Time>)>,
    Vec<(Option<Time>, Option<Time>)>,
    Vec<u64>,
);

fn summary(r: &NetRun) -> Summary {
    (
        r.messages.iter().map(|m| (m.start, m.finish)).collect(),
        r.computes.iter().map(|c| (c.start, c.finish)).collect(),
        r.links.iter().map(|l| l.wire_bytes).collect(),
    )
}

/// Runs `short` and `long` in one pass (`flow::simulate_with_prefix`) and each alone; the
/// results must be the same to the bit.
fn check_prefix_pass(s: &Scenario, short: &Workload, long: &Workload) {
    let (a, b) = afdsim::flow::simulate_with_prefix(s.fabric(), s.net(), short, long).unwrap();
    let alone = |w| afdsim::flow::simulate_workload(s.fabric(), s.net(), w, &mut |_| {}).unwrap();
    assert_eq!(summary(&a), summary(&alone(short)), "the prefix");
    assert_eq!(summary(&b), summary(&alone(long)), "the whole");
    assert_eq!((a.end, b.end), (alone(short).end, alone(long).end));
}

/// A decode step of 5 layers is the first tasks of the same step with 9 (its routing draws
/// come first from the same stream): one pass gives both, each as its own run would, for an
/// AFD step (dispatch and combine kernels with SM holds and rate limiters) and a colocated
/// one (expert-parallel all-to-all). (In these steps the layers past the cut happen not to
/// move any task of the shorter one: the random workloads below are what check that the
/// shorter run never starts a task past the cut.)
#[test]
fn a_shorter_step_runs_in_the_pass_of_the_longer() {
    for (mode, gpus) in [
        (
            "afd",
            "attention_gpus = 8\nffn_gpus = 8\nffn_table = \"h200-sxm\"",
        ),
        ("colocated", "attention_gpus = 16"),
    ] {
        let text = format!(
            "name = \"p\"\nlevel = \"flow\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 2\n[afd]\n\
             mode = \"{mode}\"\nmodel = \"deepseek-v3.2\"\n{gpus}\nmicro_batches = 2\n\
             batch_per_attention_gpu = 64\ncontext = 2048\n"
        );
        let s = Scenario::parse(&text, "p", None).unwrap();
        let spec = s.afd().unwrap();
        let step = |layers| {
            let shape = afdsim::afd::StepShape {
                layers,
                ..spec.shape.clone()
            };
            let mut rng = afdsim::engine::SimRng::stream(1, afdsim::engine::stream::SERVING);
            spec.deployment
                .decode_step(s.fabric(), s.net(), &shape, &mut rng)
                .unwrap()
                .workload
        };
        let (short, long) = (step(5), step(9));
        let (m, c) = short.prefix_of(&long).expect("a prefix");
        assert!(
            m > 0 && c > 0 && (m as usize) < long.messages.len(),
            "{mode}"
        );
        assert!(!long.holds().is_empty() || mode == "colocated");
        check_prefix_pass(&s, &short, &long);
    }
}

/// What is not a prefix: another message, a task past the cut that waits for nothing (it
/// could start at once), an SM hold across the cut. Those run apart, with the same results.
#[test]
fn a_workload_that_is_not_a_prefix_is_run_apart() {
    let s = pair();
    let mut short = Workload::default();
    let c = short.compute(NodeId(0), Dur::from_us(3), &[]);
    short.message(msg(0, 1, 10_000), &[c]);
    let mut long = short.clone();
    let m = long.message(msg(1, 0, 20_000), &[c]);
    long.compute(NodeId(1), Dur::from_us(2), &[m]);
    assert_eq!(short.prefix_of(&long), Some((1, 1)));
    check_prefix_pass(&s, &short, &long);

    let mut other = short.clone();
    std::sync::Arc::make_mut(&mut other.messages)[0].bytes += 1;
    assert_eq!(other.prefix_of(&long), None);
    check_prefix_pass(&s, &other, &long);

    let mut free = long.clone();
    free.message(msg(0, 1, 5_000), &[]);
    assert_eq!(short.prefix_of(&free), None);
    check_prefix_pass(&s, &short, &free);

    let mut held = short.clone();
    let d = held.delay(NodeId(0), Dur::from_us(1), &[c]);
    let mut across = held.clone();
    let e = across.delay(NodeId(0), Dur::from_us(4), &[d]);
    across.hold_sms(0.2, d, e);
    assert_eq!(held.prefix_of(&across), None);
    check_prefix_pass(&s, &held, &across);
}

mod prefix_props {
    use super::*;
    use proptest::prelude::*;

    /// A task to add: kind (message, kernel, delay that holds SMs), two GPUs or a GPU and a
    /// duration, a size, and picks of the earlier tasks it waits for.
    type Op = (u8, u32, u32, u32, Vec<u32>);

    /// Builds the workload of `ops` on 16 GPUs (2 HGX nodes): every task from `cut` on waits
    /// for at least one earlier task; messages with an even size share a rate limiter.
    fn build(ops: &[Op], cut: usize) -> Workload {
        let mut w = Workload::default();
        let lim = w.limiter(afdsim::engine::Bandwidth::from_gbps(200).unwrap());
        let mut tasks: Vec<TaskRef> = Vec::new();
        for (i, (kind, a, b, size, picks)) in ops.iter().enumerate() {
            let mut deps: Vec<TaskRef> = Vec::new();
            for &p in picks {
                if !tasks.is_empty() {
                    let t = tasks[p as usize % tasks.len()];
                    if !deps.contains(&t) {
                        deps.push(t);
                    }
                }
            }
            if i >= cut && deps.is_empty() && !tasks.is_empty() {
                deps.push(tasks[i - 1]);
            }
            let (ga, gb) = (a % 16, b % 16);
            let t = match kind % 3 {
                0 if ga != gb => {
                    let t = w.message(msg(ga, gb, 1 + *size as u64), &deps);
                    if size % 2 == 0 {
                        let TaskRef::Message(m) = t else {
                            unreachable!()
                        };
                        w.limit(m, lim);
                    }
                    t
                }
                2 => {
                    let d = w.delay(NodeId(ga), Dur::from_ns(1 + *size as u64 % 5000), &deps);
                    w.hold_sms(0.25, d, d);
                    d
                }
                _ => w.compute(NodeId(ga), Dur::from_ns(1 + *size as u64 % 20_000), &deps),
            };
            tasks.push(t);
        }
        w
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Random workloads cut at a random task: the prefix from the whole's pass is the
        /// prefix run alone, and the whole is the whole.
        #[test]
        fn a_prefix_pass_matches_separate_runs(
            ops in prop::collection::vec(
                (0u8..3, 0u32..16, 0u32..16, 0u32..400_000, prop::collection::vec(0u32..1000, 0..3)),
                2..60,
            ),
            cut_pick in 0usize..1000,
        ) {
            let cut = 1 + cut_pick % (ops.len() - 1);
            let long = build(&ops, cut);
            let short = build(&ops[..cut], cut);
            prop_assert!(short.prefix_of(&long).is_some());
            let text = "name = \"p\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 2\n\
                        [[traffic]]\npattern = \"message\"\nsrc = 0\ndst = 1\nbytes = 1\n";
            let s = Scenario::parse(text, "p", None).unwrap();
            check_prefix_pass(&s, &short, &long);
        }
    }
}
