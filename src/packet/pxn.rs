//! PXN relaying: a message's packets cross to the relay GPU on the destination's rail over
//! NVLink, then leave through that GPU's NIC. Invariant: a relayed packet holds room in its
//! relay's buffer from its source until the relay's NIC has sent it on.

use super::NONE;
use crate::engine::Time;
use crate::topology::{LinkId, NodeId};

impl super::Sim<'_> {
    /// PXN: takes `wire_bytes` of relay GPU `via`'s buffer for the packet link `l` is about
    /// to send. Without room it returns false and `l` waits to be woken by
    /// [`Self::release_relay`].
    #[inline]
    pub(super) fn reserve_relay(&mut self, l: LinkId, via: NodeId, wire_bytes: u64) -> bool {
        let used = self.relay_used[via.0 as usize] + wire_bytes;
        if self.params.pxn_fifo_bytes.is_some_and(|b| used > b) {
            let w = &mut self.relay_waiters[via.0 as usize];
            if !w.contains(&l.0) {
                w.push(l.0);
            }
            return false;
        }
        self.relay_used[via.0 as usize] = used;
        self.relay_peak_bytes = self.relay_peak_bytes.max(used);
        true
    }

    /// PXN: `bytes` of relay GPU `relay`'s buffer are free again; the links that waited for
    /// room there try again.
    pub(super) fn release_relay(&mut self, now: Time, relay: u32, bytes: u64) {
        let r = relay as usize;
        // Checked in release builds too (one branch per relayed packet): room freed that was
        // never taken here is a packet freeing it twice, or in a thread that does not hold it.
        self.relay_used[r] = self.relay_used[r]
            .checked_sub(bytes)
            .expect("relay room freed that was not held");
        // Wake waiting links in the order they came, only until one takes the room: every
        // link woken scans its messages again, so waking all of them at every freed packet
        // costs a scan per waiter per relayed packet. A woken link that does not take the
        // room (its blocked messages were sent meanwhile) leaves it to the next.
        // At most the links waiting now: one woken but still short of room (a small packet
        // freed, a full one wanted) waits again and must not be woken twice here.
        let n = self.relay_waiters[r].len();
        for _ in 0..n {
            if self.relay_waiters[r].is_empty() {
                break;
            }
            let l = self.relay_waiters[r].remove(0);
            let before = self.relay_used[r];
            self.start_next(now, LinkId(l));
            if self.relay_used[r] > before {
                break;
            }
        }
    }

    /// PXN: the relay GPU `at` sends packet `pkt` on toward its destination through its
    /// own NIC. The packet leaves like one of `at`'s own (no ingress buffer holds it: it
    /// sits in GPU memory) and goes ahead of `at`'s own messages' next packets, as a queued
    /// packet does. Its room in the relay's buffer (`NetParams::pxn_fifo_bytes`) was taken
    /// when its source sent it and is freed when the relay's NIC has sent it on.
    pub(super) fn relay(&mut self, now: Time, at: NodeId, mut p: super::Packet) {
        let dst = self.specs[p.msg as usize].dst;
        p.dst = dst;
        p.relayed = false;
        p.in_link = NONE;
        let next = self.choose(at, dst, &mut p);
        self.forward(now, next, p);
    }
}
