//! The grid's corners timed by the fabric: one iteration of a pool built as an AFD step
//! ([`Deployment::decode_step`]: attention kernels, routing, dispatch, expert GEMMs, combine,
//! for every layer and micro-batch) and run at the scenario's level.
//!
//! Every MoE layer of a model is alike, so once the pipeline is full each adds the same
//! time: unless `all_layers` is set, a corner runs the dense layers plus [`PERIOD`] and
//! 2 x [`PERIOD`] MoE layers and extends the line to the model's MoE layers
//! (`tests/serving.rs` checks this against whole-model steps). At the flow level both steps
//! run in one pass: the shorter is the longer one's first tasks
//! ([`crate::flow::simulate_with_prefix`]), so it costs only its last layer's tail.
//!
//! A corner also reports the wire bytes its iteration put on each link (the pool's own
//! dispatch, combine or all-to-all), extrapolated like its time: the background the KV-cache
//! transfers share the fabric with (`docs/serving.md`, "KV transfers and iteration
//! traffic").
//!
//! Invariant: a corner's time and link bytes depend only on the corner (its routing draws
//! come from a stream of the run's seed that restarts at every corner).

use super::ServingSpec;
use super::cost::{Iteration, Point, PointSim};
use crate::afd::{Deployment, StepShape};
use crate::compute::QueryError;
use crate::engine::{Dur, SimRng, Time};
use crate::net::{Level, NetParams, NetRun, Workload};
use crate::topology::Fabric;

/// MoE layers per extrapolation step (a multiple of every embedded model's layer pattern:
/// gpt-oss alternates sliding and full attention).
pub const PERIOD: u64 = 4;

pub struct FabricPoints<'a> {
    decode: &'a Deployment,
    prefill: Option<&'a Deployment>,
    fabric: &'a Fabric,
    params: &'a NetParams,
    level: Level,
    seed: u64,
    all_layers: bool,
    /// Pairs of steps simulated already, by a digest of their workloads ([`digest`]):
    /// corners whose steps are the same tasks (contexts or prefixes too short to change a
    /// kernel's time) are simulated once.
    done: std::sync::Mutex<std::collections::HashMap<u128, (Iteration, Iteration)>>,
}

/// A 128-bit digest of two workloads (two SipHash lanes apart): equal workloads give equal
/// digests, and distinct ones collide with a chance of about 2^-128 a pair, so a step is
/// reused only where it is the same step. The same level, fabric and parameters run both
/// (one [`FabricPoints`]), and a run depends on nothing else.
fn digest(short: &Workload, long: &Workload) -> u128 {
    use std::hash::{Hash, Hasher};
    let lane = |salt: u64| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        short.hash(&mut h);
        long.hash(&mut h);
        h.finish()
    };
    (lane(1) as u128) << 64 | lane(2) as u128
}

impl<'a> FabricPoints<'a> {
    pub fn new(
        spec: &'a ServingSpec,
        fabric: &'a Fabric,
        params: &'a NetParams,
        level: Level,
    ) -> FabricPoints<'a> {
        FabricPoints {
            decode: &spec.decode,
            prefill: spec.prefill.as_ref(),
            fabric,
            params,
            level,
            seed: spec.seed,
            all_layers: spec.all_layers,
            done: Default::default(),
        }
    }

    /// The level the corners are simulated at (part of a shared corner's key).
    pub fn level_name(&self) -> &'static str {
        self.level.as_str()
    }

    /// The iteration of `pool` at corner `p` (its layers set by [`Self::iteration_of`]).
    fn time(&self, pool: &Deployment, p: Point) -> Result<Iteration, QueryError> {
        let shape = StepShape {
            active_attention_gpus: p.gpus,
            batch_per_attention_gpu: p.batch,
            context: p.ctx,
            contexts: Vec::new(),
            prefill_tokens: p.tokens,
            prefill_prefix: p.prefix,
            layers: 0,
        };
        self.iteration_of(pool, &shape)
    }

    /// The time of an iteration of `pool` with `shape`'s batch, context and prompt tokens
    /// (whatever its `layers`): extrapolated from a few MoE layers unless `all_layers`.
    pub fn time_of(&self, pool: &Deployment, shape: &StepShape) -> Result<Dur, QueryError> {
        self.iteration_of(pool, shape).map(|it| it.time)
    }

    /// [`Self::time_of`] with the wire bytes the iteration puts on each link, extrapolated
    /// from the same steps along the same line (every MoE layer adds its dispatch and
    /// combine).
    pub fn iteration_of(
        &self,
        pool: &Deployment,
        shape: &StepShape,
    ) -> Result<Iteration, QueryError> {
        let mut shape = shape.clone();
        let model = &pool.model;
        let (dense, moe) = (model.dense_layers(), model.moe_layers());
        // The line runs through MoE layers only: a model with dense layers after its first
        // MoE layer (Step-3's last) is simulated whole.
        if self.all_layers || moe <= 2 * PERIOD || !model.dense_first() {
            shape.layers = model.layers;
            return self.step_run(pool, &shape);
        }
        let (s1, s2) = self.step_pair(pool, &shape, dense + PERIOD, dense + 2 * PERIOD)?;
        let (t1, t2) = (s1.time.as_ps() as f64, s2.time.as_ps() as f64);
        let per = (t2 - t1) / PERIOD as f64;
        let more = (moe - 2 * PERIOD) as f64 / PERIOD as f64;
        // Both lists are sorted by link; a link the longer step uses and the shorter does
        // not started carrying bytes in its later layers.
        let mut links = Vec::with_capacity(s2.links.len());
        let mut i = 0;
        for &(l, b2) in &s2.links {
            while i < s1.links.len() && s1.links[i].0 < l {
                i += 1;
            }
            let b1 = match s1.links.get(i) {
                Some(&(l1, b1)) if l1 == l => b1,
                _ => 0.0,
            };
            // More layers never carry fewer bytes; the clamp only guards rounding.
            links.push((l, b2 + (b2 - b1).max(0.0) * more));
        }
        Ok(Iteration {
            time: Dur::from_ps((t2 + per * (moe - 2 * PERIOD) as f64).round() as u64),
            links,
        })
    }

    /// [`Self::step_run`] of `shape` with `short` and with `long` layers (at the flow level
    /// in one pass: the shorter step is the longer one's first tasks).
    fn step_pair(
        &self,
        pool: &Deployment,
        shape: &StepShape,
        short: u64,
        long: u64,
    ) -> Result<(Iteration, Iteration), QueryError> {
        let (f, p) = (self.fabric, self.params);
        let step = |layers: u64| {
            let mut rng = SimRng::stream(self.seed, crate::engine::stream::SERVING);
            let shape = StepShape {
                layers,
                ..shape.clone()
            };
            pool.decode_step(f, p, &shape, &mut rng)
        };
        let (a, b) = (step(short)?, step(long)?);
        let key = digest(&a.workload, &b.workload);
        let lock = || self.done.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pair) = lock().get(&key) {
            return Ok(pair.clone());
        }
        let (ra, rb) = crate::levels::simulate_pair(self.level, f, p, &a.workload, &b.workload)
            .map_err(|e| QueryError::Invalid(format!("the iteration did not finish: {e}")))?;
        let pair = (iteration(&ra), iteration(&rb));
        lock().insert(key, pair.clone());
        Ok(pair)
    }

    /// One step of `pool` with `shape` (all its layers), from its first kernel to its last
    /// kernel or transfer.
    pub fn step(&self, pool: &Deployment, shape: &StepShape) -> Result<Dur, QueryError> {
        self.step_run(pool, shape).map(|it| it.time)
    }

    /// [`Self::step`] with the wire bytes the step put on each link (links that carried
    /// none left out), sorted by link.
    pub fn step_run(&self, pool: &Deployment, shape: &StepShape) -> Result<Iteration, QueryError> {
        let mut rng = SimRng::stream(self.seed, crate::engine::stream::SERVING);
        let (f, p) = (self.fabric, self.params);
        let step = pool.decode_step(f, p, shape, &mut rng)?;
        let run = crate::levels::simulate(self.level, f, p, &step.workload, &mut |_| {})
            .map_err(|e| QueryError::Invalid(format!("the iteration did not finish: {e}")))?;
        Ok(iteration(&run))
    }
}

/// A step's time and the wire bytes it put on each link (links that carried none left out),
/// sorted by link.
fn iteration(run: &NetRun) -> Iteration {
    let links = run
        .links
        .iter()
        .enumerate()
        .filter(|(_, l)| l.wire_bytes > 0)
        .map(|(i, l)| (i as u32, l.wire_bytes as f64))
        .collect();
    Iteration {
        time: makespan(run).since(Time::ZERO),
        links,
    }
}

/// The last finish of any kernel or transfer.
fn makespan(run: &NetRun) -> Time {
    let c = run.computes.iter().filter_map(|c| c.finish).max();
    let m = run.messages.iter().filter_map(|m| m.finish).max();
    c.max(m).unwrap_or(Time::ZERO)
}

impl PointSim for FabricPoints<'_> {
    fn decode_pool(&self, p: Point) -> Result<Iteration, QueryError> {
        self.time(self.decode, p)
    }

    fn prefill_pool(&self, p: Point) -> Result<Iteration, QueryError> {
        let pool = self
            .prefill
            .expect("only a P/D deployment asks for prefill iterations");
        self.time(pool, p)
    }
}
