//! Congestion control at the packet level: one controller per NIC message, at its sender,
//! with the receiver's side (when to return feedback) in the same controller.
//!
//! [`Controller`] has a hook for each thing the simulator tells a controller or asks of it,
//! each a no-op by default; [`AnyController`] is the closed set of implementations,
//! dispatched by a match (no boxing), as smoltcp's `AnyController { None, Reno, Cubic }`.
//! The simulator schedules the feedback ([`Event::CcFeedback`](super::Event)) and timer
//! ([`Event::CcTimer`](super::Event)) events the hooks ask for; messages that cross NVLink
//! have [`NoCc`].
//!
//! Room for more: HPCC would use [`Controller::feedback_due`] on every packet (an ACK
//! carrying the hops' INT: queue depth, bytes sent, rate, which `on_arrive` would stamp),
//! [`Controller::on_feedback`] to set its window and rate, and [`Controller::send_at`]
//! to pace; Swift would return feedback on every packet too and compute delay from its
//! send timestamp in `on_feedback`, bound its window in `send_at`, and use
//! [`Controller::on_timer`] for its retransmit-free pacing timer. Both need the feedback
//! event to carry per-packet data (an ACK slot, like packets' pool), which `CcFeedback`
//! does not yet.

mod dcqcn;
mod none;

pub use dcqcn::{Dcqcn, ReactionPoint};
pub use none::NoCc;

use crate::engine::{Bandwidth, Time};
use crate::net::CongestionControl;

/// What a congestion controller is told and asked. Times are the simulator's; a hook that
/// returns a time asks for an event then.
pub trait Controller {
    /// Receiver: a packet of the message arrived at `now`, ECN-marked or not. Returns
    /// whether the receiver returns feedback to the sender now (a CNP for DCQCN).
    fn feedback_due(&mut self, _now: Time, _ecn: bool) -> bool {
        false
    }

    /// Sender: feedback reached it at `now` while its message still has bytes to send.
    /// Returns when its timer should fire, if it arms one now.
    fn on_feedback(&mut self, _now: Time) -> Option<Time> {
        None
    }

    /// Sender: the timer it asked for fired; `sending`: whether its message still has bytes
    /// to send. Returns when the timer should fire next, if again.
    fn on_timer(&mut self, _now: Time, _sending: bool) -> Option<Time> {
        None
    }

    /// Sender: the earliest time its next packet may leave (pacing); [`Time::ZERO`] when
    /// it is not paced.
    fn send_at(&self) -> Time {
        Time::ZERO
    }

    /// Sender: a packet with `payload_bytes` (`wire_bytes` on the wire) left at `now`.
    fn on_send(&mut self, _now: Time, _payload_bytes: u64, _wire_bytes: u64) {}
}

/// The congestion controllers, one variant each.
#[derive(Clone, Debug)]
pub enum AnyController<'a> {
    None(NoCc),
    Dcqcn(Dcqcn<'a>),
}

impl<'a> AnyController<'a> {
    /// The controller of a message that leaves through a NIC of rate `line` (`None`: it
    /// crosses NVLink only), under congestion control `cc`.
    pub fn new(cc: &'a CongestionControl, line: Option<Bandwidth>) -> Self {
        match (cc, line) {
            (CongestionControl::Dcqcn(p), Some(line)) => AnyController::Dcqcn(Dcqcn::new(p, line)),
            _ => AnyController::None(NoCc),
        }
    }
}

impl Controller for AnyController<'_> {
    #[inline]
    fn feedback_due(&mut self, now: Time, ecn: bool) -> bool {
        match self {
            AnyController::None(c) => c.feedback_due(now, ecn),
            AnyController::Dcqcn(c) => c.feedback_due(now, ecn),
        }
    }

    #[inline]
    fn on_feedback(&mut self, now: Time) -> Option<Time> {
        match self {
            AnyController::None(c) => c.on_feedback(now),
            AnyController::Dcqcn(c) => c.on_feedback(now),
        }
    }

    #[inline]
    fn on_timer(&mut self, now: Time, sending: bool) -> Option<Time> {
        match self {
            AnyController::None(c) => c.on_timer(now, sending),
            AnyController::Dcqcn(c) => c.on_timer(now, sending),
        }
    }

    #[inline]
    fn send_at(&self) -> Time {
        match self {
            AnyController::None(c) => c.send_at(),
            AnyController::Dcqcn(c) => c.send_at(),
        }
    }

    #[inline]
    fn on_send(&mut self, now: Time, payload_bytes: u64, wire_bytes: u64) {
        match self {
            AnyController::None(c) => c.on_send(now, payload_bytes, wire_bytes),
            AnyController::Dcqcn(c) => c.on_send(now, payload_bytes, wire_bytes),
        }
    }
}

/// The simulator's side: it schedules what the controllers ask for and counts feedback.
impl super::Sim<'_> {
    /// Receiver of message `m`: a packet arrived (`ecn`: marked); return feedback if its
    /// controller asks for it.
    pub(super) fn cc_receive(&mut self, now: Time, m: usize, ecn: bool) {
        if self.msgs[m].cc.feedback_due(now, ecn) {
            let delay = self.reverse_delay(m);
            self.cnps += 1;
            self.queue
                .schedule_at(now + delay, super::Event::CcFeedback(m as u32));
        }
    }

    /// Feedback reached message `m`'s sender. A message with nothing left to send ignores
    /// it (go-back-N may give it bytes to send again; later feedback then counts).
    pub(super) fn on_cc_feedback(&mut self, now: Time, m: u32) {
        let ms = &mut self.msgs[m as usize];
        if ms.unsent_bytes == 0 {
            return;
        }
        if let Some(at) = ms.cc.on_feedback(now) {
            self.queue.schedule_at(at, super::Event::CcTimer(m));
        }
    }

    /// The timer of message `m`'s controller fired.
    pub(super) fn on_cc_timer(&mut self, now: Time, m: u32) {
        let ms = &mut self.msgs[m as usize];
        let sending = ms.unsent_bytes > 0;
        if let Some(at) = ms.cc.on_timer(now, sending) {
            self.queue.schedule_at(at, super::Event::CcTimer(m));
        }
    }
}
