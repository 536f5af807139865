//! Parameters of the network, resolved and valid (built by `config`): the wire and routing every
//! level uses, and the switch buffering, congestion control and transport that only the packet
//! level models.

use crate::engine::{Bandwidth, Dur};

/// How a transfer is cut into packets: payload per packet and bytes added on the wire.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Wire {
    pub mtu_bytes: u32,
    pub header_bytes: u32,
}

/// PFC thresholds on a switch ingress port's occupancy (one priority class).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PfcParams {
    pub xoff_bytes: u64,
    pub xon_bytes: u64,
}

/// RED-style ECN marking on egress queue depth at enqueue: no mark at or below `kmin`,
/// probability rising linearly to `pmax` at `kmax`, always above `kmax`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct EcnParams {
    pub kmin_bytes: u64,
    pub kmax_bytes: u64,
    pub pmax: f64,
}

impl EcnParams {
    pub fn mark_probability(&self, queue_bytes: u64) -> f64 {
        if queue_bytes <= self.kmin_bytes {
            0.0
        } else if queue_bytes > self.kmax_bytes {
            1.0
        } else {
            self.pmax * (queue_bytes - self.kmin_bytes) as f64
                / (self.kmax_bytes - self.kmin_bytes).max(1) as f64
        }
    }
}

/// Scale-out switch buffering.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Buffers {
    /// Infinite queues, nothing paused or dropped.
    Unbounded,
    /// PFC on each ingress port; queues are views of a shared buffer and nothing is
    /// dropped. `ingress_bytes`, when given, is the per-ingress-port buffer that XOFF plus
    /// headroom must fit in (checked when the scenario is resolved; overshoot is counted).
    Lossless {
        pfc: PfcParams,
        ingress_bytes: Option<u64>,
    },
    /// A packet that finds its egress queue with less than its size free is dropped.
    Lossy { egress_bytes: u64 },
}

#[derive(Copy, Clone, Debug, PartialEq)]
pub struct SwitchParams {
    /// Last bit in to eligible at the egress port.
    pub latency: Dur,
    pub buffers: Buffers,
    pub ecn: Option<EcnParams>,
}

/// Path choice among equal-cost next hops in the scale-out network. NVLink traffic is
/// always spread over the parallel links and switch planes, as the hardware does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Routing {
    /// One path per message, by a seeded hash of the message and the switch.
    Ecmp,
    /// Each packet takes a seeded pseudo-random equal-cost next hop (oblivious spraying).
    Spray,
    /// Per-flow round-robin: at each switch, the packets of a message that pass it take
    /// its equal-cost next hops in turn, from a seeded per-(message, switch) offset. Every
    /// flow then puts exactly one packet on each next hop per round, so a port that
    /// carries its fair share of several flows on average also does in every window of
    /// a round (its queue stays within about a round of packets), where random picks let
    /// the queue wander like a random walk. No lock-on: a flow's rotation does not depend
    /// on how other flows' packets interleave with it at the switch.
    SprayRoundRobin,
    /// Each packet takes the equal-cost egress with the fewest queued bytes.
    Adaptive,
}

impl Routing {
    pub fn as_str(self) -> &'static str {
        match self {
            Routing::Ecmp => "ecmp",
            Routing::Spray => "spray",
            Routing::SprayRoundRobin => "spray-rr",
            Routing::Adaptive => "adaptive",
        }
    }
}

/// DCQCN (Zhu et al., "Congestion Control for Large-Scale RDMA Deployments", SIGCOMM 2015).
/// Defaults are the paper's: g = 1/256, a 55 us timer for alpha decay and rate increase,
/// byte counter 10 MB, F = 5 fast-recovery steps, additive increase 40 Mb/s and hyper
/// increase 400 Mb/s on its 40 Gb/s NICs, and at the notification point at most one CNP
/// per flow per 50 us. [`DcqcnParams::for_line_rate`] keeps the increase steps at the
/// paper's fraction of line rate (1/1000 and 1/100): at 400 Gb/s the absolute 40 Mb/s step
/// takes ten times longer to recover the same share of the link.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct DcqcnParams {
    pub g: f64,
    pub timer: Dur,
    pub byte_counter_bytes: u64,
    pub fast_recovery_steps: u32,
    pub rate_ai: Bandwidth,
    pub rate_hai: Bandwidth,
    pub min_rate: Bandwidth,
    pub cnp_interval: Dur,
}

impl DcqcnParams {
    /// The paper's parameters with the increase steps scaled to `line` as they relate to
    /// 40 Gb/s in the paper.
    pub fn for_line_rate(line: Bandwidth) -> DcqcnParams {
        let d = DcqcnParams::default();
        DcqcnParams {
            rate_ai: Bandwidth::from_bps((line.bps() / 1000).max(1)).expect("nonzero"),
            rate_hai: Bandwidth::from_bps((line.bps() / 100).max(1)).expect("nonzero"),
            ..d
        }
    }
}

impl Default for DcqcnParams {
    fn default() -> Self {
        DcqcnParams {
            g: 1.0 / 256.0,
            timer: Dur::from_us(55),
            byte_counter_bytes: 10 * 1024 * 1024,
            fast_recovery_steps: 5,
            rate_ai: Bandwidth::from_bps(40_000_000).expect("nonzero"),
            rate_hai: Bandwidth::from_bps(400_000_000).expect("nonzero"),
            min_rate: Bandwidth::from_bps(100_000_000).expect("nonzero"),
            cnp_interval: Dur::from_us(50),
        }
    }
}

/// NIC congestion control, dispatched through an enum (no boxing), smoltcp style.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum CongestionControl {
    /// Line rate always; PFC alone keeps the fabric lossless (as Step-3's deployment runs).
    None,
    Dcqcn(DcqcnParams),
}

/// Loss recovery of RDMA messages (RoCEv2 reliable connection) through lossy switches.
/// NVLink transfers and lossless fabrics never lose a packet and never use it.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Transport {
    /// No retransmission: a message that loses a packet never completes (raw loss).
    Unreliable,
    /// Go-back-N, as RoCEv2 NICs (ConnectX) do it for reliable connections (see
    /// [`GoBackN`]).
    GoBackN(GoBackN),
}

/// Go-back-N recovery (InfiniBand RC transport, which RoCEv2 carries unchanged): packets
/// carry a sequence number (PSN). The responder accepts only the next expected PSN and
/// discards anything else; the first out-of-sequence packet makes it return a NAK
/// (sequence error) naming the expected PSN, and the requester resends everything from
/// there. The responder NAKs an expected PSN again only after `nak_interval` (a
/// retransmission that was itself lost); a different expected PSN is NAKed at once (the
/// rule of the HPCC ns-3 RDMA model, alibaba-edu/High-Precision-Congestion-Control
/// `RdmaHw::ReceiverCheckSeq`, whose default interval is 500 us). A requester that hears
/// of no progress for `rto` (the QP's local ACK timeout, 4.096 us x 2^timeout) resends
/// from the last acknowledged PSN: the only recovery when the tail of a message is lost,
/// since no later packet arrives to provoke a NAK.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct GoBackN {
    pub rto: Dur,
    pub nak_interval: Dur,
    /// The QP's retry count: after this many retransmission timeouts in a row without
    /// progress, one more puts the QP in the error state and its message is lost (on real
    /// NICs the job fails; InfiniBand's field is 3 bits, at most 7, NCCL's
    /// `NCCL_IB_RETRY_CNT` default). `None`: retry until the message completes.
    pub retry_cnt: Option<u32>,
}

impl Default for GoBackN {
    /// `rto`: timeout exponent 14 (4.096 us x 2^14 = 67.1 ms), perftest's default
    /// (`DEF_QP_TIME`); NCCL's `NCCL_IB_TIMEOUT` default (20) is 64 times longer.
    /// `nak_interval`: the HPCC ns-3 model's 500 us. `retry_cnt`: unlimited, so that a
    /// deterministic model's lockstep losses (docs/packet.md) still complete; set 7 to see
    /// whether a real job would have failed.
    fn default() -> Self {
        GoBackN {
            rto: Dur::from_ps(4_096_000 << 14),
            nak_interval: Dur::from_us(500),
            retry_cnt: None,
        }
    }
}

/// Everything a level needs beyond the topology. The flow and analytical levels read the wires,
/// the routing, the switch latency and the seed; the rest is the packet level's.
#[derive(Clone, Debug, PartialEq)]
pub struct NetParams {
    pub nic_wire: Wire,
    pub nvlink_wire: Wire,
    pub switch: SwitchParams,
    pub routing: Routing,
    pub congestion_control: CongestionControl,
    pub transport: Transport,
    /// Credit flow control into NICs and NVSwitch chips (lossless, hop by hop): a link into
    /// one pauses while that node holds more than the link's round-trip bandwidth-delay
    /// product plus this many bytes from it, and resumes below half of that.
    pub credit_bytes: u64,
    /// PXN: the bytes a relay GPU may hold for relaying, counted from the moment a source
    /// sends a relayed packet toward it until the relay's NIC has sent it on (NCCL's proxy
    /// FIFO in GPU memory). A source whose relay is full sends other messages' packets, or
    /// waits. `None`: unbounded.
    pub pxn_fifo_bytes: Option<u64>,
    pub seed: u64,
}
