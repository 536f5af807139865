//! The project's profiler (tools/profiler/profile.py) against the Rust side.
//!
//! The interpreter is `$AFDSIM_PYTHON` (default `python3`). The tests need it (the shape
//! listing Python 3.11+, the smoke runs PyTorch), so they are ignored unless asked for and
//! `cargo test` counts them as ignored rather than passing them without Python:
//! `AFDSIM_PYTHON=target/profiler-venv/bin/python cargo test --release --test compute_profiler
//! -- --ignored`. Asked for, a test fails when its interpreter or PyTorch is missing. `.ci/run`
//! installs PyTorch into that virtual environment and runs them so.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

mod common;
use common::{afdsim, h100, stderr, stdout};

use afdsim::compute::layer_check::{self, LayerSide};
use afdsim::compute::{AttentionKernel, ComputeTable, Dtype, Method, Model, Op, Work};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/profiler/profile.py")
}

fn python() -> String {
    std::env::var("AFDSIM_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn python_ok(code: &str) -> bool {
    Command::new(python())
        .args(["-c", code])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The test was asked for (`--ignored`) but cannot run: fail, saying why.
fn cannot_run(what: &str, why: &str) -> ! {
    panic!(
        "{what} cannot run with `{}` ($AFDSIM_PYTHON, default python3): {why}",
        python()
    )
}

/// Runs the profiler with `args` into a fresh folder named after `what`; asserts it succeeded.
fn profile(args: &[&str], what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("afdsim-profiler-{what}-{}", std::process::id()));
    let out = Command::new(python())
        .arg(script())
        .args(args)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// (op, sizes) of every table operator the seven models' layers ask for.
fn layer_shapes() -> BTreeSet<(String, String)> {
    let t = h100();
    let mut out = BTreeSet::new();
    for name in Model::embedded_names() {
        let m = Model::embedded(name).unwrap();
        let mut ops = m
            .attention_side(t, 8, 8192, AttentionKernel::Measured)
            .unwrap()
            .ops;
        ops.extend(
            m.attention_side_at(t, 0, 8, 8192, AttentionKernel::Measured)
                .unwrap()
                .ops,
        );
        ops.extend(m.ffn_side(t, 4, 4).unwrap().ops);
        for o in ops {
            let Work::Table(q) = o.work else { continue };
            let key = match q.op {
                Op::Gemm | Op::GroupedGemm => format!("{},{}", q.n, q.k),
                Op::MlaDecode => format!("{},{},{}", q.heads, q.head_dim, q.head_dim * 8 / 9),
                Op::GqaDecode => format!("{},{},{}", q.heads, q.kv_heads, q.head_dim),
                Op::DsaIndexer => format!("{},{},2048", q.heads, q.head_dim),
                _ => continue,
            };
            out.insert((q.op.name().to_string(), key));
        }
    }
    out
}

#[test]
#[ignore = "needs Python 3.11+ (AFDSIM_PYTHON): cargo test --release --test compute_profiler -- --ignored"]
fn profiler_measures_every_shape_the_model_layers_ask_for() {
    if !python_ok("import tomllib") {
        cannot_run(
            "profiler shape listing",
            "it is not Python 3.11+ (`import tomllib` failed)",
        );
    }
    let out = Command::new(python())
        .arg(script())
        .args(["--out", std::env::temp_dir().to_str().unwrap(), "--list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: BTreeSet<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect();
    let wanted = layer_shapes();
    assert!(wanted.len() > 30, "{wanted:?}");
    let missing: Vec<_> = wanted.difference(&listed).collect();
    assert!(missing.is_empty(), "profile.py --list lacks {missing:?}");
}

#[test]
#[ignore = "needs PyTorch (AFDSIM_PYTHON): cargo test --release --test compute_profiler -- --ignored"]
fn profiler_smoke_run_writes_a_table_afdsim_loads() {
    if !python_ok("import torch") {
        cannot_run(
            "profiler smoke run",
            "PyTorch is not installed (`import torch` failed)",
        );
    }
    let dir = profile(&["--smoke", "--cpu"], "table");
    let t = ComputeTable::load(&dir.join("compute.csv")).unwrap();
    let ops: BTreeSet<&str> = t.rows().iter().map(|r| r.query.op.name()).collect();
    for op in Op::ALL {
        assert!(
            ops.contains(op.name()),
            "smoke table lacks {}: {ops:?}",
            op.name()
        );
    }
    for r in t.rows() {
        // A smoke grid may time one point twice (two Zipf draws alike): the loader averages.
        let same: Vec<f64> = t
            .rows()
            .iter()
            .filter(|o| o.query == r.query)
            .map(|o| o.time_us)
            .collect();
        let mean = same.iter().sum::<f64>() / same.len() as f64;
        let p = t.predict(&r.query).unwrap();
        assert_eq!(p.method, Method::Exact, "{:?}", r.query);
        assert!((p.time_us - mean).abs() <= 1e-9 * mean, "{:?}", r.query);
    }
    assert!(dir.join("env.json").exists());
}

#[test]
#[ignore = "needs PyTorch (AFDSIM_PYTHON): cargo test --release --test compute_profiler -- --ignored"]
fn profiler_smoke_layers_are_checked_against_assembled_layers() {
    if !python_ok("import torch") {
        cannot_run(
            "profiler whole-layer smoke run",
            "PyTorch is not installed (`import torch` failed)",
        );
    }
    let dir = profile(
        &["--smoke", "--cpu", "--layers", "--layer-kernels"],
        "layers",
    );
    let file = dir.join("layers.csv");
    let rows = layer_check::load_measurements(&file).unwrap();
    // --layer-kernels: every layer row has its kernels (on the CPU, ops with their own times).
    let mut kernels = csv::Reader::from_path(dir.join("layers-kernels.csv")).unwrap();
    let mut points = BTreeSet::new();
    for rec in kernels.records() {
        let rec = rec.unwrap();
        let calls: u64 = rec[9].parse().unwrap();
        let us: f64 = rec[10].parse().unwrap();
        assert!(calls >= 1 && us >= 0.0 && !rec[8].is_empty(), "{rec:?}");
        points.insert((
            rec[1].to_string(),
            rec[2].to_string(),
            rec[3].to_string(),
            rec[4].to_string(),
            rec[5].to_string(),
            rec[6].to_string(),
            rec[7].to_string(),
        ));
    }
    assert_eq!(
        points.len(),
        6,
        "one set of kernels per layer row: {points:?}"
    );
    // Two models (GQA; MLA with the DSA indexer past top-k) x (two attention points, one FFN).
    assert_eq!(rows.len(), 6, "{rows:?}");
    let models: BTreeSet<&str> = rows.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(
        models,
        BTreeSet::from(["deepseek-v3.2", "qwen3-30b-a3b"]),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| matches!(r.side, LayerSide::Attention { ctx, .. } if ctx > 2048)),
        "no point past DSA's top-k: {rows:?}"
    );
    for r in &rows {
        // The CPU has no FP8 GEMMs: the row says what ran, and the check assembles that.
        assert_eq!(r.gemm_dtype, Dtype::Bf16, "{r:?}");
        assert_eq!(r.mode, "eager");
    }
    let cmp = layer_check::compare(file.to_str().unwrap(), &rows, h100()).unwrap();
    for c in &cmp {
        assert!(c.assembled_us.is_finite() && c.assembled_us > c.table_us && c.table_us > 0.0);
    }
    // The CLI reads the same file and prints one line per row plus the summary.
    let out = afdsim(&[
        "compute",
        "layer-check",
        "--table",
        "h100-sxm",
        "--layers",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines = text
        .lines()
        .filter(|l| l.starts_with("qwen3-30b-a3b ") || l.starts_with("deepseek-v3.2 "))
        .count();
    assert_eq!(lines, 6, "{text}");
    assert!(text.contains("glue eager"), "{text}");
}
