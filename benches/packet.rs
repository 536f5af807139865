//! Packet-level speed: simulated packet-hops and events per wall second, and wall time per
//! scenario; and the same against the thread count (`packet-threads`: 128 and 1,024 GPUs on
//! 1, 2 and, where the machine has more cores, as many threads as cores). Run:
//! `cargo bench --bench packet`.

use afdsim::config::Scenario;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn star_all_to_all(gpus: u32, bytes: u64) -> Scenario {
    let text = format!(
        r#"
name = "bench-star-{gpus}"
[fabric]
nodes = {gpus}
gpus_per_node = 1
[fabric.nic]
rate_gbps = 400
latency_ns = 1000
[fabric.scale_out]
topology = "single-switch"
radix = 128
[fabric.switch]
latency_ns = 300
[[traffic]]
pattern = "all-to-all"
bytes = {bytes}
start_jitter_ns = 1000
"#
    );
    Scenario::parse(&text, "<bench>", Some(1)).expect("valid bench scenario")
}

fn bench_packet(c: &mut Criterion) {
    let mut g = c.benchmark_group("packet");
    g.sample_size(10);
    // Issue 3's speed scenario: 128 GPUs on 16 HGX nodes, 1 MiB all-to-all, DCQCN.
    let hgx16 = Scenario::load(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/workloads/scenarios/hgx16-a2a-dcqcn.toml"
        )),
        None,
    )
    .expect("valid scenario");
    // The same traffic with per-flow round-robin spraying and PXN (docs/packet.md).
    let hgx16_pxn = Scenario::parse(
        r#"
name = "bench-hgx16-pxn-spray-rr"
[fabric]
file = "hgx-h100"
nodes = 16
[fabric.routing]
policy = "spray-rr"
pxn = true
[[traffic]]
pattern = "all-to-all"
bytes = 1048576
"#,
        "<bench>",
        Some(1),
    )
    .expect("valid bench scenario");
    let scenarios = [
        (
            "star-8-a2a-1MiB",
            Scenario::parse(
                afdsim::config::STAR_SCENARIO,
                afdsim::config::STAR_SCENARIO_ORIGIN,
                None,
            )
            .expect("valid"),
        ),
        ("star-64-a2a-256KiB", star_all_to_all(64, 256 * 1024)),
        ("hgx16-a2a-1MiB-dcqcn", hgx16),
        ("hgx16-a2a-1MiB-pxn-spray-rr", hgx16_pxn),
    ];
    for (name, s) in &scenarios {
        let run = afdsim::packet::simulate(s.fabric(), s.net(), s.messages(), &mut |_| {})
            .expect("no deadlock");
        eprintln!(
            "{name}: {} packet-hops, {} events, {:.2} events per packet-hop",
            run.packet_hops,
            run.queue.processed,
            run.queue.processed as f64 / run.packet_hops as f64
        );
        g.throughput(Throughput::Elements(run.packet_hops));
        g.bench_with_input(BenchmarkId::new("packet-hops", name), s, |b, s| {
            b.iter(|| afdsim::packet::simulate(s.fabric(), s.net(), s.messages(), &mut |_| {}))
        });
    }
    g.finish();
}

/// `afdsim run --threads N` (docs/packet.md, "Threads"): identical results, wall time
/// against N.
fn bench_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("packet-threads");
    g.sample_size(10);
    let hgx = |nodes: u32, bytes: u32| {
        Scenario::parse(
            &format!(
                "name = \"bench-hgx{nodes}\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = {nodes}\n\
                 [[traffic]]\npattern = \"all-to-all\"\nbytes = {bytes}\n"
            ),
            "<bench>",
            Some(1),
        )
        .expect("valid bench scenario")
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = vec![1, 2];
    if cores > 2 {
        threads.push(cores);
    }
    // 128 GPUs at 1 MiB per pair (23 M packet-hops); 1,024 GPUs (`hgx128-a2a`'s fabric) at
    // 4 KiB per pair: 1,047,552 one-packet messages.
    for (name, s) in [
        ("hgx16-a2a-1MiB", hgx(16, 1 << 20)),
        ("hgx128-a2a-4KiB", hgx(128, 4096)),
    ] {
        let w = afdsim::net::Workload::from_messages(s.messages().to_vec());
        let one = afdsim::packet::simulate_threads(s.fabric(), s.net(), &w, 1, &mut |_| {})
            .expect("no deadlock");
        g.throughput(Throughput::Elements(one.packet_hops));
        for &n in &threads {
            let run = afdsim::packet::simulate_threads(s.fabric(), s.net(), &w, n, &mut |_| {})
                .expect("no deadlock");
            assert_eq!(run.end, one.end, "{name}: the same run on {n} threads");
            g.bench_with_input(
                BenchmarkId::new(name, format!("{n}-threads")),
                &n,
                |b, &n| {
                    b.iter(|| {
                        afdsim::packet::simulate_threads(s.fabric(), s.net(), &w, n, &mut |_| {})
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench_packet, bench_threads);
criterion_main!(benches);
