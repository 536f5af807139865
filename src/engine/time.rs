//! Simulated time and bandwidth as integer newtypes.
//!
//! Time is an integer count of picoseconds so that runs are bit-for-bit reproducible (no
//! floating-point accumulation) and so that one packet time on a 400 Gb/s link (4160 B ->
//! 83,200 ps) is exact. `u64` picoseconds covers about 213 days of simulated time.
//!
//! Arithmetic that input can drive past `u64` (a time plus a duration, a serialization at a
//! tiny rate) saturates instead of panicking. Every level stops with [`PastHorizon`] when an
//! event it must process lies at or past [`Time::HORIZON`] (2^62 ps, about 53 days): a
//! saturated value is always past it, so no result carries a clipped time.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// Picoseconds per nanosecond, microsecond, millisecond and second.
pub const PS_PER_NS: u64 = 1_000;
pub const PS_PER_US: u64 = 1_000_000;
pub const PS_PER_MS: u64 = 1_000_000_000;
pub const PS_PER_S: u64 = 1_000_000_000_000;

/// A point in simulated time, in picoseconds since the start of the run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

/// A span of simulated time, in picoseconds.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(u64);

impl Time {
    pub const ZERO: Time = Time(0);
    pub const MAX: Time = Time(u64::MAX);
    /// The latest time a run may reach: 2^62 ps, about 53.4 days of simulated time. Far past
    /// any decode step or serving run; a quarter of `u64`, so the times a level computes
    /// from one below it (config bounds a latency to 1 s, a packet to 64 KiB at >= 1 Mb/s)
    /// stay exact, and anything larger saturates past it.
    pub const HORIZON: Time = Time(1 << 62);

    pub const fn from_ps(ps: u64) -> Time {
        Time(ps)
    }
    pub const fn as_ps(self) -> u64 {
        self.0
    }
    pub fn as_ns_f64(self) -> f64 {
        self.0 as f64 / PS_PER_NS as f64
    }
    pub fn as_us_f64(self) -> f64 {
        self.0 as f64 / PS_PER_US as f64
    }
    /// The span from `earlier` to `self`. Panics if `earlier` is later: that is a logic error.
    pub fn since(self, earlier: Time) -> Dur {
        assert!(
            earlier <= self,
            "time went backwards: {earlier:?} > {self:?}"
        );
        Dur(self.0 - earlier.0)
    }
}

impl Dur {
    pub const ZERO: Dur = Dur(0);

    pub const fn from_ps(ps: u64) -> Dur {
        Dur(ps)
    }
    /// Saturates at `u64::MAX` ps (past [`Time::HORIZON`]).
    pub const fn from_ns(ns: u64) -> Dur {
        Dur(ns.saturating_mul(PS_PER_NS))
    }
    /// Saturates at `u64::MAX` ps (past [`Time::HORIZON`]).
    pub const fn from_us(us: u64) -> Dur {
        Dur(us.saturating_mul(PS_PER_US))
    }
    pub const fn as_ps(self) -> u64 {
        self.0
    }
    pub fn as_ns_f64(self) -> f64 {
        self.0 as f64 / PS_PER_NS as f64
    }
    pub fn as_us_f64(self) -> f64 {
        self.0 as f64 / PS_PER_US as f64
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / PS_PER_S as f64
    }
    pub fn saturating_mul(self, n: u64) -> Dur {
        Dur(self.0.saturating_mul(n))
    }
}

/// Saturates at [`Time::MAX`], which lies past [`Time::HORIZON`]: the level that schedules
/// such a time stops with [`PastHorizon`] when it reaches it.
impl Add<Dur> for Time {
    type Output = Time;
    #[inline]
    fn add(self, d: Dur) -> Time {
        Time(self.0.saturating_add(d.0))
    }
}

impl AddAssign<Dur> for Time {
    fn add_assign(&mut self, d: Dur) {
        *self = *self + d;
    }
}

/// Saturates at `u64::MAX` ps, as `Time + Dur` does.
impl Add for Dur {
    type Output = Dur;
    #[inline]
    fn add(self, d: Dur) -> Dur {
        Dur(self.0.saturating_add(d.0))
    }
}

impl AddAssign for Dur {
    fn add_assign(&mut self, d: Dur) {
        *self = *self + d;
    }
}

impl Sub for Dur {
    type Output = Dur;
    fn sub(self, d: Dur) -> Dur {
        Dur(self.0.checked_sub(d.0).expect("negative duration"))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} us", self.as_us_f64())
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} us", self.as_us_f64())
    }
}

/// A run reached [`Time::HORIZON`] with work left: its rates are too low for its bytes (or
/// its compute too long) for the simulated time to fit. Input, not a bug: reported as such.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the simulated time passed its limit of 2^62 ps (about 53 days) with work left: the \
     scenario's bytes are too many for its link rates (raise the `rate_gbps` keys or lower \
     the `bytes`), or its compute times too long"
)]
pub struct PastHorizon;

impl PastHorizon {
    /// `Err(PastHorizon)` when `t` is at or past the horizon.
    #[inline]
    pub fn check(t: Time) -> Result<(), PastHorizon> {
        if t >= Time::HORIZON {
            Err(PastHorizon)
        } else {
            Ok(())
        }
    }
}

/// A data rate in bits per second. Always positive: the validating constructor rejects zero,
/// so the division in [`Bandwidth::serialize`] can never divide by zero.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bandwidth(u64);

impl Bandwidth {
    /// `None` for a zero rate.
    pub const fn from_bps(bps: u64) -> Option<Bandwidth> {
        if bps == 0 { None } else { Some(Bandwidth(bps)) }
    }
    /// Gigabits per second (1e9 bit/s). `None` for zero.
    pub const fn from_gbps(gbps: u64) -> Option<Bandwidth> {
        Bandwidth::from_bps(gbps * 1_000_000_000)
    }
    pub const fn bps(self) -> u64 {
        self.0
    }
    pub fn gbps_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    /// Bytes per second, as the 1e9 B/s "GB/s" that published figures use.
    pub fn gbytes_per_s_f64(self) -> f64 {
        self.0 as f64 / 8e9
    }

    /// Time to put `bytes` on the wire at this rate, rounded up to a whole picosecond so that
    /// a link is never faster than its rate. Saturates at `u64::MAX` ps (past
    /// [`Time::HORIZON`]) for a size the rate cannot carry within `u64` picoseconds.
    pub fn serialize(self, bytes: u64) -> Dur {
        let bits_ps = bytes as u128 * 8 * PS_PER_S as u128;
        let ps = bits_ps.div_ceil(self.0 as u128);
        Dur(u64::try_from(ps).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Gb/s", self.gbps_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialization_is_exact_for_round_rates() {
        // 4160 B at 400 Gb/s: 33,280 bit / 4e11 bit/s = 83.2 ns (the htsim reference packet time).
        let r = Bandwidth::from_gbps(400).unwrap();
        assert_eq!(r.serialize(4160), Dur::from_ps(83_200));
        assert_eq!(r.serialize(0), Dur::ZERO);
    }

    #[test]
    fn serialization_rounds_up() {
        // 1 B at 3 bit/s = 2.666.. s -> rounded up, never down.
        let r = Bandwidth::from_bps(3).unwrap();
        assert_eq!(r.serialize(1).as_ps(), 2_666_666_666_667);
    }

    #[test]
    fn overflow_saturates_past_the_horizon() {
        // 1 TiB at 1 bit/s: 8.8e24 ps, far past u64.
        let d = Bandwidth::from_bps(1).unwrap().serialize(1 << 40);
        assert_eq!(d.as_ps(), u64::MAX);
        assert!(PastHorizon::check(Time::ZERO + d).is_err());
        assert_eq!((Time::HORIZON + Dur::from_ps(u64::MAX)).as_ps(), u64::MAX);
        assert_eq!((d + d).as_ps(), u64::MAX);
        assert_eq!(Dur::from_us(u64::MAX / 2).as_ps(), u64::MAX);
        assert!(PastHorizon::check(Time::from_ps((1 << 62) - 1)).is_ok());
        assert!(PastHorizon::check(Time::HORIZON).is_err());
    }

    #[test]
    fn zero_rate_is_rejected() {
        assert!(Bandwidth::from_bps(0).is_none());
    }

    #[test]
    #[should_panic(expected = "time went backwards")]
    fn since_rejects_backwards() {
        let _ = Time::from_ps(1).since(Time::from_ps(2));
    }
}
