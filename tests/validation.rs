//! Every validation case passes, except the documented known gaps, which must still fail
//! (so that fixing one forces its entry out of `validation::KNOWN_GAPS`).

use afdsim::validation::{self, KNOWN_GAPS};

#[test]
fn every_validation_case_passes_except_known_gaps() {
    let checks = validation::run(None).expect("validation inputs are valid");
    assert!(!checks.is_empty());
    let unexpected: Vec<String> = checks
        .iter()
        .filter(|c| !c.pass() && validation::known_gap(c).is_none())
        .map(|c| {
            format!(
                "{} {}: expected {} simulated {} ({:?})",
                c.case, c.metric, c.expected, c.simulated, c.compare
            )
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "failing cases:\n{}",
        unexpected.join("\n")
    );
    for (case, metric, _) in KNOWN_GAPS {
        let c = checks
            .iter()
            .find(|c| c.case == *case && c.metric == *metric)
            .unwrap_or_else(|| panic!("known gap {case} / {metric} names no check"));
        assert!(
            !c.pass(),
            "known gap {case} / {metric} now passes: remove it from KNOWN_GAPS"
        );
    }
}
