//! Token routing: which `top_k` distinct experts each token of a MoE layer picks.
//!
//! Invariant: every token gets exactly `top_k` distinct experts, and all randomness comes
//! from the `SimRng` passed in (the Zipf permutation from its own seed), so the same seed
//! gives the same picks. A histogram routing reproduces its per-expert pair counts exactly
//! in every MoE layer (its own counts per layer, or one histogram for all).

use crate::engine::SimRng;

/// How tokens pick their experts.
#[derive(Clone, Debug, PartialEq)]
pub enum ExpertRouting {
    /// Every expert equally likely.
    Uniform,
    /// Expert popularity follows Zipf(`s`): the i-th hottest expert has weight 1 / i^s; which
    /// experts are hot is a seeded permutation (so hot experts land on random GPUs).
    Zipf { s: f64, seed: u64 },
    /// Exactly `pairs[i][e]` of the step's tokens pick expert `e` in the i-th MoE layer, or
    /// with one histogram, `pairs[0][e]` in every MoE layer (each sum is tokens x top_k and
    /// no count exceeds the tokens: checked by config). Which tokens pick which experts is a
    /// seeded shuffle per layer.
    Histogram { pairs: Vec<Vec<u64>> },
}

impl ExpertRouting {
    /// The expected token-expert pairs per expert (unnormalized), what EPLB balances: equal
    /// for uniform, the counts of a histogram, and for Zipf the counts of a load history: a
    /// sample of [`HISTORY_TOKENS`] tokens drawn from the same distribution on a stream of its
    /// own (as EPLB balances observed load; drawing `top_k` distinct experts makes the hottest
    /// experts less hot than their single-draw weight).
    pub fn expected_load(&self, experts: u64, top_k: u64) -> Vec<f64> {
        match self {
            ExpertRouting::Uniform => vec![1.0; experts as usize],
            ExpertRouting::Zipf { seed, .. } => {
                let mut router = Router::new(self, experts, top_k);
                let mut rng = SimRng::new(seed ^ 0xE91B);
                let (mut load, mut picked) = (vec![0.0; experts as usize], Vec::new());
                for _ in 0..HISTORY_TOKENS {
                    router.draw(&mut rng, &mut picked);
                    for &e in &picked {
                        load[e as usize] += 1.0;
                    }
                }
                load
            }
            // One placement serves every layer: the load summed over the layers.
            ExpertRouting::Histogram { pairs } => (0..experts as usize)
                .map(|e| pairs.iter().map(|l| l[e] as f64).sum())
                .collect(),
        }
    }
}

/// Tokens in the load history EPLB balances under Zipf routing.
pub const HISTORY_TOKENS: u64 = 1 << 16;

fn zipf_weight(rank: usize, s: f64) -> f64 {
    1.0 / ((rank + 1) as f64).powf(s)
}

/// Experts from hottest to coldest: a Fisher-Yates shuffle from `seed`.
fn hot_order(experts: u64, seed: u64) -> Vec<u64> {
    let mut hot: Vec<u64> = (0..experts).collect();
    let mut prng = SimRng::new(seed);
    for i in (1..hot.len()).rev() {
        hot.swap(i, prng.below(i as u64 + 1) as usize);
    }
    hot
}

/// Vose's alias table: draws an index with probability proportional to its weight in O(1).
struct Alias {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl Alias {
    fn new(weights: &[f64]) -> Alias {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        let (mut prob, mut alias) = (vec![1.0; n], vec![0u32; n]);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Alias { prob, alias }
    }

    fn draw(&self, rng: &mut SimRng) -> usize {
        let i = rng.below(self.prob.len() as u64) as usize;
        if rng.unit_f64() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

/// Draws the experts of one token after another, for one decode step.
pub(super) struct Router {
    experts: u64,
    top_k: usize,
    kind: Kind,
}

enum Kind {
    /// A partial Fisher-Yates shuffle over this scratch order.
    Uniform(Vec<u64>),
    /// Expert `hot[i]` is the i-th most popular; the alias table draws ranks.
    Zipf { hot: Vec<u64>, alias: Alias },
    /// The histogram's pairs; `layer` holds the current layer's picks, `top_k` per token,
    /// tokens in the step's order (see [`Router::start_layer`]).
    Histogram {
        pairs: Vec<Vec<u64>>,
        layer: Vec<u64>,
        order: Vec<u32>,
        next: usize,
    },
}

impl Router {
    pub(super) fn new(routing: &ExpertRouting, experts: u64, top_k: u64) -> Router {
        let kind = match routing {
            ExpertRouting::Uniform => Kind::Uniform((0..experts).collect()),
            ExpertRouting::Zipf { s, seed } => {
                let weights: Vec<f64> = (0..experts as usize).map(|i| zipf_weight(i, *s)).collect();
                Kind::Zipf {
                    hot: hot_order(experts, *seed),
                    alias: Alias::new(&weights),
                }
            }
            ExpertRouting::Histogram { pairs } => Kind::Histogram {
                pairs: pairs.clone(),
                layer: Vec::new(),
                order: Vec::new(),
                next: 0,
            },
        };
        Router {
            experts,
            top_k: top_k as usize,
            kind,
        }
    }

    /// Called at the start of every MoE layer (the `moe_layer`-th, from 0) with the step's
    /// token count. A histogram deals that layer's pairs to the tokens: pairs laid out expert by expert, pair i to token i mod T (no
    /// count exceeds T, so a token never gets an expert twice), then the tokens shuffled.
    /// The other routings draw per token and need nothing here.
    pub(super) fn start_layer(&mut self, moe_layer: usize, tokens: u64, rng: &mut SimRng) {
        let top_k = self.top_k;
        let Kind::Histogram {
            pairs,
            layer,
            order,
            next,
        } = &mut self.kind
        else {
            return;
        };
        let t = tokens as usize;
        layer.clear();
        layer.resize(t * top_k, 0);
        let mut i = 0;
        let pairs = &pairs[if pairs.len() == 1 { 0 } else { moe_layer }];
        for (e, &c) in pairs.iter().enumerate() {
            for _ in 0..c {
                layer[(i % t) * top_k + i / t] = e as u64;
                i += 1;
            }
        }
        debug_assert_eq!(i, t * top_k, "config checks the histogram's sum");
        order.clear();
        order.extend(0..t as u32);
        for j in (1..t).rev() {
            order.swap(j, rng.below(j as u64 + 1) as usize);
        }
        *next = 0;
    }

    /// The next token's experts into `picked` (cleared first).
    pub(super) fn draw(&mut self, rng: &mut SimRng, picked: &mut Vec<u64>) {
        picked.clear();
        match &mut self.kind {
            Kind::Uniform(order) => {
                for i in 0..self.top_k {
                    let j = i + rng.below(self.experts - i as u64) as usize;
                    order.swap(i, j);
                    picked.push(order[i]);
                }
            }
            // Distinct experts by popularity: redraw a repeat.
            Kind::Zipf { hot, alias } => {
                while picked.len() < self.top_k {
                    let e = hot[alias.draw(rng)];
                    if !picked.contains(&e) {
                        picked.push(e);
                    }
                }
            }
            Kind::Histogram {
                layer, order, next, ..
            } => {
                let t = order[*next] as usize;
                *next += 1;
                picked.extend_from_slice(&layer[t * self.top_k..(t + 1) * self.top_k]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The alias table draws each index in proportion to its weight.
    #[test]
    fn alias_draws_follow_the_weights() {
        let weights = [1.0, 2.0, 3.0, 4.0, 0.5];
        let a = Alias::new(&weights);
        let mut rng = SimRng::new(9);
        let mut counts = [0u32; 5];
        let n = 200_000;
        for _ in 0..n {
            counts[a.draw(&mut rng)] += 1;
        }
        let total: f64 = weights.iter().sum();
        for (i, &c) in counts.iter().enumerate() {
            let expected = weights[i] / total;
            let got = c as f64 / n as f64;
            assert!(
                (got - expected).abs() < 0.005,
                "index {i}: {got} vs {expected}"
            );
        }
    }

    /// A histogram's counts come back exactly, each token with top_k distinct experts.
    #[test]
    fn a_histogram_is_dealt_exactly_with_distinct_experts_per_token() {
        let pairs = vec![10, 0, 7, 10, 3, 2, 8];
        let (tokens, top_k) = (10u64, 4u64);
        assert_eq!(pairs.iter().sum::<u64>(), tokens * top_k);
        let mut r = Router::new(
            &ExpertRouting::Histogram {
                pairs: vec![pairs.clone()],
            },
            7,
            top_k,
        );
        let mut rng = SimRng::new(3);
        r.start_layer(0, tokens, &mut rng);
        let mut got = vec![0u64; 7];
        let mut picked = Vec::new();
        for _ in 0..tokens {
            r.draw(&mut rng, &mut picked);
            let mut p = picked.clone();
            p.sort_unstable();
            p.dedup();
            assert_eq!(p.len(), top_k as usize, "{picked:?}");
            for &e in &picked {
                got[e as usize] += 1;
            }
        }
        assert_eq!(got, pairs);
    }
}
