//! The packet level as a user meets it: go-back-N recovery in lossy fabrics, spraying
//! modes, and PXN routing on rail-optimized fabrics.

use afdsim::config::Scenario;
use afdsim::net::NetRun;
use afdsim::packet::simulate;

/// A 16:1 incast of 1 MiB per sender through one 400 Gb/s switch (the validation case
/// `closed-form-incast`), with `switch` as the `[fabric.switch]` table and `nic` added to
/// `[fabric.nic]`.
fn incast(switch: &str, nic: &str) -> Scenario {
    let text = format!(
        r#"
name = "incast"
[fabric]
nodes = 17
gpus_per_node = 1
[fabric.nic]
rate_gbps = 400
latency_ns = 1000
{nic}
[fabric.scale_out]
topology = "single-switch"
[fabric.switch]
latency_ns = 300
{switch}
[[traffic]]
pattern = "incast"
senders = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
receiver = 0
bytes = 1048576
"#
    );
    Scenario::parse(&text, "incast.toml", None).unwrap()
}

fn run(s: &Scenario) -> NetRun {
    simulate(s.fabric(), s.net(), s.messages(), &mut |_| {}).unwrap()
}

fn makespan_us(r: &NetRun) -> f64 {
    r.messages
        .iter()
        .filter_map(|m| m.finish)
        .max()
        .unwrap()
        .as_us_f64()
}

const LOSSY: &str = "mode = \"lossy\"\nbuffer_kib = 64";
const LOSSLESS: &str = "buffer_kib = 1024\npfc_xoff_kib = 512\npfc_xon_kib = 256";

#[test]
fn lossy_incast_completes_with_go_back_n() {
    let lossless = run(&incast(LOSSLESS, ""));
    let s = incast(LOSSY, "rto_us = 100\nnak_interval_us = 10");
    let r = run(&s);
    let offered: u64 = s.messages().iter().map(|m| m.bytes).sum();
    assert!(r.messages.iter().all(|m| m.finish.is_some()));
    assert!(r.bytes_dropped > 0, "a 64 KiB buffer overflows");
    assert_eq!(r.bytes_delivered, offered, "goodput: each byte once");
    assert_eq!(
        r.bytes_injected,
        offered + r.recovery.bytes_retransmitted,
        "sent = offered + resent"
    );
    assert_eq!(
        r.bytes_injected,
        r.bytes_delivered + r.bytes_dropped + r.recovery.bytes_discarded
    );
    assert!(r.recovery.naks > 0);
    assert!(makespan_us(&r) > makespan_us(&lossless));
}

/// Recovery is part of the deterministic run: the same seed gives the same run.
#[test]
fn go_back_n_is_deterministic() {
    let s = incast(LOSSY, "rto_us = 50");
    let (a, b) = (run(&s), run(&s));
    assert_eq!(a.messages, b.messages);
    assert_eq!(a.recovery, b.recovery);
    assert_eq!(a.end, b.end);
}

/// The timeout sets the lossy incast's pace: senders recover mostly by timeout, and a
/// QP's timeouts in a row are a timeout apart, so each sender's time is at least its
/// timeouts times the timeout (the makespan at least the mean over the 16 senders) and,
/// when timeouts set the pace, not much more. A 10x longer timeout makes the incast
/// several times slower. The run ends at the last completion, not at a timer that found
/// its message complete.
#[test]
fn lossy_incast_pace_follows_the_timeout() {
    let short = run(&incast(LOSSY, "rto_us = 20"));
    let long = run(&incast(LOSSY, "rto_us = 200"));
    for (r, rto_us) in [(&short, 20.0), (&long, 200.0)] {
        assert!(r.recovery.timeouts > 0);
        let waited = r.recovery.timeouts as f64 / 16.0 * rto_us;
        let m = makespan_us(r);
        assert!(
            m >= waited && m < 1.25 * waited,
            "rto {rto_us} us: {m} us, {waited} us waited"
        );
    }
    assert!(makespan_us(&long) > 2.0 * makespan_us(&short));
    assert_eq!(long.end.as_us_f64(), makespan_us(&long));
}

/// Without retransmission, drops lose messages (raw loss) and nothing is resent.
#[test]
fn retransmission_none_loses_messages() {
    let r = run(&incast(LOSSY, "retransmission = \"none\""));
    assert!(r.messages.iter().any(|m| m.finish.is_none()));
    assert_eq!(r.recovery, Default::default());
    assert_eq!(r.bytes_injected, r.bytes_delivered + r.bytes_dropped);
}

/// A QP's retry count: past it, timeouts in a row without progress put the QP in the error
/// state and its message is lost; more retries lose fewer messages, unlimited none. Bytes
/// are still accounted for: sent = offered − never sent + resent.
#[test]
fn retry_count_bounds_the_timeouts_a_message_survives() {
    let lossy = |retry: &str| run(&incast(LOSSY, &format!("rto_us = 20\n{retry}")));
    let unlimited = lossy("");
    assert_eq!(unlimited.recovery.qp_errors, 0);
    assert!(unlimited.messages.iter().all(|m| m.finish.is_some()));
    let lost = |r: &NetRun| r.messages.iter().filter(|m| m.finish.is_none()).count() as u64;
    let books = |r: &NetRun| {
        // Nothing a failed QP sent is delivered twice or lost from the books.
        assert_eq!(
            r.bytes_injected,
            r.bytes_delivered + r.bytes_dropped + r.recovery.bytes_discarded
        );
    };
    let zero = lossy("retry_cnt = 0");
    assert!(zero.recovery.qp_errors > 0, "{:?}", zero.recovery);
    assert_eq!(lost(&zero), zero.recovery.qp_errors);
    books(&zero);
    let mut last = zero.recovery.qp_errors;
    for n in 1..=7 {
        let r = lossy(&format!("retry_cnt = {n}"));
        assert_eq!(lost(&r), r.recovery.qp_errors);
        assert!(
            r.recovery.qp_errors <= last,
            "retry_cnt {n}: {:?}",
            r.recovery
        );
        // A QP that survives more timeouts waits more of them.
        assert!(
            r.recovery.timeouts > zero.recovery.timeouts,
            "retry_cnt {n}"
        );
        last = r.recovery.qp_errors;
        books(&r);
    }
    assert!(
        last < zero.recovery.qp_errors,
        "7 retries save some messages"
    );
    // Lossless fabrics never time out, whatever the retry count.
    let r = run(&incast(LOSSLESS, "retry_cnt = 0"));
    assert_eq!(r.recovery, Default::default());
}

/// Lossless fabrics never use go-back-N: nothing is resent or discarded.
#[test]
fn lossless_runs_recover_nothing() {
    let r = run(&incast(LOSSLESS, ""));
    assert_eq!(r.recovery, Default::default());
}

#[test]
fn bad_recovery_keys_are_named() {
    for (nic, key, says) in [
        (
            "retransmission = \"sack\"",
            "fabric.nic.retransmission",
            "go-back-n, none",
        ),
        ("rto_us = 0", "fabric.nic.rto_us", "> 0"),
        ("rto_us = -1", "fabric.nic.rto_us", ">= 0"),
        (
            "retransmission = \"none\"\nrto_us = 10",
            "fabric.nic.rto_us",
            "go-back-n",
        ),
        ("retry_cnt = 8", "fabric.nic.retry_cnt", "0 to 7"),
        ("retry_cnt = -1", "fabric.nic.retry_cnt", "0 to 7"),
        (
            "retransmission = \"none\"\nretry_cnt = 7",
            "fabric.nic.retry_cnt",
            "go-back-n",
        ),
    ] {
        let text = format!(
            "name = \"t\"\n[fabric]\nnodes = 2\ngpus_per_node = 1\n[fabric.nic]\nrate_gbps = 400\n\
             latency_ns = 100\n{nic}\n[fabric.scale_out]\ntopology = \"single-switch\"\n\
             [[traffic]]\npattern = \"message\"\nsrc = 0\ndst = 1\nbytes = 4096\n"
        );
        let e = Scenario::parse(&text, "t.toml", None).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains(says), "{e}");
    }
}

/// Per-flow round-robin spraying: one flow of 64 packets across a leaf with 8 spines puts
/// exactly 8 packets on each uplink (random spraying would not), and at a three-tier fat
/// tree's second choice (aggregation to core) the packets still rotate evenly.
#[test]
fn spray_rr_puts_one_packet_per_path_per_round() {
    for (topology, extra) in [("leaf-spine", "radix = 16"), ("fat-tree", "fat_tree_k = 4")] {
        let text = format!(
            "name = \"t\"\n[fabric]\nnodes = 16\ngpus_per_node = 1\n[fabric.nic]\n\
             rate_gbps = 400\nlatency_ns = 100\n[fabric.scale_out]\ntopology = \"{topology}\"\n\
             {extra}\n[fabric.routing]\npolicy = \"spray-rr\"\n[[traffic]]\n\
             pattern = \"message\"\nsrc = 0\ndst = 15\nbytes = 262144\n"
        );
        let s = Scenario::parse(&text, "t.toml", None).unwrap();
        let r = run(&s);
        let t = &s.fabric().topology;
        // Packets per switch-to-switch link the flow used, by tier of the sending switch.
        let mut used: Vec<u64> = t
            .links()
            .iter()
            .zip(&r.links)
            .filter(|(l, st)| l.class == afdsim::topology::LinkClass::Fabric && st.packets > 0)
            .map(|(_, st)| st.packets)
            .collect();
        used.sort();
        let paths = match topology {
            "leaf-spine" => 8, // 8 uplinks, then 8 spine downlinks
            _ => 4,            // 2 edge uplinks x 2 agg uplinks = 4 cores
        };
        let per_path = 64 / paths;
        assert!(
            used.iter().all(|&p| p % per_path == 0 && p > 0),
            "{topology}: {used:?}"
        );
        let up_first_hop: u64 = used.iter().filter(|&&p| p == per_path).count() as u64;
        assert!(up_first_hop >= paths, "{topology}: {used:?}");
    }
}

/// PXN on two HGX H100 nodes: a cross-rail transfer crosses NVLink to the relay GPU and
/// leaves through the relay's NIC, so no spine link carries a byte, at the packet and the
/// flow level; without PXN the same transfer crosses a spine. Its bytes are delivered once.
#[test]
fn pxn_keeps_cross_rail_traffic_off_the_spines() {
    let text = |pxn: bool| {
        format!(
            "name = \"t\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 2\n[fabric.routing]\n\
             pxn = {pxn}\n[[traffic]]\npattern = \"message\"\nsrc = 0\ndst = 9\nbytes = 1048576\n"
        )
    };
    let spine_bytes = |s: &Scenario, r: &NetRun| -> u64 {
        let t = &s.fabric().topology;
        (t.links().iter().zip(&r.links))
            .filter(|(l, _)| l.class == afdsim::topology::LinkClass::Fabric)
            .map(|(_, st)| st.wire_bytes)
            .sum()
    };
    let pxn = Scenario::parse(&text(true), "t.toml", None).unwrap();
    let direct = Scenario::parse(&text(false), "t.toml", None).unwrap();
    let r = run(&pxn);
    assert_eq!(spine_bytes(&pxn, &r), 0);
    assert_eq!(r.bytes_delivered, 1048576);
    assert!(spine_bytes(&direct, &run(&direct)) > 0);
    let flow =
        afdsim::flow::simulate(pxn.fabric(), pxn.net(), pxn.messages(), &mut |_| {}).unwrap();
    assert_eq!(spine_bytes(&pxn, &flow), 0);
    // The relay (GPU 1) sends it: its PCIe link to its NIC carries the message.
    let t = &pxn.fabric().topology;
    let relay_out = t.next_hops(afdsim::topology::NodeId(1), afdsim::topology::NodeId(9))[0];
    assert!(r.links[relay_out.0 as usize].wire_bytes >= 1048576);
}

#[test]
fn pxn_needs_a_rail_optimized_fabric() {
    let text = "name = \"t\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 2\n[fabric.scale_out]\n\
                topology = \"leaf-spine\"\n[fabric.routing]\npxn = true\n[[traffic]]\n\
                pattern = \"message\"\nsrc = 0\ndst = 9\nbytes = 4096\n";
    let e = Scenario::parse(text, "t.toml", None).unwrap_err();
    assert_eq!(e.key, "fabric.routing.pxn", "{e}");
    assert!(e.message.contains("rail-leaf-spine"), "{e}");
}

/// PXN with a bounded relay buffer: one 1 MiB cross-rail message through relay GPU 1 plus
/// a 1 MiB message of GPU 1's own through the same NIC. Unbounded, the relay buffers
/// nearly the whole relayed message (NVLink outruns the NIC); bounded, it never holds more
/// than the bound, every byte still arrives, and since the NIC is the bottleneck either
/// way the run ends at about the same time.
#[test]
fn pxn_relay_buffer_is_bounded() {
    let text = |fifo: &str| {
        format!(
            "name = \"t\"\nlevel = \"packet\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 2\n\
             [fabric.routing]\npxn = true\n{fifo}\n\
             [[traffic]]\npattern = \"message\"\nsrc = 0\ndst = 9\nbytes = 1048576\n\
             [[traffic]]\npattern = \"message\"\nsrc = 1\ndst = 9\nbytes = 1048576\n"
        )
    };
    let unbounded = run(&Scenario::parse(&text(""), "t.toml", None).unwrap());
    assert!(
        unbounded.relay_peak_bytes > 512 * 1024,
        "{}",
        unbounded.relay_peak_bytes
    );
    let bound = 64 * 1024;
    let s = Scenario::parse(&text("pxn_fifo_kib = 64"), "t.toml", None).unwrap();
    let bounded = run(&s);
    assert!(
        bounded.relay_peak_bytes <= bound,
        "{}",
        bounded.relay_peak_bytes
    );
    assert!(bounded.relay_peak_bytes > bound / 2);
    assert_eq!(bounded.bytes_delivered, 2 * 1048576);
    assert!(bounded.messages.iter().all(|m| m.finish.is_some()));
    let (a, b) = (makespan_us(&unbounded), makespan_us(&bounded));
    assert!(
        (b / a - 1.0).abs() < 0.02,
        "unbounded {a} us, bounded {b} us"
    );
    // Determinism holds with the bound.
    let again = run(&s);
    assert_eq!(again.messages, bounded.messages);
}

#[test]
fn pxn_fifo_keys_are_checked() {
    let text = |routing: &str, level: &str| {
        format!(
            "name = \"t\"\nlevel = \"{level}\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 2\n\
             [fabric.routing]\n{routing}\n[[traffic]]\npattern = \"message\"\nsrc = 0\n\
             dst = 9\nbytes = 4096\n"
        )
    };
    for (routing, level, key, says) in [
        (
            "pxn_fifo_kib = 64",
            "packet",
            "fabric.routing.pxn_fifo_kib",
            "pxn = true",
        ),
        (
            "pxn = true\npxn_fifo_kib = 4",
            "packet",
            "fabric.routing.pxn_fifo_kib",
            "two NIC packets",
        ),
        (
            "pxn = true\npxn_fifo_kib = 64",
            "flow",
            "fabric.routing.pxn_fifo_kib",
            "packet-level feature",
        ),
    ] {
        let e = Scenario::parse(&text(routing, level), "t.toml", None).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains(says), "{e}");
    }
}

/// Progress reports carry the workload's bytes: the total offered in every report, and the
/// bytes delivered so far, never decreasing and never past it (what the CLI turns into a
/// percentage and an ETA). A 40 MiB all-to-all over 8 GPUs is ~2.3 M events, so the packet
/// level (a report every 2^20 events) reports at least once.
#[test]
fn progress_reports_bytes_delivered_of_offered() {
    let text = afdsim::config::STAR_SCENARIO.replace("bytes = 1048576", "bytes = 41943040");
    let s = Scenario::parse(&text, "star.toml", None).unwrap();
    let offered: u64 = s.messages().iter().map(|m| m.bytes).sum();
    let mut reports = Vec::new();
    let r = simulate(s.fabric(), s.net(), s.messages(), &mut |p| reports.push(p)).unwrap();
    assert!(
        !reports.is_empty(),
        "{} events, no report",
        r.queue.processed
    );
    for w in reports.windows(2) {
        assert!(w[0].bytes_done <= w[1].bytes_done && w[0].now <= w[1].now);
    }
    for p in &reports {
        assert_eq!(p.bytes_total, offered);
        assert!(p.bytes_done > 0 && p.bytes_done < offered, "{p:?}");
    }
}

/// The htsim comparison scenarios load: a permutation (every host sends one 1 MiB message
/// and receives one) on the fat tree htsim simulated, at packet level.
#[test]
fn the_htsim_comparison_scenarios_are_permutations_on_htsims_fat_tree() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/scenarios/htsim");
    for (file, hosts) in [
        ("perm128-ecmp", 128),
        ("perm1024-ecmp", 1024),
        ("perm1024-spray", 1024),
    ] {
        let s = Scenario::load(&dir.join(format!("{file}.toml")), None)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(s.fabric().topology.gpus(), hosts, "{file}");
        let m = s.messages();
        assert_eq!(m.len(), hosts as usize, "{file}");
        assert!(
            m.iter().all(|m| m.bytes == 1 << 20 && m.src != m.dst),
            "{file}"
        );
        let mut srcs: Vec<u32> = m.iter().map(|m| m.src.0).collect();
        let mut dsts: Vec<u32> = m.iter().map(|m| m.dst.0).collect();
        srcs.sort_unstable();
        dsts.sort_unstable();
        let all: Vec<u32> = (0..hosts).collect();
        assert!(srcs == all && dsts == all, "{file}: not a permutation");
    }
}
