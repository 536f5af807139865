//! `afdsim explore`: study files, candidates, the batch run (resume) and the report.

mod common;

use common::{afdsim, stderr, stdout, temp_file};

use afdsim::explore::report::{Best, CellResult, build, pareto};
use afdsim::explore::{Family, Study};

/// A study small enough for a test: 32 H200 GPUs, 150 requests per probe, 2 x 1 cells.
const TINY: &str = r#"
name = "tiny"
model = "deepseek-v3.2"
gpus = 32
requests = 150
start_rate = 4.0
probes = 4
tolerance = 0.3

[slo]
ttft_ms = [1000.0, 4000.0]
tpot_ms = [100.0]

[[workload]]
traffic = "chat"

[[hardware]]
name = "h200"
fabric = "hgx-h200"
nodes = 4
table = "h200-sxm"

[aggregated]
gpus = [32]

[pd_afd]
prefill_gpus = [8]
attention_gpus = [8]
ffn_gpus = [16, 32]
micro_batches = [2]
"#;

fn parse(text: &str) -> Result<Study, afdsim::error::InputError> {
    Study::parse(text, "study.toml", None)
}

/// Candidates are the families' combinations that fit the budget, each resolved; one
/// over the budget is left out, one that does not resolve is excluded with its reason.
#[test]
fn candidates_fit_the_budget_and_resolve() {
    let s = parse(TINY).unwrap();
    // 8 + 8 + 32 GPUs is over the budget: not a candidate.
    assert_eq!(s.candidates.len(), 2, "{:?}", s.candidates);
    assert_eq!(s.candidates[0].family, Family::Aggregated);
    assert_eq!(
        (
            s.candidates[1].prefill_gpus,
            s.candidates[1].attention_gpus,
            s.candidates[1].ffn_gpus
        ),
        (8, 8, 16)
    );
    assert!(s.excluded.is_empty());
    assert_eq!(s.cells().len(), 2);
    // On H100 tables 8 prefill GPUs hold 32 experts each: too many for its HBM.
    let h100 = TINY
        .replace("hgx-h200", "hgx-h100")
        .replace("h200-sxm", "h100-sxm");
    let s = parse(&h100).unwrap();
    assert_eq!(s.candidates.len(), 1);
    assert_eq!(s.excluded.len(), 1);
    assert!(s.excluded[0].1.contains("HBM"), "{}", s.excluded[0].1);
}

/// Bad study files name the key and what is allowed.
#[test]
fn study_errors_name_the_key() {
    let cases: [(&str, &str, &str); 6] = [
        ("gpus = 32\n", "gpus = 0\n", "gpus"),
        ("tpot_ms = [100.0]", "tpot_ms = []", "slo.tpot_ms"),
        (
            "ttft_ms = [1000.0, 4000.0]",
            "ttft_ms = [4000.0, 1000.0]",
            "slo.ttft_ms",
        ),
        ("gpus = [32]", "gpus = [64]", "aggregated.gpus"),
        ("[[workload]]", "[[workloads]]", "workloads"),
        (
            "micro_batches = [2]",
            "micro_batches = [0]",
            "pd_afd.micro_batches",
        ),
    ];
    for (from, to, key) in cases {
        let text = TINY.replacen(from, to, 1);
        assert_ne!(text, TINY, "{from}");
        let e = parse(&text)
            .err()
            .unwrap_or_else(|| panic!("{to} was accepted"));
        assert!(
            e.to_string().contains(key),
            "{to}: `{e}` does not name {key}"
        );
    }
    // No family at all.
    let none = TINY
        .replace("[aggregated]\ngpus = [32]\n", "")
        .replace("[pd_afd]", "[nothing]");
    assert!(parse(&none).is_err());
}

/// The whole command: rows for every candidate, the report (feasibility map, Pareto
/// fronts, cells.csv, a figure per hardware and workload); a second run skips the finished
/// candidates and writes the same report, byte for byte.
#[test]
fn explore_runs_resumes_and_reports() {
    let study = temp_file("explore", "tiny.toml", TINY);
    let out = study.with_file_name("tiny-out");
    let _ = std::fs::remove_dir_all(&out);
    let args = [
        "explore",
        study.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "2",
    ];
    let o = afdsim(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = stdout(&o);
    assert!(md.contains("## chat on h200"), "{md}");
    assert!(md.contains("| TTFT \\ TPOT | 100 ms |"), "{md}");
    let report = out.join("report");
    let csv = std::fs::read_to_string(report.join("cells.csv")).unwrap();
    // A header and 2 candidates x 1 workload x 2 cells.
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.lines().skip(1).any(|l| l.contains(",true,")), "{csv}");
    let svg = std::fs::read_to_string(report.join("pareto-h200-chat.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    let again = afdsim(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("2 already finished, 0 to run"),
        "{}",
        stderr(&again)
    );
    assert_eq!(stdout(&again), md);
    assert_eq!(
        std::fs::read_to_string(report.join("cells.csv")).unwrap(),
        csv
    );
    let _ = std::fs::remove_dir_all(&out);
}

fn cell(family: Family, deployment: &str, ttft: f64, tok_gpu: Option<f64>) -> CellResult {
    CellResult {
        candidate: 0,
        hardware: "h200".into(),
        family,
        deployment: deployment.into(),
        workload: "chat".into(),
        ttft_limit_ms: ttft,
        tpot_limit_ms: 50.0,
        best: tok_gpu.map(|t| Best {
            req_per_s: 1.0,
            tokens_per_s_per_gpu: t,
            tokens_per_s_per_user: 25.0,
            ttft_ms: 100.0,
            tpot_ms: 40.0,
        }),
    }
}

/// The feasibility map names each cell's winning family and its lead, and marks the cells
/// where only AFD meets the limits.
#[test]
fn the_map_marks_winners_and_afd_only_cells() {
    let text = TINY
        .replace("ttft_ms = [1000.0, 4000.0]", "ttft_ms = [1000.0, 2000.0]")
        .replace("tpot_ms = [100.0]", "tpot_ms = [50.0]");
    let study = parse(&text).unwrap();
    let cells = vec![
        cell(Family::Aggregated, "aggregated 32 x2", 1000.0, None),
        cell(Family::PdAfd, "pd-afd 8P + 8A:16F x2", 1000.0, Some(120.0)),
        cell(Family::Aggregated, "aggregated 32 x2", 2000.0, Some(100.0)),
        cell(Family::PdAfd, "pd-afd 8P + 8A:16F x2", 2000.0, Some(150.0)),
    ];
    let r = build(&study, cells).unwrap();
    let row = |t: &str| {
        r.markdown
            .lines()
            .find(|l| l.starts_with(&format!("| {t} ms |")))
            .unwrap()
            .to_string()
    };
    assert!(
        row("1000").contains("**pd-afd** 120 tok/s/GPU"),
        "{}",
        row("1000")
    );
    assert!(row("1000").contains("AFD only"), "{}", row("1000"));
    assert!(
        row("2000").contains("+50 % over aggregated"),
        "{}",
        row("2000")
    );
    assert!(!row("2000").contains("AFD only"));
    assert!(
        r.markdown
            .contains("| chat | h200 | pd-afd 8P + 8A:16F x2 | 2 of 2 |"),
        "{}",
        r.markdown
    );
}

/// The front keeps the points no other beats on both axes (higher is better).
#[test]
fn pareto_front_keeps_the_undominated() {
    let pts = [
        (10.0, 100.0, 0),
        (20.0, 50.0, 1),
        (15.0, 40.0, 2),
        (5.0, 120.0, 3),
        (20.0, 45.0, 4),
    ];
    let front: Vec<usize> = pareto(&pts).iter().map(|p| p.2).collect();
    assert_eq!(front, vec![1, 0, 3]);
}
