//! The grid's corners timed by the fabric: one iteration of a pool built as an AFD step
//! ([`AfdSpec::decode_step`]: attention kernels, routing, dispatch, expert GEMMs, combine,
//! for every layer and micro-batch) and run at the scenario's level.
//!
//! Every MoE layer of a model is alike, so once the pipeline is full each adds the same
//! time: unless `all_layers` is set, a corner runs the dense layers plus [`PERIOD`] and
//! 2 x [`PERIOD`] MoE layers and extends the line to the model's MoE layers
//! (`tests/serving.rs` checks this against whole-model steps).
//!
//! Invariant: a corner's time depends only on the corner (its routing draws come from a
//! stream of the run's seed that restarts at every corner).

use super::ServingSpec;
use super::cost::{Point, PointSim};
use crate::afd::AfdSpec;
use crate::compute::QueryError;
use crate::config::Level;
use crate::engine::{Dur, SimRng, Time};
use crate::packet::{PacketParams, PacketRun};
use crate::topology::Fabric;

/// MoE layers per extrapolation step (a multiple of every embedded model's layer pattern:
/// gpt-oss alternates sliding and full attention).
pub const PERIOD: u64 = 4;

/// The random stream of the corners' routing draws (config: 1 traffic; lib: 2 AFD).
const STREAM_SERVING: u64 = 3;

pub struct FabricPoints<'a> {
    decode: AfdSpec,
    prefill: Option<AfdSpec>,
    fabric: &'a Fabric,
    params: &'a PacketParams,
    level: Level,
    seed: u64,
    all_layers: bool,
}

impl<'a> FabricPoints<'a> {
    pub fn new(
        spec: &ServingSpec,
        fabric: &'a Fabric,
        params: &'a PacketParams,
        level: Level,
    ) -> FabricPoints<'a> {
        FabricPoints {
            decode: spec.decode.clone(),
            prefill: spec.prefill.clone(),
            fabric,
            params,
            level,
            seed: spec.seed,
            all_layers: spec.all_layers,
        }
    }

    fn time(&self, template: &AfdSpec, p: Point) -> Result<Dur, QueryError> {
        let mut spec = template.clone();
        spec.active_attention_gpus = p.gpus;
        spec.batch_per_attention_gpu = p.batch;
        spec.context = p.ctx;
        spec.prefill_tokens = p.tokens;
        spec.prefill_prefix = p.prefix;
        self.time_of(&spec)
    }

    /// The time of the iteration `spec` describes (its batch, context and prompt tokens
    /// set): extrapolated from a few MoE layers unless `all_layers`.
    pub fn time_of(&self, spec: &AfdSpec) -> Result<Dur, QueryError> {
        let mut spec = spec.clone();
        spec.steps = 1;
        let model = &spec.model;
        let (dense, moe) = (model.dense_layers, model.moe_layers());
        if self.all_layers || moe <= 2 * PERIOD {
            spec.layers = model.layers;
            return self.step(&spec);
        }
        spec.layers = dense + PERIOD;
        let t1 = self.step(&spec)?.as_ps() as f64;
        spec.layers = dense + 2 * PERIOD;
        let t2 = self.step(&spec)?.as_ps() as f64;
        let per = (t2 - t1) / PERIOD as f64;
        Ok(Dur::from_ps(
            (t2 + per * (moe - 2 * PERIOD) as f64).round() as u64
        ))
    }

    /// One step from its first kernel to its last kernel or transfer.
    pub fn step(&self, spec: &AfdSpec) -> Result<Dur, QueryError> {
        let mut rng = SimRng::stream(self.seed, STREAM_SERVING);
        let step = spec.decode_step(&mut rng)?;
        let (f, p) = (self.fabric, self.params);
        let run = match self.level {
            Level::Packet => crate::packet::simulate_workload(f, p, &step.workload, &mut |_, _| {})
                .map_err(|d| QueryError::Invalid(format!("the iteration deadlocked: {d}")))?,
            Level::Flow => crate::flow::simulate_workload(f, p, &step.workload, &mut |_, _| {}),
            Level::Analytical => {
                unreachable!("config rejects [serving] at the analytical level")
            }
        };
        Ok(makespan(&run).since(Time::ZERO))
    }
}

/// The last finish of any kernel or transfer.
fn makespan(run: &PacketRun) -> Time {
    let c = run.computes.iter().filter_map(|c| c.finish).max();
    let m = run.messages.iter().filter_map(|m| m.finish).max();
    c.max(m).unwrap_or(Time::ZERO)
}

impl PointSim for FabricPoints<'_> {
    fn decode_pool(&mut self, p: Point) -> Result<Dur, QueryError> {
        self.time(&self.decode, p)
    }

    fn prefill_pool(&mut self, p: Point) -> Result<Dur, QueryError> {
        let spec = self
            .prefill
            .as_ref()
            .expect("only a P/D deployment asks for prefill iterations");
        self.time(spec, p)
    }
}
