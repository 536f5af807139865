//! Exact order statistics of a set of integer values (durations in picoseconds, as the
//! simulators record them).
//!
//! One convention: a percentile `p` is in [0, 100], nearest-rank: the smallest value with at
//! least `p` % of the values at or below it. Values stay in the caller's unit; the report's
//! and serving's summaries convert to µs or ms where they build their fields.
//!
//! All exact: every run holds its per-message and per-request results in memory anyway, and
//! sorting a million values takes milliseconds. (hdrhistogram 7.6.0 was tried first; its
//! `value_at_quantile(0.5)` of 1, 2, 3 us did not return 2 us.)

/// The smallest value of `sorted` (ascending, not empty) with at least `p` % of the values at
/// or below it, `p` in [0, 100]: rank ⌈p / 100 · n⌉, at least 1.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A non-empty set of values, sorted ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sorted(Vec<u64>);

impl Sorted {
    /// The values sorted; `None` for an empty set.
    pub fn new(values: impl IntoIterator<Item = u64>) -> Option<Sorted> {
        let mut v: Vec<u64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        Some(Sorted(v))
    }

    pub fn min(&self) -> u64 {
        self.0[0]
    }

    pub fn max(&self) -> u64 {
        self.0[self.0.len() - 1]
    }

    /// The mean, summed exactly (u128) and divided once.
    pub fn mean(&self) -> f64 {
        let sum: u128 = self.0.iter().map(|&x| x as u128).sum();
        sum as f64 / self.0.len() as f64
    }

    /// [`percentile`] of these values, `p` in [0, 100].
    pub fn percentile(&self, p: f64) -> u64 {
        percentile(&self.0, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[1, 2, 3], 50.0), 2);
        // A fraction written as p / 100 is the same double: 99 / 100 == 0.99.
        assert_eq!(99.0 / 100.0, 0.99);
        let s = Sorted::new([3, 1, 2]).unwrap();
        assert_eq!(
            (s.min(), s.max(), s.mean(), s.percentile(90.0)),
            (1, 3, 2.0, 3)
        );
        assert_eq!(Sorted::new([]), None);
    }
}
