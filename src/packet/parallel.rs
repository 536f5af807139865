//! The packet level on several threads: the fabric is cut into regions, regions are spread
//! over partitions, and each partition runs on its own thread in conservative time windows.
//!
//! - A **region** is an NVLink domain with its NICs (the nodes joined by links that touch
//!   no scale-out switch: a server's GPUs, NVSwitch chips and NICs; an NVL72 rack) or one
//!   scale-out switch. Every event belongs to one region (an arrival to the link's
//!   receiver, a transmission, pause or wake-up to its sender, a message's sender events to
//!   its source GPU, a compute task to its GPU) and touches only that region's state;
//!   what it does elsewhere is an event it schedules there, never sooner than the latency
//!   of a link between the two regions.
//! - Events at equal times run grouped by the region that scheduled them, the regions in an
//!   order drawn per time, each region's in the order it scheduled them
//!   (`Sim::order`): a region's events, and so its state, are then the same
//!   whichever partition runs it. Results are identical for any thread count; the tests
//!   compare them byte for byte.
//! - **Windows**: every partition runs its events before `t + lookahead`, where `t` is the
//!   earliest pending event of all partitions and `lookahead` the smallest latency of a link
//!   between two partitions; it then hands the events it scheduled for other partitions
//!   over, and all wait for each other (two barriers per window). NVLink hops stay inside
//!   a region, so the lookahead is a scale-out cable's latency (100 ns on the shipped HGX
//!   fabrics), never an NVLink hop's.
//!
//! Invariant: an event crosses partitions only with a delay of at least the lookahead. A
//! workload that breaks it (a task that waits for a task in another region: the release is
//! instantaneous) or that couples regions through shared state (go-back-N's sender reads
//! its receiver's progress directly; a rate limiter shared by GPUs of two regions) runs on
//! one thread only, and asking for more is an error that says why.

use super::{Remote, Sim, build, finish};
use crate::engine::{Dur, PastHorizon, SimRng, Time};
use crate::net::{Buffers, NetError, NetParams, NetRun, Progress, TaskRef, Transport, Workload};
use crate::topology::{Fabric, NodeId, NodeKind, Topology};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The ECN marking draws of region `region`: a stream of its own, so that its draws do not
/// depend on other regions' order.
pub(super) fn ecn_stream(seed: u64, region: u32) -> SimRng {
    SimRng::stream(seed, crate::engine::stream::ECN << 32 | region as u64)
}

/// Regions and their partitions (see the module documentation).
pub(super) struct Layout {
    /// Per node, its region.
    pub region: Vec<u32>,
    pub regions: u32,
    /// Per region, the partition (thread) that runs it.
    pub part: Vec<u32>,
    pub parts: u32,
    /// The smallest latency of a link between two partitions ([`Dur`] of `u64::MAX` ps
    /// with one partition).
    pub lookahead: Dur,
}

impl Layout {
    /// Regions of `topo` spread over at most `threads` partitions: NVLink domains in GPU
    /// order, in runs of about equal GPU counts; each switch with the partition most of its
    /// links lead to (ties to the one with the fewest switches so far), leaves before
    /// spines.
    pub fn new(topo: &Topology, threads: usize) -> Layout {
        let n = topo.nodes();
        let is_switch = |v: usize| topo.kind(NodeId(v as u32)) == NodeKind::Switch;
        // Union-find over links that touch no switch.
        let mut parent: Vec<u32> = (0..n as u32).collect();
        fn root(parent: &mut [u32], mut v: u32) -> u32 {
            while parent[v as usize] != v {
                parent[v as usize] = parent[parent[v as usize] as usize];
                v = parent[v as usize];
            }
            v
        }
        for l in topo.links() {
            let (a, b) = (l.from.0, l.to.0);
            if is_switch(a as usize) || is_switch(b as usize) {
                continue;
            }
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            if ra != rb {
                parent[ra.max(rb) as usize] = ra.min(rb);
            }
        }
        // Regions numbered by their lowest node.
        let mut id_of_root = vec![u32::MAX; n];
        let mut regions = 0u32;
        let region: Vec<u32> = (0..n as u32)
            .map(|v| {
                let r = root(&mut parent, v) as usize;
                if id_of_root[r] == u32::MAX {
                    id_of_root[r] = regions;
                    regions += 1;
                }
                id_of_root[r]
            })
            .collect();
        // GPUs per region; regions with GPUs in order of their lowest GPU.
        let mut gpus = vec![0u64; regions as usize];
        let mut gpu_regions = Vec::new();
        for &r in &region[..topo.gpus() as usize] {
            let r = r as usize;
            if gpus[r] == 0 {
                gpu_regions.push(r);
            }
            gpus[r] += 1;
        }
        let parts = threads.clamp(1, gpu_regions.len().max(1)) as u32;
        let mut part = vec![u32::MAX; regions as usize];
        let total: u64 = gpus.iter().sum();
        let mut before = 0u64;
        for &r in &gpu_regions {
            // The partition of the region's middle GPU: runs of equal GPU counts.
            let mid = before + gpus[r] / 2;
            part[r] = (mid * parts as u64 / total.max(1)) as u32;
            before += gpus[r];
        }
        // Switches, nearest first: each pass places the switches next to placed regions.
        let mut switches_in = vec![0u32; parts as usize];
        loop {
            let mut placed = Vec::new();
            for v in 0..n {
                let r = region[v] as usize;
                if !is_switch(v) || part[r] != u32::MAX {
                    continue;
                }
                let mut votes = vec![0u32; parts as usize];
                for &l in topo.out_links(NodeId(v as u32)) {
                    let p = part[region[topo.link(l).to.0 as usize] as usize];
                    if p != u32::MAX {
                        votes[p as usize] += 1;
                    }
                }
                let best = (0..parts as usize)
                    .filter(|&p| votes[p] > 0)
                    .max_by(|&a, &b| {
                        (
                            votes[a],
                            std::cmp::Reverse(switches_in[a]),
                            std::cmp::Reverse(a),
                        )
                            .cmp(&(
                                votes[b],
                                std::cmp::Reverse(switches_in[b]),
                                std::cmp::Reverse(b),
                            ))
                    });
                if let Some(p) = best {
                    placed.push((r, p as u32));
                    switches_in[p] += 1;
                }
            }
            if placed.is_empty() {
                break;
            }
            for (r, p) in placed {
                part[r] = p;
            }
        }
        // Anything unreachable from a GPU runs with the first partition.
        for p in &mut part {
            if *p == u32::MAX {
                *p = 0;
            }
        }
        let lookahead = topo
            .links()
            .iter()
            .filter(|l| {
                part[region[l.from.0 as usize] as usize] != part[region[l.to.0 as usize] as usize]
            })
            .map(|l| l.latency)
            .min()
            .unwrap_or(Dur::from_ps(u64::MAX));
        Layout {
            region,
            regions,
            part,
            parts,
            lookahead,
        }
    }

    fn region_of(&self, n: NodeId) -> u32 {
        self.region[n.0 as usize]
    }

    /// Why `workload` cannot run on this layout's partitions, if it cannot (see the module
    /// documentation).
    fn unsupported(
        &self,
        fabric: &Fabric,
        params: &NetParams,
        workload: &Workload,
    ) -> Option<String> {
        if self.parts == 1 {
            return None;
        }
        if self.lookahead == Dur::ZERO {
            return Some("a link between two threads' regions has zero latency".into());
        }
        if matches!(params.switch.buffers, Buffers::Lossy { .. })
            && matches!(params.transport, Transport::GoBackN(_))
        {
            return Some(
                "lossy switches with go-back-N (its sender reads its receiver's progress directly)"
                    .into(),
            );
        }
        let msgs = &workload.messages;
        let start = |t: TaskRef| match t {
            TaskRef::Message(m) => self.region_of(msgs[m as usize].src),
            TaskRef::Compute(c) => self.region_of(workload.computes[c as usize].gpu),
        };
        let done = |t: TaskRef| match t {
            TaskRef::Message(m) => self.region_of(msgs[m as usize].dst),
            TaskRef::Compute(c) => self.region_of(workload.computes[c as usize].gpu),
        };
        for t in workload.tasks() {
            if let Some(&a) = workload.after(t).iter().find(|&&a| done(a) != start(t)) {
                return Some(format!(
                    "a task that waits for a task finishing in another NVLink domain ({t:?} waits for {a:?})"
                ));
            }
        }
        let mut limiter_region = vec![u32::MAX; workload.limiters().len()];
        for (i, m) in msgs.iter().enumerate() {
            let r = self.region_of(m.src);
            if let Some(via) = fabric.relay(m.src, m.dst)
                && self.region_of(via) != r
            {
                return Some(format!("message {i}'s PXN relay in another region"));
            }
            if let Some(k) = workload.limiter_of(i as u32) {
                let lr = &mut limiter_region[k as usize];
                if *lr != u32::MAX && *lr != r {
                    return Some(format!(
                        "rate limiter {k} shared by GPUs of two NVLink domains"
                    ));
                }
                *lr = r;
            }
        }
        None
    }
}

/// A barrier that spins before it yields: a window's work is often a few microseconds, less
/// than a sleeping thread takes to wake up (`std::sync::Barrier` parks). Waiters spin
/// [`SPINS`] times, then yield the core at each check (so more threads than cores still
/// progress).
struct SpinBarrier {
    n: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

const SPINS: u32 = 2000;

impl SpinBarrier {
    fn new(n: usize) -> Self {
        SpinBarrier {
            n,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0;
        while self.generation.load(Ordering::Acquire) == generation {
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// What the partitions share: their inboxes, each one's earliest pending time, and totals
/// for progress reports.
struct Shared {
    barrier: SpinBarrier,
    inbox: Vec<Mutex<Vec<Remote>>>,
    next: Vec<AtomicU64>,
    failed: AtomicBool,
    events: AtomicU64,
    delivered: AtomicU64,
}

/// Simulates `workload` as [`simulate_workload`](super::simulate_workload) does, on up to
/// `threads` threads (one per partition; never more than the fabric's NVLink domains). The
/// result is the same for every `threads`; a workload that cannot run on several threads
/// (module documentation) is [`NetError::Unsupported`] with more than one.
pub fn simulate_threads(
    fabric: &Fabric,
    params: &NetParams,
    workload: &Workload,
    threads: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<NetRun, NetError> {
    let layout = Layout::new(&fabric.topology, threads);
    if let Some(why) = layout.unsupported(fabric, params, workload) {
        return Err(NetError::Unsupported {
            level: "packet",
            what: format!("on {threads} threads {why}; run it with --threads 1"),
        });
    }
    let bytes_total: u64 = workload.messages.iter().map(|m| m.bytes).sum();
    if layout.parts == 1 {
        let mut sim = build(fabric, params, workload, &layout, 0);
        sim.run_until(Time::MAX, &mut |s, now| {
            progress(Progress {
                events: s.events_processed(),
                now,
                bytes_done: s.bytes_delivered,
                bytes_total,
            })
        })?;
        if sim.next_time().is_some() {
            return Err(PastHorizon.into());
        }
        return finish(vec![sim]).map_err(NetError::Deadlock);
    }
    let parts = layout.parts as usize;
    let shared = Shared {
        barrier: SpinBarrier::new(parts),
        inbox: (0..parts).map(|_| Mutex::new(Vec::new())).collect(),
        next: (0..parts).map(|_| AtomicU64::new(u64::MAX)).collect(),
        failed: AtomicBool::new(false),
        events: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
    };
    let layout = &layout;
    let shared = &shared;
    let results: Vec<(Sim, Result<(), PastHorizon>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..parts as u32)
            .map(|p| {
                scope.spawn(move || {
                    let sim = build(fabric, params, workload, layout, p);
                    drive(sim, shared, &mut |_| {})
                })
            })
            .collect();
        // Partition 0 runs here, where `progress` lives.
        let sim = build(fabric, params, workload, layout, 0);
        let mut last = 0u64;
        let first = drive(sim, shared, &mut |now| {
            let events = shared.events.load(Ordering::Relaxed);
            if events >> 20 != last >> 20 {
                last = events;
                progress(Progress {
                    events,
                    now,
                    bytes_done: shared.delivered.load(Ordering::Relaxed),
                    bytes_total,
                });
            }
        });
        let mut all = vec![first];
        all.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("a packet-level thread panicked")),
        );
        all
    });
    let mut sims = Vec::with_capacity(parts);
    for (mut sim, r) in results {
        r?;
        if sim.next_time().is_some() {
            return Err(PastHorizon.into());
        }
        sims.push(sim);
    }
    finish(sims).map_err(NetError::Deadlock)
}

/// Runs one partition window by window until no partition has events left or one of them
/// passed the horizon. `window_done` is called after each window with its end.
fn drive<'a>(
    mut sim: Sim<'a>,
    shared: &Shared,
    window_done: &mut dyn FnMut(Time),
) -> (Sim<'a>, Result<(), PastHorizon>) {
    let p = sim.part as usize;
    let lookahead = sim.layout.lookahead.as_ps();
    let mut result = Ok(());
    // A panic (a broken invariant) stops every partition at the next window instead of
    // leaving the others waiting at a barrier forever; it is raised again at the end.
    let mut panicked = None;
    loop {
        let inbox = std::mem::take(&mut *shared.inbox[p].lock().expect("inbox"));
        if panicked.is_none()
            && let Err(e) = catch_unwind(AssertUnwindSafe(|| {
                for r in inbox {
                    sim.receive(r);
                }
            }))
        {
            panicked = Some(e);
            shared.failed.store(true, Ordering::Relaxed);
        }
        let next = sim.next_time().map_or(u64::MAX, |t| t.as_ps());
        shared.next[p].store(next, Ordering::Relaxed);
        shared.barrier.wait();
        let t = shared
            .next
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .min()
            .expect("partitions");
        if t == u64::MAX || shared.failed.load(Ordering::Relaxed) {
            break;
        }
        let limit = Time::from_ps(t.saturating_add(lookahead));
        let (events, delivered) = (sim.events_processed(), sim.bytes_delivered);
        match catch_unwind(AssertUnwindSafe(|| sim.run_until(limit, &mut |_, _| {}))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                result = Err(e);
                shared.failed.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                panicked = Some(e);
                shared.failed.store(true, Ordering::Relaxed);
            }
        }
        shared
            .events
            .fetch_add(sim.events_processed() - events, Ordering::Relaxed);
        shared
            .delivered
            .fetch_add(sim.bytes_delivered - delivered, Ordering::Relaxed);
        for (q, out) in sim.outbox.iter_mut().enumerate() {
            if !out.is_empty() {
                shared.inbox[q].lock().expect("inbox").append(out);
            }
        }
        shared.barrier.wait();
        window_done(limit);
    }
    if let Some(e) = panicked {
        resume_unwind(e);
    }
    (sim, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hgx16_a2a() -> crate::config::Scenario {
        crate::config::Scenario::load(
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/workloads/scenarios/hgx16-a2a-dcqcn.toml"
            )),
            None,
        )
        .expect("shipped scenario")
    }

    /// Regions are NVLink domains (with their NICs) and switches; with two threads the
    /// domains split in half and only scale-out cables cross between threads.
    #[test]
    fn regions_are_domains_and_switches() {
        let s = hgx16_a2a();
        let topo = &s.fabric().topology;
        let l = Layout::new(topo, 2);
        let switches = (0..topo.nodes())
            .filter(|&v| topo.kind(NodeId(v as u32)) == NodeKind::Switch)
            .count();
        assert_eq!(l.regions as usize, 16 + switches);
        assert_eq!(l.parts, 2);
        // Server k's eight GPUs share a region; the first eight servers run on thread 0.
        for g in 0..128u32 {
            assert_eq!(l.region[g as usize], l.region[(g - g % 8) as usize]);
            assert_eq!(l.part[l.region[g as usize] as usize], g / 64);
        }
        // Only scale-out cables cross between threads, and the lookahead is the shortest.
        let crossing: Vec<_> = topo
            .links()
            .iter()
            .filter(|k| {
                l.part[l.region[k.from.0 as usize] as usize]
                    != l.part[l.region[k.to.0 as usize] as usize]
            })
            .collect();
        assert!(!crossing.is_empty());
        assert!(crossing.iter().all(|k| matches!(
            k.class,
            crate::topology::LinkClass::Access | crate::topology::LinkClass::Fabric
        )));
        assert_eq!(Some(l.lookahead), crossing.iter().map(|k| k.latency).min());
        assert_eq!(Layout::new(topo, 1).parts, 1);
        assert_eq!(
            Layout::new(topo, 64).parts,
            16,
            "one thread per domain at most"
        );
    }

    /// A partition keeps the sender state of the range of messages it sends from (half of
    /// an all-to-all listed by source, on two threads), every message's receiver state,
    /// and reads a message's sender where its source is.
    #[test]
    fn a_partition_holds_the_senders_of_its_sources() {
        let s = hgx16_a2a();
        let (fabric, workload) = (s.fabric(), s.traffic_workload());
        let n = workload.messages.len();
        let layout = Layout::new(&fabric.topology, 2);
        let mut covered = 0;
        for p in 0..2 {
            let sim = build(fabric, s.net(), &workload, &layout, p);
            assert_eq!(sim.recv.len(), n);
            assert_eq!(sim.send.len(), n / 2, "partition {p}");
            for (i, m) in workload.messages.iter().enumerate() {
                let here = layout.part[layout.region[m.src.0 as usize] as usize] == p;
                let kept =
                    (sim.send_base as usize..sim.send_base as usize + sim.send.len()).contains(&i);
                assert_eq!(here, kept, "message {i} in partition {p}");
                if here {
                    assert_eq!(sim.snd(i as u32).unsent_bytes, m.bytes);
                    covered += 1;
                }
            }
        }
        assert_eq!(covered, n);
        // A drop is one bit a message, seen only for that message.
        let single = Layout::new(&fabric.topology, 1);
        let mut sim = build(fabric, s.net(), &workload, &single, 0);
        assert!(
            sim.dropped.is_empty(),
            "nothing allocated before the first drop"
        );
        let lost = [0, 63, 64, 127, n as u32 - 1];
        for &m in &lost {
            sim.mark_dropped(m);
        }
        for m in 0..n as u32 {
            assert_eq!(sim.is_dropped(m), lost.contains(&m), "message {m}");
        }
        let one = build(fabric, s.net(), &workload, &single, 0);
        assert_eq!((one.send_base, one.send.len()), (0, n));
    }
}
