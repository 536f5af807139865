//! The DCQCN reaction point: a per-flow rate limiter driven by CNPs, a timer and a byte
//! counter (Zhu et al., SIGCOMM 2015, Algorithm 1 and section 3).
//!
//! Simplification, stated: one periodic timer serves both alpha decay (the paper's K) and
//! the timer-driven rate increase (the paper's T); the paper's defaults give both 55 us.

use crate::engine::Bandwidth;
use crate::net::DcqcnParams;

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
