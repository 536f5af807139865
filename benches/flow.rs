//! Flow level against packet level on the same scenario: wall time, flows per second, the
//! speed-up, and how the flow level's wall time grows with GPU count.
//!
//! Run: `cargo bench --bench flow` (all of it; the packet runs of 256 GPUs take a while),
//! or `cargo bench --bench flow -- speedup` / `-- scaling` / `-- scale` / `-- jitter` for
//! one part. A plain timing harness rather than criterion: one packet-level run of a
//! 256-GPU all-to-all takes tens of seconds, and the ratio must come from runs in one
//! process on one machine.
//!
//! Scenario: HGX H100 servers (`fabrics/hgx-h100.toml`: 8 GPUs on NVLink, one 400 Gb/s
//! NIC per GPU, rail-optimized leaf/spine, ECMP), a uniform all-to-all of `bytes` per
//! ordered pair starting together, optionally with a start jitter.

use afdsim::config::Scenario;
use std::time::{Duration, Instant};

fn all_to_all(nodes: u32, bytes: u64, jitter_ns: u64) -> Scenario {
    let text = format!(
        r#"
name = "bench-hgx-{nodes}x8-a2a"
[fabric]
file = "hgx-h100"
nodes = {nodes}
[[traffic]]
pattern = "all-to-all"
bytes = {bytes}
start_jitter_ns = {jitter_ns}
"#
    );
    Scenario::parse(&text, "<bench>", Some(1)).expect("valid bench scenario")
}

/// Median wall time of `reps` runs of `f`.
fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..reps {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], last.expect("reps >= 1"))
}

fn makespan_us(r: &afdsim::net::NetRun) -> f64 {
    let first = r.messages.iter().map(|m| m.start).min().expect("messages");
    let last = r
        .messages
        .iter()
        .filter_map(|m| m.finish)
        .max()
        .expect("done");
    last.since(first).as_us_f64()
}

fn flow_row(s: &Scenario, reps: usize) -> Duration {
    // Building the scenario (topology, routes between all GPU pairs, traffic) is not part
    // of the level's time: both levels start from the same resolved scenario.
    let (wall, (run, st)) = time(reps, || {
        afdsim::flow::simulate_with_stats(s.fabric(), s.net(), s.messages(), &mut |_| {}).unwrap()
    });
    let t_route = time(reps, || {
        s.messages()
            .iter()
            .enumerate()
            .map(|(i, m)| {
                afdsim::flow::route(s.fabric(), s.net(), i as u32, m)
                    .links
                    .len()
            })
            .sum::<usize>()
    })
    .0;
    println!(
        "  flow     {:>9.1} ms  {:>10.0} flows/s  makespan {:>9.3} us  updates {:>6}  \
         refilled {:>9} ({:.1}/update)  route entries {:>8}  routes {:.1} ms",
        wall.as_secs_f64() * 1e3,
        s.messages().len() as f64 / wall.as_secs_f64(),
        makespan_us(&run),
        st.updates,
        st.flows_refilled,
        st.flows_refilled as f64 / st.updates.max(1) as f64,
        st.route_entries,
        t_route.as_secs_f64() * 1e3,
    );
    wall
}

fn packet_row(s: &Scenario) -> Duration {
    let (wall, run) = time(1, || {
        afdsim::packet::simulate(s.fabric(), s.net(), s.messages(), &mut |_| {})
            .expect("no deadlock")
    });
    println!(
        "  packet   {:>9.1} ms  {:>10.0} flows/s  makespan {:>9.3} us  packet-hops {}",
        wall.as_secs_f64() * 1e3,
        s.messages().len() as f64 / wall.as_secs_f64(),
        makespan_us(&run),
        run.packet_hops
    );
    wall
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let want =
        |part: &str| !args.iter().any(|a| !a.starts_with('-')) || args.iter().any(|a| a == part);

    if want("speedup") {
        println!("speed-up: 256 GPUs (32 HGX nodes), uniform all-to-all, 65,280 flows");
        for bytes in [262_144u64, 1_048_576] {
            let s = all_to_all(32, bytes, 0);
            println!("{bytes} B per pair, starting together:");
            let f = flow_row(&s, 3);
            let p = packet_row(&s);
            println!(
                "  speed-up packet / flow: {:.0}x",
                p.as_secs_f64() / f.as_secs_f64()
            );
        }
    }
    if want("scaling") {
        println!("scaling: flow level, uniform all-to-all of 256 KiB starting together");
        let mut pts = Vec::new();
        for nodes in [8u32, 16, 32, 64] {
            let s = all_to_all(nodes, 262_144, 0);
            println!("{} GPUs, {} flows:", nodes * 8, s.messages().len());
            let w = flow_row(&s, 3);
            pts.push(((nodes * 8) as f64, w.as_secs_f64()));
        }
        // Least-squares slope of log(wall) on log(GPUs).
        let n = pts.len() as f64;
        let (sx, sy) = pts
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x.ln(), b + y.ln()));
        let (mx, my) = (sx / n, sy / n);
        let (num, den) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
            (a + (x.ln() - mx) * (y.ln() - my), b + (x.ln() - mx).powi(2))
        });
        println!("  wall time ~ GPUs^{:.2} (flows grow as GPUs^2)", num / den);
    }
    if want("scale") {
        // docs/flow.md, "At cluster scale": 1,024 GPUs on a fat tree, 4 KiB per pair (the
        // 8,192-GPU run of the same takes 13 minutes and 20 GB: `afdsim run`).
        println!(
            "scale: 1,024 GPUs (128 HGX nodes, fat tree), all-to-all of 4 KiB, 1,047,552 flows"
        );
        let text = "name = \"bench-scale\"\n[fabric]\nfile = \"hgx-h100\"\nnodes = 128\n\
                    [fabric.scale_out]\ntopology = \"fat-tree\"\n\
                    [[traffic]]\npattern = \"all-to-all\"\nbytes = 4096\n";
        let s = Scenario::parse(text, "<bench>", Some(1)).expect("valid bench scenario");
        flow_row(&s, 1);
        // The process's peak so far (this part runs first when asked for alone).
        let peak = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            });
        if let Some(kb) = peak {
            println!("  process peak RSS {:.0} MB", kb as f64 / 1024.0);
        }
    }
    if want("jitter") {
        // Staggered starts: every arrival re-rates the flows it shares links with, and in
        // an all-to-all that is nearly all of them (docs/flow.md, "Where the time goes").
        println!("staggered starts: 64 GPUs (8 HGX nodes), 256 KiB all-to-all, 1 us jitter");
        let s = all_to_all(8, 262_144, 1_000);
        let f = flow_row(&s, 1);
        let p = packet_row(&s);
        println!(
            "  speed-up packet / flow: {:.2}x",
            p.as_secs_f64() / f.as_secs_f64()
        );
    }
}
