//! The one place that maps a [`Level`] to its simulator: studies run their workloads through
//! [`simulate`] and never name a level's module.

use crate::engine::Dur;
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

/// Runs `short` and `long` at `level`: the two results [`simulate`] gives. At the flow level,
/// where `short` is a prefix of `long` (the same step with fewer layers), in one pass
/// ([`crate::flow::simulate_with_prefix`]).
pub fn simulate_pair(
    level: Level,
    fabric: &Fabric,
    params: &NetParams,
    short: &Workload,
    long: &Workload,
) -> Result<(NetRun, NetRun), NetError> {
    if level == Level::Flow {
        return Ok(crate::flow::simulate_with_prefix(
            fabric, params, short, long,
        )?);
    }
    let a = simulate(level, fabric, params, short, &mut |_| {})?;
    let b = simulate(level, fabric, params, long, &mut |_| {})?;
    Ok((a, b))
}

/// Each message of `workload` alone on the fabric: the time it would take with nothing else
/// in flight, from its start to its last byte (the flow level's fluid time of a lone message:
/// its wire bytes at the bottleneck of its route, or its payload at its rate limiter where
/// that is slower, plus the route's latency and store-and-forward fill). What a message took
/// beyond this is queueing: links, NICs or a limiter shared with other messages.
pub fn alone_times(fabric: &Fabric, params: &NetParams, workload: &Workload) -> Vec<Dur> {
    let topo = &fabric.topology;
    workload
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let r = crate::flow::route(fabric, params, i as u32, m);
            // The rate the route sustains: its slowest link for the share it carries.
            let bps = r
                .links
                .iter()
                .map(|&(l, share)| topo.link(l).rate.bps() as f64 / share)
                .fold(f64::INFINITY, f64::min);
            let mut s = if bps.is_finite() {
                r.wire_bytes as f64 * 8.0 / bps
            } else {
                0.0
            };
            if let Some(k) = workload.limiter_of(i as u32) {
                let lim = workload.limiters()[k as usize].bps() as f64;
                s = s.max(m.bytes as f64 * 8.0 / lim);
            }
            Dur::from_ps((s * 1e12).round() as u64) + r.tail
        })
        .collect()
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
