//! afdsim: a network-fabric simulator for Attention-FFN-disaggregated MoE serving.
//!
//! See ARCHITECTURE.md for the code map, each module's invariant and the layers (which module
//! may use which; `tests/layering.rs` checks them). A study builds a `net::Workload`;
//! `levels::simulate` runs it at a level; [`run`] runs a scenario's study.

pub mod afd;
pub mod comm;
pub mod compare;
pub mod compute;
pub mod config;
pub mod engine;
pub mod error;
pub mod explore;
pub mod flow;
pub mod input;
pub mod levels;
pub mod net;
pub mod packet;
pub mod report;
pub mod serving;
pub mod stats;
pub mod sweep;
pub mod topology;
pub mod validation;

use config::{Scenario, Study};
use engine::{PastHorizon, SimRng};
pub use net::Progress;
pub use net::set_packet_threads;

/// What one scenario run produced: the network run, its metrics, and what the study made
/// of it.
pub struct Outcome {
    /// The run: the traffic, an AFD study's last decode step, or a serving study's KV-cache
    /// transfers.
    pub run: net::NetRun,
    pub metrics: report::PacketMetrics,
    pub study: StudyOutcome,
}

/// What a [`config::Study`] produced, one variant per study.
pub enum StudyOutcome {
    Network,
    Afd {
        /// Over all decode steps.
        metrics: afd::AfdMetrics,
        /// The last decode step that ran (what each task was), for traces.
        step: afd::DecodeStep,
    },
    Serving(serving::ServingMetrics),
}

impl Outcome {
    /// An AFD study's metrics.
    pub fn afd(&self) -> Option<&afd::AfdMetrics> {
        match &self.study {
            StudyOutcome::Afd { metrics, .. } => Some(metrics),
            _ => None,
        }
    }

    /// An AFD study's last decode step.
    pub fn step(&self) -> Option<&afd::DecodeStep> {
        match &self.study {
            StudyOutcome::Afd { step, .. } => Some(step),
            _ => None,
        }
    }

    /// A serving study's metrics.
    pub fn serving(&self) -> Option<&serving::ServingMetrics> {
        match &self.study {
            StudyOutcome::Serving(m) => Some(m),
            _ => None,
        }
    }

    /// The object `afdsim run --json` prints: `{scenario, seed, level, metrics}`.
    pub fn output<'a>(&'a self, scenario: &'a Scenario) -> report::RunOutput<'a> {
        report::RunOutput {
            scenario: scenario.name(),
            seed: scenario.seed(),
            level: scenario.level().as_str(),
            metrics: match &self.study {
                StudyOutcome::Afd { metrics, .. } => report::Metrics::Afd(report::AfdRunMetrics {
                    afd: metrics,
                    network: &self.metrics,
                }),
                StudyOutcome::Serving(serving) => {
                    report::Metrics::Serving(report::ServingRunMetrics {
                        serving,
                        kv_network: &self.metrics,
                    })
                }
                StudyOutcome::Network => report::Metrics::Network(&self.metrics),
            },
        }
    }
}

/// Why a run produced no result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A cycle of pauses that can never clear.
    #[error("the simulation deadlocked: {0}")]
    Deadlock(net::Deadlock),
    /// The simulated time passed its limit with work left (rates too low for the bytes).
    #[error("{0}")]
    PastHorizon(PastHorizon),
    /// The scenario's level cannot run its study.
    #[error("{0}")]
    Unsupported(String),
    /// A kernel time the compute tables cannot give (an AFD scenario).
    #[error("afd: a kernel time cannot be computed: {0}")]
    Compute(compute::QueryError),
    /// A serving run that cannot go on: an iteration time the tables cannot give, an
    /// iteration that did not finish, or a run past the simulated clock's horizon.
    #[error("serving: {0}")]
    Serving(compute::QueryError),
    /// The requests of a serving scenario are bad (a trace's line, a request that can
    /// never fit).
    #[error("{0}")]
    Input(error::InputError),
}

impl From<net::NetError> for RunError {
    fn from(e: net::NetError) -> Self {
        match e {
            net::NetError::Deadlock(d) => RunError::Deadlock(d),
            net::NetError::PastHorizon(h) => RunError::PastHorizon(h),
            e @ net::NetError::Unsupported { .. } => RunError::Unsupported(e.to_string()),
        }
    }
}

impl From<PastHorizon> for RunError {
    fn from(h: PastHorizon) -> Self {
        RunError::PastHorizon(h)
    }
}

/// Runs a resolved scenario at its level (packet, flow or analytical; all return the
/// packet level's result type, so the metrics are computed the same way). A scenario with
/// an `[afd]` table runs one decode step (plus its `[[traffic]]`, as background messages).
/// `progress` is called now and then with how far the run has come (for a progress bar; it
/// must not affect the run).
pub fn run(scenario: &Scenario, progress: &mut dyn FnMut(Progress)) -> Result<Outcome, RunError> {
    match scenario.study() {
        Study::Network => run_network(scenario, progress),
        Study::Afd(spec) => run_afd(scenario, spec, progress),
        Study::Serving(spec) => run_serving(scenario, spec),
    }
}

/// The `[[traffic]]` messages, independent of each other.
fn run_network(
    scenario: &Scenario,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome, RunError> {
    let m = scenario.messages();
    fits_horizon(scenario, m, "traffic")?;
    let workload = scenario.traffic_workload();
    let mut run = levels::simulate(
        scenario.level(),
        scenario.fabric(),
        scenario.net(),
        &workload,
        progress,
    )?;
    // A kernel call ends at its last flag, after its last message.
    if let Some((_, end)) = comm::span(&run).filter(|_| !scenario.kernels().is_empty()) {
        run.end = run.end.max(end);
    }
    let metrics = report::PacketMetrics::of(scenario, &run);
    Ok(Outcome {
        run,
        metrics,
        study: StudyOutcome::Network,
    })
}

/// AFD decode steps, with the `[[traffic]]` messages as background in each.
fn run_afd(
    scenario: &Scenario,
    spec: &afd::AfdSpec,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome, RunError> {
    // Steps run one after another, each its own simulation (a decode step starts when the
    // previous one's tokens are out); routing draws continue from one stream. The run and
    // network metrics reported are the last step's.
    let mut rng = SimRng::stream(scenario.seed(), engine::stream::AFD);
    let mut per_step = Vec::with_capacity(spec.steps as usize);
    let mut last = None;
    for _ in 0..spec.steps {
        let mut step = spec
            .decode_step(scenario.fabric(), scenario.net(), &mut rng)
            .map_err(RunError::Compute)?;
        for msg in scenario.messages() {
            step.workload.message(msg.clone(), &[]);
        }
        fits_horizon(scenario, &step.workload.messages, "afd")?;
        let run = levels::simulate(
            scenario.level(),
            scenario.fabric(),
            scenario.net(),
            &step.workload,
            progress,
        )?;
        let alone = levels::alone_times(scenario.fabric(), scenario.net(), &step.workload);
        per_step.push(afd::AfdMetrics::of(spec, &step, &run, &alone));
        last = Some((step, run));
    }
    let (step, run) = last.expect("steps >= 1 (config)");
    let metrics = report::PacketMetrics::of(scenario, &run);
    Ok(Outcome {
        run,
        metrics,
        study: StudyOutcome::Afd {
            metrics: afd::AfdMetrics::over_steps(&per_step),
            step,
        },
    })
}

/// Refuses, before running, messages that no level could finish within `Time::HORIZON`
/// (see [`net::past_horizon`]), naming the GPU, its bytes and its links' rate.
fn fits_horizon(
    scenario: &Scenario,
    messages: &[net::MessageSpec],
    key: &str,
) -> Result<(), RunError> {
    let Some(b) = net::past_horizon(&scenario.fabric().topology, messages) else {
        return Ok(());
    };
    Err(RunError::Input(error::InputError::new(
        scenario.origin(),
        key,
        format!(
            "GPU {} must {} {} bytes through {} Gb/s of links: at least {:.3e} s, past the \
             limit of simulated time (2^62 ps, about 53 days); raise the `rate_gbps` keys or \
             lower the `bytes`",
            b.gpu.0,
            b.direction,
            b.bytes,
            b.rate_bps as f64 / 1e9,
            b.seconds
        ),
    )))
}

/// Serves a scenario's request stream: its requests, then the serving simulation.
fn run_serving(scenario: &Scenario, spec: &serving::ServingSpec) -> Result<Outcome, RunError> {
    let requests = spec
        .traffic
        .requests(spec.requests, scenario.seed())
        .map_err(RunError::Input)?;
    config::check_fits(scenario.origin(), spec, &requests).map_err(RunError::Input)?;
    let mut server =
        serving::Server::new(spec, scenario.fabric(), scenario.net(), scenario.level());
    let out = server.serve(&requests).map_err(RunError::Serving)?;
    let metrics = report::PacketMetrics::of(scenario, &out.run.kv);
    Ok(Outcome {
        run: out.run.kv,
        metrics,
        study: StudyOutcome::Serving(out.metrics),
    })
}
