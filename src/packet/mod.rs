//! The packet-level network: every packet on every hop is an event.
//!
//! Model (a first version; ECN/PFC, congestion control, finite buffers, ECMP and NVLink
//! come with the packet-level issue):
//! - A GPU's NIC cuts each active message into packets of at most `mtu_bytes` payload plus
//!   `header_bytes` on the wire, and serves its active messages round-robin, one packet at
//!   a time (as an RDMA NIC serves its queue pairs).
//! - A link serializes one packet at a time at its rate, then the packet propagates for the
//!   link latency. Store-and-forward: a switch sees a packet once its last bit has arrived.
//! - A switch is output-queued with unbounded FIFO queues; a packet becomes eligible at its
//!   egress port `switch_latency` after it arrived.
//!
//! Invariants, asserted at the end of every run: bytes injected = bytes delivered, every
//! message completed, no packet left in the pool, no queue left non-empty.

use crate::engine::{Dur, EventQueue, QueueStats, Time};
use crate::topology::{LinkId, NodeId, NodeKind, Topology};
use std::collections::VecDeque;

/// Packetization and switch parameters of the packet level.
#[derive(Clone, Debug, PartialEq)]
pub struct PacketParams {
    pub mtu_bytes: u32,
    pub header_bytes: u32,
    pub switch_latency: Dur,
}

/// A message to deliver: `bytes` from GPU `src` to GPU `dst`, becoming ready at `start`.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageSpec {
    pub src: NodeId,
    pub dst: NodeId,
    pub bytes: u64,
    pub start: Time,
}

/// Every thing that can happen at the packet level.
#[derive(Clone, Copy, Debug)]
enum Event {
    /// A message becomes ready at its source NIC.
    MessageStart(u32),
    /// A link finished serializing its current packet and may start the next.
    TxDone(LinkId),
    /// A packet is fully received at the far end of `link` (and, at a switch, has passed
    /// the switch's forwarding latency).
    Arrive { link: LinkId, pkt: u32 },
}

#[derive(Clone, Copy, Debug)]
struct Packet {
    msg: u32,
    payload_bytes: u32,
}

/// A fixed-size slot pool so that the hot path never allocates per packet.
#[derive(Default)]
struct PacketPool {
    slots: Vec<Packet>,
    free: Vec<u32>,
}

impl PacketPool {
    fn alloc(&mut self, p: Packet) -> u32 {
        if let Some(i) = self.free.pop() {
            self.slots[i as usize] = p;
            i
        } else {
            self.slots.push(p);
            (self.slots.len() - 1) as u32
        }
    }
    fn release(&mut self, i: u32) -> Packet {
        self.free.push(i);
        self.slots[i as usize]
    }
    fn in_use(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[derive(Default)]
struct LinkState {
    busy: bool,
    /// Packets forwarded by a switch and waiting for this link.
    fifo: VecDeque<u32>,
    fifo_bytes: u64,
    /// Messages whose first hop is this link, served round-robin (GPU egress only).
    sources: VecDeque<u32>,
    stats: LinkStats,
}

/// What one link carried.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkStats {
    pub wire_bytes: u64,
    pub packets: u64,
    pub busy: Dur,
    pub peak_queue_bytes: u64,
}

/// The outcome of one message.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageResult {
    pub src: NodeId,
    pub dst: NodeId,
    pub bytes: u64,
    pub start: Time,
    pub finish: Time,
}

/// Everything a packet-level run measured.
#[derive(Clone, Debug)]
pub struct PacketRun {
    pub messages: Vec<MessageResult>,
    pub links: Vec<LinkStats>,
    pub queue: QueueStats,
    pub packets: u64,
    pub packet_hops: u64,
    pub bytes_injected: u64,
    pub bytes_delivered: u64,
    /// Time of the last event.
    pub end: Time,
}

struct MsgState {
    unsent_bytes: u64,
    undelivered_bytes: u64,
    finish: Option<Time>,
}

/// Simulates `messages` on `topo` to completion. `progress` is called now and then with the
/// events processed so far and the simulated time.
pub fn simulate(
    topo: &Topology,
    params: &PacketParams,
    messages: &[MessageSpec],
    progress: &mut dyn FnMut(u64, Time),
) -> PacketRun {
    assert!(params.mtu_bytes > 0, "validated by config");
    let mut sim = Sim {
        topo,
        params,
        specs: messages,
        queue: EventQueue::with_capacity(messages.len() + topo.links().len()),
        pool: PacketPool::default(),
        links: (0..topo.links().len())
            .map(|_| LinkState::default())
            .collect(),
        msgs: messages
            .iter()
            .map(|m| MsgState {
                unsent_bytes: m.bytes,
                undelivered_bytes: m.bytes,
                finish: None,
            })
            .collect(),
        packets: 0,
        packet_hops: 0,
        bytes_injected: 0,
        bytes_delivered: 0,
    };
    for (i, m) in messages.iter().enumerate() {
        assert!(m.src != m.dst && m.bytes > 0, "validated by config");
        sim.queue
            .schedule_at(m.start, Event::MessageStart(i as u32));
    }
    while let Some((now, ev)) = sim.queue.pop() {
        match ev {
            Event::MessageStart(m) => sim.on_message_start(now, m),
            Event::TxDone(l) => sim.on_tx_done(now, l),
            Event::Arrive { link, pkt } => sim.on_arrive(now, link, pkt),
        }
        let processed = sim.queue.stats().processed;
        if processed & 0xF_FFFF == 0 {
            progress(processed, now);
        }
    }
    sim.finish()
}

struct Sim<'a> {
    topo: &'a Topology,
    params: &'a PacketParams,
    specs: &'a [MessageSpec],
    queue: EventQueue<Event>,
    pool: PacketPool,
    links: Vec<LinkState>,
    msgs: Vec<MsgState>,
    packets: u64,
    packet_hops: u64,
    bytes_injected: u64,
    bytes_delivered: u64,
}

impl Sim<'_> {
    fn on_message_start(&mut self, now: Time, m: u32) {
        let spec = &self.specs[m as usize];
        let first = self
            .topo
            .next_hop(spec.src, spec.dst)
            .expect("routes exist between all GPU pairs");
        let ls = &mut self.links[first.0 as usize];
        ls.sources.push_back(m);
        if !ls.busy {
            self.start_next(now, first);
        }
    }

    fn on_tx_done(&mut self, now: Time, l: LinkId) {
        self.links[l.0 as usize].busy = false;
        self.start_next(now, l);
    }

    fn on_arrive(&mut self, now: Time, l: LinkId, pkt: u32) {
        let at = self.topo.link(l).to;
        let p = self.pool.slots[pkt as usize];
        let dst = self.specs[p.msg as usize].dst;
        if at == dst {
            self.pool.release(pkt);
            self.bytes_delivered += p.payload_bytes as u64;
            let ms = &mut self.msgs[p.msg as usize];
            ms.undelivered_bytes -= p.payload_bytes as u64;
            if ms.undelivered_bytes == 0 {
                ms.finish = Some(now);
            }
            return;
        }
        debug_assert_eq!(self.topo.kind(at), NodeKind::Switch);
        let next = self
            .topo
            .next_hop(at, dst)
            .expect("routes exist between all GPU pairs");
        let wire = (p.payload_bytes + self.params.header_bytes) as u64;
        let ls = &mut self.links[next.0 as usize];
        ls.fifo.push_back(pkt);
        ls.fifo_bytes += wire;
        ls.stats.peak_queue_bytes = ls.stats.peak_queue_bytes.max(ls.fifo_bytes);
        if !ls.busy {
            self.start_next(now, next);
        }
    }

    /// Starts serializing the next packet on idle link `l`: forwarded packets first, then a
    /// new packet of the next source message in round-robin order.
    fn start_next(&mut self, now: Time, l: LinkId) {
        let header = self.params.header_bytes;
        let ls = &mut self.links[l.0 as usize];
        debug_assert!(!ls.busy);
        let pkt = if let Some(pkt) = ls.fifo.pop_front() {
            ls.fifo_bytes -= (self.pool.slots[pkt as usize].payload_bytes + header) as u64;
            pkt
        } else if let Some(m) = ls.sources.pop_front() {
            let ms = &mut self.msgs[m as usize];
            let payload = ms.unsent_bytes.min(self.params.mtu_bytes as u64);
            ms.unsent_bytes -= payload;
            if ms.unsent_bytes > 0 {
                ls.sources.push_back(m);
            }
            self.packets += 1;
            self.bytes_injected += payload;
            self.pool.alloc(Packet {
                msg: m,
                payload_bytes: payload as u32,
            })
        } else {
            return;
        };
        let link = self.topo.link(l);
        let wire = (self.pool.slots[pkt as usize].payload_bytes + header) as u64;
        let tx = link.rate.serialize(wire);
        ls.busy = true;
        ls.stats.wire_bytes += wire;
        ls.stats.packets += 1;
        ls.stats.busy += tx;
        self.packet_hops += 1;
        let mut arrive = now + tx + link.latency;
        if self.topo.kind(link.to) == NodeKind::Switch {
            arrive += self.params.switch_latency;
        }
        self.queue.schedule_at(now + tx, Event::TxDone(l));
        self.queue
            .schedule_at(arrive, Event::Arrive { link: l, pkt });
    }

    fn finish(self) -> PacketRun {
        // Conservation: cheap, so checked in release builds too.
        assert_eq!(self.bytes_injected, self.bytes_delivered, "bytes lost");
        assert_eq!(self.pool.in_use(), 0, "packets left in flight");
        assert!(
            self.links
                .iter()
                .all(|l| l.fifo.is_empty() && l.sources.is_empty() && l.fifo_bytes == 0),
            "queues left non-empty"
        );
        let messages = self
            .specs
            .iter()
            .zip(&self.msgs)
            .map(|(s, m)| MessageResult {
                src: s.src,
                dst: s.dst,
                bytes: s.bytes,
                start: s.start,
                finish: m.finish.expect("every message completes"),
            })
            .collect();
        PacketRun {
            messages,
            links: self.links.into_iter().map(|l| l.stats).collect(),
            queue: self.queue.stats(),
            packets: self.packets,
            packet_hops: self.packet_hops,
            bytes_injected: self.bytes_injected,
            bytes_delivered: self.bytes_delivered,
            end: self.queue.now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Bandwidth;

    fn params() -> PacketParams {
        PacketParams {
            mtu_bytes: 4096,
            header_bytes: 64,
            switch_latency: Dur::from_ns(300),
        }
    }

    /// One message of P full packets over GPU -> switch -> GPU finishes at
    /// (P + 1) * t_pkt + 2 * latency + switch latency, exactly.
    #[test]
    fn single_message_closed_form() {
        let rate = Bandwidth::from_gbps(400).unwrap();
        let lat = Dur::from_ns(1000);
        let topo = Topology::star(2, rate, lat);
        let bytes = 256 * 4096;
        let run = simulate(
            &topo,
            &params(),
            &[MessageSpec {
                src: NodeId(0),
                dst: NodeId(1),
                bytes,
                start: Time::ZERO,
            }],
            &mut |_, _| {},
        );
        let t_pkt = rate.serialize(4160);
        let expected = Time::ZERO + t_pkt.saturating_mul(257) + lat + lat + Dur::from_ns(300);
        assert_eq!(run.messages[0].finish, expected);
        assert_eq!(run.packets, 256);
        assert_eq!(run.packet_hops, 512);
    }

    /// A partial last packet is serialized with its real size.
    #[test]
    fn partial_last_packet() {
        let rate = Bandwidth::from_gbps(100).unwrap();
        let topo = Topology::star(2, rate, Dur::ZERO);
        let p = PacketParams {
            switch_latency: Dur::ZERO,
            ..params()
        };
        let run = simulate(
            &topo,
            &p,
            &[MessageSpec {
                src: NodeId(1),
                dst: NodeId(0),
                bytes: 4096 + 100,
                start: Time::from_ps(5),
            }],
            &mut |_, _| {},
        );
        // Full packet then a 164-byte packet on the first hop. The small one reaches the switch
        // while the full one still occupies the second hop, so it waits for it:
        // finish = start + 2 * t(4160 B) + t(164 B).
        let expected =
            Time::from_ps(5) + rate.serialize(4160).saturating_mul(2) + rate.serialize(164);
        assert_eq!(run.messages[0].finish, expected);
    }

    /// Two senders into one receiver: the receiver's link is the bottleneck and stays busy
    /// from the first packet's arrival at the switch to the end.
    #[test]
    fn incast_closed_form() {
        let rate = Bandwidth::from_gbps(400).unwrap();
        let lat = Dur::from_ns(500);
        let topo = Topology::star(3, rate, lat);
        let m = |s| MessageSpec {
            src: NodeId(s),
            dst: NodeId(0),
            bytes: 64 * 4096,
            start: Time::ZERO,
        };
        let run = simulate(&topo, &params(), &[m(1), m(2)], &mut |_, _| {});
        let t_pkt = rate.serialize(4160);
        let expected =
            Time::ZERO + t_pkt + lat + Dur::from_ns(300) + t_pkt.saturating_mul(128) + lat;
        let last = run.messages.iter().map(|r| r.finish).max().unwrap();
        assert_eq!(last, expected);
        // The switch egress to GPU 0 queued packets: one from each sender arrives per t_pkt.
        assert!(run.links.iter().any(|l| l.peak_queue_bytes > 0));
    }
}
