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
#[derive(Clone)]
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
    let (inputs, mut run) = Run::new(fabric, params, workload);
    while run.next_batch() {
        run.process(&inputs, progress)?;
    }
    let all = (workload.messages.len(), workload.computes.len());
    run.finish(fabric, params, &inputs, all)
}

/// Runs `long` and `short` at the flow level in one pass where `short` is a prefix of
/// `long` ([`Workload::prefix_of`]: say a decode step of 4 MoE layers and the same step
/// with 8): both results are the ones [`simulate_workload`] gives for each, to the bit.
/// Otherwise two runs.
///
/// Until a task past the prefix can start, `long`'s run does exactly what `short`'s does
/// (the same events in the same order on the same state: a task past the prefix waits for
/// another task, so none is ready at the start). Before the first batch of events that
/// completes a task one past the prefix waits for, the run's state is cloned; the clone
/// goes on as `short`'s run, never scheduling a task past the prefix. What the clone holds
/// beyond `short`'s own run changes nothing: the allocator's flows past the prefix are
/// registered but never start (it prunes links by every registered flow, and pruning
/// changes no rate, to the bit: `maxmin.rs`), the tracker's dependents lists keep their
/// order with the tasks past the prefix left out. `short`'s run saves all but its tail.
/// An error of either run (past the horizon) is the result.
pub fn simulate_with_prefix(
    fabric: &Fabric,
    params: &NetParams,
    short: &Workload,
    long: &Workload,
) -> Result<(NetRun, NetRun), PastHorizon> {
    let Some((pm, pc)) = short.prefix_of(long) else {
        let a = simulate_workload(fabric, params, short, &mut |_| {})?;
        let b = simulate_workload(fabric, params, long, &mut |_| {})?;
        return Ok((a, b));
    };
    // The tasks a task past the prefix waits for: completing one may start it.
    let mut feeds = vec![false; long.messages.len() + long.computes.len()];
    let index = |t: TaskRef| long.task_index(t);
    for t in long.tasks().filter(|&t| Workload::past(t, (pm, pc))) {
        long.after(t).iter().for_each(|&a| feeds[index(a)] = true);
    }
    let (inputs, mut run) = Run::new(fabric, params, long);
    let mut prefix: Option<Run> = None;
    while run.next_batch() {
        if prefix.is_none()
            && run.batch.iter().any(|ev| match *ev {
                Event::Finish(m) => feeds[index(TaskRef::Message(m))],
                Event::ComputeDone { c, .. } => feeds[index(TaskRef::Compute(c))],
                _ => false,
            })
        {
            let mut p = run.clone();
            p.bound = Some((pm, pc));
            prefix = Some(p);
        }
        run.process(&inputs, &mut |_| {})?;
    }
    let total = (long.messages.len(), long.computes.len());
    let Some(mut p) = prefix else {
        // Nothing lies past the prefix: the two are the same workload.
        let r = run.finish(fabric, params, &inputs, total)?.0;
        return Ok((r.clone(), r));
    };
    let long_run = run.finish(fabric, params, &inputs, total)?.0;
    // The clone holds the batch it was taken before.
    p.process(&inputs, &mut |_| {})?;
    while p.next_batch() {
        p.process(&inputs, &mut |_| {})?;
    }
    let short_run = p
        .finish(fabric, params, &inputs, (pm as usize, pc as usize))?
        .0;
    Ok((short_run, long_run))
}

/// What a run reads and never changes: the workload's messages and their routes.
struct Inputs<'w> {
    messages: &'w [MessageSpec],
    /// Per message: its route's fixed tail.
    tails: Vec<Dur>,
    /// Wire bytes every message puts on each fabric link, summed in message order (the
    /// links' statistics of a run of all the messages).
    link_bytes: Vec<f64>,
    bytes_total: u64,
}

/// Everything a run changes as it goes (cloned whole where a prefix forks off:
/// [`simulate_with_prefix`]).
#[derive(Clone)]
struct Run<'w> {
    alloc: Allocator,
    queue: EventQueue<Event>,
    tracker: Tracker<'w>,
    computes: Vec<ComputeResult>,
    started: Vec<Time>,
    /// When each message's last byte arrived (`Time::MAX`: not yet).
    finished: Vec<Time>,
    fluid: Vec<Fluid>,
    /// The tasks ready from the start, in (ready time, task) order: they are taken from
    /// here as they come due rather than queued (a million starts at time 0 held 60 bytes
    /// each in the queue), ahead of the queued events of their time, which were all
    /// scheduled after them. `initial_at` is the next one; the list is freed when done.
    initial: Vec<TaskRef>,
    initial_at: usize,
    /// This batch's initial tasks (`initial[batch_initial]`), handled before `batch`.
    batch_initial: std::ops::Range<usize>,
    /// Initial tasks handled (events that never went through the queue).
    initial_done: u64,
    stats: FlowStats,
    bytes_done: u64,
    /// The events of the time `now`, about to be processed.
    now: Time,
    batch: Vec<Event>,
    /// (messages, compute tasks): tasks at or past these never start (the run of a
    /// prefix of the workload).
    bound: Option<(u32, u32)>,
}

impl<'w> Run<'w> {
    fn new(fabric: &Fabric, params: &NetParams, workload: &'w Workload) -> (Inputs<'w>, Run<'w>) {
        let messages = &workload.messages[..];
        let bytes_total: u64 = messages.iter().map(|m| m.bytes).sum();
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
        let mut tails: Vec<Dur> = Vec::with_capacity(messages.len());
        let mut fluid = Vec::with_capacity(messages.len());
        let mut link_bytes = vec![0.0f64; topo.links().len()];
        let mut stats = FlowStats::default();
        for (i, m) in messages.iter().enumerate() {
            assert!(m.src != m.dst && m.bytes > 0, "validated by config");
            let r = route(fabric, params, i as u32, m);
            stats.route_entries += r.links.len() as u64;
            add_link_bytes(&mut link_bytes, &r);
            let limiter = workload
                .limiter_of(i as u32)
                .map(|k| (limiter_base + k, m.bytes as f64 / r.wire_bytes as f64));
            let id = alloc.register(r.links.iter().map(|&(l, w)| (l.0, w)).chain(limiter));
            debug_assert_eq!(id, i as u32);
            tails.push(r.tail);
            fluid.push(Fluid {
                left: r.wire_bytes as f64,
                since: m.start,
                pending_at: Time::MAX,
                version: 0,
            });
        }
        let tracker = Tracker::new(workload, topo.gpus());
        let mut initial = tracker.initially_ready();
        let ready = |t: &TaskRef| tracker.ready_at(*t, Time::ZERO);
        if !initial.is_sorted_by_key(ready) {
            initial.sort_by_key(ready); // stable: task order within a time
        }
        let run = Run {
            alloc,
            queue: EventQueue::new(),
            tracker,
            computes: ComputeResult::unstarted(workload),
            started: messages.iter().map(|m| m.start).collect(),
            finished: vec![Time::MAX; messages.len()],
            fluid,
            initial,
            initial_at: 0,
            batch_initial: 0..0,
            initial_done: 0,
            stats,
            bytes_done: 0,
            now: Time::ZERO,
            batch: Vec::new(),
            bound: None,
        };
        let inputs = Inputs {
            messages,
            tails,
            link_bytes,
            bytes_total,
        };
        (inputs, run)
    }

    /// Task `t`'s prerequisites are done at `now`: it starts when it may (unless it lies
    /// past the bound).
    fn schedule(&mut self, t: TaskRef, now: Time) {
        if self.bound.is_some_and(|b| Workload::past(t, b)) {
            return;
        }
        let at = self.tracker.ready_at(t, now);
        match t {
            TaskRef::Message(m) => self.queue.schedule_at(at, Event::Start(m)),
            TaskRef::Compute(c) => self.queue.schedule_at(at, Event::ComputeReady(c)),
        }
    }

    /// Takes every event of the earliest pending time: the initial tasks due then
    /// (`batch_initial`), then the queued events into `batch`; false when none is left.
    /// (Peeking, not popping ahead: processing may schedule drains before the next pending
    /// event.)
    fn next_batch(&mut self) -> bool {
        self.batch.clear();
        if self.initial_at == self.initial.len() {
            // Popping before peeking: a radix heap's peek scans its lowest bucket, a pop
            // moves it into the bucket of ties, where the peeks that follow are cheap.
            self.batch_initial = 0..0;
            let Some((now, first)) = self.queue.pop() else {
                return false;
            };
            self.now = now;
            self.batch.push(first);
            while self.queue.peek_time() == Some(now) {
                self.batch.push(self.queue.pop().expect("peeked").1);
            }
            return true;
        }
        let ready = |t: TaskRef| self.tracker.ready_at(t, Time::ZERO);
        let initial_next = self.initial.get(self.initial_at).map(|&t| ready(t));
        let now = match (initial_next, self.queue.peek_time()) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return false,
        };
        self.now = now;
        let first = self.initial_at;
        while self
            .initial
            .get(self.initial_at)
            .is_some_and(|&t| ready(t) == now)
        {
            self.initial_at += 1;
        }
        self.batch_initial = first..self.initial_at;
        while self.queue.peek_time() == Some(now) {
            self.batch.push(self.queue.pop().expect("peeked").1);
        }
        true
    }

    /// Handles `batch`, then changes the allocation once.
    fn process(
        &mut self,
        inputs: &Inputs,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), PastHorizon> {
        let now = self.now;
        let initial = self.batch_initial.clone();
        for i in initial.clone() {
            let t = self.initial[i];
            if self.bound.is_some_and(|b| Workload::past(t, b)) {
                continue;
            }
            match t {
                TaskRef::Message(m) => self.handle(Event::Start(m), inputs)?,
                TaskRef::Compute(c) => self.handle(Event::ComputeReady(c), inputs)?,
            }
        }
        self.initial_done += initial.len() as u64;
        if self.initial_at == self.initial.len() && !self.initial.is_empty() {
            self.initial = Vec::new();
            self.initial_at = 0;
        }
        let batch = std::mem::take(&mut self.batch);
        let batch_len = batch.len() + initial.len();
        for &ev in &batch {
            self.handle(ev, inputs)?;
        }
        self.batch = batch;
        self.batch.clear();
        let (fluid, queue) = (&mut self.fluid, &mut self.queue);
        self.alloc.update_each(|f, old_rate, rate| {
            // Settle the bytes sent at the old rate, then schedule the drain at the new.
            let fd = &mut fluid[f as usize];
            let elapsed = now.since(fd.since).as_ps() as f64;
            fd.left = (fd.left - old_rate * elapsed).max(0.0);
            fd.since = now;
            // A drain past the horizon waits at the horizon (where it stops the run unless a
            // rate change brings it earlier first); the sentinel `Time::MAX` stays above it.
            let at = (now + Dur::from_ps(ceil_ps(fd.left / rate))).min(Time::HORIZON);
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
        });
        let processed = self.queue.stats().processed + self.initial_done;
        if processed & 0xFFFF < batch_len as u64 {
            progress(Progress {
                events: processed,
                now,
                bytes_done: self.bytes_done,
                bytes_total: inputs.bytes_total,
            });
        }
        Ok(())
    }

    /// Handles one event of the time `now`.
    fn handle(&mut self, ev: Event, inputs: &Inputs) -> Result<(), PastHorizon> {
        let now = self.now;
        // A drain superseded by a later rate change is skipped below before the check,
        // since one clamped to the horizon may be stale; every other event is real.
        if !matches!(ev, Event::Drain { .. }) {
            PastHorizon::check(now)?;
        }
        match ev {
            Event::Start(m) => {
                self.started[m as usize] = now;
                self.fluid[m as usize].since = now;
                self.alloc.start(m);
            }
            Event::Finish(m) => {
                self.finished[m as usize] = now;
                for d in self.tracker.complete(TaskRef::Message(m)) {
                    self.schedule(d, now);
                }
            }
            Event::ComputeReady(c) => {
                if let Some(c) = self.tracker.compute_ready(c) {
                    self.computes[c as usize].start = Some(now);
                    for (c, at, version) in self.tracker.started(c, now) {
                        self.queue
                            .schedule_at(at, Event::ComputeDone { c, version });
                    }
                }
            }
            Event::ComputeDone { c, version } => {
                if !self.tracker.is_current(c, version) {
                    return Ok(());
                }
                self.computes[c as usize].finish = Some(now);
                for (c, at, version) in self.tracker.finished(c, now) {
                    self.queue
                        .schedule_at(at, Event::ComputeDone { c, version });
                }
                if let Some(next) = self.tracker.compute_done(c) {
                    self.computes[next as usize].start = Some(now);
                    for (c, at, version) in self.tracker.started(next, now) {
                        self.queue
                            .schedule_at(at, Event::ComputeDone { c, version });
                    }
                }
                for d in self.tracker.complete(TaskRef::Compute(c)) {
                    self.schedule(d, now);
                }
            }
            Event::Drain { flow, version: v } => {
                let fi = flow as usize;
                let fd = &mut self.fluid[fi];
                if v != fd.version || !self.alloc.is_active(flow) {
                    self.stats.stale_events += 1;
                    return Ok(());
                }
                PastHorizon::check(now)?;
                // Drain events are scheduled lazily (see below): this one may be early.
                let rate = self.alloc.rate(flow);
                fd.left = (fd.left - rate * now.since(fd.since).as_ps() as f64).max(0.0);
                fd.since = now;
                let ps = ceil_ps(fd.left / rate);
                if ps > 0 {
                    self.stats.early_events += 1;
                    fd.pending_at = (now + Dur::from_ps(ps)).min(Time::HORIZON);
                    let at = fd.pending_at;
                    self.queue
                        .schedule_at(at, Event::Drain { flow, version: v });
                    return Ok(());
                }
                self.bytes_done += inputs.messages[fi].bytes;
                fd.left = 0.0;
                self.alloc.stop(flow);
                self.queue
                    .schedule_at(now + inputs.tails[fi], Event::Finish(flow));
            }
        }
        Ok(())
    }

    /// The result of the first `upto` (messages, compute tasks), once no event is left.
    fn finish(
        self,
        fabric: &Fabric,
        params: &NetParams,
        inputs: &Inputs,
        (nm, nc): (usize, usize),
    ) -> Result<(NetRun, FlowStats), PastHorizon> {
        let Run {
            alloc,
            queue,
            tracker,
            mut computes,
            started,
            mut finished,
            mut stats,
            initial_done,
            ..
        } = self;
        stats.updates = alloc.updates;
        stats.flows_refilled = alloc.refilled;
        stats.links_visited = alloc.links_visited;
        finished.truncate(nm);
        assert!(
            finished.iter().all(|&t| t != Time::MAX) && tracker.streams_idle(),
            "every flow drains (rates are positive) and every task runs (the workload is acyclic)"
        );
        let mut queue_stats = queue.stats();
        queue_stats.scheduled += initial_done;
        queue_stats.processed += initial_done;
        // The allocation's state goes before the results are built.
        drop((alloc, queue));
        let links = if nm == inputs.messages.len() {
            links_of(fabric, &inputs.link_bytes)
        } else {
            // A prefix's run: its messages' bytes alone, summed in the same order.
            let mut bytes = vec![0.0f64; fabric.topology.links().len()];
            for (i, m) in inputs.messages[..nm].iter().enumerate() {
                add_link_bytes(&mut bytes, &route(fabric, params, i as u32, m));
            }
            links_of(fabric, &bytes)
        };
        let mut run = assemble(
            &inputs.messages[..nm],
            &started[..nm],
            finished,
            links,
            queue_stats,
        );
        computes.truncate(nc);
        run.computes = computes;
        PastHorizon::check(run.end)?;
        Ok((run, stats))
    }
}

/// Adds the wire bytes a route puts on each fabric link to `bytes` (rate limiters are not
/// in a route: they carry nothing on a wire).
fn add_link_bytes(bytes: &mut [f64], r: &Route) {
    for &(l, w) in &r.links {
        bytes[l.0 as usize] += r.wire_bytes as f64 * w;
    }
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
