//! DCQCN (Zhu et al., SIGCOMM 2015): the reaction point, a per-flow rate limiter driven by
//! CNPs, a timer and a byte counter (Algorithm 1 and section 3), and the notification
//! point, which returns at most one CNP per flow per `cnp_interval` of ECN-marked packets.
//!
//! Simplification, stated: one periodic timer serves both alpha decay (the paper's K) and
//! the timer-driven rate increase (the paper's T); the paper's defaults give both 55 us.

use super::Controller;
use crate::engine::{Bandwidth, Dur, Time};
use crate::net::DcqcnParams;

/// DCQCN as a [`Controller`]: CNPs are its feedback, the reaction point's period its
/// timer (armed only while the rate is below line rate), and it paces the sender to the
/// reaction point's rate.
#[derive(Clone, Debug)]
pub struct Dcqcn<'a> {
    params: &'a DcqcnParams,
    rp: ReactionPoint,
    /// When the sender may send its next packet; meaningful only while the rate is limited.
    next_send: Time,
    timer_armed: bool,
    /// Notification point: when it last returned a CNP.
    last_cnp_sent: Option<Time>,
}

impl<'a> Dcqcn<'a> {
    /// A flow starting at line rate `line`.
    pub fn new(params: &'a DcqcnParams, line: Bandwidth) -> Self {
        Dcqcn {
            params,
            rp: ReactionPoint::new(line),
            next_send: Time::ZERO,
            timer_armed: false,
            last_cnp_sent: None,
        }
    }
}

impl Controller for Dcqcn<'_> {
    #[inline]
    fn feedback_due(&mut self, now: Time, ecn: bool) -> bool {
        let due = ecn
            && self
                .last_cnp_sent
                .is_none_or(|t| now.since(t) >= self.params.cnp_interval);
        if due {
            self.last_cnp_sent = Some(now);
        }
        due
    }

    fn on_feedback(&mut self, now: Time) -> Option<Time> {
        self.rp.on_cnp(self.params);
        if self.timer_armed {
            return None;
        }
        self.timer_armed = true;
        Some(now + self.params.timer)
    }

    fn on_timer(&mut self, now: Time, sending: bool) -> Option<Time> {
        self.timer_armed = false;
        // A flow with nothing left to send needs no rate: its timer lapses until a CNP.
        if !sending {
            return None;
        }
        self.rp.on_timer(self.params);
        if !self.rp.limited() {
            return None;
        }
        self.timer_armed = true;
        Some(now + self.params.timer)
    }

    #[inline]
    fn send_at(&self) -> Time {
        if self.rp.limited() {
            self.next_send
        } else {
            Time::ZERO
        }
    }

    #[inline]
    fn on_send(&mut self, now: Time, payload_bytes: u64, wire_bytes: u64) {
        self.rp.on_sent(payload_bytes, self.params);
        if self.rp.limited() {
            let gap_ps = (wire_bytes as f64 * 8e12 / self.rp.rate_bps()).ceil() as u64;
            self.next_send = now + Dur::from_ps(gap_ps);
        }
    }
}

/// The DCQCN reaction point of one flow.
#[derive(Clone, Debug)]
pub struct ReactionPoint {
    line_bps: f64,
    /// Current rate.
    rc_bps: f64,
    /// Target rate.
    rt_bps: f64,
    alpha: f64,
    /// Timer expiries and byte-counter expiries since the last rate cut.
    timer_events: u32,
    byte_events: u32,
    bytes_since_event: u64,
    /// Whether a CNP arrived since the last timer expiry (alpha then does not decay).
    cnp_since_timer: bool,
}

impl ReactionPoint {
    pub fn new(line: Bandwidth) -> Self {
        let line_bps = line.bps() as f64;
        ReactionPoint {
            line_bps,
            rc_bps: line_bps,
            rt_bps: line_bps,
            alpha: 1.0,
            timer_events: 0,
            byte_events: 0,
            bytes_since_event: 0,
            cnp_since_timer: false,
        }
    }

    /// The current sending rate in bit/s.
    pub fn rate_bps(&self) -> f64 {
        self.rc_bps
    }

    /// Whether the flow is below line rate (and so needs pacing and its timer).
    pub fn limited(&self) -> bool {
        self.rc_bps < self.line_bps
    }

    /// A CNP arrived: cut the rate.
    pub fn on_cnp(&mut self, p: &DcqcnParams) {
        self.rt_bps = self.rc_bps;
        self.rc_bps = (self.rc_bps * (1.0 - self.alpha / 2.0)).max(p.min_rate.bps() as f64);
        self.alpha = (1.0 - p.g) * self.alpha + p.g;
        self.timer_events = 0;
        self.byte_events = 0;
        self.bytes_since_event = 0;
        self.cnp_since_timer = true;
    }

    /// The periodic timer fired.
    pub fn on_timer(&mut self, p: &DcqcnParams) {
        if !self.cnp_since_timer {
            self.alpha *= 1.0 - p.g;
        }
        self.cnp_since_timer = false;
        self.timer_events += 1;
        self.increase(p);
    }

    /// `bytes` were sent.
    pub fn on_sent(&mut self, bytes: u64, p: &DcqcnParams) {
        self.bytes_since_event += bytes;
        if self.bytes_since_event >= p.byte_counter_bytes {
            self.bytes_since_event -= p.byte_counter_bytes;
            self.byte_events += 1;
            self.increase(p);
        }
    }

    fn increase(&mut self, p: &DcqcnParams) {
        let f = p.fast_recovery_steps;
        let (t, b) = (self.timer_events, self.byte_events);
        if t.max(b) < f {
            // Fast recovery: toward the target, which stays.
        } else if t.min(b) > f {
            // Hyper increase.
            let i = (t.min(b) - f) as f64;
            self.rt_bps += i * p.rate_hai.bps() as f64;
        } else {
            self.rt_bps += p.rate_ai.bps() as f64;
        }
        self.rt_bps = self.rt_bps.min(self.line_bps);
        self.rc_bps = ((self.rt_bps + self.rc_bps) / 2.0).min(self.line_bps);
        // Within a picosecond-level pacing error of line rate counts as line rate.
        if self.line_bps - self.rc_bps < 1.0 {
            self.rc_bps = self.line_bps;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_then_recover() {
        let p = DcqcnParams::default();
        let mut rp = ReactionPoint::new(Bandwidth::from_gbps(400).unwrap());
        rp.on_cnp(&p);
        // alpha starts at 1: the first cut halves the rate.
        assert_eq!(rp.rate_bps(), 200e9);
        assert!(rp.limited());
        // Fast recovery halves the distance to the target (400) each timer event.
        rp.on_timer(&p);
        assert_eq!(rp.rate_bps(), 300e9);
        rp.on_timer(&p);
        assert_eq!(rp.rate_bps(), 350e9);
        for _ in 0..200 {
            rp.on_timer(&p);
        }
        assert!(!rp.limited(), "recovers to line rate without CNPs");
    }

    #[test]
    fn one_cnp_per_interval_and_one_timer_armed() {
        let p = DcqcnParams::default();
        let mut cc = Dcqcn::new(&p, Bandwidth::from_gbps(400).unwrap());
        let t0 = Time::ZERO + Dur::from_us(1);
        assert!(
            !cc.feedback_due(t0, false),
            "unmarked packets return nothing"
        );
        assert!(cc.feedback_due(t0, true));
        assert!(!cc.feedback_due(t0 + (p.cnp_interval - Dur::from_ps(1)), true));
        assert!(cc.feedback_due(t0 + p.cnp_interval, true));
        assert_eq!(cc.on_feedback(t0), Some(t0 + p.timer));
        assert_eq!(cc.on_feedback(t0), None, "the timer is already armed");
        assert_eq!(cc.send_at(), Time::ZERO, "nothing sent yet");
        cc.on_send(t0, 4096, 4160);
        assert!(cc.send_at() > t0, "paced below line rate");
        let t1 = t0 + p.timer;
        assert_eq!(cc.on_timer(t1, true), Some(t1 + p.timer));
        assert_eq!(cc.on_timer(t1 + p.timer, false), None, "lapses when idle");
        assert_eq!(cc.on_feedback(t1), Some(t1 + p.timer), "rearmed by a CNP");
    }

    #[test]
    fn alpha_decays_so_later_cuts_are_gentler() {
        let p = DcqcnParams::default();
        let mut rp = ReactionPoint::new(Bandwidth::from_gbps(100).unwrap());
        rp.on_cnp(&p);
        for _ in 0..400 {
            rp.on_timer(&p);
        }
        let before = rp.rate_bps();
        rp.on_cnp(&p);
        let cut = 1.0 - rp.rate_bps() / before;
        assert!(cut < 0.5 && cut > 0.0, "cut {cut}");
    }
}
