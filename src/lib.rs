//! afdsim: a network-fabric simulator for Attention-FFN-disaggregated MoE serving.
//!
//! See ARCHITECTURE.md for the code map and each module's invariant. The dependency order
//! (arrows point down, never up): config -> topology, packet -> engine; validation and
//! report sit above the models; the CLI (`main.rs`) above everything.

pub mod compute;
pub mod config;
pub mod engine;
pub mod error;
pub mod flow;
pub mod packet;
pub mod report;
pub mod sweep;
pub mod topology;
pub mod validation;
pub mod workload;

use config::Scenario;
use engine::Time;

/// What one scenario run produced: the raw run and its metrics.
pub struct Outcome {
    pub run: packet::PacketRun,
    pub metrics: report::PacketMetrics,
}

impl Outcome {
    /// The object `afdsim run --json` prints: `{scenario, seed, level, metrics}`.
    pub fn output<'a>(&'a self, scenario: &'a Scenario) -> report::RunOutput<'a> {
        report::RunOutput {
            scenario: &scenario.name,
            seed: scenario.seed,
            level: scenario.level.as_str(),
            metrics: &self.metrics,
        }
    }
}

/// Runs a resolved scenario at its level (packet, flow or analytical; all return the
/// packet level's result type, so the metrics are computed the same way). `progress` is called now and then with the events
/// processed and the simulated time (for a progress bar; it must not affect the run).
/// A run that stalls in a cycle of pauses is returned as a [`packet::Deadlock`].
pub fn run(
    scenario: &Scenario,
    progress: &mut dyn FnMut(u64, Time),
) -> Result<Outcome, packet::Deadlock> {
    let (f, p, m) = (&scenario.fabric, &scenario.packet, &scenario.messages);
    let run = match scenario.level {
        config::Level::Packet => packet::simulate(f, p, m, progress)?,
        config::Level::Flow => flow::simulate(f, p, m, progress),
        config::Level::Analytical => flow::analytical::simulate(f, p, m),
    };
    let metrics = report::PacketMetrics::of(scenario, &run);
    Ok(Outcome { run, metrics })
}
