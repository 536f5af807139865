//! The one place that maps a [`Level`] to its simulator: studies run their workloads through
//! [`simulate`] and never name a level's module.

use crate::flow::{FlowLevel, analytical::AnalyticalLevel};
use crate::net::{Level, NetError, NetParams, NetRun, Progress, Simulator, Workload};
use crate::packet::PacketLevel;
use crate::topology::Fabric;

/// The simulator of `level`.
pub fn simulator(level: Level) -> &'static dyn Simulator {
    match level {
        Level::Packet => &PacketLevel,
        Level::Flow => &FlowLevel,
        Level::Analytical => &AnalyticalLevel,
    }
}

/// Runs `workload` on `fabric` at `level` (see [`Simulator::simulate`]).
pub fn simulate(
    level: Level,
    fabric: &Fabric,
    params: &NetParams,
    workload: &Workload,
    progress: &mut dyn FnMut(Progress),
) -> Result<NetRun, NetError> {
    simulator(level).simulate(fabric, params, workload, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one match sends each level to its own simulator.
    #[test]
    fn each_level_maps_to_its_own_simulator() {
        for level in Level::ALL {
            assert_eq!(simulator(level).level(), level);
        }
    }
}
