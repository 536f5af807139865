//! Iteration times for the serving simulation, from fabric simulations of whole iterations.
//!
//! A serving run asks for thousands of iteration times; each distinct one would be a full
//! decode-step simulation (every layer, micro-batch, dispatch and combine through the
//! fabric). So iterations are simulated only at the corners of a grid and interpolated:
//! - sequences per GPU and prompt tokens per GPU: 0 (where allowed), then powers of two up
//!   to the pool's limit, which is itself a corner (GEMM time is close to linear between
//!   powers of two, `docs/compute.md`);
//! - GPUs of the pool with work: 1, then powers of two up to the pool (expert work and
//!   traffic grow with the tokens of all of them, attention only with the busiest's);
//! - context: powers of two, prefix: powers of four (decode attention reads the KV cache
//!   linearly in the context; a prompt chunk's causal attention grows linearly in its
//!   prefix, T(p + n) - T(p) = a(2pn + n^2) for causal T(L) = aL^2), plus both
//!   sides of every point where the model's attention changes regime (DSA's top-k, where
//!   its indexer starts; a sliding window's width), so no interpolation spans a kink.
//!
//! Interpolation is multilinear between the corners around the query; a corner is
//! simulated once, on first use, with routing draws that depend only on the corner (so
//! results do not depend on the order of queries). A query beyond the last corner of an
//! axis is an error, never an extrapolation; config sizes the axes from the deployment.
//!
//! Each corner's simulation can itself be shortened: all MoE layers of a model are alike,
//! so a step's time is affine in the number of MoE layers once the pipeline is full. With
//! `extrapolate` on, a corner simulates the dense layers plus `p` and `2p` MoE layers and
//! extends the line to the model's count (checked against whole-model steps by a test).
//!
//! A corner also carries the wire bytes its iteration put on each link; a query's link bytes
//! ([`StepCost::link_bytes`]) are the corners' with the weights its time was interpolated
//! with (multilinear too: the traffic of an iteration grows with its tokens as its time
//! does).
//!
//! Invariant: the same query always returns the same time and link bytes; corners are never
//! simulated twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::sim::StepCost;
use crate::compute::QueryError;
use crate::engine::Dur;

/// One simulated iteration: sequences per GPU at a context, prompt tokens per GPU after a
/// prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Point {
    /// GPUs of the pool with work (the first ones); the others idle through the iteration.
    pub gpus: u32,
    pub batch: u32,
    pub ctx: u64,
    pub tokens: u32,
    pub prefix: u64,
}

/// One simulated iteration: its time and the wire bytes it put on each link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Iteration {
    pub time: Dur,
    /// (link, wire bytes), links that carried none left out, sorted by link.
    pub links: Vec<(u32, f64)>,
}

/// What times the grid's corners.
pub trait PointSim: Sync {
    /// One iteration of the decode (or aggregated) pool.
    fn decode_pool(&self, p: Point) -> Result<Iteration, QueryError>;
    /// One iteration of the prefill pool (`p.batch` is 0).
    fn prefill_pool(&self, p: Point) -> Result<Iteration, QueryError>;
}

/// The corners of one axis: `lo`, then powers of two, up to and including `max`.
fn axis(lo: u64, first: u64, max: u64) -> Vec<u64> {
    axis_by(lo, first, max, 2)
}

/// [`axis`] with corners `ratio` apart.
fn axis_by(lo: u64, first: u64, max: u64, ratio: u64) -> Vec<u64> {
    let mut v = vec![lo];
    let mut x = first.max(lo + 1);
    while x < max {
        v.push(x);
        x *= ratio;
    }
    if max > lo {
        v.push(max);
    }
    v
}

/// The two corners around `x` and the weight of the upper one.
fn bracket(axis: &[u64], x: u64, name: &str) -> Result<(u64, u64, f64), QueryError> {
    let last = *axis.last().expect("an axis has corners");
    if x > last || x < axis[0] {
        return Err(QueryError::Invalid(format!(
            "{name} = {x} is outside the simulated range {}..={last}",
            axis[0]
        )));
    }
    let i = axis.partition_point(|&c| c <= x);
    if i == axis.len() || axis[i - 1] == x {
        return Ok((axis[i - 1], axis[i - 1], 0.0));
    }
    let (a, b) = (axis[i - 1], axis[i]);
    Ok((a, b, (x - a) as f64 / (b - a) as f64))
}

/// Told how the corners a query lacks advance: (corners done, corners needed), from the
/// threads that simulate them ([`GridCost::simulate_missing`]).
pub type CornerProgress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Corners shared by the servers of one process (`afdsim explore` runs many candidates whose
/// pools may be the same, say a prefill pool of the same GPUs): keyed by the pool's
/// identity ([`crate::serving::Server::share_corners`]) and the corner. A corner depends
/// only on the corner and the pool (module invariant), so a shared one is the one the
/// server would simulate. Two threads may simulate the same corner at once; both get the
/// same result, the first stored stays.
#[derive(Default)]
pub struct SharedCorners {
    map: std::sync::Mutex<HashMap<(u64, Point), Iteration>>,
}

impl SharedCorners {
    fn get(&self, key: u64, p: Point) -> Option<Iteration> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(key, p)).cloned()
    }

    fn put(&self, key: u64, p: Point, it: &Iteration) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((key, p)).or_insert_with(|| it.clone());
    }

    /// Corners held.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CostStats {
    pub queries: u64,
    pub corners_simulated: u64,
    /// Corners another server of the process had simulated (with shared corners).
    pub corners_shared: u64,
    /// Wall-clock seconds spent simulating corners (reported, never used in results).
    pub corner_wall_s: f64,
}

/// Iteration times by interpolation between simulated corners.
pub struct GridCost<S: PointSim> {
    pub sim: S,
    decode_gpus: Vec<u64>,
    prefill_gpus: Vec<u64>,
    batch: Vec<u64>,
    tokens: Vec<u64>,
    ctx: Vec<u64>,
    prefix: Vec<u64>,
    decode_memo: HashMap<Point, Iteration>,
    prefill_memo: HashMap<Point, Iteration>,
    /// The corners the last query weighed, with their weights (prefill pool?, corner,
    /// weight), in the order their times were summed.
    last: Vec<(bool, Point, f64)>,
    /// Corners shared with other servers, and this grid's pools' keys in it (decode,
    /// prefill).
    shared: Option<(std::sync::Arc<SharedCorners>, [u64; 2])>,
    /// Scratch for [`StepCost::link_bytes`]: bytes per link, and whether a link is listed.
    sum: Vec<f64>,
    listed: Vec<bool>,
    pub stats: CostStats,
}

impl<S: PointSim> GridCost<S> {
    /// A grid for pools of `pools.0` (decode) and `pools.1` (prefill) GPUs, at most
    /// `max_batch` sequences and `max_tokens` prompt tokens per GPU, contexts up to
    /// `max_ctx` and prefixes up to `max_prefix`; `kinks`: contexts where attention changes
    /// regime (a corner on each side).
    pub fn new(
        sim: S,
        pools: (u32, u32),
        max_batch: u32,
        max_tokens: u32,
        (max_ctx, max_prefix): (u64, u64),
        kinks: &[u64],
    ) -> Self {
        let with_kinks = |mut a: Vec<u64>| {
            let (first, last) = (a[0], *a.last().expect("an axis has corners"));
            a.extend(
                kinks
                    .iter()
                    .flat_map(|&k| [k, k + 1])
                    .filter(|&c| c > first && c < last),
            );
            a.sort_unstable();
            a.dedup();
            a
        };
        GridCost {
            sim,
            decode_gpus: axis(1, 2, pools.0.max(1) as u64),
            prefill_gpus: axis(1, 2, pools.1.max(1) as u64),
            batch: axis(0, 1, max_batch as u64),
            tokens: axis(0, 1, max_tokens as u64),
            ctx: with_kinks(axis(1, 128, max_ctx.max(2))),
            prefix: with_kinks(axis_by(0, 1024, max_prefix.max(1), 4)),
            decode_memo: HashMap::new(),
            prefill_memo: HashMap::new(),
            last: Vec::new(),
            shared: None,
            sum: Vec::new(),
            listed: Vec::new(),
            stats: CostStats::default(),
        }
    }

    /// Looks corners up in `shared` before simulating them, and puts the ones it simulates
    /// there; `keys` identify the decode and the prefill pool.
    pub fn share(&mut self, shared: std::sync::Arc<SharedCorners>, keys: [u64; 2]) {
        self.shared = Some((shared, keys));
    }

    /// Simulates the corners the last query weighs (`last`) that are not simulated yet, in
    /// parallel (each corner's result depends only on the corner, so the order and the
    /// thread do not matter); on errors, the first in `last` order. Allocates only when a
    /// corner is missing. `progress` hears (0, n) as n corners start, (k, n) as each
    /// finishes (k counted across the threads, so calls may come out of order), and (0, 0)
    /// when they are done.
    fn simulate_missing(
        &mut self,
        prefill: bool,
        progress: Option<CornerProgress>,
    ) -> Result<(), QueryError> {
        let memo = if prefill {
            &self.prefill_memo
        } else {
            &self.decode_memo
        };
        let mut missing: Vec<Point> = Vec::new();
        for &(_, p, _) in &self.last {
            if !memo.contains_key(&p) && !missing.contains(&p) {
                missing.push(p);
            }
        }
        if let Some((shared, keys)) = &self.shared {
            let key = keys[prefill as usize];
            let memo = if prefill {
                &mut self.prefill_memo
            } else {
                &mut self.decode_memo
            };
            missing.retain(|&p| match shared.get(key, p) {
                Some(it) => {
                    memo.insert(p, it);
                    self.stats.corners_shared += 1;
                    false
                }
                None => true,
            });
        }
        if missing.is_empty() {
            return Ok(());
        }
        let t0 = std::time::Instant::now();
        let sim = &self.sim;
        let needed = missing.len() as u64;
        let done = AtomicU64::new(0);
        if let Some(on) = progress {
            on(0, needed);
        }
        let run = |p: &Point| {
            let r = if prefill {
                sim.prefill_pool(*p)
            } else {
                sim.decode_pool(*p)
            };
            if let Some(on) = progress {
                on(done.fetch_add(1, Ordering::Relaxed) + 1, needed);
            }
            r
        };
        let results: Vec<Result<Iteration, QueryError>> = if missing.len() == 1 {
            vec![run(&missing[0])]
        } else {
            use rayon::prelude::*;
            missing.par_iter().map(run).collect()
        };
        self.stats.corner_wall_s += t0.elapsed().as_secs_f64();
        if let Some(on) = progress {
            on(0, 0);
        }
        let memo = if prefill {
            &mut self.prefill_memo
        } else {
            &mut self.decode_memo
        };
        for (p, r) in missing.into_iter().zip(results) {
            let it = r?;
            if let Some((shared, keys)) = &self.shared {
                shared.put(keys[prefill as usize], p, &it);
            }
            memo.insert(p, it);
            self.stats.corners_simulated += 1;
        }
        Ok(())
    }

    /// Multilinear interpolation over the axes a query uses.
    fn query(&mut self, prefill: bool, q: Point) -> Result<Dur, QueryError> {
        self.query_observed(prefill, q, None)
    }

    /// [`Self::query`], telling `progress` how the corners it lacks advance.
    fn query_observed(
        &mut self,
        prefill: bool,
        q: Point,
        progress: Option<CornerProgress>,
    ) -> Result<Dur, QueryError> {
        self.stats.queries += 1;
        let pool = if prefill {
            &self.prefill_gpus
        } else {
            &self.decode_gpus
        };
        let g = bracket(pool, q.gpus as u64, "GPUs with work")?;
        let b = bracket(&self.batch, q.batch as u64, "sequences per GPU")?;
        let t = bracket(&self.tokens, q.tokens as u64, "prompt tokens per GPU")?;
        // An axis a query does not use stays at its first corner.
        let c = if q.batch > 0 {
            bracket(&self.ctx, q.ctx.max(1), "context")?
        } else {
            (1, 1, 0.0)
        };
        let p = if q.tokens > 0 {
            bracket(&self.prefix, q.prefix, "prefix")?
        } else {
            (0, 0, 0.0)
        };
        self.last.clear();
        for corner in 0..32u32 {
            let pick = |bit: u32, (lo, hi, w): (u64, u64, f64)| {
                if corner & bit == 0 {
                    (lo, 1.0 - w)
                } else {
                    (hi, w)
                }
            };
            let (bb, wb) = pick(1, b);
            let (tt, wt) = pick(2, t);
            let (cc, wc) = pick(4, c);
            let (pp, wp) = pick(8, p);
            let (gg, wg) = pick(16, g);
            let w = wb * wt * wc * wp * wg;
            if w == 0.0 {
                continue;
            }
            // A corner with neither sequences nor tokens is an empty iteration: it takes
            // no time, and only ever weighs in when the query is close to it.
            if bb == 0 && tt == 0 {
                continue;
            }
            let pt = Point {
                gpus: gg as u32,
                batch: bb as u32,
                ctx: if bb > 0 { cc } else { 1 },
                tokens: tt as u32,
                prefix: if tt > 0 { pp } else { 0 },
            };
            self.last.push((prefill, pt, w));
        }
        self.simulate_missing(prefill, progress)?;
        let memo = if prefill {
            &self.prefill_memo
        } else {
            &self.decode_memo
        };
        // Summed in corner order, as always: the same query gives the same bits.
        let total: f64 = self
            .last
            .iter()
            .map(|&(_, p, w)| w * memo[&p].time.as_ps() as f64)
            .sum();
        Ok(Dur::from_ps(total.round() as u64))
    }
}

impl<S: PointSim> StepCost for GridCost<S> {
    fn link_bytes(&mut self, out: &mut Vec<(u32, f64)>) {
        // Each link's bytes summed over the corners in the order the time was (so the same
        // query always gives the same sums); links listed in the order first met.
        let start = out.len();
        for &(prefill, p, w) in &self.last {
            let memo = if prefill {
                &self.prefill_memo
            } else {
                &self.decode_memo
            };
            for &(l, b) in &memo[&p].links {
                let l = l as usize;
                if l >= self.sum.len() {
                    self.sum.resize(l + 1, 0.0);
                    self.listed.resize(l + 1, false);
                }
                if !self.listed[l] {
                    self.listed[l] = true;
                    out.push((l as u32, 0.0));
                }
                self.sum[l] += w * b;
            }
        }
        for e in &mut out[start..] {
            let l = e.0 as usize;
            e.1 = self.sum[l];
            self.sum[l] = 0.0;
            self.listed[l] = false;
        }
    }

    fn decode(&mut self, gpus: u32, batch: u32, ctx: u64) -> Result<Dur, QueryError> {
        self.mixed(gpus, batch, ctx, 0, 0)
    }

    fn prefill(&mut self, gpus: u32, tokens: u32, prefix: u64) -> Result<Dur, QueryError> {
        self.query(
            true,
            Point {
                gpus,
                batch: 0,
                ctx: 1,
                tokens,
                prefix,
            },
        )
    }

    fn mixed(
        &mut self,
        gpus: u32,
        batch: u32,
        ctx: u64,
        tokens: u32,
        prefix: u64,
    ) -> Result<Dur, QueryError> {
        self.query(
            false,
            Point {
                gpus,
                batch,
                ctx,
                tokens,
                prefix,
            },
        )
    }
}

/// A [`GridCost`] that reports the corners it simulates to a callback while a run uses it:
/// the same queries, the same corners, the same times and link bytes.
pub struct Observed<'c, S: PointSim> {
    grid: &'c mut GridCost<S>,
    progress: CornerProgress<'c>,
}

impl<'c, S: PointSim> Observed<'c, S> {
    pub fn new(grid: &'c mut GridCost<S>, progress: CornerProgress<'c>) -> Self {
        Observed { grid, progress }
    }
}

impl<S: PointSim> StepCost for Observed<'_, S> {
    fn link_bytes(&mut self, out: &mut Vec<(u32, f64)>) {
        self.grid.link_bytes(out)
    }

    fn decode(&mut self, gpus: u32, batch: u32, ctx: u64) -> Result<Dur, QueryError> {
        self.mixed(gpus, batch, ctx, 0, 0)
    }

    fn prefill(&mut self, gpus: u32, tokens: u32, prefix: u64) -> Result<Dur, QueryError> {
        let q = Point {
            gpus,
            batch: 0,
            ctx: 1,
            tokens,
            prefix,
        };
        self.grid.query_observed(true, q, Some(self.progress))
    }

    fn mixed(
        &mut self,
        gpus: u32,
        batch: u32,
        ctx: u64,
        tokens: u32,
        prefix: u64,
    ) -> Result<Dur, QueryError> {
        let q = Point {
            gpus,
            batch,
            ctx,
            tokens,
            prefix,
        };
        self.grid.query_observed(false, q, Some(self.progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function linear in each argument: interpolation reproduces it exactly. Counts its
    /// simulations.
    struct Affine(std::sync::atomic::AtomicU64);

    impl Affine {
        fn at(p: Point) -> Dur {
            Dur::from_ps(
                1_000_000
                    + 11_000 * p.gpus as u64
                    + 3_000 * p.batch as u64
                    + 7 * p.ctx * p.batch as u64
                    + 5_000 * p.tokens as u64
                    + 2 * p.prefix * p.tokens as u64,
            )
        }
    }

    impl Affine {
        /// Link bytes multilinear in the corner too: link 3 carries 100 bytes per token,
        /// link 7 (prefill pool only) 5 per prompt token and GPU.
        fn links(p: Point, prefill: bool) -> Vec<(u32, f64)> {
            let tokens = (p.batch + p.tokens) as f64;
            let mut v = vec![(3, 100.0 * tokens * p.gpus as f64)];
            if prefill {
                v.push((7, 5.0 * p.tokens as f64 * p.gpus as f64));
            }
            v
        }
    }

    impl PointSim for Affine {
        fn decode_pool(&self, p: Point) -> Result<Iteration, QueryError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Iteration {
                time: Affine::at(p),
                links: Affine::links(p, false),
            })
        }
        fn prefill_pool(&self, p: Point) -> Result<Iteration, QueryError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(p.batch, 0);
            Ok(Iteration {
                time: Affine::at(p),
                links: Affine::links(p, true),
            })
        }
    }

    /// The grid most tests use: pools of 24 and 16 GPUs, DSA's kink at 2,048.
    fn grid() -> GridCost<Affine> {
        GridCost::new(
            Affine(Default::default()),
            (24, 16),
            256,
            4096,
            (40_000, 100_000),
            &[2048],
        )
    }

    #[test]
    fn axes_end_at_their_limit() {
        assert_eq!(axis(0, 1, 6), vec![0, 1, 2, 4, 6]);
        assert_eq!(axis(0, 1, 8), vec![0, 1, 2, 4, 8]);
        assert_eq!(axis(1, 128, 1000), vec![1, 128, 256, 512, 1000]);
        assert_eq!(axis(0, 1024, 1), vec![0, 1]);
        assert_eq!(axis(1, 2, 24), vec![1, 2, 4, 8, 16, 24]);
        assert_eq!(axis(1, 2, 1), vec![1]);
    }

    #[test]
    fn multilinear_functions_come_back_exactly_and_corners_run_once() {
        let mut g = grid();
        for (b, c, t, p) in [
            (37, 3000, 0, 0),
            (37, 3000, 500, 9000),
            (0, 1, 1500, 70_000),
            (256, 40_000, 4096, 100_000),
            (1, 1, 1, 0),
        ] {
            let gpus = 19;
            let want = if b == 0 && t == 0 {
                Dur::ZERO
            } else {
                Affine::at(Point {
                    gpus,
                    batch: b,
                    ctx: if b > 0 { c } else { 1 },
                    tokens: t,
                    prefix: if t > 0 { p } else { 0 },
                })
            };
            let got = g.mixed(gpus, b, c, t, p).unwrap();
            let err = (got.as_ps() as i64 - want.as_ps() as i64).abs();
            // Multilinear interpolation is exact on multilinear functions (up to rounding).
            assert!(err <= 1, "({b},{c},{t},{p}): {got:?} vs {want:?}");
        }
        let before = g.sim.0.load(std::sync::atomic::Ordering::Relaxed);
        g.mixed(19, 37, 3000, 0, 0).unwrap();
        assert_eq!(
            g.sim.0.load(std::sync::atomic::Ordering::Relaxed),
            before,
            "memoized"
        );
        assert!(g.mixed(19, 257, 1, 0, 0).is_err());
        assert!(g.mixed(25, 1, 1, 0, 0).is_err());
        assert!(g.prefill(16, 4097, 0).is_err());
    }

    #[test]
    fn kinks_get_corners_on_both_sides() {
        let g = GridCost::new(
            Affine(Default::default()),
            (1, 1),
            4,
            4,
            (10_000, 10_000),
            &[2048, 5],
        );
        assert_eq!(
            g.ctx,
            vec![1, 5, 6, 128, 256, 512, 1024, 2048, 2049, 4096, 8192, 10_000]
        );
        assert_eq!(g.prefix, vec![0, 5, 6, 1024, 2048, 2049, 4096, 10_000]);
    }

    #[test]
    fn corners_are_exact() {
        let mut g = grid();
        let p = Point {
            gpus: 16,
            batch: 64,
            ctx: 4096,
            tokens: 512,
            prefix: 8192,
        };
        assert_eq!(g.mixed(16, 64, 4096, 512, 8192).unwrap(), Affine::at(p));
        let q = Point {
            gpus: 16,
            batch: 0,
            ctx: 1,
            tokens: 512,
            prefix: 8192,
        };
        assert_eq!(g.prefill(16, 512, 8192).unwrap(), Affine::at(q));
    }

    /// An observed grid answers every query as the plain one does, simulates the same
    /// corners, and reports each batch as (0, n), the n corners finished once each, (0, 0).
    #[test]
    fn observed_corners_are_reported_and_change_nothing() {
        let (mut plain, mut seen) = (grid(), grid());
        let calls = std::sync::Mutex::new(Vec::new());
        let on = |d: u64, n: u64| calls.lock().unwrap().push((d, n));
        for (g, b, c, t, p) in [
            (19, 37, 3000, 0, 0),
            (19, 37, 3000, 500, 9000),
            (3, 0, 1, 1500, 70_000),
            (19, 37, 3000, 0, 0),
        ] {
            let want = plain.mixed(g, b, c, t, p).unwrap();
            let got = Observed::new(&mut seen, &on).mixed(g, b, c, t, p).unwrap();
            assert_eq!(got, want);
        }
        let want = plain.prefill(13, 1500, 70_000).unwrap();
        let got = Observed::new(&mut seen, &on)
            .prefill(13, 1500, 70_000)
            .unwrap();
        assert_eq!(got, want);
        assert_eq!(seen.stats.corners_simulated, plain.stats.corners_simulated);
        let calls = calls.into_inner().unwrap();
        let finished = calls.iter().filter(|c| c.0 > 0).count() as u64;
        assert_eq!(finished, seen.stats.corners_simulated);
        let mut i = 0;
        while i < calls.len() {
            let (zero, n) = calls[i];
            assert!(zero == 0 && n > 0, "{calls:?}");
            let n = n as usize;
            let mut done: Vec<u64> = calls[i + 1..i + 1 + n].iter().map(|c| c.0).collect();
            done.sort_unstable();
            assert_eq!(done, (1..=n as u64).collect::<Vec<_>>());
            assert_eq!(calls[i + 1 + n], (0, 0));
            i += n + 2;
        }
    }

    /// A query's link bytes are its corners' with its time's weights: exact (to rounding)
    /// for bytes multilinear in the corner, the pool's own links only, and the same on a
    /// second ask.
    #[test]
    fn link_bytes_interpolate_like_times() {
        let mut g = grid();
        let mut out = Vec::new();
        g.decode(19, 37, 3000).unwrap();
        g.link_bytes(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 3);
        assert!((out[0].1 - 100.0 * 37.0 * 19.0).abs() < 1e-6, "{out:?}");
        out.clear();
        g.prefill(13, 1500, 70_000).unwrap();
        g.link_bytes(&mut out);
        let want = [(3, 100.0 * 1500.0 * 13.0), (7, 5.0 * 1500.0 * 13.0)];
        assert_eq!(out.len(), 2);
        for ((l, b), (wl, wb)) in out.iter().zip(want) {
            assert_eq!(*l, wl);
            assert!((b - wb).abs() < 1e-6, "{out:?}");
        }
        let mut again = Vec::new();
        g.prefill(13, 1500, 70_000).unwrap();
        g.link_bytes(&mut again);
        assert_eq!(out, again, "the same query, the same sums");
    }
}
