//! The command line as a user meets it: exit codes, stdout shape, determinism, bad input.

mod common;

use common::{afdsim, stderr, stdout, temp_file};
use rstest::rstest;
use std::path::PathBuf;

const JITTERED: &str = r#"
name = "jittered"
[fabric]
nodes = 6
gpus_per_node = 1
[fabric.nic]
rate_gbps = 200
latency_ns = 500
[fabric.scale_out]
topology = "single-switch"
[[traffic]]
pattern = "all-to-all"
bytes = 65536
start_jitter_ns = 20000
"#;

#[test]
fn run_json_is_one_object_with_the_documented_keys() {
    let o = afdsim(&["run", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("stdout is one JSON value");
    let obj = v.as_object().expect("an object");
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys, ["level", "metrics", "scenario", "seed"]);
    // The default is an AFD decode step at flow level: its metrics, with the network's under
    // `network`.
    assert_eq!(v["scenario"], "afd-dsv32-3hgx");
    assert_eq!(v["level"], "flow");
    assert_eq!(v["seed"], 1);
    assert!(v["metrics"]["tpot_ms"].as_f64().unwrap() > 0.0);
    assert!(v["metrics"]["network"]["makespan_us"].as_f64().unwrap() > 0.0);
}

#[test]
fn same_seed_gives_byte_identical_json() {
    let a = afdsim(&["run", "--json", "--seed", "7"]);
    let b = afdsim(&["run", "--json", "--seed", "7"]);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);

    let f = temp_file("cli", "jittered.toml", JITTERED);
    let f = f.to_str().unwrap();
    let a = afdsim(&["run", f, "--json", "--seed", "1"]);
    let b = afdsim(&["run", f, "--json", "--seed", "1"]);
    let c = afdsim(&["run", f, "--json", "--seed", "2"]);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout);
    // The seed draws the start jitter, so another seed gives another run.
    assert_ne!(a.stdout, c.stdout);
}

#[test]
fn human_output_names_scenario_and_seed() {
    let o = afdsim(&["run", "--seed", "42"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(s.contains("afd-dsv32-3hgx") && s.contains("seed 42"), "{s}");
}

#[test]
fn out_dir_holds_metrics_and_tables() {
    let dir = std::env::temp_dir().join(format!("afdsim-out-{}", std::process::id()));
    let star = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workloads/scenarios/star-8gpu-all-to-all.toml"
    );
    let o = afdsim(&["run", star, "--json", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = std::fs::read_to_string(dir.join("metrics.json")).unwrap();
    assert_eq!(metrics, stdout(&o));
    let messages = std::fs::read_to_string(dir.join("messages.csv")).unwrap();
    assert_eq!(messages.lines().count(), 1 + 56);
    let links = std::fs::read_to_string(dir.join("links.csv")).unwrap();
    assert_eq!(links.lines().count(), 1 + 16);
}

/// Bad input: exit status 2, one line on stderr naming the file and key, never a panic.
/// `text`: the scenario written as `name` (`None`: a path that does not exist).
#[rstest]
#[case::missing("missing", None, &["cannot read"])]
#[case::malformed(
    "malformed.toml",
    Some("name = \"x\"\n[fabric".to_string()),
    &["line 2", "unclosed table"]
)]
#[case::unknown(
    "unknown.toml",
    Some(JITTERED.replace("nodes = 6", "nodes = 6\nspeed = 3")),
    &["fabric", "unknown field `speed`"]
)]
#[case::zero_rate(
    "zero-rate.toml",
    Some(JITTERED.replace("rate_gbps = 200", "rate_gbps = 0")),
    &["fabric.nic.rate_gbps", ">= 0.001"]
)]
#[case::negative_rate(
    "negative-rate.toml",
    Some(JITTERED.replace("rate_gbps = 200", "rate_gbps = -200")),
    &["fabric.nic.rate_gbps", ">= 0.001"]
)]
#[case::negative_bytes(
    "negative-bytes.toml",
    Some(JITTERED.replace("bytes = 65536", "bytes = -1")),
    &["traffic[0].bytes"]
)]
fn bad_input_is_a_clear_one_line_error(
    #[case] name: &str,
    #[case] text: Option<String>,
    #[case] needles: &[&str],
) {
    let path = match &text {
        Some(t) => temp_file("cli", name, t),
        None => PathBuf::from("/nonexistent/afdsim/missing.toml"),
    };
    let o = afdsim(&["run", path.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{name}: {err}");
    assert!(!err.contains("panicked"), "{name}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
    assert!(err.contains(path.to_str().unwrap()), "{name}: {err}");
    for n in needles {
        assert!(err.contains(n), "{name}: {err} lacks {n}");
    }
    assert!(o.stdout.is_empty(), "{name}: stdout not empty");
}

#[test]
fn usage_errors_exit_2() {
    let o = afdsim(&["run", "--seed", "minus-one"]);
    assert_eq!(o.status.code(), Some(2));
    let o = afdsim(&["validate", "--filter", "no-such-case-anywhere"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--filter"));
}

#[test]
fn validate_json_rows_have_the_documented_keys_and_pass() {
    let o = afdsim(&["validate", "--json", "--filter", "closed-form"]);
    assert!(o.status.success(), "{}", stdout(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(!rows.is_empty());
    for r in &rows {
        for k in [
            "case",
            "metric",
            "expected",
            "simulated",
            "error_pct",
            "tolerance_pct",
            "pass",
            "source",
            "known_gap",
        ] {
            assert!(r.get(k).is_some(), "row lacks {k}: {r}");
        }
        assert_eq!(r["pass"], true, "{r}");
    }
}

#[test]
fn validate_table_ends_with_the_count_line() {
    let o = afdsim(&["validate", "--filter", "closed-form"]);
    assert!(o.status.success());
    let s = stdout(&o);
    let last = s.trim_end().lines().last().unwrap();
    assert!(last.ends_with("passed, 0 failed"), "{last}");
}

#[test]
fn fabric_show_reports_counts_and_bisection() {
    let o = afdsim(&["fabric", "show", "hgx-h100", "--nodes", "16", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["gpus"], 128);
    assert_eq!(v["nics"], 128);
    assert_eq!(v["nvswitch_chips"], 64);
    // 8 rails x 1 leaf + 16 spines (16 downlinks and 16 uplinks per leaf).
    assert_eq!(v["switches"], 24);
    assert_eq!(v["nvlink_per_gpu_gbytes_per_s"], 450.0);
    // Non-blocking: half of 128 x 50 GB/s.
    assert_eq!(v["scale_out_bisection_gbytes_per_s"], 3200.0);
    let human = afdsim(&["fabric", "show", "gb200-nvl72"]);
    assert!(stdout(&human).contains("72 GPUs"), "{}", stdout(&human));
}

#[test]
fn fabric_show_unknown_fabric_is_a_clear_error() {
    let o = afdsim(&["fabric", "show", "no-such-fabric"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("fabric.file") && err.contains("hgx-h100"),
        "{err}"
    );
}
