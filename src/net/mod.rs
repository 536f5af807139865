//! The seam between the studies and the network levels, and what the levels share.
//!
//! A study (AFD decode, serving, a traffic list) builds a [`Workload`] of messages and
//! compute tasks; a level ([`Level`]: packet, flow, analytical) runs it on a fabric with
//! [`NetParams`] and returns a [`NetRun`]. Everything a level and a study both name lives
//! here: the message spec, the run result and link statistics, the ECMP hash, the wire and
//! routing parameters. This module depends only on `engine` and `topology`; no level and no
//! study is imported here.

mod ecmp;
mod params;
mod run;
mod workload;

pub use ecmp::{ecmp_pick, message_hash, mix};
pub use params::{
    Buffers, CongestionControl, DcqcnParams, EcnParams, GoBackN, NetParams, PfcParams, Routing,
    SwitchParams, Transport, Wire,
};
pub use run::{ComputeResult, Deadlock, LinkStats, MessageResult, NetError, NetRun, Recovery};
pub use workload::{
    ComputeSpec, Finish, MAX_HOLD_PPM, PastHorizonBound, Progress, SmHold, TaskRef, Tracker,
    Workload, past_horizon,
};

use crate::engine::Time;
use crate::topology::{Fabric, NodeId};

static PACKET_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// Sets how many threads the packet level runs on (`afdsim run --threads`; at least 1).
/// Results do not depend on it (`docs/packet.md`, "Threads"); memory does, which is why
/// the memory check (`config::memory`) reads it too.
pub fn set_packet_threads(n: usize) {
    PACKET_THREADS.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// How many threads the packet level runs on.
pub fn packet_threads() -> usize {
    PACKET_THREADS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A message to deliver: `bytes` from GPU `src` to GPU `dst`, becoming ready at `start`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageSpec {
    pub src: NodeId,
    pub dst: NodeId,
    pub bytes: u64,
    pub start: Time,
}

/// How finely a run is simulated.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Level {
    /// Every packet on every hop (`src/packet/`).
    Packet,
    /// Fluid flows sharing links max-min fairly (`src/flow/`).
    Flow,
    /// Bytes over bottleneck bandwidth plus latency per message (`flow/analytical.rs`).
    Analytical,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Packet, Level::Flow, Level::Analytical];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Packet => "packet",
            Level::Flow => "flow",
            Level::Analytical => "analytical",
        }
    }

    /// The level named `s` (as in a scenario's `level` key or `--level`).
    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// A network level: runs a workload on a fabric. `progress` is called now and then with how
/// far the run has come; it must not affect the run. A level that cannot run a workload
/// returns [`NetError::Unsupported`] instead of a wrong answer.
pub trait Simulator {
    fn level(&self) -> Level;
    fn simulate(
        &self,
        fabric: &Fabric,
        params: &NetParams,
        workload: &Workload,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<NetRun, NetError>;
}
