//! Next-hop choice among equal-cost links: ECMP, spraying, per-flow round-robin spraying
//! and adaptive routing in the scale-out network; exact striping over NVLink. Invariant:
//! spraying draws from the per-node counters only when a packet has several next hops.

use crate::net::{Routing, ecmp_pick, message_hash, mix};
use crate::topology::{LinkClass, LinkId, NodeId};

impl super::Sim<'_> {
    /// The next link from `at` for packet `p` bound for `dst`. Most hops have one next
    /// link: that test stays inline in the hot path, the choice among several does not.
    #[inline(always)]
    pub(super) fn choose(&mut self, at: NodeId, dst: NodeId, p: &mut super::Packet) -> LinkId {
        let topo = self.topo;
        let hops = topo.next_hops(at, dst);
        if hops.len() == 1 {
            return hops[0];
        }
        self.choose_among(hops, at, dst, p)
    }

    /// [`Self::choose`] among several equal-cost next links `hops` to `dst`.
    pub(super) fn choose_among(
        &mut self,
        hops: &[LinkId],
        at: NodeId,
        dst: NodeId,
        p: &mut super::Packet,
    ) -> LinkId {
        let n = hops.len() as u64;
        if self.topo.link(hops[0]).class == LinkClass::NvLink {
            let row = self.stripe_row[at.0 as usize];
            debug_assert!(
                row != super::NONE,
                "an NVLink hop leaves a node with NVLinks"
            );
            let i = row as usize * self.stripe_width + dst.0 as usize % self.stripe_width;
            let next = self.stripe[i];
            self.stripe[i] = next.wrapping_add(1);
            return hops[(next as u64 % n) as usize];
        }
        let h = ecmp_pick(message_hash(self.params.seed, p.msg), at, hops.len()) as u64;
        let draw = |spray: &mut Vec<u32>| {
            let turn = &mut spray[at.0 as usize];
            *turn = turn.wrapping_add(1);
            mix(self.params.seed ^ ((at.0 as u64) << 32) ^ *turn as u64)
        };
        match self.params.routing {
            Routing::Ecmp => hops[h as usize],
            Routing::Spray => hops[(draw(&mut self.spray) % n) as usize],
            Routing::SprayRoundRobin => {
                let turn = (p.psn / p.spread as u32) as u64;
                p.spread = p.spread.saturating_mul(n as u16);
                hops[((h + turn) % n) as usize]
            }
            Routing::Adaptive => {
                let first = draw(&mut self.spray) % n;
                (0..n)
                    .map(|i| hops[((first + i) % n) as usize])
                    .min_by_key(|l| {
                        let e = &self.egress[l.0 as usize];
                        e.fifo_bytes + if e.busy { 1 } else { 0 }
                    })
                    .expect("n > 1")
            }
        }
    }
}
