//! The flow level: every message is a fluid flow sharing link capacity max-min fairly.
//!
//! - Routes are the packet level's (same `Fabric`, same `NetParams`, same
//!   `MessageSpec`s): ECMP picks one path with the packet level's hash; NVLink traffic,
//!   spraying, and adaptive routing (treated as spraying: the fluid model has no queues to
//!   adapt to) split a flow evenly over the equal-cost next links ([`paths`]).
//! - A flow's size is its bytes on the wire: payload plus one header per packet, with the
//!   NVLink packetization inside an NVLink domain and the NIC's elsewhere. Link capacity is
//!   the line rate, so packetization overhead and PCIe/NIC rates act as capacity factors
//!   exactly as at the packet level.
//! - Rates are the weighted max-min fair allocation ([`maxmin`]), recomputed when flows
//!   start or end, once per distinct event time, and only over the flows the change can
//!   touch (the incremental rule is stated and tested in `maxmin.rs`).
//! - A message completes at its fluid finish plus its route's fixed tail: propagation,
//!   switch latency and the store-and-forward of one packet per hop, so an uncongested
//!   message lands where the packet level's closed form puts it.
//!
//! - Workloads: compute tasks run on the GPUs' streams and a task starts once the tasks it
//!   waits for are done ([`crate::net::Tracker`], shared with the packet level); a
//!   message is done when its last byte arrives (drain plus tail).
//!
//! Invariant: the flow level never sees packets. It is blind to queues, buffers, PFC,
//! ECN and congestion control; `config` rejects scenarios that set them for this level.
//! The result is a [`NetRun`] (the packet level's type): messages with start and
//! finish, per-link wire bytes and busy time; every packet counter, the run's and each
//! link's, is zero.

pub mod analytical;
pub mod maxmin;
pub mod online;
pub mod paths;

use crate::engine::{Dur, EventQueue, PS_PER_S, PastHorizon, Time};
use crate::net::{
    ComputeResult, Level, LinkStats, MessageResult, MessageSpec, NetError, NetParams, NetRun,
    Progress, Simulator, TaskRef, Tracker, Workload,
};
use crate::topology::Fabric;
use maxmin::Allocator;
pub use paths::{Route, route};

/// Every thing that happens at the flow level.
#[derive(Clone, Copy, Debug)]
enum Event {
    /// Message `m` starts.
    Start(u32),
    /// Flow `m` drains, if its rate has not changed since (`version`).
    Drain { flow: u32, version: u32 },
    /// Message `m`'s last byte arrives (drained plus its route's tail): dependents may go.
    Finish(u32),
    /// Compute task `c` may run: it joins its GPU's stream.
    ComputeReady(u32),
    /// Compute task `c` finishes, unless its finish has moved since (`version`: an SM
    /// hold began or ended while it ran; see `net::Tracker`).
    ComputeDone { c: u32, version: u32 },
}

/// What the flow engine did, beyond the run itself (for benchmarks and `docs/flow.md`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowStats {
    /// Distinct event times at which rates were recomputed.
    pub updates: u64,
    /// Flows refilled over all updates (a full recompute every time would be
    /// `updates x active flows`).
    pub flows_refilled: u64,
    pub links_visited: u64,
    /// Drain events superseded by an earlier drain of the same flow.
    pub stale_events: u64,
    /// Drain events that fired before the flow was done (its rate fell since) and
    /// rescheduled themselves.
    pub early_events: u64,
    /// (link, share) entries over all routes: the size of the flow-link graph.
    pub route_entries: u64,
}

/// A flow's fluid progress: wire bytes `left` as of `since`, when its live drain event
/// fires (`Time::MAX`: none yet) and that event's version (an older one is stale).
struct Fluid {
    left: f64,
    since: Time,
    pending_at: Time,
    version: u32,
}

/// `x.ceil() as u64` for a finite `x` in `0..2^64` (picoseconds to drain), without the
/// library call: truncation is the floor of a non-negative value, and it falls short of
/// `x` exactly when `x` has a fraction. The same integer, to the bit.
#[inline]
fn ceil_ps(x: f64) -> u64 {
    let q = x as u64;
    if (q as f64) < x {
        q.saturating_add(1)
    } else {
        q
    }
}

/// Capacity of a link in wire bytes per picosecond.
fn bytes_per_ps(bps: u64) -> f64 {
    bps as f64 / 8.0 / PS_PER_S as f64
}

/// The flow level as a [`Simulator`].
pub struct FlowLevel;

impl Simulator for FlowLevel {
    fn level(&self) -> Level {
        Level::Flow
    }
    fn simulate(
        &self,
        fabric: &Fabric,
        params: &NetParams,
        workload: &Workload,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<NetRun, NetError> {
        Ok(simulate_workload(fabric, params, workload, progress)?)
    }
}

/// Runs `messages` on `fabric` at the flow level.
pub fn simulate(
    fabric: &Fabric,
    params: &NetParams,
    messages: &[MessageSpec],
    progress: &mut dyn FnMut(Progress),
) -> Result<NetRun, PastHorizon> {
    Ok(simulate_with_stats(fabric, params, messages, progress)?.0)
}

/// [`simulate`], also returning what the engine did.
pub fn simulate_with_stats(
    fabric: &Fabric,
    params: &NetParams,
    messages: &[MessageSpec],
    progress: &mut dyn FnMut(Progress),
) -> Result<(NetRun, FlowStats), PastHorizon> {
    simulate_workload_with_stats(
        fabric,
        params,
        &Workload::from_messages(messages.to_vec()),
        progress,
    )
}

/// Runs a workload (messages and compute tasks with dependencies) at the flow level.
pub fn simulate_workload(
    fabric: &Fabric,
    params: &NetParams,
    workload: &Workload,
    progress: &mut dyn FnMut(Progress),
) -> Result<NetRun, PastHorizon> {
    Ok(simulate_workload_with_stats(fabric, params, workload, progress)?.0)
}

/// [`simulate_workload`], also returning what the engine did. Stops with [`PastHorizon`]
/// when an event it must act on lies at or past [`Time::HORIZON`] (times saturate: see
/// `engine/time.rs`).
pub fn simulate_workload_with_stats(
    fabric: &Fabric,
    params: &NetParams,
    workload: &Workload,
    progress: &mut dyn FnMut(Progress),
) -> Result<(NetRun, FlowStats), PastHorizon> {
    let messages = &workload.messages[..];
    let bytes_total: u64 = messages.iter().map(|m| m.bytes).sum();
    let mut bytes_done = 0u64;
    let topo = &fabric.topology;
    // The workload's rate limiters are links of their own after the fabric's: a limited
    // flow crosses its limiter's with the weight of its payload in its wire bytes (the
    // limiter counts payload, the flow's rate is wire bytes).
    let caps: Vec<f64> = topo
        .links()
        .iter()
        .map(|l| bytes_per_ps(l.rate.bps()))
        .chain(workload.limiters().iter().map(|r| bytes_per_ps(r.bps())))
        .collect();
    let limiter_base = topo.links().len() as u32;
    let mut alloc = Allocator::new(caps);
    let mut queue: EventQueue<Event> = EventQueue::new();
    let mut routes: Vec<(u64, u64, Dur)> = Vec::with_capacity(messages.len());
    let mut stats = FlowStats::default();
    for (i, m) in messages.iter().enumerate() {
        assert!(m.src != m.dst && m.bytes > 0, "validated by config");
        let r = route(fabric, params, i as u32, m);
        stats.route_entries += r.links.len() as u64;
        let limiter = workload
            .limiter_of(i as u32)
            .map(|k| (limiter_base + k, m.bytes as f64 / r.wire_bytes as f64));
        let id = alloc.register(r.links.iter().map(|&(l, w)| (l.0, w)).chain(limiter));
        debug_assert_eq!(id, i as u32);
        routes.push((r.wire_bytes, r.packets, r.tail));
    }
    let mut tracker = Tracker::new(workload, topo.gpus());
    let schedule = |queue: &mut EventQueue<Event>, tracker: &Tracker, t: TaskRef, now: Time| {
        let at = tracker.ready_at(t, now);
        match t {
            TaskRef::Message(m) => queue.schedule_at(at, Event::Start(m)),
            TaskRef::Compute(c) => queue.schedule_at(at, Event::ComputeReady(c)),
        }
    };
    for t in tracker.initially_ready() {
        schedule(&mut queue, &tracker, t, Time::ZERO);
    }
    let mut computes: Vec<ComputeResult> = workload
        .computes
        .iter()
        .map(|c| ComputeResult {
            gpu: c.gpu,
            start: None,
            finish: None,
        })
        .collect();
    let mut started: Vec<Time> = messages.iter().map(|m| m.start).collect();
    let mut finished: Vec<Option<Time>> = vec![None; messages.len()];

    let mut fluid: Vec<Fluid> = routes
        .iter()
        .zip(messages)
        .map(|(r, m)| Fluid {
            left: r.0 as f64,
            since: m.start,
            pending_at: Time::MAX,
            version: 0,
        })
        .collect();
    let mut drained: Vec<Option<Time>> = vec![None; messages.len()];

    let mut batch: Vec<Event> = Vec::new();
    let mut changed: Vec<(u32, f64)> = Vec::new();
    while let Some((now, first)) = queue.pop() {
        // Gather every event at this time, then change the allocation once. (Peeking, not
        // popping ahead: the update may schedule drains before the next pending event.)
        batch.clear();
        batch.push(first);
        while queue.peek_time() == Some(now) {
            batch.push(queue.pop().expect("peeked").1);
        }
        for &ev in &batch {
            // A drain superseded by a later rate change is skipped below before the check,
            // since one clamped to the horizon may be stale; every other event is real.
            if !matches!(ev, Event::Drain { .. }) {
                PastHorizon::check(now)?;
            }
            match ev {
                Event::Start(m) => {
                    started[m as usize] = now;
                    fluid[m as usize].since = now;
                    alloc.start(m);
                }
                Event::Finish(m) => {
                    finished[m as usize] = Some(now);
                    for d in tracker.complete(TaskRef::Message(m)) {
                        schedule(&mut queue, &tracker, d, now);
                    }
                }
                Event::ComputeReady(c) => {
                    if let Some(c) = tracker.compute_ready(c) {
                        computes[c as usize].start = Some(now);
                        for (c, at, version) in tracker.started(c, now) {
                            queue.schedule_at(at, Event::ComputeDone { c, version });
                        }
                    }
                }
                Event::ComputeDone { c, version } => {
                    if !tracker.is_current(c, version) {
                        continue;
                    }
                    computes[c as usize].finish = Some(now);
                    for (c, at, version) in tracker.finished(c, now) {
                        queue.schedule_at(at, Event::ComputeDone { c, version });
                    }
                    if let Some(next) = tracker.compute_done(c) {
                        computes[next as usize].start = Some(now);
                        for (c, at, version) in tracker.started(next, now) {
                            queue.schedule_at(at, Event::ComputeDone { c, version });
                        }
                    }
                    for d in tracker.complete(TaskRef::Compute(c)) {
                        schedule(&mut queue, &tracker, d, now);
                    }
                }
                Event::Drain { flow, version: v } => {
                    let fi = flow as usize;
                    let fd = &mut fluid[fi];
                    if v != fd.version || !alloc.is_active(flow) {
                        stats.stale_events += 1;
                        continue;
                    }
                    PastHorizon::check(now)?;
                    // Drain events are scheduled lazily (see below): this one may be early.
                    let rate = alloc.rate(flow);
                    fd.left = (fd.left - rate * now.since(fd.since).as_ps() as f64).max(0.0);
                    fd.since = now;
                    let ps = ceil_ps(fd.left / rate);
                    if ps > 0 {
                        stats.early_events += 1;
                        fd.pending_at = (now + Dur::from_ps(ps)).min(Time::HORIZON);
                        queue.schedule_at(fd.pending_at, Event::Drain { flow, version: v });
                        continue;
                    }
                    drained[fi] = Some(now);
                    bytes_done += messages[fi].bytes;
                    fd.left = 0.0;
                    alloc.stop(flow);
                    queue.schedule_at(now + routes[fi].2, Event::Finish(flow));
                }
            }
        }
        changed.clear();
        alloc.update(&mut changed);
        for &(f, old_rate) in &changed {
            // Settle the bytes sent at the old rate, then schedule the drain at the new.
            let fd = &mut fluid[f as usize];
            let elapsed = now.since(fd.since).as_ps() as f64;
            fd.left = (fd.left - old_rate * elapsed).max(0.0);
            fd.since = now;
            // A drain past the horizon waits at the horizon (where it stops the run unless a
            // rate change brings it earlier first); the sentinel `Time::MAX` stays above it.
            let at = (now + Dur::from_ps(ceil_ps(fd.left / alloc.rate(f)))).min(Time::HORIZON);
            // Lazy: a drain already pending at or before `at` stays; when it fires early it
            // reschedules itself. Only a drain that moves earlier needs a new event, so a
            // slowed flow costs no event, and stale events stay few.
            if at < fd.pending_at {
                fd.version = fd.version.wrapping_add(1);
                fd.pending_at = at;
                queue.schedule_at(
                    at,
                    Event::Drain {
                        flow: f,
                        version: fd.version,
                    },
                );
            }
        }
        let processed = queue.stats().processed;
        if processed & 0xFFFF < batch.len() as u64 {
            progress(Progress {
                events: processed,
                now,
                bytes_done,
                bytes_total,
            });
        }
    }
    stats.updates = alloc.updates;
    stats.flows_refilled = alloc.refilled;
    stats.links_visited = alloc.links_visited;

    assert!(
        drained.iter().all(Option::is_some) && tracker.streams_idle(),
        "every flow drains (rates are positive) and every task runs (the workload is acyclic)"
    );
    let finish: Vec<Time> = finished
        .into_iter()
        .map(|f| f.expect("a drained flow finishes after its tail"))
        .collect();
    let links = link_stats(fabric, &alloc, &routes);
    let mut run = assemble(messages, &started, finish, links, queue.stats());
    run.computes = computes;
    PastHorizon::check(run.end)?;
    Ok((run, stats))
}

/// Link statistics of a fluid run: the wire bytes each flow put on each link.
fn link_stats(fabric: &Fabric, alloc: &Allocator, routes: &[(u64, u64, Dur)]) -> Vec<LinkStats> {
    let topo = &fabric.topology;
    let mut bytes = vec![0.0f64; topo.links().len()];
    for (f, &(wire, _, _)) in routes.iter().enumerate() {
        // Rate limiters (links past the fabric's) carry nothing on a wire.
        for (l, w) in alloc.entries(f as u32) {
            if let Some(b) = bytes.get_mut(l as usize) {
                *b += wire as f64 * w;
            }
        }
    }
    links_of(fabric, &bytes)
}

/// Per-link statistics from the wire bytes each link carried (busy: their serialization).
pub(crate) fn links_of(fabric: &Fabric, bytes: &[f64]) -> Vec<LinkStats> {
    fabric
        .topology
        .links()
        .iter()
        .zip(bytes)
        .map(|(link, &b)| {
            let wire_bytes = b.round() as u64;
            LinkStats {
                wire_bytes,
                busy: link.rate.serialize(wire_bytes),
                ..LinkStats::default()
            }
        })
        .collect()
}

/// Assembles the packet level's result type from per-message completions.
pub(crate) fn assemble(
    messages: &[MessageSpec],
    started: &[Time],
    finish: Vec<Time>,
    links: Vec<LinkStats>,
    queue: crate::engine::QueueStats,
) -> NetRun {
    let bytes: u64 = messages.iter().map(|m| m.bytes).sum();
    let end = finish.iter().copied().max().unwrap_or(Time::ZERO);
    NetRun {
        computes: Vec::new(),
        messages: messages
            .iter()
            .zip(started)
            .zip(finish)
            .map(|((m, &s), f)| MessageResult {
                src: m.src,
                dst: m.dst,
                bytes: m.bytes,
                start: s,
                finish: Some(f),
            })
            .collect(),
        links,
        queue,
        packets: 0,
        packet_hops: 0,
        bytes_injected: bytes,
        bytes_delivered: bytes,
        bytes_dropped: 0,
        cnps: 0,
        lossless_overflow_bytes: 0,
        recovery: Default::default(),
        relay_peak_bytes: 0,
        end,
    }
}
