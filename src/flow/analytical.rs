//! The analytical level: an instant sanity bound, no simulation.
//!
//! Each message is one stage: its wire bytes over the bandwidth it gets from its most
//! loaded link, plus its route's fixed tail (the flow level's, see [`super::paths`]). A
//! link's load is the wire bytes every message puts on it; a message's bandwidth at the
//! link is its share of the link's capacity in proportion to its bytes there, so its
//! transfer takes `load(l) / capacity(l)` on its worst link. For traffic that starts
//! together this is the time the bottleneck link needs to carry everything it must, the
//! lower bound of any schedule that keeps that link busy, and it is exact for one flow,
//! a contention-free all-to-all and an incast. It ignores start times except as offsets,
//! and flows that finish early freeing capacity: use the flow level for those.

use super::paths::route;
use crate::engine::{Dur, PastHorizon, QueueStats, Time};
use crate::net::{Level, MessageSpec, NetError, NetParams, NetRun, Progress, Simulator, Workload};
use crate::topology::Fabric;

/// The analytical level as a [`Simulator`]: independent messages only (a workload with
/// compute tasks or dependencies is [`NetError::Unsupported`]).
pub struct AnalyticalLevel;

impl Simulator for AnalyticalLevel {
    fn level(&self) -> Level {
        Level::Analytical
    }
    fn simulate(
        &self,
        fabric: &Fabric,
        params: &NetParams,
        workload: &Workload,
        _progress: &mut dyn FnMut(Progress),
    ) -> Result<NetRun, NetError> {
        if workload.has_dependencies() {
            return Err(NetError::Unsupported {
                level: Level::Analytical.as_str(),
                what: "compute tasks or messages that wait for other tasks (an [afd] or \
                       [serving] study): use the flow or packet level"
                    .into(),
            });
        }
        Ok(simulate_limited(fabric, params, workload)?)
    }
}

/// [`simulate`] with the workload's rate limiters: a limiter is one more link, whose load
/// is the payload of the messages sharing it.
fn simulate_limited(
    fabric: &Fabric,
    params: &NetParams,
    workload: &Workload,
) -> Result<NetRun, PastHorizon> {
    let mut run = simulate(fabric, params, &workload.messages)?;
    let limiters = workload.limiters();
    if limiters.is_empty() {
        return Ok(run);
    }
    let mut load = vec![0u64; limiters.len()];
    for (i, m) in workload.messages.iter().enumerate() {
        if let Some(k) = workload.limiter_of(i as u32) {
            load[k as usize] += m.bytes;
        }
    }
    let drain: Vec<Dur> = limiters
        .iter()
        .zip(&load)
        .map(|(r, &b)| r.serialize(b))
        .collect();
    for (i, (m, r)) in workload.messages.iter().zip(&mut run.messages).enumerate() {
        if let (Some(k), Some(f)) = (workload.limiter_of(i as u32), r.finish.as_mut()) {
            // The limiter's drain plus the route's tail, if that is later than the links'.
            let tail = route(fabric, params, i as u32, m).tail;
            *f = (*f).max(m.start + drain[k as usize] + tail);
        }
    }
    run.end = run
        .messages
        .iter()
        .filter_map(|r| r.finish)
        .max()
        .unwrap_or(run.end);
    PastHorizon::check(run.end)?;
    Ok(run)
}

/// Runs `messages` on `fabric` at the analytical level; [`PastHorizon`] when a message's
/// bound lies at or past [`Time::HORIZON`] (the sums saturate: see `engine/time.rs`).
pub fn simulate(
    fabric: &Fabric,
    params: &NetParams,
    messages: &[MessageSpec],
) -> Result<NetRun, PastHorizon> {
    let topo = &fabric.topology;
    let routes: Vec<_> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| route(fabric, params, i as u32, m))
        .collect();
    let mut load = vec![0.0f64; topo.links().len()];
    for r in &routes {
        for &(l, w) in &r.links {
            load[l.0 as usize] += r.wire_bytes as f64 * w;
        }
    }
    // Time each link needs for its load, in ps (rounded up: never faster than the rate).
    let drain: Vec<Dur> = topo
        .links()
        .iter()
        .zip(&load)
        .map(|(link, &b)| link.rate.serialize(b.round() as u64))
        .collect();
    let finish: Vec<Time> = messages
        .iter()
        .zip(&routes)
        .map(|(m, r)| {
            let worst = r
                .links
                .iter()
                .map(|&(l, _)| drain[l.0 as usize])
                .max()
                .unwrap_or(Dur::ZERO);
            m.start + worst + r.tail
        })
        .collect();
    let links = topo
        .links()
        .iter()
        .enumerate()
        .map(|(i, _)| crate::net::LinkStats {
            wire_bytes: load[i].round() as u64,
            busy: drain[i],
            ..Default::default()
        })
        .collect();
    let starts: Vec<Time> = messages.iter().map(|m| m.start).collect();
    let run = super::assemble(messages, &starts, finish, links, QueueStats::default());
    PastHorizon::check(run.end)?;
    Ok(run)
}
