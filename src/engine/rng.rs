//! Seeded random numbers. Never the thread RNG: a run is a function of its input and seed.
//!
//! ChaCha8 is used because its output is specified (portable across platforms and crate
//! versions of the same major) and it supports independent streams, so each component can
//! draw from its own stream and adding a draw in one place does not shift every other.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The registry of random streams: every stream number a component draws from, one per
/// purpose, so that a draw added to one purpose never shifts the others. A new purpose takes
/// a number not listed here. (Stream 0 is [`SimRng::new`]'s: the AFD routers' expert order
/// and load history, seeded from the routing's own seed rather than the run's.)
pub mod stream {
    /// Traffic tables of a scenario: start jitter and the random permutations.
    pub const TRAFFIC: u64 = 1;
    /// AFD decode steps of a run: the experts each token is routed to, all steps in turn.
    pub const AFD: u64 = 2;
    /// Serving corners: the expert routing of each simulated decode or prefill iteration.
    pub const SERVING: u64 = 3;
    /// Packet level: which packets above the ECN threshold are marked; one stream per
    /// region of the fabric, `ECN << 32 | region` (`packet::parallel::ecn_stream`).
    pub const ECN: u64 = 101;
    /// AFD context lengths: one per sequence, drawn from the context distribution ("CTXT").
    pub const CONTEXT: u64 = 0x4354_5854_0001;
    /// Serving traffic: the gaps between request arrivals ("TRAF" 1).
    pub const ARRIVALS: u64 = 0x5452_4146_0001;
    /// Serving traffic: each request's input (prompt) length ("TRAF" 2).
    pub const INPUT: u64 = 0x5452_4146_0002;
    /// Serving traffic: each request's output length ("TRAF" 3).
    pub const OUTPUT: u64 = 0x5452_4146_0003;
}

/// A deterministic random source derived from the run's seed and a stream number.
#[derive(Clone, Debug)]
pub struct SimRng(ChaCha8Rng);

impl SimRng {
    /// Stream 0 of `seed`.
    pub fn new(seed: u64) -> SimRng {
        SimRng::stream(seed, 0)
    }

    /// An independent stream of `seed`: e.g. one for routing hashes, one for traffic.
    pub fn stream(seed: u64, stream: u64) -> SimRng {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(stream);
        SimRng(r)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, n)`. `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SimRng::below(0)");
        self.0.random_range(0..n)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit_f64(&mut self) -> f64 {
        self.0.random::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = SimRng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..8)
            .map({
                let mut r = SimRng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..8)
            .map({
                let mut r = SimRng::stream(7, 1);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
