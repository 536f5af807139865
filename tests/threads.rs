//! `afdsim run --threads N`: the packet level writes byte-identical outputs (stdout and every
//! `--out` file) on any number of threads, for every shipped packet scenario that can run
//! on several (`docs/packet.md`, "Threads"), and says why for those that cannot.

mod common;

use common::{afdsim, stderr, stdout, temp_file};
use std::path::{Path, PathBuf};

fn root(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

/// A run's files, by name, with their bytes.
type Files = Vec<(String, Vec<u8>)>;

/// Every file under `dir`, by name, with its bytes.
fn files(dir: &Path) -> Files {
    let mut out: Files = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Runs `scenario` (with `extra` arguments) on 1, 2 and 3 threads and checks that stdout and
/// the `--out` files are the same bytes. Returns the 1-thread stdout.
fn same_on_any_threads(tag: &str, scenario: &str, extra: &[&str]) -> String {
    let base = std::env::temp_dir().join(format!("afdsim-threads-{}-{tag}", std::process::id()));
    let mut first: Option<(String, Files)> = None;
    for n in ["1", "2", "3"] {
        let out: PathBuf = base.join(n);
        let o = out.to_string_lossy().into_owned();
        let mut args = vec!["run", scenario, "--threads", n, "--out", &o];
        args.extend_from_slice(extra);
        let r = afdsim(&args);
        assert!(r.status.success(), "{tag} on {n} threads: {}", stderr(&r));
        let got = (stdout(&r), files(&out));
        assert!(got.1.len() >= 3, "{tag}: metrics, messages and links files");
        match &first {
            None => first = Some(got),
            Some(want) => {
                assert_eq!(got.0, want.0, "{tag}: stdout on {n} threads");
                for ((name, bytes), (wname, wbytes)) in got.1.iter().zip(&want.1) {
                    assert_eq!(name, wname);
                    assert!(bytes == wbytes, "{tag}: {name} differs on {n} threads");
                }
                assert_eq!(got.1.len(), want.1.len());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    first.unwrap().0
}

#[test]
fn shipped_packet_scenarios_are_identical_on_any_thread_count() {
    for (tag, file) in [
        ("star", "workloads/scenarios/star-8gpu-all-to-all.toml"),
        ("perm128", "workloads/scenarios/htsim/perm128-ecmp.toml"),
        ("perm1024", "workloads/scenarios/htsim/perm1024-ecmp.toml"),
        (
            "perm1024-spray",
            "workloads/scenarios/htsim/perm1024-spray.toml",
        ),
        ("dcqcn", "workloads/scenarios/hgx16-a2a-dcqcn.toml"),
        (
            "ecmp-collision",
            "validation/flow-vs-packet-ecmp-collision.toml",
        ),
        ("incast", "validation/closed-form-incast.toml"),
        ("pxn", "validation/pxn-rail-local.toml"),
    ] {
        same_on_any_threads(tag, &root(file), &[]);
    }
}

/// What the shipped scenarios leave out: PXN with a bounded relay buffer, adaptive routing
/// and ECN marking draws over several switches, and a workload with compute tasks and
/// dependencies (an AFD step with the `ideal` library: each task waits only for tasks that
/// end in its own NVLink domain).
#[test]
fn pxn_adaptive_ecn_and_an_afd_step_are_identical_on_any_thread_count() {
    let a2a = temp_file(
        "threads",
        "pxn-adaptive.toml",
        r#"
name = "pxn-adaptive"
seed = 7
[fabric]
file = "hgx-h100"
nodes = 4
[fabric.nic]
congestion_control = "dcqcn"
[fabric.switch]
mode = "lossless"
buffer_kib = 1024
pfc_xoff_kib = 512
pfc_xon_kib = 256
ecn_kmin_kib = 20
ecn_kmax_kib = 80
ecn_pmax = 0.5
[fabric.routing]
policy = "adaptive"
pxn = true
pxn_fifo_kib = 64
[[traffic]]
pattern = "all-to-all"
bytes = 262144
"#,
    );
    let out = same_on_any_threads("pxn-adaptive", &a2a.to_string_lossy(), &[]);
    assert!(out.contains("PXN relay"), "{out}");
    let afd = temp_file(
        "threads",
        "afd-ideal.toml",
        r#"
name = "afd-ideal"
seed = 1
level = "packet"
[fabric]
file = "hgx-h100"
nodes = 4
[afd]
model = "deepseek-v3.2"
table = "h100-sxm"
attention_gpus = 16
ffn_gpus = 16
micro_batches = 3
batch_per_attention_gpu = 64
context = 4096
layers = 8
comm = "ideal"
"#,
    );
    let out = same_on_any_threads("afd-ideal", &afd.to_string_lossy(), &[]);
    assert!(out.contains("TPOT"), "{out}");
}

/// A workload that couples NVLink domains without delay, or go-back-N (whose sender reads
/// its receiver's progress directly), runs on one thread only: more is an error that says
/// why and what to do, not a different answer.
#[test]
fn a_workload_that_cannot_be_split_says_why() {
    for (file, extra, why) in [
        (
            "validation/closed-form-incast-lossy.toml",
            &[][..],
            "go-back-N",
        ),
        (
            "workloads/scenarios/afd-dsv32-4hgx.toml",
            &["--level", "packet"][..],
            "another NVLink domain",
        ),
    ] {
        let mut args = vec!["run", file, "--threads", "2"];
        args.extend_from_slice(extra);
        let path = root(file);
        args[1] = &path;
        let r = afdsim(&args);
        assert_eq!(r.status.code(), Some(2), "{file}");
        let e = stderr(&r);
        assert!(e.contains(why) && e.contains("--threads 1"), "{file}: {e}");
    }
    let r = afdsim(&["run", "--threads", "0"]);
    assert!(!r.status.success());
}

/// Everything a run reports but the queue's peak (a per-queue figure, left out of reports).
fn same_run(a: &afdsim::net::NetRun, b: &afdsim::net::NetRun) -> bool {
    a.messages == b.messages
        && a.computes == b.computes
        && a.links == b.links
        && (a.queue.scheduled, a.queue.processed) == (b.queue.scheduled, b.queue.processed)
        && (a.packets, a.packet_hops) == (b.packets, b.packet_hops)
        && (a.bytes_injected, a.bytes_delivered, a.bytes_dropped)
            == (b.bytes_injected, b.bytes_delivered, b.bytes_dropped)
        && (a.cnps, a.lossless_overflow_bytes, a.relay_peak_bytes)
            == (b.cnps, b.lossless_overflow_bytes, b.relay_peak_bytes)
        && a.recovery == b.recovery
        && a.end == b.end
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// Random HGX fabrics (2 to 5 servers on their rail-optimized leaf/spine), traffic,
    /// routing, ECN, congestion control and seeds: one, two and four threads give the same
    /// run. (A partition-dependent tie order fails it at its first case.)
    #[test]
    fn random_scenarios_are_identical_on_any_thread_count(
        fabric in 0usize..3,
        nodes in 2u32..6,
        pattern in 0usize..3,
        kib in 1u64..64,
        policy in 0usize..4,
        ecn in proptest::bool::ANY,
        dcqcn in proptest::bool::ANY,
        seed in 1u64..1000,
    ) {
        let file = ["hgx-h100", "hgx-h200", "hgx-h800"][fabric];
        let policy = ["ecmp", "spray", "spray-rr", "adaptive"][policy];
        let traffic = match pattern {
            0 => format!("pattern = \"all-to-all\"\nbytes = {}\nstart_jitter_ns = 500", kib * 1024),
            1 => format!("pattern = \"permutation\"\nbytes = {}", kib * 4096),
            _ => format!(
                "pattern = \"incast\"\nsenders = [1, 2, 3, 9, 10, 11]\nreceiver = 8\nbytes = {}",
                kib * 4096
            ),
        };
        let ecn = if ecn { "ecn_kmin_kib = 10\necn_kmax_kib = 40\necn_pmax = 0.5\n" } else { "" };
        let cc = if dcqcn { "[fabric.nic]\ncongestion_control = \"dcqcn\"\n" } else { "" };
        let text = format!(
            "name = \"random\"\nseed = {seed}\n[fabric]\nfile = \"{file}\"\nnodes = {nodes}\n{cc}\
             [fabric.switch]\nmode = \"lossless\"\nbuffer_kib = 1024\npfc_xoff_kib = 64\n\
             pfc_xon_kib = 32\n{ecn}[fabric.routing]\npolicy = \"{policy}\"\n\
             [[traffic]]\n{traffic}\n"
        );
        let s = afdsim::config::Scenario::parse(&text, "<random>", None).unwrap();
        let w = s.traffic_workload();
        let run = |n| {
            afdsim::packet::simulate_threads(s.fabric(), s.net(), &w, n, &mut |_| {}).unwrap()
        };
        let one = run(1);
        for n in [2, 4] {
            proptest::prop_assert!(same_run(&one, &run(n)), "{n} threads:\n{text}");
        }
    }
}
