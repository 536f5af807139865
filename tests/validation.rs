//! Every validation case passes: the same table `afdsim validate` prints, as a test.

#[test]
fn every_validation_case_passes() {
    let checks = afdsim::validation::run(None).expect("validation inputs are valid");
    assert!(!checks.is_empty());
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.pass())
        .map(|c| {
            format!(
                "{} {}: expected {} simulated {} ({:?})",
                c.case, c.metric, c.expected, c.simulated, c.compare
            )
        })
        .collect();
    assert!(failed.is_empty(), "failing cases:\n{}", failed.join("\n"));
}
