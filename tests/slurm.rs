//! The Slurm path for real: a small sweep submitted as a job array (examples/slurm/sweep.sbatch)
//! to the one-node cluster that `.ci/slurm-setup` starts on localhost, then merged; the merge
//! must equal an unsharded local run byte for byte.
//!
//! Ignored unless asked for, so that `cargo test` counts it as ignored rather than passing it
//! without a cluster: `cargo test --release --test slurm -- --ignored`. Asked for, it fails
//! when it cannot run (not root, Slurm not installed, no controller answering) and says why.
//! `.ci/run` starts the cluster with `.ci/slurm-setup` and runs it whenever one answers.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The test was asked for (`--ignored`) but cannot run: fail, saying why.
fn cannot_run(why: &str) -> ! {
    panic!("slurm_job_array_equals_a_local_run cannot run: {why}")
}

fn sh(cmd: &str, args: &[&str]) -> Option<Output> {
    Command::new(cmd).args(args).output().ok()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is_root() -> bool {
    sh("id", &["-u"]).is_some_and(|o| text(&o.stdout).trim() == "0")
}

fn afdsim(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_afdsim"))
        .args(args)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .output()
        .unwrap();
    assert!(o.status.success(), "afdsim {args:?}: {}", text(&o.stderr));
    o
}

const SWEEP: &str = r#"name = "slurm-test"
[[axis]]
key = "fabric.nic.rate_gbps"
values = [100, 200, 400]
[[axis]]
key = "traffic[0].bytes"
values = [4096, 16384]
[[axis]]
key = "seed"
values = [1, 2]
[base]
name = "tiny-star"
[base.fabric]
nodes = 4
gpus_per_node = 1
[base.fabric.nic]
rate_gbps = 100
latency_ns = 500
[base.fabric.scale_out]
topology = "single-switch"
[[base.traffic]]
pattern = "all-to-all"
bytes = 8192
start_jitter_ns = 2000
"#;

#[test]
#[ignore = "needs a Slurm cluster (.ci/slurm-setup): cargo test --release --test slurm -- --ignored"]
fn slurm_job_array_equals_a_local_run() {
    if !is_root() {
        cannot_run("not root: a local Slurm cluster needs root to install and start");
    }
    if sh("sbatch", &["--version"]).is_none_or(|o| !o.status.success()) {
        cannot_run("Slurm is not installed (no sbatch); `.ci/slurm-setup` installs and starts it");
    }
    let ping = sh("scontrol", &["ping"])
        .map(|o| text(&o.stdout))
        .unwrap_or_default();
    if !ping.contains("is UP") {
        cannot_run(&format!(
            "no Slurm controller answers (`scontrol ping`: {}); `.ci/slurm-setup` starts one",
            ping.trim()
        ));
    }

    // Under /tmp: slurmd runs on this host, so it sees the same files.
    let dir = std::env::temp_dir().join(format!("afdsim-slurm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sweep = dir.join("sweep.toml");
    std::fs::write(&sweep, SWEEP).unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_string();

    let local = dir.join("local");
    afdsim(&["sweep", &p(&sweep), "--out", &p(&local)]);
    afdsim(&["merge", &p(&local), "--out", &p(&dir.join("local.csv"))]);

    // An array that starts at 1 (SLURM_ARRAY_TASK_MIN = 1): tasks 1, 2, 3 are shards 0..2.
    let out = dir.join("array");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/slurm/sweep.sbatch");
    let name = format!("afdsim-test-{}", std::process::id());
    let export = format!(
        "ALL,AFDSIM={},SWEEP={},OUT={}",
        env!("CARGO_BIN_EXE_afdsim"),
        p(&sweep),
        p(&out)
    );
    let log = format!("{}/task-%a.out", p(&dir));
    let started = Instant::now();
    // Submit and poll squeue (every 0.2 s) rather than `sbatch --wait`, which polls every
    // few seconds and made this test take 10 s instead of 3.
    let o = Command::new("sbatch")
        .args([
            "--parsable",
            "--array=1-3",
            "--job-name",
            &name,
            "--time=5",
            "--output",
            &log,
            "--export",
            &export,
            "--chdir",
            &p(&dir),
            script.to_str().unwrap(),
        ])
        .output()
        .expect("sbatch runs");
    assert!(o.status.success(), "sbatch: {}", text(&o.stderr));
    let job = text(&o.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let deadline = started + Duration::from_secs(240);
    while sh("squeue", &["-h", "-j", &job]).is_some_and(|o| !text(&o.stdout).trim().is_empty()) {
        if Instant::now() > deadline {
            let _ = sh("scancel", &[&job]);
            panic!(
                "job array {job} did not finish in 240 s; squeue: {}",
                squeue()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs = task_logs(&dir);
    // Finished jobs stay visible to scontrol for MinJobAge (300 s by default).
    let show = sh("scontrol", &["show", "job", &job])
        .map(|o| text(&o.stdout))
        .unwrap_or_default();
    let states: Vec<&str> = show
        .split_whitespace()
        .filter(|w| w.starts_with("JobState=") || w.starts_with("ExitCode="))
        .collect();
    assert_eq!(
        states,
        ["JobState=COMPLETED", "ExitCode=0:0"].repeat(3),
        "job array {job}:\n{show}\n{logs}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "slurm: job array {job} of 3 tasks ran in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for shard in [
        "shard 0/3: 4 points",
        "shard 1/3: 4 points",
        "shard 2/3: 4 points",
    ] {
        assert!(
            logs.contains(shard),
            "no `{shard}` in the task logs:\n{logs}"
        );
    }
    let merged = dir.join("array.csv");
    afdsim(&["merge", &p(&out), "--out", &p(&merged)]);
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        std::fs::read(dir.join("local.csv")).unwrap(),
        "the job array's merge differs from the local run"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn squeue() -> String {
    sh("squeue", &[])
        .map(|o| text(&o.stdout))
        .unwrap_or_default()
}

fn task_logs(dir: &Path) -> String {
    let mut s = String::new();
    for i in 1..=3 {
        let f = dir.join(format!("task-{i}.out"));
        s.push_str(&format!("--- {}\n", f.display()));
        s.push_str(&std::fs::read_to_string(&f).unwrap_or_else(|e| format!("({e})\n")));
    }
    s
}
