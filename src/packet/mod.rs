//! The packet level: every packet on every hop is an event.
//!
//! - A GPU's sources (its NIC queue pairs and its NVLink copy engines) serve active messages
//!   round-robin, one packet at a time, on whichever allowed first-hop link is idle. A
//!   message crossing NVLink is cut with the NVLink packetization; one leaving through a NIC
//!   with the NIC's (MTU payload + header bytes).
//! - A link serializes one packet at a time at its rate; the packet then propagates for the
//!   link latency. Store-and-forward: a node sees a packet once its last bit arrived. A
//!   scale-out switch adds its forwarding latency before the packet joins an egress FIFO.
//! - Equal-cost next hops are chosen per [`Routing`] in the scale-out network; NVLink
//!   traffic is always spread over the parallel links and switch chips.
//! - Hop-by-hop backpressure: a node that holds more than a threshold of bytes received on
//!   one link pauses that link's sender until it drains below a lower threshold, the pause
//!   taking the link latency to arrive. Scale-out switches do this with PFC (lossless
//!   mode); NICs and NVSwitch chips always do it with small credit windows. Lossy switches
//!   drop a packet that does not fit its egress buffer.
//! - ECN marks at enqueue (RED on egress depth). Congestion control is a per-message
//!   controller (`cc/`): the receiver's side decides when to return feedback (DCQCN: at
//!   most one CNP per flow per interval), the sender's side reacts to it and to its timer
//!   and paces the source. Feedback is not queued: it reaches the sender after the reverse
//!   path's latency, serialization of a 64 B frame per hop and switch latencies (CNPs
//!   travel at high priority in real deployments).
//!
//! Invariants, asserted at the end of every run: bytes injected = bytes delivered + bytes
//! dropped (+ discarded by go-back-N) = bytes offered − never sent by a failed QP + resent;
//! no packet left in the pool; every message completed unless it was lost (a dropped packet
//! without recovery, or a QP out of retries).
//! A run that stalls with packets held (a PFC/credit cycle) is reported as a [`Deadlock`].
//!
//! Layout: one `Sim` whose `impl` is split by concern. This file holds the event loop, the
//! compute tasks, the sources (`pull_source`) and link service (`start_next`, arrival,
//! delivery); `routing.rs` the next-hop choice, `flow_control.rs` PFC and credit pauses,
//! `gbn.rs` drops and go-back-N, `pxn.rs` relaying, and `cc/` congestion control.

mod cc;
mod flow_control;
mod gbn;
mod link;
mod parallel;
mod pxn;
mod routing;

pub use cc::ReactionPoint;
pub use parallel::simulate_threads;

use crate::engine::{Dur, EventQueue, PastHorizon, SimRng, Time};
use crate::net::{
    Buffers, ComputeResult, CongestionControl, Deadlock, GoBackN, Level, LinkStats, MessageResult,
    MessageSpec, NetError, NetParams, NetRun, Progress, Recovery, Routing, Simulator, TaskRef,
    Tracker, Transport, Wire, Workload, ecmp_pick, message_hash,
};
use crate::topology::{Fabric, LinkClass, LinkId, NodeId, NodeKind, Topology};
use cc::{AnyController, Controller};
use gbn::GbnState;
use link::{Egress, Ingress, LinkCold};
use std::collections::HashMap;

/// Every thing that can happen at the packet level.
#[derive(Clone, Copy, Debug)]
enum Event {
    /// A message becomes ready at its source GPU.
    MessageStart(u32),
    /// `link` finished serializing its current packet, of `wire` bytes, which came in on
    /// `in_link` (NONE at its source) and, leaving a PXN relay's NIC, frees room in relay
    /// GPU `relay`'s buffer (NONE otherwise).
    TxDone {
        link: LinkId,
        in_link: u32,
        wire: u32,
        relay: u32,
    },
    /// Packet `p` sent on `link` is fully received at its far end (past a switch's
    /// latency). The packet rides in its event, not in per-link state: the queue's slots
    /// are read in order, a link's state at random.
    Arrive { link: LinkId, p: Packet },
    /// A pause (`on`) or resume frame from the receiver of `link` reaches its sender.
    Pause { link: LinkId, on: bool },
    /// A paced source on `link` may have become eligible.
    Wake(LinkId),
    /// Congestion-control feedback (a CNP for DCQCN) for message `m` reaches its sender.
    CcFeedback(u32),
    /// The congestion-control timer of message `m` fires.
    CcTimer(u32),
    /// A NAK from the receiver of message `msg` reaches its sender: resend from `psn`.
    Nak { msg: u32, psn: u32 },
    /// The retransmission timer of message `m` fires.
    Rto(u32),
    /// Compute task `c` may run (its dependencies are done): it joins its GPU's stream.
    ComputeReady(u32),
    /// Compute task `c` finishes, unless its finish has moved since (`version`: an SM
    /// hold began or ended while it ran; see `net::Tracker`).
    ComputeDone { c: u32, version: u32 },
}

/// An event with the region (see [`parallel::Layout`]) whose event scheduled it. A time's
/// events run grouped by that region, the regions in an order drawn per time, each region's
/// in the order it scheduled them ([`Sim::order`]): an order that no thread count changes,
/// since a region's events are the same whichever thread runs it.
#[derive(Clone, Copy, Debug)]
struct Stamped {
    region: u32,
    ev: Event,
}

// The event with its arriving packet (28 bytes), its tag and its stamp: 48 bytes a queue
// entry with its key.
const _: () = assert!(std::mem::size_of::<Stamped>() == 40);

/// An event bound for a region another thread runs.
#[derive(Clone, Copy, Debug)]
struct Remote {
    at: Time,
    stamp: Stamped,
}

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Packet {
    msg: u32,
    /// Destination GPU (copied from the message: read at every hop).
    dst: NodeId,
    payload_bytes: u32,
    wire_bytes: u32,
    /// Sequence number within its message (0 for the first packet; resent packets reuse
    /// theirs).
    psn: u32,
    /// Product of the fan-outs of the per-flow round-robin choices it passed so far: its
    /// turn at the next choice is `psn / spread` (the packets of a flow reaching a switch
    /// are every `spread`-th of the flow, so consecutive turns there rotate exactly).
    spread: u16,
    /// The link it arrived on at the node that holds it; NONE at its source.
    in_link: u32,
    ecn: bool,
    /// `dst` is the PXN relay GPU, not the message's destination.
    relayed: bool,
    /// PXN: the relay GPU whose buffer this packet takes, from its source until the relay's
    /// NIC has sent it on; NONE otherwise.
    relay_hold: u32,
}

impl Packet {
    /// A placeholder for unused slots of a link's FIFO.
    const EMPTY: Packet = Packet {
        msg: NONE,
        dst: NodeId(NONE),
        payload_bytes: 0,
        wire_bytes: 0,
        psn: 0,
        spread: 1,
        in_link: NONE,
        ecn: false,
        relayed: false,
        relay_hold: NONE,
    };

    /// Whether it holds room in a PXN relay's buffer until the link it is on has sent it:
    /// it is on its way from the relay's NIC (`TxDone` frees the room).
    #[inline]
    fn holds_relay_until_sent(&self) -> bool {
        self.relay_hold != NONE && !self.relayed
    }
}

/// A message's sender state (1,047,552 messages in `hgx128-a2a`): kept by the partition
/// of its source GPU ([`Sim::send`]), in half a cache line; the receiver's part is
/// [`RecvState`], the congestion controller in [`Sim::cc`] and the rate limiter in
/// [`Sim::limiters`] (both empty where the run has none), a drop in [`Sim::dropped`]; times
/// that may be unset are sentinels rather than `Option`s.
#[repr(C, align(32))]
struct SendState {
    /// When it became ready; [`NOT_YET`] until then (see [`SendState::started`]).
    started: Time,
    unsent_bytes: u64,
    /// The source group it sends from (bits 0-29; [`GROUP_UNSET`] until it starts), whether
    /// `via` is a relay (bit 31: [`RELAYED`]) and whether it stays in its NVLink domain
    /// (bit 30: [`NVLINK`], its packets cut with [`NetParams::nvlink_wire`], else
    /// [`NetParams::nic_wire`]): kept here so that sending a packet reads no more than this.
    group_flags: u32,
    /// Where its packets go first: the PXN relay GPU ([`Fabric::relay`]), else `dst`.
    via: NodeId,
    /// The next PSN to send, and one past the highest PSN ever sent.
    snd_next: u32,
    snd_max: u32,
}

/// A message's receiver state: kept by the partition of its destination GPU
/// ([`Sim::recv`]).
struct RecvState {
    undelivered_bytes: u64,
    /// When its last byte arrived; [`NOT_YET`] until then (see [`RecvState::finished`]).
    finish: Time,
}

// The layout the doc comments above promise: two messages' senders a cache line, four
// receivers (at 1M messages a partition holds 16 MB of receivers and its own sources'
// senders, 32 MB for all of them on one thread). The ECMP hash is recomputed where needed
// ([`message_hash`], two multiplications) and a control frame's return latency lives in
// [`Sim::reverse`], only for runs that send control frames.
const _: () = assert!(std::mem::size_of::<SendState>() == 32);
const _: () = assert!(std::mem::align_of::<SendState>() == 32);
const _: () = assert!(std::mem::size_of::<RecvState>() == 16);

/// [`SendState::group_flags`]: a message not started has no group yet.
const GROUP_UNSET: u32 = (1 << 30) - 1;
const NVLINK: u32 = 1 << 30;
const RELAYED: u32 = 1 << 31;

/// An unset [`SendState::started`] or [`RecvState::finish`] (events lie below
/// [`Time::HORIZON`]).
const NOT_YET: Time = Time::MAX;
/// A return latency not computed yet ([`Sim::reverse`]).
const NO_DELAY_YET: Dur = Dur::from_ps(u64::MAX);

impl SendState {
    fn started(&self) -> Option<Time> {
        (self.started != NOT_YET).then_some(self.started)
    }
    fn group(&self) -> usize {
        (self.group_flags & GROUP_UNSET) as usize
    }
    fn set_group(&mut self, g: u32) {
        assert!(
            g < GROUP_UNSET,
            "more source groups than a message can name"
        );
        self.group_flags = self.group_flags & !GROUP_UNSET | g;
    }
    fn relayed(&self) -> bool {
        self.group_flags & RELAYED != 0
    }
    /// How its packets are cut.
    #[inline]
    fn wire(&self, params: &NetParams) -> Wire {
        if self.group_flags & NVLINK != 0 {
            params.nvlink_wire
        } else {
            params.nic_wire
        }
    }
}

impl RecvState {
    fn finished(&self) -> Option<Time> {
        (self.finish != NOT_YET).then_some(self.finish)
    }
}

/// The packet level's event queue slots: 2^10 ps, about 1 ns ([`EventQueue::calendar`]).
const QUEUE_SLOT_LOG2: u32 = 10;

/// Hot state above which the prefetch pass routes arrivals ahead ([`Sim::lookahead`]):
/// chosen, not tuned, as larger than a core's second-level cache and a share of the last
/// level on the machines this runs on. Measured (user time, interleaved runs, 2-core
/// build machine): on `hgx128-a2a` at 16 and 32 KiB per pair (73 MB of it) the
/// lookups ahead cut 6-8 % and 3-5 %; on `hgx16-a2a-dcqcn` (1.7 MB, all in cache) they
/// cost 4-8 %, so below this they are not made.
const LOOKAHEAD_BYTES: u64 = 8 << 20;

/// More events than any one time needs once the first moment of a large run is past
/// ([`Sim::run_until`]).
const BIG_BATCH: usize = 1 << 16;

/// Hints that the `len` bytes at `p` will be read soon (a no-op off x86-64).
#[inline(always)]
fn prefetch_lines(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // Every line the bytes touch: from the start of `p`'s line to past the last byte.
        let start = p.wrapping_sub(p as usize % 64);
        let span = p as usize % 64 + len;
        let mut off = 0;
        while off < span {
            // SAFETY: a prefetch is a hint: it never faults and changes no state, whatever
            // the address (`wrapping_add` keeps the pointer arithmetic defined).
            unsafe { _mm_prefetch(start.wrapping_add(off) as *const i8, _MM_HINT_T0) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

/// The packet level as a [`Simulator`].
pub struct PacketLevel;

impl Simulator for PacketLevel {
    fn level(&self) -> Level {
        Level::Packet
    }
    fn simulate(
        &self,
        fabric: &Fabric,
        params: &NetParams,
        workload: &Workload,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<NetRun, NetError> {
        simulate_threads(
            fabric,
            params,
            workload,
            crate::net::packet_threads(),
            progress,
        )
    }
}

/// Simulates independent `messages` on `fabric` until every message completes, is lost, or
/// the run deadlocks or passes [`Time::HORIZON`]. `progress` is called now and then with
/// how far the run has come.
pub fn simulate(
    fabric: &Fabric,
    params: &NetParams,
    messages: &[MessageSpec],
    progress: &mut dyn FnMut(Progress),
) -> Result<NetRun, NetError> {
    simulate_workload(
        fabric,
        params,
        &Workload::from_messages(messages.to_vec()),
        progress,
    )
}

/// Simulates a workload: messages through the fabric and compute tasks on the GPUs'
/// streams, each starting once the tasks it waits for are done. One thread; the result is
/// the same with any number ([`simulate_threads`]).
pub fn simulate_workload(
    fabric: &Fabric,
    params: &NetParams,
    workload: &Workload,
    progress: &mut dyn FnMut(Progress),
) -> Result<NetRun, NetError> {
    simulate_threads(fabric, params, workload, 1, progress)
}

/// The state of partition `part` of `layout`: every message's and link's state (a partition
/// touches only those of its own regions), events only for its own regions' tasks.
fn build<'a>(
    fabric: &'a Fabric,
    params: &'a NetParams,
    workload: &'a Workload,
    layout: &'a parallel::Layout,
    part: u32,
) -> Sim<'a> {
    let messages = &workload.messages[..];
    let topo = &fabric.topology;
    let links = topo.links();
    let to_switch = |l: &crate::topology::Link| topo.kind(l.to) == NodeKind::Switch;
    let delay = |l: &crate::topology::Link| {
        if to_switch(l) {
            l.latency + params.switch.latency
        } else {
            l.latency
        }
    };
    let egress = links.iter().map(|l| Egress::new(delay(l))).collect();
    let ingress = links
        .iter()
        .map(|l| Ingress {
            to: l.to,
            to_switch: to_switch(l),
            held_bytes: 0,
            peak_held_bytes: 0,
            pause: match topo.kind(l.to) {
                NodeKind::Gpu => None,
                NodeKind::Nic | NodeKind::NvSwitch => {
                    // The window covers the pause round trip at line rate plus the
                    // configured packets, so credits alone never idle an uncongested link.
                    let bdp = (2 * l.latency.as_ps() as u128 * l.rate.bps() as u128)
                        .div_ceil(8 * crate::engine::PS_PER_S as u128)
                        as u64;
                    let xoff = bdp + params.credit_bytes;
                    Some((xoff, xoff / 2))
                }
                NodeKind::Switch => match params.switch.buffers {
                    Buffers::Lossless { pfc, .. } => Some((pfc.xoff_bytes, pfc.xon_bytes)),
                    Buffers::Unbounded | Buffers::Lossy { .. } => None,
                },
            },
            pause_sent: false,
        })
        .collect();
    let cold = links
        .iter()
        .map(|l| LinkCold::new(l.rate, delay(l)))
        .collect();
    let link_regions = links
        .iter()
        .map(|l| {
            (
                layout.region[l.from.0 as usize],
                layout.region[l.to.0 as usize],
            )
        })
        .collect();
    // NVLink striping counters: a row per node with NVLink out-links (see `Sim::stripe`).
    let stripe_width = fabric.spec.gpus_per_node as usize;
    let mut stripe_rows = 0;
    let stripe_row: Vec<u32> = (0..topo.nodes() as u32)
        .map(|n| {
            let nvlink = topo
                .out_links(NodeId(n))
                .iter()
                .any(|&l| topo.link(l).class == LinkClass::NvLink);
            if nvlink {
                stripe_rows += 1;
                stripe_rows as u32 - 1
            } else {
                NONE
            }
        })
        .collect();
    let mut sim = Sim {
        topo,
        params,
        specs: messages,
        workload,
        tracker: Tracker::new(workload, topo.gpus()),
        computes: ComputeResult::unstarted(workload),
        // Packet events fall a serialization time and a latency ahead: 1 ns slots.
        queue: EventQueue::calendar(QUEUE_SLOT_LOG2),
        egress,
        ingress,
        cold,
        link_regions,
        groups: Vec::new(),
        group_index: HashMap::new(),
        send: Vec::new(),
        send_base: 0,
        recv: Vec::with_capacity(messages.len()),
        limiters: if workload.limiters().is_empty() {
            Vec::new()
        } else {
            (0..messages.len() as u32)
                .map(|m| workload.limiter_of(m).unwrap_or(NONE))
                .collect()
        },
        dropped: Vec::new(),
        reverse: Vec::new(),
        initial: Initial::InOrder { next: usize::MAX },
        initial_done: 0,
        initial_slicing: None,
        cc: Vec::new(),
        spray: vec![0; topo.nodes()],
        stripe: vec![0; stripe_rows * stripe_width],
        stripe_row,
        stripe_width,
        ecn_rng: if params.switch.ecn.is_some() {
            (0..layout.regions)
                .map(|r| parallel::ecn_stream(params.seed, r))
                .collect()
        } else {
            Vec::new()
        },
        layout,
        part,
        cur: 0,
        lookahead: (links.len() as u64 * 128 + messages.len() as u64 * 64) > LOOKAHEAD_BYTES,
        batch: Vec::new(),
        scratch: Vec::new(),
        tally: vec![0; layout.regions as usize],
        touched: Vec::new(),
        first_creator: vec![(0, 0); layout.regions as usize],
        generation: 0,
        outbox: vec![Vec::new(); layout.parts as usize],
        end: Time::ZERO,
        packets: 0,
        packet_hops: 0,
        bytes_injected: 0,
        bytes_delivered: 0,
        bytes_dropped: 0,
        bytes_abandoned: 0,
        relay_used: vec![0; topo.nodes()],
        relay_waiters: vec![Vec::new(); topo.nodes()],
        relay_peak_bytes: 0,
        cnps: 0,
        lossless_overflow_bytes: 0,
        recovery: Recovery::default(),
        gbn_params: match params.transport {
            Transport::GoBackN(g) => g,
            Transport::Unreliable => GoBackN::default(),
        },
        gbn: Vec::new(),
        limiter_next: vec![Time::ZERO; workload.limiters().len()],
    };
    if matches!(params.switch.buffers, Buffers::Lossy { .. })
        && matches!(params.transport, Transport::GoBackN(_))
    {
        sim.gbn = messages
            .iter()
            .map(|m| (!fabric.same_domain(m.src, m.dst)).then(GbnState::new))
            .collect();
    }
    // The messages this partition sends lie in one range of message numbers.
    let mine = |m: &MessageSpec| layout.part[layout.region[m.src.0 as usize] as usize] == part;
    let first = messages.iter().position(mine).unwrap_or(0);
    let end = messages.iter().rposition(mine).map_or(first, |i| i + 1);
    sim.send_base = first as u32;
    sim.send.reserve_exact(end - first);
    for (i, m) in messages.iter().enumerate() {
        assert!(m.src != m.dst && m.bytes > 0, "validated by config");
        let nvlink = fabric.same_domain(m.src, m.dst);
        if !matches!(params.congestion_control, CongestionControl::None) {
            let line = (!nvlink)
                .then(|| fabric.spec.nic.as_ref().map(|n| n.rate))
                .flatten();
            sim.cc
                .push(AnyController::new(&params.congestion_control, line));
        }
        sim.recv.push(RecvState {
            undelivered_bytes: m.bytes,
            finish: NOT_YET,
        });
        if (first..end).contains(&i) {
            let relay = fabric.relay(m.src, m.dst);
            let mut group_flags = GROUP_UNSET;
            if nvlink {
                group_flags |= NVLINK;
            }
            if relay.is_some() {
                group_flags |= RELAYED;
            }
            sim.send.push(SendState {
                started: NOT_YET,
                unsent_bytes: m.bytes,
                group_flags,
                via: relay.unwrap_or(m.dst),
                snd_next: 0,
                snd_max: 0,
            });
        }
    }
    sim.initial = Initial::new(&sim);
    sim
}

/// The tasks ready from the start (no prerequisites) that this partition runs, handed to
/// the run in (time, task) order as they come due rather than queued at the start: a
/// million messages starting together would hold 25-40 MB of queue and batch at once.
/// [`Sim::next_batch`] gives them the place the queue would (before any event scheduled
/// during the run at the same time) and, when nothing else is due then, hands them over a
/// slice at a time ([`INITIAL_SLICE`]).
enum Initial {
    /// Their ready times never decrease in task order: a cursor over the tasks.
    InOrder { next: usize },
    /// Otherwise sorted by ready time, stably.
    Sorted { tasks: Vec<TaskRef>, next: usize },
}

/// How many initial tasks [`Sim::next_batch`] hands over at a time when nothing else is
/// due with them.
const INITIAL_SLICE: usize = 4096;

impl Initial {
    fn new(sim: &Sim) -> Initial {
        let mut last = Time::ZERO;
        let mut in_order = true;
        let w = sim.workload;
        for t in w.tasks().filter(|&t| sim.initial_here(t)) {
            let at = sim.tracker.ready_at(t, Time::ZERO);
            in_order &= at >= last;
            last = at;
        }
        if in_order {
            return Initial::InOrder { next: 0 };
        }
        let mut tasks: Vec<TaskRef> = w.tasks().filter(|&t| sim.initial_here(t)).collect();
        tasks.sort_by_key(|&t| sim.tracker.ready_at(t, Time::ZERO));
        Initial::Sorted { tasks, next: 0 }
    }
}

/// Active messages that may leave a GPU on the same set of first-hop links.
struct Group {
    msgs: Vec<u32>,
    links: Vec<LinkId>,
}

struct Sim<'a> {
    topo: &'a Topology,
    params: &'a NetParams,
    specs: &'a [MessageSpec],
    workload: &'a Workload,
    tracker: Tracker<'a>,
    computes: Vec<ComputeResult>,
    queue: EventQueue<Stamped>,
    /// Per link, its state by what touches it ([`link`]), and the regions
    /// ([`parallel::Layout`]) of its sender and receiver.
    egress: Vec<Egress>,
    ingress: Vec<Ingress>,
    cold: Vec<LinkCold>,
    link_regions: Vec<(u32, u32)>,
    groups: Vec<Group>,
    group_index: HashMap<Vec<LinkId>, u32>,
    /// The sender state of the messages from `send_base` on, over the range of those whose
    /// source is in this partition (all of them on one thread; a partition's share where
    /// messages are listed by source, as the traffic patterns list them).
    send: Vec<SendState>,
    send_base: u32,
    /// Every message's receiver state (read only where its destination is).
    recv: Vec<RecvState>,
    /// Per message, the workload's rate limiter it shares ([`Workload::limit`]) or `NONE`;
    /// empty where the workload has none.
    limiters: Vec<u32>,
    /// Messages this partition saw lose a packet (a switch dropped it where nothing resends
    /// it, or the sender's QP ran out of retries), one bit each; empty until the first.
    dropped: Vec<u64>,
    /// Tasks ready from the start not handed over yet, how many were, and the time whose
    /// initial tasks are being handed over a slice at a time.
    initial: Initial,
    initial_done: u64,
    initial_slicing: Option<Time>,
    /// Per message, the latency of a control frame (CNP, NAK, ACK) from its destination
    /// back to its source, computed on first use ([`NO_DELAY_YET`] until then); empty
    /// until a run sends its first control frame.
    reverse: Vec<Dur>,
    /// Per message its congestion controller, where congestion control is on; empty when
    /// it is off (no message has one).
    cc: Vec<AnyController<'a>>,
    /// Per node, a counter of spraying decisions in the scale-out network. Each decision
    /// is a seeded pseudo-random pick from (node, counter), as oblivious packet spraying
    /// does: a plain rotation locks onto periodic arrivals (eight flows arriving in turn at
    /// a leaf would each always get the same spine).
    spray: Vec<u32>,
    /// NVLink striping: per (node, destination GPU), the next of the parallel links toward
    /// that GPU, so every packet bound for it, whatever its source, takes the next link in
    /// turn (exact striping; random picks would queue and lose throughput the hardware does
    /// not lose: a pairwise copy reaches 396 GB/s of 450). Only nodes with NVLink out-links
    /// (GPUs and switch chips of an NVLink domain) stripe, and only toward GPUs of their own
    /// domain: node `at`'s counters are row `stripe_row[at]`, one per GPU of a domain, at
    /// `dst % stripe_width` (a domain's GPUs are consecutive: `topology::build`). 8,192 GPUs
    /// in HGX servers take 98 k counters, not the 140 M of a nodes x GPUs table.
    stripe: Vec<u32>,
    stripe_row: Vec<u32>,
    stripe_width: usize,
    /// Per region, the stream of ECN marking draws at its switches (empty without ECN).
    ecn_rng: Vec<SimRng>,
    /// Which region each node is in and which partition runs each region; this is
    /// partition `part`.
    layout: &'a parallel::Layout,
    part: u32,
    /// The region whose event is being handled: it stamps the events scheduled now.
    cur: u32,
    /// Whether the state a hop touches (two lines a link, one a message) is larger than
    /// [`LOOKAHEAD_BYTES`]: then [`Sim::prefetch`] looks arrivals' next links up ahead.
    lookahead: bool,
    /// The events of the current time, and room to order them ([`Sim::order`]): a count,
    /// then an offset, per region (zero between uses), and the regions seen with their
    /// draws.
    batch: Vec<Stamped>,
    scratch: Vec<Stamped>,
    tally: Vec<u32>,
    touched: Vec<(u64, u32)>,
    /// Per handling region, the first creating region seen in the current time's events
    /// ([`Sim::mixed`]), valid where its generation is the current one.
    first_creator: Vec<(u64, u32)>,
    generation: u64,
    /// Per partition, events for its regions scheduled here since the last exchange.
    outbox: Vec<Vec<Remote>>,
    /// When the last event that did something happened (the run's end, with the other
    /// partitions').
    end: Time,
    packets: u64,
    packet_hops: u64,
    bytes_injected: u64,
    bytes_delivered: u64,
    bytes_dropped: u64,
    /// Payload a failed QP never sent (`fail_qp`).
    bytes_abandoned: u64,
    /// PXN, per relay GPU: bytes it holds for relaying (`Packet::relay_hold`), the links
    /// waiting for it to have room, and the peak over the run.
    relay_used: Vec<u64>,
    relay_waiters: Vec<Vec<u32>>,
    relay_peak_bytes: u64,
    cnps: u64,
    lossless_overflow_bytes: u64,
    recovery: Recovery,
    /// Go-back-N parameters, and per message its state where it recovers by go-back-N
    /// (NIC messages through lossy switches); empty when no message does.
    gbn_params: GoBackN,
    gbn: Vec<Option<GbnState>>,
    /// Per rate limiter of the workload, when it next lets a packet go: each packet sent
    /// under it pushes this on by its payload at the limiter's rate.
    limiter_next: Vec<Time>,
}

impl Sim<'_> {
    /// Message `m`'s sender state: only where its source is.
    #[inline(always)]
    fn snd(&self, m: u32) -> &SendState {
        &self.send[(m - self.send_base) as usize]
    }

    #[inline(always)]
    fn snd_mut(&mut self, m: u32) -> &mut SendState {
        &mut self.send[(m - self.send_base) as usize]
    }

    /// The rate limiter message `m` shares, or `NONE`.
    #[inline(always)]
    fn limiter(&self, m: u32) -> u32 {
        self.limiters.get(m as usize).copied().unwrap_or(NONE)
    }

    fn mark_dropped(&mut self, m: u32) {
        if self.dropped.is_empty() {
            self.dropped = vec![0; self.specs.len().div_ceil(64)];
        }
        self.dropped[m as usize / 64] |= 1 << (m % 64);
    }

    fn is_dropped(&self, m: u32) -> bool {
        self.dropped
            .get(m as usize / 64)
            .is_some_and(|w| w & 1 << (m % 64) != 0)
    }

    /// The region that handles `ev`: a link's sender for what happens at its sender, its
    /// receiver for an arrival, a message's source GPU for its sender's events, a compute
    /// task's GPU.
    #[inline(always)]
    fn owner(&self, ev: &Event) -> u32 {
        match *ev {
            Event::TxDone { link: l, .. } | Event::Wake(l) | Event::Pause { link: l, .. } => {
                self.link_regions[l.0 as usize].0
            }
            Event::Arrive { link, .. } => self.link_regions[link.0 as usize].1,
            Event::MessageStart(m)
            | Event::CcFeedback(m)
            | Event::CcTimer(m)
            | Event::Nak { msg: m, .. }
            | Event::Rto(m) => self.layout.region[self.specs[m as usize].src.0 as usize],
            Event::ComputeReady(c) | Event::ComputeDone { c, .. } => {
                self.layout.region[self.workload.computes[c as usize].gpu.0 as usize]
            }
        }
    }

    /// Whether task `t` is ready from the start and this partition's.
    fn initial_here(&self, t: TaskRef) -> bool {
        self.workload.after(t).is_empty()
            && self.layout.part[self.task_region(t) as usize] == self.part
    }

    /// The next initial task not handed over yet ([`Initial`]), and when it is ready.
    fn initial_peek(&mut self) -> Option<(Time, TaskRef)> {
        let t = match self.initial {
            Initial::InOrder { mut next } => {
                let n = self.workload.messages.len() + self.workload.computes.len();
                while next < n && !self.initial_here(self.workload.task_at(next)) {
                    next += 1;
                }
                self.initial = Initial::InOrder { next };
                (next < n).then(|| self.workload.task_at(next))?
            }
            Initial::Sorted { ref tasks, next } => *tasks.get(next)?,
        };
        Some((self.tracker.ready_at(t, Time::ZERO), t))
    }

    fn initial_advance(&mut self) {
        match &mut self.initial {
            Initial::InOrder { next } | Initial::Sorted { next, .. } => *next += 1,
        }
    }

    /// The time of the next event or initial task, if any.
    fn next_time(&mut self) -> Option<Time> {
        let q = self.queue.peek_time();
        match (self.initial_peek(), q) {
            (Some((t, _)), Some(q)) => Some(t.min(q)),
            (Some((t, _)), None) => Some(t),
            (None, q) => q,
        }
    }

    /// Events handled and initial tasks handed over.
    fn events_processed(&self) -> u64 {
        self.queue.stats().processed + self.initial_done
    }

    /// Fills `batch` with the events of the earliest time before `limit` and returns that
    /// time. Initial tasks ready then come first, as if queued before the run began. When
    /// no queued event shares their time, they come a slice at a time: events of one
    /// region each (a task's own), so no slice needs the order of another, and what they
    /// schedule for the same time waits, as in the queue, until the last slice is done.
    fn next_batch(&mut self, limit: Time, batch: &mut Vec<Stamped>) -> Option<Time> {
        debug_assert!(batch.is_empty());
        if let Some((t0, _)) = self.initial_peek().filter(|&(t, _)| t < limit) {
            let q = self.queue.peek_time();
            if q.is_none_or(|q| t0 <= q) {
                // Queued events at `t0` join this batch, after the initial tasks; then the
                // initial tasks come whole (the order of a time's events is decided over
                // all of them, [`Sim::order`]), and they must not be split from them.
                let queued_too = q == Some(t0) && self.initial_slicing != Some(t0);
                let mut n = 0;
                while let Some((t, task)) = self.initial_peek() {
                    if t != t0 || (!queued_too && n == INITIAL_SLICE) {
                        break;
                    }
                    self.initial_advance();
                    let region = self.task_region(task);
                    batch.push(Stamped {
                        region,
                        ev: match task {
                            TaskRef::Message(m) => Event::MessageStart(m),
                            TaskRef::Compute(c) => Event::ComputeReady(c),
                        },
                    });
                    n += 1;
                }
                self.initial_done += n as u64;
                if queued_too {
                    self.queue.pop_ties(limit, batch);
                    self.initial_slicing = None;
                } else {
                    // Further slices at `t0` come before what these schedule for `t0`.
                    self.initial_slicing = Some(t0);
                }
                return Some(t0);
            }
        }
        self.initial_slicing = None;
        self.queue.pop_ties(limit, batch)
    }

    /// The region a task runs in: a message's source GPU, a compute task's GPU.
    fn task_region(&self, t: TaskRef) -> u32 {
        let gpu = match t {
            TaskRef::Message(m) => self.specs[m as usize].src,
            TaskRef::Compute(c) => self.workload.computes[c as usize].gpu,
        };
        self.layout.region[gpu.0 as usize]
    }

    /// Schedules `ev` at `at`, stamped by the current region; an event for a region of
    /// another partition goes to its outbox.
    #[inline(always)]
    fn post(&mut self, at: Time, ev: Event) {
        let stamp = Stamped {
            region: self.cur,
            ev,
        };
        let to = if self.layout.parts == 1 {
            0
        } else {
            self.layout.part[self.owner(&ev) as usize]
        };
        if to == self.part {
            self.queue.schedule_at(at, stamp);
            return;
        }
        self.outbox[to as usize].push(Remote { at, stamp });
    }

    /// Takes in an event another partition scheduled for one of this one's regions.
    fn receive(&mut self, r: Remote) {
        self.queue.schedule_at(r.at, r.stamp);
    }

    /// Runs every event before `limit`, a time's events in stamp order. Calls `progress`
    /// each time about 2^20 more events are done.
    fn run_until(
        &mut self,
        limit: Time,
        progress: &mut dyn FnMut(&Self, Time),
    ) -> Result<(), PastHorizon> {
        let mut batch = std::mem::take(&mut self.batch);
        while let Some(now) = self.next_batch(limit, &mut batch) {
            // Times saturate rather than wrap (engine/time.rs): anything at or past the
            // horizon is a run that cannot fit, never a result.
            PastHorizon::check(now)?;
            let before = self.events_processed() - batch.len() as u64;
            self.order(now, &mut batch);
            self.prefetch(&batch);
            // By reference: a copy of each event onto the stack, read back at once in
            // pieces of other widths, stalled on store forwarding (perf: a tenth of the
            // samples at 1,024 GPUs).
            for s in &batch {
                self.dispatch(now, s);
            }
            batch.clear();
            // A time with a great many events (a million messages starting together) leaves
            // allocations that no later time needs: give them back.
            if batch.capacity() > BIG_BATCH {
                batch = Vec::new();
                self.scratch = Vec::new();
            }
            if (before >> 20) != (self.events_processed() >> 20) {
                progress(self, now);
            }
        }
        self.batch = batch;
        Ok(())
    }

    /// Asks the memory system for the link state `batch`'s events will touch, all at once,
    /// before handling them one by one: at 1,024 GPUs a hop's link state is rarely in the
    /// nearer caches (tens of thousands of links are served between two packets of one),
    /// and loads that wait one after another cost more than loads overlapped. A departure
    /// touches its link's sender side and the receiver side of the link its packet came
    /// on; an arrival the receiver side of its link, and on large fabrics (a second pass,
    /// [`Sim::lookahead`]) the sender side of the link it leaves on.
    #[inline]
    fn prefetch(&self, batch: &[Stamped]) {
        if batch.len() < 2 {
            return;
        }
        let line = |p: *const u8| prefetch_lines(p, 64);
        for s in batch {
            match s.ev {
                Event::TxDone { link, in_link, .. } => {
                    line(&self.egress[link.0 as usize] as *const Egress as *const u8);
                    if let Some(i) = self.ingress.get(in_link as usize) {
                        line(i as *const Ingress as *const u8);
                    }
                }
                Event::Arrive { link, .. } => {
                    line(&self.ingress[link.0 as usize] as *const Ingress as *const u8);
                }
                _ => {}
            }
        }
        // Then (the lines above come in meanwhile) the packet a departure sends next; for an
        // arrival, the link it leaves on when it has one next link (the route looked up
        // here too: the lookups of the batch's arrivals overlap), else, at its destination,
        // its message.
        for s in batch {
            match s.ev {
                Event::TxDone { link, .. } => {
                    if let Some(p) = self.egress[link.0 as usize].fifo.front() {
                        prefetch_lines(
                            p as *const Packet as *const u8,
                            std::mem::size_of::<Packet>(),
                        );
                    }
                }
                Event::Arrive { link, p } if self.lookahead => {
                    let at = self.ingress[link.0 as usize].to;
                    if at == p.dst {
                        if let Some(m) = self.recv.get(p.msg as usize) {
                            line(m as *const RecvState as *const u8);
                        }
                    } else if let &[next] = self.topo.next_hops(at, p.dst) {
                        line(&self.egress[next.0 as usize] as *const Egress as *const u8);
                    }
                }
                _ => {}
            }
        }
    }

    /// Puts the events of time `now` in their order: by creating region, the regions in an
    /// order drawn afresh for each time (a hash of the time and the region), each region's
    /// events in the order it created them. It depends on nothing but the stamps, so a
    /// region's events, and so its state, are the same whichever partition runs it. The
    /// draw is arbitration among simultaneous arrivals: a fixed priority (lowest region
    /// first) would let the same sender win a full queue's free slot at every packet time of
    /// a lockstep incast and starve the others through round after round of timeouts.
    /// Each region's events in creation order, not just in some order per handling region:
    /// a link without latency (validation's ideal wires) makes a packet's `TxDone` and its
    /// `Arrive` simultaneous in two regions, and both read its slot.
    ///
    /// A region's events come out of the queue in the order it created them (the queue is
    /// FIFO among equal times, and events from another partition are handed over in
    /// order), so a stable grouping by region does it: a counting sort.
    ///
    /// Events handled by different regions touch different state, so only their order
    /// within each handling region matters: when no region handles events of two creating
    /// regions at this time, the queue's order (each creator's in creation order) is as
    /// good, and the sort is skipped.
    fn order(&mut self, now: Time, batch: &mut Vec<Stamped>) {
        let n = batch.len();
        let region = |s: &Stamped| s.region;
        if n < 2 || !self.mixed(batch) {
            return;
        }
        // `tally` is all zeros between calls.
        self.touched.clear();
        for s in batch.iter() {
            let r = region(s);
            let c = &mut self.tally[r as usize];
            if *c == 0 {
                self.touched.push((0, r));
            }
            *c += 1;
        }
        let t = now.as_ps().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for (key, r) in &mut self.touched {
            *key = crate::net::mix(t ^ *r as u64);
        }
        self.touched.sort_unstable();
        let mut at = 0;
        for &(_, r) in &self.touched {
            at += std::mem::replace(&mut self.tally[r as usize], at);
        }
        self.scratch.clear();
        self.scratch.resize(n, batch[0]);
        for s in batch.iter() {
            let slot = &mut self.tally[region(s) as usize];
            self.scratch[*slot as usize] = *s;
            *slot += 1;
        }
        std::mem::swap(batch, &mut self.scratch);
        for &(_, r) in &self.touched {
            self.tally[r as usize] = 0;
        }
    }

    /// Whether some region handles events of two creating regions in `batch`.
    fn mixed(&mut self, batch: &[Stamped]) -> bool {
        self.generation += 1;
        let generation = self.generation;
        for s in batch {
            let o = self.owner(&s.ev) as usize;
            let seen = &mut self.first_creator[o];
            if seen.0 != generation {
                *seen = (generation, s.region);
            } else if seen.1 != s.region {
                return true;
            }
        }
        false
    }

    /// Handles one event; the run ends at its last event, not counting retransmission
    /// timers that find their message complete or stale compute finishes.
    #[inline]
    fn dispatch(&mut self, now: Time, s: &Stamped) {
        self.cur = self.owner(&s.ev);
        let mut acted = true;
        match s.ev {
            Event::MessageStart(m) => self.on_message_start(now, m),
            Event::TxDone {
                link,
                in_link,
                wire,
                relay,
            } => self.on_tx_done(now, link, in_link, wire, relay),
            Event::Arrive { link, ref p } => self.on_arrive(now, link, p),
            Event::Pause { link, on } => self.on_pause(now, link, on),
            Event::Wake(l) => self.on_wake(now, l),
            Event::CcFeedback(m) => self.on_cc_feedback(now, m),
            Event::CcTimer(m) => self.on_cc_timer(now, m),
            Event::Nak { msg, psn } => self.on_nak(now, msg, psn),
            Event::Rto(m) => acted = self.on_rto(now, m),
            Event::ComputeReady(c) => self.on_compute_ready(now, c),
            Event::ComputeDone { c, version } => acted = self.on_compute_done(now, c, version),
        }
        if acted {
            self.end = now;
        }
    }

    /// Schedules a task whose prerequisites are all done, not before its own start time.
    fn make_ready(&mut self, now: Time, t: TaskRef) {
        let at = self.tracker.ready_at(t, now);
        match t {
            TaskRef::Message(m) => self.post(at, Event::MessageStart(m)),
            TaskRef::Compute(c) => self.post(at, Event::ComputeReady(c)),
        }
    }

    /// Task `t` finished: release the tasks that waited only for it.
    fn complete(&mut self, now: Time, t: TaskRef) {
        for d in self.tracker.complete(t) {
            self.make_ready(now, d);
        }
    }

    fn on_compute_ready(&mut self, now: Time, c: u32) {
        if let Some(c) = self.tracker.compute_ready(c) {
            self.start_compute(now, c);
        }
    }

    fn start_compute(&mut self, now: Time, c: u32) {
        self.computes[c as usize].start = Some(now);
        let finishes = self.tracker.started(c, now);
        self.schedule_finishes(finishes);
    }

    fn schedule_finishes(&mut self, finishes: Vec<crate::net::Finish>) {
        for (c, at, version) in finishes {
            self.post(at, Event::ComputeDone { c, version });
        }
    }

    /// Returns whether the event was current (a moved finish leaves a stale one).
    fn on_compute_done(&mut self, now: Time, c: u32, version: u32) -> bool {
        if !self.tracker.is_current(c, version) {
            return false;
        }
        self.computes[c as usize].finish = Some(now);
        let finishes = self.tracker.finished(c, now);
        self.schedule_finishes(finishes);
        if let Some(next) = self.tracker.compute_done(c) {
            self.start_compute(now, next);
        }
        self.complete(now, TaskRef::Compute(c));
        true
    }

    fn on_message_start(&mut self, now: Time, m: u32) {
        self.snd_mut(m).started = now;
        let spec = &self.specs[m as usize];
        let hops = self.topo.next_hops(spec.src, self.snd(m).via);
        debug_assert!(!hops.is_empty(), "routes exist between all GPU pairs");
        let spread = self.topo.link(hops[0]).class == LinkClass::NvLink
            || self.params.routing != Routing::Ecmp;
        let set: Vec<LinkId> = if spread {
            hops.to_vec()
        } else {
            let hash = message_hash(self.params.seed, m);
            vec![hops[ecmp_pick(hash, spec.src, hops.len())]]
        };
        let g = match self.group_index.get(&set) {
            Some(&g) => g,
            None => {
                let g = self.groups.len() as u32;
                self.groups.push(Group {
                    msgs: Vec::new(),
                    links: set.clone(),
                });
                // Each link of a multi-link (NVLink) group starts its round-robin at its
                // own position, so the links pull different messages and every message is
                // spread over all of them, as NVLink stripes a transfer by address.
                for (k, &l) in set.iter().enumerate() {
                    let c = &mut self.cold[l.0 as usize];
                    c.groups.push(g);
                    c.msg_cursor.push(k);
                }
                self.group_index.insert(set.clone(), g);
                g
            }
        };
        self.groups[g as usize].msgs.push(m);
        self.snd_mut(m).set_group(g);
        self.gbn_start(now, m);
        for &l in &set {
            self.start_next(now, l);
        }
    }

    /// Link `l` has sent its packet of `wire` bytes: the node it left frees its room
    /// (the ingress buffer of `in_link`, or a PXN relay's), and the link sends its next.
    fn on_tx_done(&mut self, now: Time, l: LinkId, in_link: u32, wire: u32, relay: u32) {
        self.egress[l.0 as usize].busy = false;
        if relay != NONE {
            // It has left the relay's NIC: its room there is free again.
            self.release_relay(now, relay, wire as u64);
        }
        if in_link != NONE {
            self.release_held(now, LinkId(in_link), wire as u64);
        }
        self.start_next(now, l);
    }

    fn on_arrive(&mut self, now: Time, l: LinkId, p: &Packet) {
        let mut p = *p;
        let ing = &self.ingress[l.0 as usize];
        let at = ing.to;
        let to_switch = ing.to_switch;
        let dst = p.dst;
        if at == dst {
            if p.relayed {
                self.relay(now, at, p);
            } else {
                self.deliver(now, p);
            }
            return;
        }
        // Hold it here, accounted against the link it came on.
        p.in_link = l.0;
        self.hold(now, l, p.wire_bytes as u64);
        let next = self.choose(at, dst, &mut p);
        if to_switch {
            let q = self.egress[next.0 as usize].fifo_bytes;
            if let Buffers::Lossy { egress_bytes } = self.params.switch.buffers
                && q + p.wire_bytes as u64 > egress_bytes
            {
                self.drop_packet(now, next, p);
                return;
            }
            if let Some(ecn) = &self.params.switch.ecn {
                let prob = ecn.mark_probability(q);
                if prob > 0.0 && (prob >= 1.0 || self.ecn_rng[self.cur as usize].unit_f64() < prob)
                {
                    p.ecn = true;
                    self.cold[next.0 as usize].stats.ecn_marks += 1;
                }
            }
        }
        self.forward(now, next, p);
    }

    /// Puts `p` at the back of link `l`'s FIFO and starts the link if it is idle. A packet
    /// that would be queued and taken out at once (an idle link with nothing queued: most
    /// hops of an uncongested fabric) goes straight on: a write to the FIFO's memory,
    /// rarely in the nearer caches at 1,024 GPUs, was an eighth of the hot loop's time.
    #[inline]
    fn forward(&mut self, now: Time, l: LinkId, p: Packet) {
        let e = &mut self.egress[l.0 as usize];
        let wire = p.wire_bytes as u64;
        if e.fifo.is_empty() && !e.busy && !e.paused {
            // As if queued: the peak counts it.
            e.peak_queue_bytes = e.peak_queue_bytes.max(wire);
            self.send(now, l, p);
            return;
        }
        e.fifo.push_back(p);
        e.fifo_bytes += wire;
        e.peak_queue_bytes = e.peak_queue_bytes.max(e.fifo_bytes);
        self.start_next(now, l);
    }

    fn deliver(&mut self, now: Time, p: Packet) {
        let m = p.msg as usize;
        self.cc_receive(now, m, p.ecn);
        if !self.accept_in_sequence(now, m, p.psn) {
            self.recovery.bytes_discarded += p.payload_bytes as u64;
            return;
        }
        self.bytes_delivered += p.payload_bytes as u64;
        let rs = &mut self.recv[m];
        rs.undelivered_bytes -= p.payload_bytes as u64;
        if rs.undelivered_bytes == 0 && !self.is_dropped(m as u32) {
            self.recv[m].finish = now;
            self.complete(now, TaskRef::Message(m as u32));
        }
    }

    /// Latency of a 64 B control frame (CNP, NAK, ACK) from message `m`'s destination back
    /// to its source, computed once per message.
    fn reverse_delay(&mut self, m: usize) -> Dur {
        if self.reverse.is_empty() {
            self.reverse = vec![NO_DELAY_YET; self.specs.len()];
        }
        let d = self.reverse[m];
        if d != NO_DELAY_YET {
            return d;
        }
        let d = self.route_delay(m);
        self.reverse[m] = d;
        d
    }

    fn route_delay(&self, m: usize) -> Dur {
        let s = &self.specs[m];
        let mut d = Dur::ZERO;
        for l in self.topo.first_route(s.dst, s.src) {
            let link = self.topo.link(l);
            d += link.rate.serialize(64) + link.latency;
            if self.topo.kind(link.to) == NodeKind::Switch {
                d += self.params.switch.latency;
            }
        }
        d
    }

    fn on_wake(&mut self, now: Time, l: LinkId) {
        let c = &mut self.cold[l.0 as usize];
        if c.wake_at == Some(now) {
            c.wake_at = None;
            self.start_next(now, l);
        }
    }

    /// Starts the next packet on link `l` if it is idle and not paused: a queued packet
    /// first, else a new packet from the source groups the link serves.
    fn start_next(&mut self, now: Time, l: LinkId) {
        let li = l.0 as usize;
        let e = &mut self.egress[li];
        if e.busy || e.paused {
            return;
        }
        let p = if let Some(p) = e.fifo.pop_front() {
            e.fifo_bytes -= p.wire_bytes as u64;
            p
        } else {
            match self.pull_source(now, l) {
                Some(p) => p,
                None => return,
            }
        };
        self.send(now, l, p);
    }

    /// Puts packet `p` on idle link `l`: its departure and its arrival are scheduled.
    #[inline]
    fn send(&mut self, now: Time, l: LinkId, p: Packet) {
        let li = l.0 as usize;
        let e = &mut self.egress[li];
        debug_assert!(!e.busy && !e.paused);
        let tx = e.send(p.wire_bytes, &mut self.cold[li]);
        e.busy = true;
        let arrive = now + tx + e.arrival_delay(&self.cold[li]);
        self.packet_hops += 1;
        // Leaving a PXN relay's NIC frees its room in the relay when sent: it arrives
        // holding none.
        let relay = if p.holds_relay_until_sent() {
            p.relay_hold
        } else {
            NONE
        };
        self.post(
            now + tx,
            Event::TxDone {
                link: l,
                in_link: p.in_link,
                wire: p.wire_bytes,
                relay,
            },
        );
        let mut p = p;
        if relay != NONE {
            p.relay_hold = NONE;
        }
        self.post(arrive, Event::Arrive { link: l, p });
    }

    /// Cuts the next packet of the first eligible message: round-robin over the groups link
    /// `l` serves, and within a group from this link's own cursor (an RDMA NIC's single link
    /// serves its queue pairs strictly round-robin). Paced messages not yet eligible are
    /// skipped, and a wake-up is scheduled for the earliest of them.
    fn pull_source(&mut self, now: Time, l: LinkId) -> Option<Packet> {
        let li = l.0 as usize;
        let ngroups = self.cold[li].groups.len();
        let mut earliest: Option<Time> = None;
        for i in 0..ngroups {
            let gi = (self.cold[li].group_cursor + i) % ngroups;
            let g = self.cold[li].groups[gi] as usize;
            let n = self.groups[g].msgs.len();
            if n == 0 {
                continue;
            }
            let start = self.cold[li].msg_cursor[gi] % n;
            for j in 0..n {
                let idx = (start + j) % n;
                let m = self.groups[g].msgs[idx];
                let mut send_at = self.cc.get(m as usize).map_or(Time::ZERO, |c| c.send_at());
                let limiter = self.limiter(m);
                if limiter != NONE {
                    send_at = send_at.max(self.limiter_next[limiter as usize]);
                }
                let ms = self.snd(m);
                if send_at > now {
                    earliest = Some(earliest.map_or(send_at, |e| e.min(send_at)));
                    continue;
                }
                let wire = ms.wire(self.params);
                let payload = ms.unsent_bytes.min(wire.mtu_bytes as u64);
                // PXN: a relayed packet needs room in its relay's buffer; without it the
                // link tries the next message and waits to be woken by the relay.
                let (via, relayed) = (ms.via, ms.relayed());
                let relay_hold = if relayed {
                    if !self.reserve_relay(l, via, payload + wire.header_bytes as u64) {
                        continue;
                    }
                    via.0
                } else {
                    NONE
                };
                let ms = self.snd_mut(m);
                ms.unsent_bytes -= payload;
                let psn = ms.snd_next;
                ms.snd_next += 1;
                if psn < ms.snd_max {
                    self.recovery.bytes_retransmitted += payload;
                } else {
                    ms.snd_max = psn + 1;
                }
                let wire_bytes = payload + wire.header_bytes as u64;
                if let Some(c) = self.cc.get_mut(m as usize) {
                    c.on_send(now, payload, wire_bytes);
                }
                if limiter != NONE {
                    let lim = limiter as usize;
                    let rate = self.workload.limiters()[lim];
                    let next = &mut self.limiter_next[lim];
                    *next = (*next).max(now) + rate.serialize(payload);
                }
                // The next message in turn is the one after this, or the one that slides
                // into this slot when this message has nothing left to send.
                let next = if self.snd(m).unsent_bytes == 0 {
                    self.groups[g].msgs.remove(idx);
                    idx
                } else {
                    idx + 1
                };
                self.cold[li].msg_cursor[gi] = next;
                self.cold[li].group_cursor = (gi + 1) % ngroups;
                self.packets += 1;
                self.bytes_injected += payload;
                return Some(Packet {
                    msg: m,
                    dst: via,
                    payload_bytes: payload as u32,
                    wire_bytes: wire_bytes as u32,
                    psn,
                    spread: 1,
                    in_link: NONE,
                    ecn: false,
                    relayed,
                    relay_hold,
                });
            }
        }
        if let Some(t) = earliest {
            let c = &mut self.cold[li];
            if c.wake_at.is_none_or(|w| t < w) {
                c.wake_at = Some(t);
                self.post(t, Event::Wake(l));
            }
        }
        None
    }
}

/// The run's result from its partitions' states: a message's sender state from its source's
/// partition and its receiver state from its destination's, a link's from both ends' (its
/// statistics: counters summed, peaks the largest), totals summed.
fn finish(mut parts: Vec<Sim<'_>>) -> Result<NetRun, Deadlock> {
    let end = parts.iter().map(|p| p.end).max().unwrap_or(Time::ZERO);
    // Each partition's counts of a link: its cold statistics with the sends and peaks
    // its hot state kept.
    for p in &mut parts {
        let Sim {
            egress,
            ingress,
            cold,
            ..
        } = p;
        for ((e, i), c) in egress.iter_mut().zip(ingress.iter()).zip(cold.iter_mut()) {
            e.flush(&mut c.stats);
            c.stats.peak_queue_bytes = e.peak_queue_bytes;
            c.stats.peak_held_bytes = i.peak_held_bytes;
        }
    }
    let layout = parts[0].layout;
    let specs = parts[0].specs;
    let part_of = |n: NodeId| layout.part[layout.region[n.0 as usize] as usize] as usize;
    // Packets in flight are in events: none is left when the queue ran dry.
    let stuck: usize = parts
        .iter()
        .flat_map(|p| &p.egress)
        .map(|e| e.fifo.len())
        .sum();
    let sender = |i: usize| parts[part_of(specs[i].src)].snd(i as u32);
    // A message never started waited for a lost one (lossy mode): not a deadlock.
    let unsent =
        (0..specs.len()).any(|i| sender(i).started().is_some() && sender(i).unsent_bytes > 0);
    let stream_stuck = parts.iter().any(|p| !p.tracker.streams_idle());
    let link_owner = |i: usize| layout.part[parts[0].link_regions[i].0 as usize] as usize;
    if stuck > 0 || unsent || stream_stuck {
        return Err(Deadlock {
            time: end,
            paused_links: (0..parts[0].egress.len())
                .filter(|&i| parts[link_owner(i)].egress[i].paused)
                .map(|i| LinkId(i as u32))
                .collect(),
            packets_stuck: stuck,
        });
    }
    let sum = |f: &dyn Fn(&Sim) -> u64| parts.iter().map(f).sum::<u64>();
    let bytes_injected = sum(&|p| p.bytes_injected);
    let bytes_delivered = sum(&|p| p.bytes_delivered);
    let bytes_dropped = sum(&|p| p.bytes_dropped);
    let bytes_abandoned = sum(&|p| p.bytes_abandoned);
    let mut recovery = Recovery::default();
    for p in &parts {
        recovery.merge(&p.recovery);
    }
    // Conservation: cheap, so checked in release builds too. Every byte sent was
    // delivered, dropped by a switch or discarded by go-back-N; and the bytes sent are
    // each started message's bytes once plus what was resent.
    assert_eq!(
        bytes_injected,
        bytes_delivered + bytes_dropped + recovery.bytes_discarded,
        "bytes lost"
    );
    let offered: u64 = (0..specs.len())
        .filter(|&i| sender(i).started().is_some())
        .map(|i| specs[i].bytes)
        .sum();
    assert_eq!(
        bytes_injected + bytes_abandoned,
        offered + recovery.bytes_retransmitted,
        "bytes sent other than once plus retransmissions"
    );
    assert!(
        parts
            .iter()
            .all(|p| p.egress.iter().all(|e| e.fifo.is_empty())
                && p.ingress.iter().all(|i| i.held_bytes == 0)),
        "queues left non-empty"
    );
    // Events scheduled and processed add up; the peaks are each queue's own, so their sum
    // is the peak only on one thread (reports leave it out).
    let mut queue = crate::engine::QueueStats::default();
    for p in &parts {
        let q = p.queue.stats();
        // Initial tasks count as the events they were before they bypassed the queue.
        queue.scheduled += q.scheduled + p.initial_done;
        queue.processed += q.processed + p.initial_done;
        queue.peak_pending += q.peak_pending;
    }
    let mut links: Vec<LinkStats> = Vec::with_capacity(parts[0].cold.len());
    for i in 0..parts[0].cold.len() {
        let mut st = LinkStats::default();
        for p in &parts {
            st.merge(&p.cold[i].stats);
        }
        let owner = &parts[link_owner(i)];
        if owner.egress[i].paused {
            st.paused += end.since(owner.cold[i].paused_since);
        }
        links.push(st);
    }
    // Each message's start and finish (`NOT_YET`: none), taken out so that its state
    // (48 bytes a message on one thread) is given back before the results (40) are built.
    let sender = |i: usize| parts[part_of(specs[i].src)].snd(i as u32);
    let receiver = |i: usize| &parts[part_of(specs[i].dst)].recv[i];
    let times: Vec<(Time, Time)> = (0..specs.len())
        .map(|i| {
            let (snd, rcv) = (sender(i), receiver(i));
            // A drop is recorded where it happens: at a switch, or at the sender (a QP out
            // of retries).
            let dropped = parts.iter().any(|p| p.is_dropped(i as u32));
            assert!(
                dropped || rcv.finished().is_some() || snd.started().is_none(),
                "a started message neither completed nor lost"
            );
            let start = snd.started().unwrap_or(specs[i].start);
            (start, if dropped { NOT_YET } else { rcv.finish })
        })
        .collect();
    // Give back what only the run needed (at a million messages: 50 MB of message state
    // on one thread, 13 MB of links) before the results take 42 MB.
    for p in &mut parts {
        p.queue = EventQueue::new();
        p.groups = Vec::new();
        p.egress = Vec::new();
        p.ingress = Vec::new();
        p.cold = Vec::new();
        p.send = Vec::new();
        p.recv = Vec::new();
    }
    let sum = |f: &dyn Fn(&Sim) -> u64| parts.iter().map(f).sum::<u64>();
    let messages = specs
        .iter()
        .zip(times)
        .map(|(s, (start, finish))| MessageResult {
            src: s.src,
            dst: s.dst,
            bytes: s.bytes,
            start,
            finish: (finish != NOT_YET).then_some(finish),
        })
        .collect();
    let computes = (0..parts[0].computes.len())
        .map(|c| parts[part_of(parts[0].computes[c].gpu)].computes[c].clone())
        .collect();
    let run = NetRun {
        messages,
        computes,
        links,
        queue,
        packets: sum(&|p| p.packets),
        packet_hops: sum(&|p| p.packet_hops),
        bytes_injected,
        bytes_delivered,
        bytes_dropped,
        cnps: sum(&|p| p.cnps),
        lossless_overflow_bytes: parts
            .iter()
            .map(|p| p.lossless_overflow_bytes)
            .max()
            .unwrap_or(0),
        recovery,
        relay_peak_bytes: parts.iter().map(|p| p.relay_peak_bytes).max().unwrap_or(0),
        end,
    };
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Bandwidth;
    use crate::net::{PfcParams, SwitchParams};
    use crate::topology::Link;

    fn params(buffers: Buffers) -> NetParams {
        NetParams {
            nic_wire: Wire {
                mtu_bytes: 4096,
                header_bytes: 64,
            },
            nvlink_wire: Wire {
                mtu_bytes: 4096,
                header_bytes: 0,
            },
            switch: SwitchParams {
                latency: Dur::from_ns(100),
                buffers,
                ecn: None,
            },
            routing: Routing::Ecmp,
            congestion_control: CongestionControl::None,
            transport: Transport::GoBackN(GoBackN::default()),
            credit_bytes: 4 * 4160,
            pxn_fifo_bytes: None,
            seed: 1,
        }
    }

    /// Five switches in a ring, one GPU on each; GPU i sends to GPU i+2, whose only
    /// shortest path runs clockwise through two ring links. Every ring link carries two
    /// flows and every switch's ring ingress waits on the next switch: a cyclic buffer
    /// dependency. With small PFC thresholds the run must stop as a reported deadlock.
    fn ring(buffers: Buffers) -> Result<NetRun, NetError> {
        let n = 5u32;
        let rate = Bandwidth::from_gbps(100).unwrap();
        let mut kinds = vec![NodeKind::Gpu; n as usize];
        kinds.extend(std::iter::repeat_n(NodeKind::Switch, n as usize));
        let mut links = Vec::new();
        let mut cable = |a: u32, b: u32, class| {
            for (from, to) in [(a, b), (b, a)] {
                links.push(Link {
                    from: NodeId(from),
                    to: NodeId(to),
                    rate,
                    latency: Dur::from_ns(1000),
                    class,
                });
            }
        };
        for i in 0..n {
            cable(i, n + i, LinkClass::Access);
            cable(n + i, n + (i + 1) % n, LinkClass::Fabric);
        }
        let fabric = Fabric::from_topology(Topology::new(kinds, links).unwrap());
        let messages: Vec<MessageSpec> = (0..n)
            .map(|i| MessageSpec {
                src: NodeId(i),
                dst: NodeId((i + 2) % n),
                bytes: 4 << 20,
                start: Time::ZERO,
            })
            .collect();
        simulate(&fabric, &params(buffers), &messages, &mut |_| {})
    }

    /// One packet from GPU 0 through a switch to GPU 1. A link's counts (packets, bytes,
    /// busy time: kept in its sender line until the run ends) are the packet's; the
    /// switch's egress counts the packet as queued for an instant, as every forwarded
    /// packet is, though it goes straight on (`Sim::forward`); the source's does not.
    #[test]
    fn a_forwarded_packet_is_counted_as_queued_and_sent() {
        let rate = Bandwidth::from_gbps(400).unwrap();
        let kinds = vec![NodeKind::Gpu, NodeKind::Gpu, NodeKind::Switch];
        let mut links = Vec::new();
        for (a, b) in [(0, 2), (2, 1)] {
            for (from, to) in [(a, b), (b, a)] {
                links.push(Link {
                    from: NodeId(from),
                    to: NodeId(to),
                    rate,
                    latency: Dur::from_ns(500),
                    class: LinkClass::Access,
                });
            }
        }
        let topo = Topology::new(kinds, links).unwrap();
        let link = |from: u32, to: u32| {
            topo.links()
                .iter()
                .position(|l| l.from == NodeId(from) && l.to == NodeId(to))
                .unwrap()
        };
        let (up, down) = (link(0, 2), link(2, 1));
        let fabric = Fabric::from_topology(topo);
        let m = MessageSpec {
            src: NodeId(0),
            dst: NodeId(1),
            bytes: 4096,
            start: Time::ZERO,
        };
        let run = simulate(&fabric, &params(Buffers::Unbounded), &[m], &mut |_| {}).unwrap();
        for l in [up, down] {
            let st = &run.links[l];
            assert_eq!((st.packets, st.wire_bytes), (1, 4160), "link {l}");
            assert_eq!(st.busy, rate.serialize(4160), "link {l}");
        }
        assert_eq!(run.links[up].peak_queue_bytes, 0);
        assert_eq!(run.links[down].peak_queue_bytes, 4160);
        let tx = rate.serialize(4160);
        let hop = tx + Dur::from_ns(500);
        assert_eq!(
            run.messages[0].finish,
            Some(Time::ZERO + hop + Dur::from_ns(100) + hop)
        );
    }

    #[test]
    fn pfc_cycle_is_reported_as_a_deadlock() {
        let pfc = PfcParams {
            xoff_bytes: 3 * 4160,
            xon_bytes: 4160,
        };
        let d = ring(Buffers::Lossless {
            pfc,
            ingress_bytes: None,
        })
        .expect_err("a PFC cycle deadlocks");
        let NetError::Deadlock(d) = d else {
            panic!("a deadlock, not {d}")
        };
        assert!(d.packets_stuck > 0);
        assert!(!d.paused_links.is_empty());
        assert!(d.to_string().contains("deadlock"));
    }

    /// The initial tasks reach the run in (ready time, task) order, whether or not the
    /// ready times run in task order; a slice at a time while nothing queued shares their
    /// time, and in one batch ahead of the queued events that do; never one that waits.
    /// What the slices schedule for their own time comes after the last of them.
    #[test]
    fn initial_tasks_come_in_time_then_task_order() {
        let n = 5u32;
        let rate = Bandwidth::from_gbps(100).unwrap();
        let mut kinds = vec![NodeKind::Gpu; n as usize];
        kinds.push(NodeKind::Switch);
        let mut links = Vec::new();
        for i in 0..n {
            for (from, to) in [(i, n), (n, i)] {
                links.push(Link {
                    from: NodeId(from),
                    to: NodeId(to),
                    rate,
                    latency: Dur::from_ns(100),
                    class: LinkClass::Access,
                });
            }
        }
        let fabric = Fabric::from_topology(Topology::new(kinds, links).unwrap());
        let layout = parallel::Layout::new(&fabric.topology, 1);
        let params = params(Buffers::Unbounded);
        let two_ns = Time::from_ps(2000);
        for in_order in [true, false] {
            let mut w = Workload::default();
            let count = 3 * INITIAL_SLICE as u32;
            for i in 0..count {
                let start = if in_order || i % 3 == 0 {
                    Time::ZERO
                } else {
                    Time::from_ps((i as u64 * 7919) % 5 * 1000)
                };
                let spec = MessageSpec {
                    src: NodeId(i % n),
                    dst: NodeId((i + 1) % n),
                    bytes: 1,
                    start,
                };
                // Message 1 waits for message 0: not an initial task.
                let after = if i == 1 {
                    vec![TaskRef::Message(0)]
                } else {
                    vec![]
                };
                w.message(spec, &after);
            }
            let mut sim = build(&fabric, &params, &w, &layout, 0);
            // A queued event at 2 ns: the initial tasks of 2 ns come whole, ahead of it.
            let queued = Stamped {
                region: 0,
                ev: Event::Wake(LinkId(0)),
            };
            sim.queue.schedule_at(two_ns, queued);
            let mut want: Vec<(Time, u32)> = (0..count)
                .filter(|&i| i != 1)
                .map(|i| (w.messages[i as usize].start, i))
                .collect();
            want.sort_by_key(|&(t, _)| t);
            // What a slice schedules for its own time (here one event, as if the first
            // slice had) waits for the last slice, then comes in a batch of its own.
            let late = Stamped {
                region: 0,
                ev: Event::Wake(LinkId(1)),
            };
            let at_zero = want.iter().filter(|&&(t, _)| t == Time::ZERO).count();
            let (mut got, mut batch) = (Vec::new(), Vec::new());
            let mut late_seen = false;
            while let Some(t) = sim.next_batch(Time::MAX, &mut batch) {
                if got.is_empty() {
                    sim.queue.schedule_at(Time::ZERO, late);
                }
                if batch.iter().any(|s| matches!(s.ev, Event::Wake(LinkId(1)))) {
                    assert_eq!((t, batch.len()), (Time::ZERO, 1), "the late event alone");
                    let done = got.iter().filter(|&&(t, _)| t == Time::ZERO).count();
                    assert_eq!(done, at_zero, "after every initial task of its time");
                    late_seen = true;
                    batch.clear();
                    continue;
                }
                let wake = batch
                    .iter()
                    .position(|s| matches!(s.ev, Event::Wake(LinkId(0))));
                let starts = wake.unwrap_or(batch.len());
                if t == two_ns && !in_order {
                    assert_eq!(wake, Some(batch.len() - 1), "initial tasks first, whole");
                } else {
                    assert!(starts <= INITIAL_SLICE, "a slice at a time");
                }
                for s in &batch[..starts] {
                    let Event::MessageStart(m) = s.ev else {
                        panic!("an initial task is a message start here")
                    };
                    assert_eq!(s.region, sim.task_region(TaskRef::Message(m)));
                    got.push((t, m));
                }
                batch.clear();
            }
            assert_eq!(got, want, "in order: {in_order}");
            assert!(late_seen);
            assert_eq!(sim.initial_done, want.len() as u64);
            assert_eq!(matches!(sim.initial, Initial::InOrder { .. }), in_order);
        }
    }

    #[test]
    fn the_same_ring_without_pfc_completes() {
        let r = ring(Buffers::Unbounded).expect("no pauses, no deadlock");
        assert!(r.messages.iter().all(|m| m.finish.is_some()));
        assert_eq!(r.bytes_delivered, 5 * (4 << 20));
    }

    /// GPU 0 - switch - switch - GPU 1 with a 1 bit/s link between the switches: every GPU's
    /// own links are fast (so the up-front bound of `workload::past_horizon` passes), but
    /// 1 MiB needs ~8.7e6 s on the middle link, past `Time::HORIZON` (~4.6e6 s). Every level
    /// must stop with `PastHorizon`, not panic, wrap or hang.
    #[test]
    fn a_run_past_the_horizon_stops_at_every_level() {
        let fast = Bandwidth::from_gbps(100).unwrap();
        let slow = Bandwidth::from_bps(1).unwrap();
        let kinds = vec![
            NodeKind::Gpu,
            NodeKind::Gpu,
            NodeKind::Switch,
            NodeKind::Switch,
        ];
        let mut links = Vec::new();
        for (a, b, rate, class) in [
            (0, 2, fast, LinkClass::Access),
            (1, 3, fast, LinkClass::Access),
            (2, 3, slow, LinkClass::Fabric),
        ] {
            for (from, to) in [(a, b), (b, a)] {
                links.push(Link {
                    from: NodeId(from),
                    to: NodeId(to),
                    rate,
                    latency: Dur::from_ns(1000),
                    class,
                });
            }
        }
        let fabric = Fabric::from_topology(Topology::new(kinds, links).unwrap());
        let messages = [MessageSpec {
            src: NodeId(0),
            dst: NodeId(1),
            bytes: 1 << 20,
            start: Time::ZERO,
        }];
        assert_eq!(crate::net::past_horizon(&fabric.topology, &messages), None);
        let p = params(Buffers::Unbounded);
        assert_eq!(
            simulate(&fabric, &p, &messages, &mut |_| {}).unwrap_err(),
            NetError::PastHorizon(PastHorizon)
        );
        assert_eq!(
            crate::flow::simulate(&fabric, &p, &messages, &mut |_| {}).unwrap_err(),
            PastHorizon
        );
        assert_eq!(
            crate::flow::analytical::simulate(&fabric, &p, &messages).unwrap_err(),
            PastHorizon
        );
    }
}
