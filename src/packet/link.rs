//! A link's state, laid out for the hop: what a packet's send and its arrival read and
//! write of the link it leaves on is one cache line ([`Egress`]), what its arrival and
//! its departure from the far node read and write of the link it came on is another
//! ([`Ingress`]), and everything else ([`LinkCold`]: statistics, source groups, pacing) is
//! touched once a packet at most. Invariant: the statistics a run reports are
//! [`LinkCold::stats`] plus the sends [`Egress`] still counts ([`Egress::flush`]).
//!
//! Why: at 1,024 GPUs a hop's links are rarely in the nearer caches (tens of thousands of
//! links are served between two packets of one), and the 312-byte state this replaced put
//! the fields of one hop on four or five lines, each a miss (cachegrind: about 20 first-level
//! misses per event on `hgx128-a2a`).

use super::Packet;
use crate::engine::{Bandwidth, Dur};
use crate::net::LinkStats;
use crate::topology::NodeId;

/// A FIFO of packets in a ring of power-of-two capacity: 24 bytes against a `VecDeque`'s
/// 32, so that two counters and the serialization cache share its line.
pub(super) struct Ring {
    buf: Box<[Packet]>,
    head: u32,
    len: u32,
}

impl Ring {
    pub(super) fn new() -> Ring {
        Ring {
            buf: Box::new([]),
            head: 0,
            len: 0,
        }
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(super) fn push_back(&mut self, p: Packet) {
        if self.len as usize == self.buf.len() {
            self.grow();
        }
        let mask = self.buf.len() - 1;
        self.buf[(self.head as usize + self.len as usize) & mask] = p;
        self.len += 1;
    }

    /// Where the first packet lies (for a prefetch).
    #[inline]
    pub(super) fn front(&self) -> Option<&Packet> {
        (self.len > 0).then(|| &self.buf[self.head as usize])
    }

    #[inline]
    pub(super) fn pop_front(&mut self) -> Option<Packet> {
        if self.len == 0 {
            return None;
        }
        let p = self.buf[self.head as usize];
        self.head = ((self.head as usize + 1) & (self.buf.len() - 1)) as u32;
        self.len -= 1;
        Some(p)
    }

    /// Doubles the capacity (4 packets first), the packets in order from the start.
    #[cold]
    fn grow(&mut self) {
        let cap = (self.buf.len() * 2).max(4);
        assert!(
            cap <= 1 << 31,
            "a link's FIFO holds fewer than 2^31 packets"
        );
        let mut buf = vec![Packet::EMPTY; cap].into_boxed_slice();
        for (i, slot) in buf.iter_mut().take(self.len as usize).enumerate() {
            *slot = self.buf[(self.head as usize + i) & (self.buf.len() - 1)];
        }
        self.buf = buf;
        self.head = 0;
    }
}

/// The sender side of a link: its FIFO, whether it is sending or paused, and what a send
/// needs to schedule the packet's departure and arrival. One cache line.
#[repr(align(64))]
pub(super) struct Egress {
    /// Packets waiting to be sent, by value: a hop reads the packet where the link's queue
    /// keeps it, in order (at 1,024 GPUs the pool slots this replaced were half the hot
    /// loop's time, each a cache miss).
    pub(super) fifo: Ring,
    pub(super) fifo_bytes: u64,
    pub(super) peak_queue_bytes: u64,
    /// The last packet size sent (`NO_SIZE`: none cached), its serialization time, and how
    /// many packets of that size were sent since [`LinkCold::stats`] last took them in.
    tx_wire: u32,
    tx_ps: u32,
    tx_count: u32,
    /// From the end of a packet's serialization to its arrival (the link latency, plus a
    /// scale-out switch's at the far end), in picoseconds; `NO_DELAY` where that does not
    /// fit (see [`Egress::arrival_delay`]).
    delay_ps: u32,
    pub(super) busy: bool,
    /// The receiver has paused this link's sender.
    pub(super) paused: bool,
}

const _: () = assert!(std::mem::size_of::<Egress>() == 64);

const NO_SIZE: u32 = u32::MAX;
const NO_DELAY: u32 = u32::MAX;

impl Egress {
    pub(super) fn new(delay: Dur) -> Egress {
        Egress {
            fifo: Ring::new(),
            fifo_bytes: 0,
            peak_queue_bytes: 0,
            tx_wire: NO_SIZE,
            tx_ps: 0,
            tx_count: 0,
            // u32::MAX itself reads as `NO_DELAY`: the cold state holds the same value.
            delay_ps: u32::try_from(delay.as_ps()).unwrap_or(NO_DELAY),
            busy: false,
            paused: false,
        }
    }

    /// The serialization time of a `wire`-byte packet about to be sent, counted in the
    /// link's statistics: from the cache when it is the size last sent (nearly always a
    /// full packet), else computed at the link's rate and the counts so far handed to
    /// `cold` (this link's), which only this path touches.
    #[inline]
    pub(super) fn send(&mut self, wire: u32, cold: &mut LinkCold) -> Dur {
        // A count of 0 means nothing is cached (whatever `tx_wire` holds).
        if self.tx_wire == wire && (1..u32::MAX).contains(&self.tx_count) {
            self.tx_count += 1;
            return Dur::from_ps(self.tx_ps as u64);
        }
        self.send_uncached(wire, cold)
    }

    #[cold]
    fn send_uncached(&mut self, wire: u32, cold: &mut LinkCold) -> Dur {
        self.flush(&mut cold.stats);
        let tx = cold.rate.serialize(wire as u64);
        match u32::try_from(tx.as_ps()) {
            Ok(ps) if wire != NO_SIZE => {
                self.tx_wire = wire;
                self.tx_ps = ps;
                self.tx_count = 1;
            }
            _ => {
                self.tx_wire = NO_SIZE;
                cold.stats.packets += 1;
                cold.stats.wire_bytes += wire as u64;
                cold.stats.busy += tx;
            }
        }
        tx
    }

    /// Hands the sends counted here to `stats`.
    pub(super) fn flush(&mut self, stats: &mut LinkStats) {
        let n = self.tx_count as u64;
        stats.packets += n;
        stats.wire_bytes += n * self.tx_wire as u64;
        stats.busy += Dur::from_ps(n * self.tx_ps as u64);
        self.tx_count = 0;
    }

    /// From the end of serialization to arrival (`cold`, this link's, holds it where it
    /// did not fit the line).
    #[inline]
    pub(super) fn arrival_delay(&self, cold: &LinkCold) -> Dur {
        if self.delay_ps == NO_DELAY {
            cold.delay
        } else {
            Dur::from_ps(self.delay_ps as u64)
        }
    }
}

/// The receiver side of a link: the bytes received on it that its receiver still holds,
/// and the thresholds at which it pauses and resumes the sender. One cache line.
#[repr(align(64))]
pub(super) struct Ingress {
    /// The node it arrives at, and whether that is a scale-out switch.
    pub(super) to: NodeId,
    pub(super) to_switch: bool,
    pub(super) held_bytes: u64,
    pub(super) peak_held_bytes: u64,
    /// Pause at `xoff` held bytes, resume at `xon`; `None`: the receiver never pauses it.
    pub(super) pause: Option<(u64, u64)>,
    pub(super) pause_sent: bool,
}

const _: () = assert!(std::mem::size_of::<Ingress>() == 64);

/// The rest of a link's state: touched once a packet at most (a source's round-robin), or
/// rarely (pauses, drops, marks).
pub(super) struct LinkCold {
    pub(super) rate: Bandwidth,
    /// [`Egress::arrival_delay`].
    pub(super) delay: Dur,
    pub(super) paused_since: crate::engine::Time,
    /// Source groups this link serves (GPU egress only), where round-robin over them
    /// resumes, and this link's own round-robin position in each group's messages.
    pub(super) groups: Vec<u32>,
    pub(super) group_cursor: usize,
    pub(super) msg_cursor: Vec<usize>,
    pub(super) wake_at: Option<crate::engine::Time>,
    /// Every count but the sends [`Egress`] has not handed over yet.
    pub(super) stats: LinkStats,
}

impl LinkCold {
    pub(super) fn new(rate: Bandwidth, delay: Dur) -> LinkCold {
        LinkCold {
            rate,
            delay,
            paused_since: crate::engine::Time::ZERO,
            groups: Vec::new(),
            group_cursor: 0,
            msg_cursor: Vec::new(),
            wake_at: None,
            stats: LinkStats::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn packet(i: u32) -> Packet {
        Packet {
            msg: i,
            psn: i,
            ..Packet::EMPTY
        }
    }

    proptest! {
        /// Pushes and pops in any interleaving (through growth with the ring wrapped)
        /// give what a `VecDeque` gives.
        #[test]
        fn a_ring_is_a_fifo(ops in proptest::collection::vec(0u8..3, 0..400)) {
            let mut ring = Ring::new();
            let mut model = VecDeque::new();
            let mut next = 0;
            for op in ops {
                if op < 2 {
                    ring.push_back(packet(next));
                    model.push_back(next);
                    next += 1;
                } else {
                    prop_assert_eq!(ring.pop_front().map(|p| p.msg), model.pop_front());
                }
                prop_assert_eq!(ring.len(), model.len());
                prop_assert_eq!(ring.is_empty(), model.is_empty());
            }
            while let Some(m) = model.pop_front() {
                prop_assert_eq!(ring.pop_front().map(|p| p.psn), Some(m));
            }
            prop_assert!(ring.pop_front().is_none());
        }

        /// The sends a link counts in its hot line, handed over when the size changes and
        /// at the end, add up to each packet counted as it is sent; on a link so slow that
        /// a packet's time does not fit the line (1 Mb/s: 33 ms for 4 KiB) too.
        #[test]
        fn sends_counted_in_the_line_add_up(
            sizes in proptest::collection::vec(
                prop_oneof![Just(4160u32), Just(64), 1u32..9000], 0..200),
            bps in prop_oneof![Just(400_000_000_000u64), Just(1_000_000)],
        ) {
            let rate = Bandwidth::from_bps(bps).unwrap();
            let mut cold = LinkCold::new(rate, Dur::ZERO);
            let mut e = Egress::new(Dur::from_ps(500_000));
            let mut want = LinkStats::default();
            for &w in &sizes {
                let tx = e.send(w, &mut cold);
                prop_assert_eq!(tx, rate.serialize(w as u64));
                want.packets += 1;
                want.wire_bytes += w as u64;
                want.busy += tx;
            }
            e.flush(&mut cold.stats);
            prop_assert_eq!(cold.stats.packets, want.packets);
            prop_assert_eq!(cold.stats.wire_bytes, want.wire_bytes);
            prop_assert_eq!(cold.stats.busy, want.busy);
        }
    }

    /// A delay too long for the line is kept beside it.
    #[test]
    fn a_long_delay_is_kept_in_the_cold_state() {
        let long = Dur::from_ps(u32::MAX as u64 + 7);
        let e = Egress::new(long);
        let cold = LinkCold::new(Bandwidth::from_bps(1_000_000_000).unwrap(), long);
        assert_eq!(e.arrival_delay(&cold), long);
        let short = Egress::new(Dur::from_ps(123));
        assert_eq!(short.arrival_delay(&cold), Dur::from_ps(123));
    }
}
