//! What a run measured: per message, per compute task, per link, and in total. Every level
//! returns the same [`NetRun`], so metrics are computed one way.

use crate::engine::{Dur, PastHorizon, QueueStats, Time};
use crate::topology::{LinkId, NodeId};

/// What one link carried and suffered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkStats {
    pub wire_bytes: u64,
    pub packets: u64,
    pub busy: Dur,
    /// Largest egress FIFO (bytes waiting, not counting the packet on the wire).
    pub peak_queue_bytes: u64,
    /// Largest number of bytes received on this link and held by its receiver.
    pub peak_held_bytes: u64,
    /// Pause frames its receiver sent to stop it (PFC or credit).
    pub pause_frames: u64,
    pub paused: Dur,
    pub ecn_marks: u64,
    pub drops: u64,
    pub dropped_bytes: u64,
}

impl LinkStats {
    /// Adds `other`'s counts to these and keeps the larger peaks (one link's statistics
    /// kept by two threads: each counts what its end of the link did).
    pub fn merge(&mut self, other: &LinkStats) {
        self.wire_bytes += other.wire_bytes;
        self.packets += other.packets;
        self.busy += other.busy;
        self.peak_queue_bytes = self.peak_queue_bytes.max(other.peak_queue_bytes);
        self.peak_held_bytes = self.peak_held_bytes.max(other.peak_held_bytes);
        self.pause_frames += other.pause_frames;
        self.paused += other.paused;
        self.ecn_marks += other.ecn_marks;
        self.drops += other.drops;
        self.dropped_bytes += other.dropped_bytes;
    }
}

/// The outcome of one compute task; `None` when it never ran (a task it waited for was a
/// message that lost a packet).
#[derive(Clone, Debug, PartialEq)]
pub struct ComputeResult {
    pub gpu: NodeId,
    pub start: Option<Time>,
    pub finish: Option<Time>,
}

impl ComputeResult {
    /// Every compute task of `workload`, not run yet: what a level fills in as it goes.
    pub fn unstarted(workload: &super::Workload) -> Vec<ComputeResult> {
        workload
            .computes
            .iter()
            .map(|c| ComputeResult {
                gpu: c.gpu,
                start: None,
                finish: None,
            })
            .collect()
    }
}

/// The outcome of one message: `start` is when it became ready (its dependencies done);
/// `finish` is `None` when a packet of it (or of a message it waited for) was dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageResult {
    pub src: NodeId,
    pub dst: NodeId,
    pub bytes: u64,
    pub start: Time,
    pub finish: Option<Time>,
}

/// What go-back-N recovery cost (all zero without drops, or without retransmission).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovery {
    /// Payload bytes sent again (a PSN sent before).
    pub bytes_retransmitted: u64,
    /// Payload bytes that reached their destination GPU out of sequence (or twice) and
    /// were discarded there, as go-back-N requires.
    pub bytes_discarded: u64,
    pub naks: u64,
    pub timeouts: u64,
    /// Messages lost because their QP ran out of retries (`GoBackN::retry_cnt`).
    pub qp_errors: u64,
}

impl Recovery {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Recovery) {
        self.bytes_retransmitted += other.bytes_retransmitted;
        self.bytes_discarded += other.bytes_discarded;
        self.naks += other.naks;
        self.timeouts += other.timeouts;
        self.qp_errors += other.qp_errors;
    }
}

/// Everything a run measured, at any level (the flow and analytical levels leave the
/// packet-only counters at zero: packets, hops, CNPs, drops, recovery).
#[derive(Clone, Debug)]
pub struct NetRun {
    pub messages: Vec<MessageResult>,
    pub computes: Vec<ComputeResult>,
    pub links: Vec<LinkStats>,
    pub queue: QueueStats,
    pub packets: u64,
    pub packet_hops: u64,
    pub bytes_injected: u64,
    pub bytes_delivered: u64,
    pub bytes_dropped: u64,
    pub cnps: u64,
    /// Bytes by which a lossless ingress exceeded its configured buffer (headroom too
    /// small); zero when the configuration is sound.
    pub lossless_overflow_bytes: u64,
    pub recovery: Recovery,
    /// PXN: the most bytes any relay GPU held for relaying (in flight toward it or waiting
    /// for its NIC), the buffer NCCL's proxy would have needed; 0 without PXN.
    pub relay_peak_bytes: u64,
    pub end: Time,
}

/// A run that stopped with packets still held: a cycle of pauses (or credits) that can
/// never clear.
#[derive(Clone, Debug, PartialEq)]
pub struct Deadlock {
    pub time: Time,
    pub paused_links: Vec<LinkId>,
    pub packets_stuck: usize,
}

/// Why a run produced no result.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NetError {
    /// A cycle of pauses that can never clear.
    #[error("the simulation deadlocked: {0}")]
    Deadlock(Deadlock),
    /// Simulated time reached [`Time::HORIZON`] with work left.
    #[error(transparent)]
    PastHorizon(#[from] PastHorizon),
    /// The level cannot run this workload (the analytical level has no compute tasks and no
    /// dependencies).
    #[error("the {level} level cannot run {what}")]
    Unsupported { level: &'static str, what: String },
}

impl std::fmt::Display for Deadlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "deadlock at {}: {} packets stuck, {} links paused (first: {:?})",
            self.time,
            self.packets_stuck,
            self.paused_links.len(),
            &self.paused_links[..self.paused_links.len().min(8)]
        )
    }
}
