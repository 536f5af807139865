//! Congestion control at the packet level: one controller per NIC message, at its sender,
//! with the receiver's side (when to return feedback) in the same controller.
//!
//! [`Controller`] has a hook for each thing the simulator tells a controller or asks of it,
//! each a no-op by default; [`AnyController`] is the closed set of implementations,
//! dispatched by a match (no boxing), as smoltcp's `AnyController { None, Reno, Cubic }`.
//! The simulator schedules the feedback ([`Event::CcFeedback`](super::Event)) and timer
//! ([`Event::CcTimer`](super::Event)) events the hooks ask for; messages that cross NVLink
//! have [`NoCc`]. Invariant: hooks only change their controller's state and ask for events;
//! the order in which they are called (and so the event order) is the simulator's.
//!
//! Room for more, in the same hooks: HPCC and Swift both return feedback for every packet
//! (`feedback_due` true: an ACK), react to it in `on_feedback` (HPCC: link utilization from
//! the in-band telemetry each hop stamps, which `on_arrive` would record, sets window and
//! rate; Swift: the round-trip delay against its target sets the window), count bytes in
//! flight in `on_send`, and hold the source in `send_at` while the window is full or its
//! pacing gap has not passed; Swift's reaction to a timeout would be `on_timer`. Both need
//! the feedback event to carry the ACK's data (a pooled slot, as packets have), which
//! `CcFeedback(msg)` does not yet.

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
        if self.cc.get_mut(m).is_some_and(|c| c.feedback_due(now, ecn)) {
            let delay = self.reverse_delay(m);
            self.cnps += 1;
            self.post(now + delay, super::Event::CcFeedback(m as u32));
        }
    }

    /// Feedback reached message `m`'s sender. A message with nothing left to send ignores
    /// it (go-back-N may give it bytes to send again; later feedback then counts).
    pub(super) fn on_cc_feedback(&mut self, now: Time, m: u32) {
        if self.snd(m).unsent_bytes == 0 {
            return;
        }
        let Some(c) = self.cc.get_mut(m as usize) else {
            return;
        };
        if let Some(at) = c.on_feedback(now) {
            self.post(at, super::Event::CcTimer(m));
        }
    }

    /// The timer of message `m`'s controller fired.
    pub(super) fn on_cc_timer(&mut self, now: Time, m: u32) {
        let sending = self.snd(m).unsent_bytes > 0;
        let Some(c) = self.cc.get_mut(m as usize) else {
            return;
        };
        if let Some(at) = c.on_timer(now, sending) {
            self.post(at, super::Event::CcTimer(m));
        }
    }
}
