//! Sweep speed: local parallel efficiency (a 64-point sweep on 1 and 2 threads) and the
//! per-point overhead a user needs to size Slurm array tasks (process start, sweep
//! expansion, scenario resolution, writing a point, the resume check).
//! Run: `cargo bench --bench sweep`. Plain timing (no criterion): the quantities are ratios
//! and means over many repetitions, printed as a table.

use afdsim::sweep::{Plan, Shard, Sweep};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn sweep_text(gpus: u32, bytes: u64, axes: &str) -> String {
    format!(
        r#"name = "bench"
{axes}
[base]
name = "bench-star"
[base.fabric]
nodes = {gpus}
gpus_per_node = 1
[base.fabric.nic]
rate_gbps = 400
latency_ns = 1000
[base.fabric.scale_out]
topology = "single-switch"
[base.fabric.switch]
latency_ns = 300
[[base.traffic]]
pattern = "all-to-all"
bytes = {bytes}
start_jitter_ns = 1000
"#
    )
}

fn fresh(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("afdsim-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(sweep: &Sweep, dir: &Path, jobs: usize) -> (Duration, afdsim::sweep::RunReport) {
    let _ = std::fs::remove_dir_all(dir);
    let t = Instant::now();
    let r = Plan::new(sweep, dir, Shard::ALL)
        .unwrap()
        .execute(jobs, &|_| {})
        .unwrap();
    (t.elapsed(), r)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: then only smoke.
    let full = std::env::args().any(|a| a == "--bench");
    let reps = if full { 7 } else { 1 };

    // --- Parallel efficiency: 64 points of tens of milliseconds (32-GPU star, 512 KiB
    // all-to-all with start jitter), 4 link rates x 16 seeds.
    let axes = r#"
[[axis]]
key = "fabric.nic.rate_gbps"
values = [100, 200, 400, 800]
[[axis]]
key = "seed"
linear = { from = 1, to = 16, count = 16 }
"#;
    let (gpus, bytes) = if full { (32, 524_288) } else { (4, 4096) };
    let sweep = Sweep::parse(&sweep_text(gpus, bytes, axes), "<bench>", None).unwrap();
    assert_eq!(sweep.points().len(), 64);
    let dir = fresh("eff");
    let mut t1 = Vec::new();
    let mut t2 = Vec::new();
    let mut sim_ms = 0.0;
    for _ in 0..reps {
        // Alternate so that drift in machine load hits both alike.
        let (a, r) = run(&sweep, &dir, 1);
        sim_ms = ms(r.simulate) / r.ran as f64;
        t1.push(a);
        t2.push(run(&sweep, &dir, 2).0);
    }
    t1.sort();
    t2.sort();
    let median = |t: &[Duration]| t[t.len() / 2];
    println!(
        "parallel efficiency: 64 points, {gpus}-GPU star, {bytes} B all-to-all, simulate {sim_ms:.1} ms/point; {reps} runs each"
    );
    println!("             min         median");
    println!(
        "  --jobs 1   {:8.1} ms  {:8.1} ms",
        ms(t1[0]),
        ms(median(&t1))
    );
    println!(
        "  --jobs 2   {:8.1} ms  {:8.1} ms",
        ms(t2[0]),
        ms(median(&t2))
    );
    let speedup = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "  speedup    {:8.2} x    {:8.2} x   (min is the least disturbed by other load on a shared VM)",
        speedup(t1[0], t2[0]),
        speedup(median(&t1), median(&t2))
    );

    // --- Per-point overhead, in process: resolution, write, resume check.
    let n = if full { 2000 } else { 20 };
    let grid = format!("[[axis]]\nkey = \"seed\"\nlinear = {{ from = 1, to = {n}, count = {n} }}");
    for (gpus, label) in [
        (8, "8-GPU star, 1 MiB all-to-all (the default)"),
        (64, "64-GPU star, all-to-all"),
    ] {
        let t = Instant::now();
        let big = Sweep::parse(&sweep_text(gpus, 1_048_576, &grid), "<bench>", None).unwrap();
        let expand = t.elapsed();
        let t = Instant::now();
        for p in big.points() {
            std::hint::black_box(big.scenario(p).unwrap());
        }
        let resolve = t.elapsed();
        println!("overhead per point, {label}, {n} points:");
        println!(
            "  expand the sweep (ids, checks)  {:8.3} ms",
            ms(expand) / n as f64
        );
        println!(
            "  resolve the scenario            {:8.3} ms",
            ms(resolve) / n as f64
        );
    }
    // Writing a point and the resume check, with a trivial scenario so that they dominate.
    let tiny = Sweep::parse(&sweep_text(2, 64, &grid), "<bench>", None).unwrap();
    let dir = fresh("tiny");
    let (wall, r) = run(&tiny, &dir, 1);
    let t = Instant::now();
    let plan = Plan::new(&tiny, &dir, Shard::ALL).unwrap();
    let check = t.elapsed();
    assert_eq!(plan.report().already_done, n);
    println!("overhead per point, 2-GPU star, 64 B message ({n} points, 1 thread):");
    println!(
        "  write the point's file          {:8.3} ms",
        ms(r.write) / n as f64
    );
    println!(
        "  whole point (resolve+run+write) {:8.3} ms",
        ms(wall) / n as f64
    );
    println!(
        "  resume check of a finished one  {:8.3} ms",
        ms(check) / n as f64
    );
    let _ = std::fs::remove_dir_all(&dir);

    // --- Process start: what each array task pays once.
    let exe = env!("CARGO_BIN_EXE_afdsim");
    let k = if full { 20 } else { 2 };
    let t = Instant::now();
    for _ in 0..k {
        assert!(
            Command::new(exe)
                .arg("--version")
                .output()
                .unwrap()
                .status
                .success()
        );
    }
    let version = t.elapsed() / k;
    let one = fresh("one");
    std::fs::create_dir_all(&one).unwrap();
    let file = one.join("one.toml");
    std::fs::write(&file, sweep_text(2, 64, "")).unwrap();
    let t = Instant::now();
    for i in 0..k {
        let out = one.join(format!("o{i}"));
        let o = Command::new(exe)
            .args([
                "sweep",
                file.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success());
    }
    let one_point = t.elapsed() / k;
    println!("process start (mean of {k}):");
    println!("  afdsim --version                {:8.3} ms", ms(version));
    println!("  afdsim sweep, 1 trivial point   {:8.3} ms", ms(one_point));
    let _ = std::fs::remove_dir_all(&one);
    let _ = std::fs::remove_dir_all(fresh("eff"));
}
