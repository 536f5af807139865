//! Every validation case passes, except the documented known gaps, which must still fail (so
//! that fixing one forces its entry out of `validation::KNOWN_GAPS`): `afdsim validate` exits 0
//! exactly then, and prints the known gaps in their own section. Which results make it exit 1
//! is unit-tested on synthetic rows in `src/validation/mod.rs`.

mod common;
use common::{afdsim, stderr, stdout};

use afdsim::validation::KNOWN_GAPS;

const GAP_HEADING: &str = "Known gaps: documented disagreements (validation::KNOWN_GAPS)";

#[test]
fn validate_exits_0_with_every_known_gap_in_its_own_section() {
    let o = afdsim(&["validate"]);
    let s = stdout(&o);
    // On failure, name the regressions rather than print the whole table.
    let regressions: Vec<&str> = s
        .lines()
        .filter(|l| l.contains("  FAIL  ") || l.contains("GAP PASSES") || l.contains("PASSES NOW"))
        .collect();
    assert_eq!(
        o.status.code(),
        Some(0),
        "regressions:\n{}\n{}{}",
        regressions.join("\n"),
        s.lines().last().unwrap_or_default(),
        stderr(&o)
    );
    let (table, gaps) = s
        .split_once(GAP_HEADING)
        .unwrap_or_else(|| panic!("no known-gap section:\n{s}"));
    for (case, metric, why) in KNOWN_GAPS {
        assert!(
            gaps.contains(&format!("\n  {case} / {metric}: {why}\n")),
            "known gap {case} / {metric} is not in the known-gap section (does it name a check?)"
        );
        assert!(
            !table
                .lines()
                .any(|l| l.starts_with(&format!("{case} ")) && l.contains(&format!(" {metric} "))),
            "known gap {case} / {metric} is in the main table"
        );
    }
    let last = s.trim_end().lines().last().unwrap();
    let n = KNOWN_GAPS.len();
    assert!(
        last.ends_with(&format!(" passed, 0 failed, {n} known gaps")),
        "{last}"
    );
}

#[test]
fn validate_filter_on_a_known_gap_exits_0_and_says_it_is_one() {
    let (case, metric, why) = KNOWN_GAPS
        .iter()
        .find(|(case, ..)| *case == "nccl-torch-a2a-h100")
        .expect("nccl-torch-a2a-h100 is a known gap");
    let o = afdsim(&["validate", "--filter", case]);
    let s = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{s}{}", stderr(&o));
    assert!(s.starts_with(GAP_HEADING), "{s}");
    assert!(
        s.contains(&format!("\n  {case} / {metric}: {why}\n")),
        "{s}"
    );
    assert_eq!(
        s.trim_end().lines().last(),
        Some("0 passed, 0 failed, 1 known gap"),
        "{s}"
    );

    let o = afdsim(&["validate", "--json", "--filter", case]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "known_gap", "{}", rows[0]);
    assert_eq!(rows[0]["pass"], false, "{}", rows[0]);
    assert_eq!(rows[0]["known_gap"], *why, "{}", rows[0]);
}

#[test]
fn validate_json_marks_a_passing_check_pass() {
    let o = afdsim(&["validate", "--json", "--filter", "closed-form-single-flow"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r["status"], "pass", "{r}");
        assert_eq!(r["known_gap"], serde_json::Value::Null, "{r}");
    }
}
