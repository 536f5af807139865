//! Context lengths per sequence: one fixed length for every sequence, or a length drawn per
//! sequence from a distribution, and how a micro-batch of sequences with different contexts is
//! timed with the compute tables (which take one context per query).
//!
//! Invariant: draws come only from the stream [`crate::engine::stream::CONTEXT`] of the
//! run's seed, so the same seed gives the same contexts and no other draw shifts them; every
//! drawn length is in `[min, max]`.

use crate::engine::SimRng;

/// A distribution of cached tokens per sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ContextDist {
    /// Uniform over the integers `min ..= max`.
    Uniform { min: u64, max: u64 },
    /// Log-normal with arithmetic mean `mean` and `sigma` the standard deviation of ln(ctx),
    /// rounded to an integer and clamped to `min ..= max` (the clamp moves the mean when it
    /// cuts much of the tail).
    LogNormal {
        mean: f64,
        sigma: f64,
        min: u64,
        max: u64,
    },
}

impl ContextDist {
    /// One context per sequence for `sequences` sequences.
    pub fn draw(&self, sequences: usize, rng: &mut SimRng) -> Vec<u64> {
        (0..sequences).map(|_| self.one(rng)).collect()
    }

    fn one(&self, rng: &mut SimRng) -> u64 {
        match *self {
            ContextDist::Uniform { min, max } => min + rng.below(max - min + 1),
            ContextDist::LogNormal {
                mean,
                sigma,
                min,
                max,
            } => {
                // E[e^X] = e^(mu + sigma^2 / 2) for X ~ N(mu, sigma^2).
                let mu = mean.ln() - sigma * sigma / 2.0;
                let x = (mu + sigma * standard_normal(rng)).exp().round();
                (x.clamp(min as f64, max as f64)) as u64
            }
        }
    }
}

/// A standard normal draw (Box-Muller, two uniforms per draw).
fn standard_normal(rng: &mut SimRng) -> f64 {
    let u1 = 1.0 - rng.unit_f64(); // (0, 1]: ln is finite
    let u2 = rng.unit_f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The contexts of one micro-batch on one attention GPU, reduced to what the attention side's
/// timing needs (see `Deployment::spread_attention_us`): the mean attended context (for the core
/// attention, whose memory-bound time is linear in the KV read) and, for DSA, the sequences
/// whose context exceeds the top-k and their mean context (the indexer scores every cached
/// token of those sequences and none of the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContextShape {
    /// Mean over the sequences of min(ctx, cap), rounded to the nearest token (cap: DSA's
    /// top-k, a sliding window, or none).
    pub attended: u64,
    /// Sequences with ctx > the DSA top-k (0 for other attention kinds).
    pub long: u64,
    /// Their mean context, rounded to the nearest token (0 when `long` is 0).
    pub long_ctx: u64,
}

impl ContextShape {
    /// `attended(c)`: the tokens one query reads for a context c; `topk`: DSA's top-k, if
    /// the model is DSA.
    pub fn of(contexts: &[u64], attended: impl Fn(u64) -> u64, topk: Option<u64>) -> Self {
        let mean = |xs: &mut dyn Iterator<Item = u64>| {
            let (n, s) = xs.fold((0u64, 0u64), |(n, s), x| (n + 1, s + x));
            if n == 0 { (0, 0) } else { (n, (s + n / 2) / n) }
        };
        let (_, att) = mean(&mut contexts.iter().map(|&c| attended(c)));
        let (long, long_ctx) = match topk {
            Some(k) => mean(&mut contexts.iter().copied().filter(|&c| c > k)),
            None => (0, 0),
        };
        ContextShape {
            attended: att.max(1),
            long,
            long_ctx,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stream;

    #[test]
    fn draws_are_seeded_and_in_range() {
        let d = ContextDist::LogNormal {
            mean: 4096.0,
            sigma: 1.0,
            min: 16,
            max: 65536,
        };
        let a = d.draw(20_000, &mut SimRng::stream(1, stream::CONTEXT));
        let b = d.draw(20_000, &mut SimRng::stream(1, stream::CONTEXT));
        assert_eq!(a, b);
        assert!(a.iter().all(|&c| (16..=65536).contains(&c)));
        let mean = a.iter().sum::<u64>() as f64 / a.len() as f64;
        // The clamp at 16x the mean cuts little of a sigma = 1 tail.
        assert!((mean / 4096.0 - 1.0).abs() < 0.05, "{mean}");
        let u = ContextDist::Uniform { min: 1, max: 8191 }
            .draw(20_000, &mut SimRng::stream(2, stream::CONTEXT));
        assert!(u.iter().all(|&c| (1..=8191).contains(&c)));
        let mean = u.iter().sum::<u64>() as f64 / u.len() as f64;
        assert!((mean / 4096.0 - 1.0).abs() < 0.03, "{mean}");
    }

    #[test]
    fn a_shape_caps_the_attended_part_and_counts_the_long_sequences() {
        let s = ContextShape::of(&[1000, 3000, 5000], |c| c.min(2048), Some(2048));
        assert_eq!(s.attended, (1000 + 2048 + 2048 + 1) / 3);
        assert_eq!((s.long, s.long_ctx), (2, 4000));
        let s = ContextShape::of(&[1000, 3000], |c| c, None);
        assert_eq!((s.attended, s.long, s.long_ctx), (2000, 0, 0));
    }
}
