//! Loss and its recovery: a lossy switch's drop, and go-back-N (NAKs, retransmission
//! timeouts, resending from a PSN, a QP's failure). Invariant: a dropped packet is either
//! resent by go-back-N or makes its message lost; a failed QP sends and accepts nothing.

use super::Event;
use crate::engine::Time;
use crate::topology::LinkId;

/// Go-back-N state of one message (see [`GoBackN`](crate::net::GoBackN)).
pub(super) struct GbnState {
    /// Receiver: the next PSN it accepts, and when it last advanced (or the message
    /// started). ACKs are not simulated as packets: they travel unqueued like CNPs, so the
    /// sender knows at time t the receiver's state at t minus the reverse delay.
    rcv_next: u32,
    rcv_advanced_at: Time,
    /// Receiver: the last NAK it sent (expected PSN, time).
    last_nak: Option<(u32, Time)>,
    /// Sender: timeouts in a row without the receiver advancing past `retry_psn`.
    retries: u32,
    retry_psn: u32,
    /// The QP ran out of retries: nothing more is sent or accepted.
    failed: bool,
}

impl GbnState {
    /// A message that has not started: nothing received, no retry.
    pub(super) fn new() -> Self {
        GbnState {
            rcv_next: 0,
            rcv_advanced_at: Time::ZERO,
            last_nak: None,
            retries: 0,
            retry_psn: 0,
            failed: false,
        }
    }
}

impl super::Sim<'_> {
    /// Message `m` started at `now`: its receiver counts progress from now, and its
    /// retransmission timer starts (messages with go-back-N only).
    pub(super) fn gbn_start(&mut self, now: Time, m: u32) {
        if let Some(gbn) = self.gbn_mut(m as usize) {
            gbn.rcv_advanced_at = now;
            let rto = self.gbn_params.rto;
            self.post(now + rto, Event::Rto(m));
        }
    }

    pub(super) fn gbn_mut(&mut self, m: usize) -> Option<&mut GbnState> {
        self.gbn.get_mut(m).and_then(Option::as_mut)
    }

    /// Go-back-N responder: whether packet `psn` of message `m` is the next one expected
    /// (always, for messages without go-back-N). An out-of-sequence packet is discarded
    /// and may provoke a NAK naming the expected PSN (see [`GoBackN`](crate::net::GoBackN)).
    pub(super) fn accept_in_sequence(&mut self, now: Time, m: usize, psn: u32) -> bool {
        let interval = self.gbn_params.nak_interval;
        let Some(gbn) = self.gbn_mut(m) else {
            return true;
        };
        if gbn.failed {
            return false;
        }
        let expected = gbn.rcv_next;
        if psn == expected {
            gbn.rcv_next += 1;
            gbn.rcv_advanced_at = now;
            return true;
        }
        let nak = psn > expected
            && gbn
                .last_nak
                .is_none_or(|(e, t)| e != expected || now.since(t) >= interval);
        if nak {
            gbn.last_nak = Some((expected, now));
            self.recovery.naks += 1;
            let at = now + self.reverse_delay(m);
            self.post(
                at,
                Event::Nak {
                    msg: m as u32,
                    psn: expected,
                },
            );
        }
        false
    }

    /// A NAK reaches the sender: resend from `psn`, unless the sender already knows the
    /// message is complete.
    pub(super) fn on_nak(&mut self, now: Time, m: u32, psn: u32) {
        let failed = self.gbn[m as usize].as_ref().is_some_and(|g| g.failed);
        if !failed && !self.sender_knows_complete(now, m as usize) {
            self.go_back(now, m, psn);
        }
    }

    pub(super) fn sender_knows_complete(&mut self, now: Time, m: usize) -> bool {
        let d = self.reverse_delay(m);
        self.recv[m].finished().is_some_and(|f| f + d <= now)
    }

    /// The retransmission timer of message `m`: resend from the last acknowledged PSN when
    /// the sender has heard of no progress for a whole timeout, else wait for the timeout
    /// counted from the last progress. Returns false when the message is complete (the
    /// timer stops; the event did nothing).
    pub(super) fn on_rto(&mut self, now: Time, m: u32) -> bool {
        let mi = m as usize;
        if self.recv[mi].finished().is_some() {
            return false;
        }
        let d = self.reverse_delay(mi);
        let rto = self.gbn_params.rto;
        let gbn = self.gbn[mi]
            .as_ref()
            .expect("timers run for go-back-N only");
        // The last ACK that reported progress reached the sender at `heard`; since then
        // the receiver has not advanced, so its state now is what the sender knows.
        let heard = gbn.rcv_advanced_at + d;
        if heard + rto > now {
            self.post(heard + rto, Event::Rto(m));
            return true;
        }
        let acked = gbn.rcv_next;
        self.recovery.timeouts += 1;
        let retry_cnt = self.gbn_params.retry_cnt;
        let gbn = self.gbn[mi].as_mut().expect("go-back-N");
        if acked != gbn.retry_psn {
            (gbn.retries, gbn.retry_psn) = (0, acked);
        }
        gbn.retries += 1;
        if retry_cnt.is_some_and(|max| gbn.retries > max) {
            self.fail_qp(m);
            return true;
        }
        self.go_back(now, m, acked);
        self.post(now + rto, Event::Rto(m));
        true
    }

    /// Message `m`'s QP enters the error state: the message is lost, what it had not sent
    /// is never sent, and its packets still in flight are discarded on arrival.
    pub(super) fn fail_qp(&mut self, m: u32) {
        self.recovery.qp_errors += 1;
        self.gbn[m as usize].as_mut().expect("go-back-N").failed = true;
        let bytes = self.specs[m as usize].bytes;
        self.mark_dropped(m);
        let ms = self.snd(m);
        // What it never sent: past its highest PSN sent. Not its unsent bytes, which after
        // a go-back also count PSNs sent once already.
        let mtu = ms.wire(self.params).mtu_bytes as u64;
        let (sent, g) = (ms.snd_max as u64 * mtu, ms.group());
        self.bytes_abandoned += bytes.saturating_sub(sent);
        self.snd_mut(m).unsent_bytes = 0;
        if let Some(i) = self.groups[g].msgs.iter().position(|&x| x == m) {
            self.groups[g].msgs.remove(i);
        }
    }

    /// Rewinds message `m`'s sender to `psn`; a message that had sent everything rejoins
    /// its source group.
    pub(super) fn go_back(&mut self, now: Time, m: u32, psn: u32) {
        let bytes = self.specs[m as usize].bytes;
        let params = self.params;
        let ms = self.snd_mut(m);
        if psn >= ms.snd_next {
            return;
        }
        let idle = ms.unsent_bytes == 0;
        ms.snd_next = psn;
        ms.unsent_bytes = bytes - psn as u64 * ms.wire(params).mtu_bytes as u64;
        if idle {
            let g = ms.group();
            self.groups[g].msgs.push(m);
            for i in 0..self.groups[g].links.len() {
                let l = self.groups[g].links[i];
                self.start_next(now, l);
            }
        }
    }

    pub(super) fn drop_packet(&mut self, now: Time, at_link: LinkId, p: super::Packet) {
        self.release_held(now, LinkId(p.in_link), p.wire_bytes as u64);
        let st = &mut self.cold[at_link.0 as usize].stats;
        st.drops += 1;
        st.dropped_bytes += p.payload_bytes as u64;
        self.bytes_dropped += p.payload_bytes as u64;
        // Go-back-N resends it; without recovery the message is lost (its destination
        // never receives all its bytes).
        if self.gbn.get(p.msg as usize).is_none_or(|g| g.is_none()) {
            self.mark_dropped(p.msg);
        }
    }
}
