//! Validation: every model compared with closed forms and published measurements.
//!
//! Invariant: a case computes its expected value independently of the model it checks (a
//! closed form written out, or a published figure with its source), never by calling the
//! model twice. Case parameters that a user may want to read or edit live in `validation/`
//! at the top of the repository and are embedded in the binary.

mod check;

pub use check::{Check, CheckRow, Compare};

use crate::error::InputError;

/// A named validation case.
pub struct Case {
    pub name: &'static str,
    pub run: fn() -> Result<Vec<Check>, InputError>,
}

/// Every case, in the order the table prints them.
pub fn cases() -> Vec<Case> {
    crate::compute::validation::cases()
}

/// Runs the cases whose name contains `filter` (all when `None`).
pub fn run(filter: Option<&str>) -> Result<Vec<Check>, InputError> {
    let mut checks = Vec::new();
    for case in cases() {
        if filter.is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        checks.extend((case.run)()?);
    }
    Ok(checks)
}
