//! The discrete-event core: simulated time, the event queue and seeded random numbers.
//!
//! Invariant: the engine knows nothing above it (no fabric, no model, no I/O). Every model
//! owns an [`EventQueue`] over its own closed event enum.

mod queue;
mod rng;
mod time;

pub use queue::{EventQueue, QueueStats};
pub use rng::{SimRng, stream};
pub use time::{Bandwidth, Dur, PS_PER_MS, PS_PER_NS, PS_PER_S, PS_PER_US, PastHorizon, Time};
