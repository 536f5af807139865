//! One row of the validation table: a model's answer against an expected value.

use serde::Serialize;

/// How a simulated value is judged against the expected one.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// |simulated - expected| / |expected| <= tolerance_pct / 100.
    Within { tolerance_pct: f64 },
    /// simulated >= expected (a direction, e.g. "the packet level is slower").
    AtLeast,
    /// simulated <= expected.
    AtMost,
}

/// A comparison of one metric of one case. The source says where the expected value comes
/// from: a closed form (written out) or a published measurement (with its citation).
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub case: String,
    pub metric: String,
    pub expected: f64,
    pub simulated: f64,
    pub compare: Compare,
    pub source: String,
}

impl Check {
    pub fn within(
        case: &str,
        metric: &str,
        expected: f64,
        simulated: f64,
        tolerance_pct: f64,
        source: &str,
    ) -> Check {
        Check {
            case: case.to_string(),
            metric: metric.to_string(),
            expected,
            simulated,
            compare: Compare::Within { tolerance_pct },
            source: source.to_string(),
        }
    }

    pub fn at_least(case: &str, metric: &str, bound: f64, simulated: f64, source: &str) -> Check {
        Check {
            compare: Compare::AtLeast,
            ..Check::within(case, metric, bound, simulated, 0.0, source)
        }
    }

    pub fn at_most(case: &str, metric: &str, bound: f64, simulated: f64, source: &str) -> Check {
        Check {
            compare: Compare::AtMost,
            ..Check::within(case, metric, bound, simulated, 0.0, source)
        }
    }

    /// Relative error in percent for `Within` checks; `None` for bounds (where it means
    /// nothing) and where it is undefined (expected zero, simulated not) or not finite.
    pub fn error_pct(&self) -> Option<f64> {
        if !matches!(self.compare, Compare::Within { .. }) {
            return None;
        }
        if self.expected == self.simulated {
            return Some(0.0);
        }
        if self.expected == 0.0 {
            return None;
        }
        let e = (self.simulated - self.expected).abs() / self.expected.abs() * 100.0;
        e.is_finite().then_some(e)
    }

    pub fn tolerance_pct(&self) -> Option<f64> {
        match self.compare {
            Compare::Within { tolerance_pct } => Some(tolerance_pct),
            Compare::AtLeast | Compare::AtMost => None,
        }
    }

    pub fn pass(&self) -> bool {
        if !self.simulated.is_finite() {
            return false;
        }
        match self.compare {
            Compare::Within { tolerance_pct } => {
                self.error_pct().is_some_and(|e| e <= tolerance_pct)
            }
            Compare::AtLeast => self.simulated >= self.expected,
            Compare::AtMost => self.simulated <= self.expected,
        }
    }
}

/// What a check's result means for `afdsim validate`: whether it passed, and whether it is a
/// documented known gap (`validation::KNOWN_GAPS`). `Fail` and `KnownGapPasses` are
/// regressions, which make `validate` exit 1; a known gap that still fails does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Passes; not a known gap.
    Pass,
    /// Fails and is not a known gap: a regression.
    Fail,
    /// A known gap that still fails, as documented.
    KnownGap,
    /// A known gap that passes now: its entry must leave `KNOWN_GAPS` (a regression of the
    /// list, so that a fix cannot leave a stale reason behind).
    KnownGapPasses,
}

impl Status {
    pub fn new(pass: bool, known_gap: bool) -> Status {
        match (pass, known_gap) {
            (true, false) => Status::Pass,
            (false, false) => Status::Fail,
            (false, true) => Status::KnownGap,
            (true, true) => Status::KnownGapPasses,
        }
    }

    pub fn is_regression(self) -> bool {
        matches!(self, Status::Fail | Status::KnownGapPasses)
    }

    pub fn is_known_gap(self) -> bool {
        matches!(self, Status::KnownGap | Status::KnownGapPasses)
    }
}

/// The JSON row of `afdsim validate --json`.
#[derive(Serialize)]
pub struct CheckRow<'a> {
    pub case: &'a str,
    pub metric: &'a str,
    pub expected: f64,
    pub simulated: f64,
    pub error_pct: Option<f64>,
    pub tolerance_pct: Option<f64>,
    pub compare: &'static str,
    /// The comparison alone, known gap or not.
    pub pass: bool,
    /// `pass`, `fail`, `known_gap` or `known_gap_passes` (`Status`).
    pub status: Status,
    pub source: &'a str,
    /// Why this check is a documented known gap, or null.
    pub known_gap: Option<&'static str>,
}

impl<'a> From<&'a Check> for CheckRow<'a> {
    fn from(c: &'a Check) -> Self {
        CheckRow {
            case: &c.case,
            metric: &c.metric,
            expected: c.expected,
            simulated: c.simulated,
            error_pct: c.error_pct(),
            tolerance_pct: c.tolerance_pct(),
            compare: match c.compare {
                Compare::Within { .. } => "within",
                Compare::AtLeast => "at_least",
                Compare::AtMost => "at_most",
            },
            pass: c.pass(),
            status: super::status(c),
            source: &c.source,
            known_gap: super::known_gap(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_tolerance() {
        assert!(Check::within("c", "m", 100.0, 104.9, 5.0, "s").pass());
        assert!(!Check::within("c", "m", 100.0, 105.1, 5.0, "s").pass());
        assert!(Check::within("c", "m", 0.0, 0.0, 0.0, "s").pass());
        assert!(!Check::within("c", "m", 0.0, 1.0, 50.0, "s").pass());
        assert!(!Check::within("c", "m", 1.0, f64::NAN, 50.0, "s").pass());
    }

    #[test]
    fn bounds() {
        assert!(Check::at_least("c", "m", 1.0, 1.0, "s").pass());
        assert!(!Check::at_least("c", "m", 1.0, 0.9, "s").pass());
        assert!(Check::at_most("c", "m", 1.0, 0.5, "s").pass());
        assert!(!Check::at_most("c", "m", 1.0, 1.5, "s").pass());
    }
}
